/**
 * Jest global setup for `npm test`: one line saying where the Vulkan tests are, since they need a Vulkan
 * device (a GPU or Mesa's lavapipe) and live in test/external (`npm run test:external`).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export default function vulkanNotice() {
  const run = spawnSync(join(process.cwd(), 'build', 'Release', 'glm-engine'), ['devices'], { encoding: 'utf8' });
  let devices = [];
  try {
    devices = JSON.parse(run.stdout).devices;
  } catch {
    // no engine build yet: say nothing about devices
  }
  const found = devices.length ? `Vulkan devices here: ${devices.map((d) => `${d.name} (${d.type})`).join(', ')}` : 'no Vulkan device here';
  console.log(`\nVulkan GPU tests left out of npm test (${found}): npm run test:external runs them`);
}
