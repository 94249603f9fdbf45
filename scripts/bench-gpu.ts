/**
 * `npm run bench:gpu`: prefill and decode tokens/s of the engine on a Vulkan device next to the same
 * engine on the CPU, on the bench fixture (GLM-4.5 layout, ~300M parameters) at q40 and q80. Each run
 * is `glm-engine bench` in its own process; medians over repeats. On lavapipe (a Vulkan device that is
 * the CPU: set GLM_ENGINE_VULKAN_ALLOW_CPU=1) the figures say nothing about GPUs.
 *
 *   npm run bench:gpu [-- --device vulkan:0 --threads 8 --prompt-tokens 128 --gen-tokens 32 --repeat 3 --keep DIR]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { convert } from '../converter/convert.js';
import { writeFixture } from '../converter/fixture.js';
import { packageRoot } from '../engine/native.js';

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'vulkan' },
    threads: { type: 'string', default: String(availableParallelism()) },
    'prompt-tokens': { type: 'string', default: '128' },
    'gen-tokens': { type: 'string', default: '32' },
    repeat: { type: 'string', default: '3' },
    keep: { type: 'string' },
  },
});

interface Speeds {
  prefill_tps: number;
  decode_tps: number;
}

const engine = join(packageRoot(), 'build', 'Release', 'glm-engine');

function bench(model: string, device: string): Speeds {
  const args = ['bench', '--model', model, '--device', device, '--threads', values.threads!, '--prompt-tokens', values['prompt-tokens']!];
  args.push('--gen-tokens', values['gen-tokens']!, '--repeat', values.repeat!, '--kv-cache', 'f16', '--json');
  const run = spawnSync(engine, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (run.status !== 0) throw new Error(`glm-engine ${args.join(' ')} failed:\n${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as Speeds;
}

const devices = spawnSync(engine, ['devices'], { encoding: 'utf8' });
console.log(`Vulkan devices: ${devices.stdout.trim()}`);
const work = values.keep ?? (await mkdtemp(join(tmpdir(), 'glm-dllama-bench-gpu-')));
try {
  const checkpoint = join(work, 'glm4moe-bench');
  if (!existsSync(join(checkpoint, 'config.json'))) await writeFixture({ arch: 'glm4moe', size: 'bench', outDir: checkpoint, seed: 1 });
  console.log(`weights  device       prefill tok/s  decode tok/s   (${values['prompt-tokens']} prompt tokens, ${values['gen-tokens']} generated, ${values.threads} CPU threads)`);
  for (const weights of ['q40', 'q80'] as const) {
    const model = join(work, `bench.${weights}.m`);
    if (!existsSync(model)) await convert({ modelDir: checkpoint, outFile: model, weights });
    for (const device of ['cpu', values.device!]) {
      const r = bench(model, device);
      console.log(`${weights.padEnd(8)} ${device.padEnd(12)} ${r.prefill_tps.toFixed(1).padStart(13)}  ${r.decode_tps.toFixed(1).padStart(12)}`);
    }
  }
} finally {
  if (!values.keep) await rm(work, { recursive: true, force: true });
}
