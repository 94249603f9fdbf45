/**
 * Choosing the device and the errors on the way (docs/gpu.md), on a machine with Mesa's lavapipe: the
 * device list, `--device` parsing, lavapipe refused unless GLM_ENGINE_VULKAN_ALLOW_CPU=1, a missing
 * device index, a machine whose loader finds no driver (auto falls back to the CPU silently, vulkan
 * fails), the same errors as JavaScript exceptions from the addon, and the CLI's --device and
 * --cpu-experts flags.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { convert } from '../../converter/convert.js';
import { LoadedModel } from '../../engine/index.js';
import { fixture, removeDir, tempDir } from '../helpers.js';

const engine = join(process.cwd(), 'build', 'Release', 'glm-engine');
const run = (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const base = { ...process.env };
  delete base.GLM_ENGINE_VULKAN_ALLOW_CPU;
  const r = spawnSync(engine, args, { encoding: 'utf8', env: { ...base, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

let dir: string;
let model: string;
beforeAll(async () => {
  dir = await tempDir();
  model = join(dir, 'm.q40.m');
  await convert({ modelDir: await fixture(dir, { arch: 'glm4' }), outFile: model, weights: 'q40' });
});
afterAll(async () => removeDir(dir));

const generate = ['generate', '--tokens', '1,2,3', '--max-tokens', '4'];

test('devices lists lavapipe as a CPU-type device with 16-bit storage and its binding limit', () => {
  const r = run(['devices']);
  expect(r.status).toBe(0);
  const { devices } = JSON.parse(r.stdout) as { devices: { index: number; name: string; type: string; storage16: boolean; max_binding_bytes: number }[] };
  const lavapipe = devices.find((d) => d.name.startsWith('llvmpipe'));
  if (!lavapipe) throw new Error(`no lavapipe device (install mesa-vulkan-drivers and libvulkan1): ${r.stdout}`);
  expect(lavapipe).toMatchObject({ type: 'cpu', storage16: true });
  expect(lavapipe.max_binding_bytes).toBeGreaterThan(0);
});

test('lavapipe runs only when named and allowed; the same ids as the CPU', () => {
  const cpu = run([...generate, '--model', model, '--device', 'cpu']);
  expect(cpu.status).toBe(0);
  const refused = run([...generate, '--model', model, '--device', 'vulkan']);
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(/no Vulkan GPU with 16-bit storage among llvmpipe.*GLM_ENGINE_VULKAN_ALLOW_CPU=1/);
  const auto = run([...generate, '--model', model]);
  expect(auto).toMatchObject({ status: 0, stderr: '', stdout: cpu.stdout }); // auto passes over lavapipe silently
  const gpu = run([...generate, '--model', model, '--device', 'vulkan:0'], { GLM_ENGINE_VULKAN_ALLOW_CPU: '1' });
  expect(gpu).toMatchObject({ status: 0, stdout: cpu.stdout });
});

test('bad --device values and missing devices are clear errors', () => {
  const bad = run([...generate, '--model', model, '--device', 'gpu']);
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/--device must be cpu, vulkan, vulkan:N or auto, got "gpu"/);
  const missing = run([...generate, '--model', model, '--device', 'vulkan:9'], { GLM_ENGINE_VULKAN_ALLOW_CPU: '1' });
  expect(missing.status).toBe(1);
  expect(missing.stderr).toMatch(/no Vulkan device 9 \(this machine has \d+\)/);
});

test('a loader without drivers: auto runs on the CPU, vulkan fails naming the cause', () => {
  const noDriver = { VK_ICD_FILENAMES: join(dir, 'no-such-icd.json'), VK_DRIVER_FILES: join(dir, 'no-such-icd.json') };
  const auto = run([...generate, '--model', model], noDriver);
  expect(auto.status).toBe(0);
  const vulkan = run([...generate, '--model', model, '--device', 'vulkan'], noDriver);
  expect(vulkan.status).toBe(1);
  expect(vulkan.stderr).toMatch(/glm-engine: error: (cannot create a Vulkan 1\.1 instance|no Vulkan device)/);
});

test('the addon throws the same errors as JavaScript exceptions', () => {
  expect(() => new LoadedModel(model, { device: 'vulkan:9' })).toThrow(/no Vulkan device 9/);
  expect(() => new LoadedModel(model, { device: 'tpu' })).toThrow(/device must be cpu, vulkan, vulkan:N or auto/);
});

test('the CLI takes --device and --cpu-experts', () => {
  const cli = (device: string, ...extra: string[]) => {
    const r = spawnSync(process.execPath, [join(process.cwd(), 'dist', 'cli', 'glm-dllama.js'), 'logprobs', '--model', model, '--tokens', '1,2,3,4', '--top', '3', '--device', device, ...extra], {
      encoding: 'utf8',
      env: { ...process.env, GLM_ENGINE_VULKAN_ALLOW_CPU: '1' },
    });
    if (r.status !== 0) throw new Error(`glm-dllama logprobs --device ${device} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as unknown;
  };
  // the three most likely ids at each position, the same on both devices
  const top = (v: unknown) => JSON.stringify(v).match(/"id":\d+/g);
  const cpu = top(cli('cpu'));
  expect(cpu).toHaveLength(12);
  expect(top(cli('vulkan:0'))).toEqual(cpu);
  expect(top(cli('vulkan', '--cpu-experts', 'all'))).toEqual(cpu);
});
