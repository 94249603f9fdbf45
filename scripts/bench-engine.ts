/**
 * `npm run bench:engine`: this engine against llama.cpp on the bench fixture (GLM-4.5 layout, ~300M
 * parameters), at q40 and q80, same weights (the .m and the GGUF export of one checkpoint), same thread
 * count, flash attention off, f16 KV cache in both (llama.cpp's default). Prefill of N prompt tokens in one batch, then G greedy decodes; medians
 * over repeats; each engine in its own process (llama.cpp with UV_THREADPOOL_SIZE=1, see the reference
 * notes). Prints both engines' tokens/s and the ratios. Run it on an otherwise idle machine: both
 * engines' threads spin between steps, and a busy core slows either one by a large factor.
 *
 *   npm run bench:engine [-- --threads 2 --prompt-tokens 512 --gen-tokens 128 --repeat 3 --keep DIR]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { convert } from '../converter/convert.js';
import { convertToGguf } from '../converter/gguf.js';
import { writeFixture } from '../converter/fixture.js';
import { packageRoot } from '../engine/native.js';
import { median } from '../engine/index.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: String(availableParallelism()) },
    'prompt-tokens': { type: 'string', default: '512' },
    'gen-tokens': { type: 'string', default: '128' },
    repeat: { type: 'string', default: '3' },
    keep: { type: 'string' },
  },
});
const threads = values.threads!;
const promptTokens = values['prompt-tokens']!;
const genTokens = values['gen-tokens']!;
const repeat = values.repeat!;

interface Speeds {
  prefill_tps_all: number[];
  decode_tps_all: number[];
}

function runJson(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Speeds {
  const run = spawnSync(command, args, { encoding: 'utf8', env, maxBuffer: 1 << 24 });
  if (run.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as Speeds;
}

const work = values.keep ?? (await mkdtemp(join(tmpdir(), 'glm-dllama-bench-engine-')));
try {
  const checkpoint = join(work, 'glm4moe-bench');
  if (!existsSync(join(checkpoint, 'config.json'))) await writeFixture({ arch: 'glm4moe', size: 'bench', outDir: checkpoint, seed: 1 });
  const rows: string[][] = [];
  for (const weights of ['q40', 'q80'] as const) {
    const m = join(work, `bench.${weights}.m`);
    const gguf = join(work, `bench.${weights}.gguf`);
    if (!existsSync(m)) await convert({ modelDir: checkpoint, outFile: m, weights });
    if (!existsSync(gguf)) await convertToGguf({ modelDir: checkpoint, outFile: gguf, weights });
    const ours = runJson(join(packageRoot(), 'build', 'Release', 'glm-engine'), [
      'bench', '--model', m, '--threads', threads, '--prompt-tokens', promptTokens, '--gen-tokens', genTokens, '--repeat', repeat, '--kv-cache', 'f16', '--json',
    ]);
    const theirs = runJson(process.execPath, [join(packageRoot(), 'scripts', 'llama-cpp-bench.mjs'), gguf, promptTokens, genTokens, threads, repeat], {
      ...process.env,
      UV_THREADPOOL_SIZE: '1',
    });
    const [op, od, tp, td] = [ours.prefill_tps_all, ours.decode_tps_all, theirs.prefill_tps_all, theirs.decode_tps_all].map(median) as [number, number, number, number];
    rows.push([weights, op.toFixed(1), tp.toFixed(1), (op / tp).toFixed(2), od.toFixed(1), td.toFixed(1), (od / td).toFixed(2)]);
  }
  const titles = ['weights', `prefill ${promptTokens} (glm-dllama)`, '(llama.cpp)', 'ratio', `decode ${genTokens} (glm-dllama)`, '(llama.cpp)', 'ratio'];
  const widths = titles.map((t, i) => Math.max(t.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(`bench:engine, glm4moe bench fixture, ${threads} threads, f16 KV cache, tokens/s (median of ${repeat})`);
  console.log([line(titles), ...rows.map(line)].join('\n'));
} finally {
  if (!values.keep) await rm(work, { recursive: true, force: true });
}
