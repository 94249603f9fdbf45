/**
 * `npm run bench:gpu`: prefill and decode tokens/s of the engine on a Vulkan device next to the same
 * engine on the CPU, and next to llama.cpp's Vulkan and CUDA builds (node-llama-cpp's prebuilt
 * binaries, every layer on the GPU) on GGUF exports of the same weights, on the bench fixture (GLM-4.5
 * layout, ~300M parameters) at q40 (Q4_0) and q80 (Q8_0). Each run is its own process; medians over
 * repeats. The read rate is the model file's bytes times decode tokens/s (each decoded token reads every
 * weight once; the fixture's few experts are all active), to compare with the card's memory bandwidth.
 * On lavapipe (a Vulkan device that is the CPU: set GLM_ENGINE_VULKAN_ALLOW_CPU=1) the figures say
 * nothing about GPUs, and llama.cpp's Vulkan build finds no device there.
 *
 *   npm run bench:gpu [-- --device vulkan:0 --threads 8 --prompt-tokens 128 --gen-tokens 32 --repeat 3 --keep DIR]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { convert } from '../converter/convert.js';
import { convertToGguf } from '../converter/gguf.js';
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
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function bench(model: string, device: string): Speeds {
  const args = ['bench', '--model', model, '--device', device, '--threads', values.threads!, '--prompt-tokens', values['prompt-tokens']!];
  args.push('--gen-tokens', values['gen-tokens']!, '--repeat', values.repeat!, '--kv-cache', 'f16', '--json');
  const run = spawnSync(engine, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (run.status !== 0) throw new Error(`glm-engine ${args.join(' ')} failed:\n${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as Speeds;
}

// llama.cpp on the GPU through node-llama-cpp (scripts/llama-cpp-bench.mjs), or why it cannot run here.
function benchLlamaCpp(gguf: string, gpu: 'vulkan' | 'cuda'): Speeds | string {
  const args = [join(packageRoot(), 'scripts', 'llama-cpp-bench.mjs'), gguf, values['prompt-tokens']!, values['gen-tokens']!, values.threads!, values.repeat!, gpu];
  const run = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, UV_THREADPOOL_SIZE: '1' }, maxBuffer: 1 << 24 });
  if (run.status !== 0) return `failed: ${run.stderr.trim().split('\n').pop()}`;
  const r = JSON.parse(run.stdout.trim().split('\n').pop()!) as { unavailable?: string; prefill_tps_all: number[]; decode_tps_all: number[] };
  return r.unavailable ?? { prefill_tps: median(r.prefill_tps_all), decode_tps: median(r.decode_tps_all) };
}

const devices = spawnSync(engine, ['devices'], { encoding: 'utf8' });
console.log(`Vulkan devices: ${devices.stdout.trim()}`);
const work = values.keep ?? (await mkdtemp(join(tmpdir(), 'glm-dllama-bench-gpu-')));
try {
  const checkpoint = join(work, 'glm4moe-bench');
  if (!existsSync(join(checkpoint, 'config.json'))) await writeFixture({ arch: 'glm4moe', size: 'bench', outDir: checkpoint, seed: 1 });
  console.log(`weights  engine               prefill tok/s  decode tok/s  read GB/s   (${values['prompt-tokens']} prompt tokens, ${values['gen-tokens']} generated, ${values.threads} CPU threads)`);
  for (const weights of ['q40', 'q80'] as const) {
    const model = join(work, `bench.${weights}.m`);
    const gguf = join(work, `bench.${weights}.gguf`);
    if (!existsSync(model)) await convert({ modelDir: checkpoint, outFile: model, weights });
    if (!existsSync(gguf)) await convertToGguf({ modelDir: checkpoint, outFile: gguf, weights });
    const row = (name: string, r: Speeds | string, bytes: number) =>
      console.log(typeof r === 'string' ? `${weights.padEnd(8)} ${name.padEnd(20)} ${r}`
        : `${weights.padEnd(8)} ${name.padEnd(20)} ${r.prefill_tps.toFixed(1).padStart(13)}  ${r.decode_tps.toFixed(1).padStart(12)}  ${((bytes * r.decode_tps) / 1e9).toFixed(1).padStart(9)}`);
    for (const device of ['cpu', values.device!]) row(`glm-dllama ${device}`, bench(model, device), statSync(model).size);
    for (const gpu of ['vulkan', 'cuda'] as const) row(`llama.cpp ${gpu}`, benchLlamaCpp(gguf, gpu), statSync(gguf).size);
  }
} finally {
  if (!values.keep) await rm(work, { recursive: true, force: true });
}
