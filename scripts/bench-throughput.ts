/**
 * `npm run bench:throughput`: batched decoding against one stream and against llama.cpp decoding the same
 * number of sequences in one context, on the bench fixture (GLM-4.5 layout, ~300M parameters), same
 * weights (the .m and the GGUF export of one checkpoint), same threads, f16 KV cache in both. At each
 * level, that many greedy generations of deterministic prompts start at once; aggregate decode tokens/s
 * runs from the last stream's first token to the end (engine/batch.ts concurrencyLevel), per-stream is
 * its share, time to first token counts from the start. Each engine in its own process. Goal: at 8
 * sequences, aggregate >= 4x one sequence and >= 1.0x llama.cpp.
 *
 *   npm run bench:throughput [-- --threads 2 --levels 1,8 --prompt-tokens 64 --gen-tokens 64 --weights q40 --keep DIR]
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
import { concurrencyLevel, type ConcurrencyLevel, type ConcurrencyResult } from '../engine/batch.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string', default: String(Math.min(2, availableParallelism())) },
    levels: { type: 'string', default: '1,2,4,8' },
    'prompt-tokens': { type: 'string', default: '64' },
    'gen-tokens': { type: 'string', default: '64' },
    weights: { type: 'string', default: 'q40' },
    keep: { type: 'string' },
  },
});
const levels = values.levels!.split(',').map(Number);
const weights = values.weights as 'q40' | 'q80';

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(command, args, { encoding: 'utf8', env, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout.trim().split('\n').pop()!;
}

const work = values.keep ?? (await mkdtemp(join(tmpdir(), 'glm-dllama-bench-throughput-')));
try {
  const checkpoint = join(work, 'glm4moe-bench');
  if (!existsSync(join(checkpoint, 'config.json'))) await writeFixture({ arch: 'glm4moe', size: 'bench', outDir: checkpoint, seed: 1 });
  const m = join(work, `bench.${weights}.m`);
  const gguf = join(work, `bench.${weights}.gguf`);
  if (!existsSync(m)) await convert({ modelDir: checkpoint, outFile: m, weights });
  if (!existsSync(gguf)) await convertToGguf({ modelDir: checkpoint, outFile: gguf, weights });
  const common = ['--threads', values.threads!, '--prompt-tokens', values['prompt-tokens']!, '--gen-tokens', values['gen-tokens']!, '--kv-cache', 'f16'];
  const ours = JSON.parse(
    run(process.execPath, [join(packageRoot(), 'dist', 'cli', 'glm-dllama.js'), 'bench', '--model', m, '--concurrency', values.levels!, ...common, '--json']),
  ) as ConcurrencyResult;
  const theirs: ConcurrencyLevel[] = levels.map((n) => {
    const r = JSON.parse(
      run(process.execPath, [join(packageRoot(), 'scripts', 'llama-cpp-throughput.mjs'), gguf, values['prompt-tokens']!, values['gen-tokens']!, values.threads!, String(n)], {
        ...process.env,
        UV_THREADPOOL_SIZE: '1',
      }),
    ) as { started: number; streams: number[][] };
    return concurrencyLevel(r.started, r.streams);
  });
  const single = ours.levels[0]!.aggregate_decode_tps;
  const rows = ours.levels.map((l, i) => {
    const t = theirs[i]!;
    return [
      String(l.concurrency),
      l.aggregate_decode_tps.toFixed(1),
      (l.aggregate_decode_tps / single).toFixed(2),
      l.per_stream_decode_tps.toFixed(1),
      (1000 * l.ttft_mean_s).toFixed(0),
      t.aggregate_decode_tps.toFixed(1),
      (1000 * t.ttft_mean_s).toFixed(0),
      (l.aggregate_decode_tps / t.aggregate_decode_tps).toFixed(2),
    ];
  });
  const titles = ['streams', 'aggregate tok/s', 'x one stream', 'per stream', 'TTFT ms', 'llama.cpp aggregate', 'llama.cpp TTFT ms', 'ratio'];
  const widths = titles.map((t, i) => Math.max(t.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(
    `bench:throughput, glm4moe bench fixture ${weights}, ${ours.threads} threads, f16 KV cache, prompt ${ours.prompt_tokens}, ${ours.gen_tokens} generated per stream`,
  );
  console.log([line(titles), ...rows.map(line)].join('\n'));
} finally {
  if (!values.keep) await rm(work, { recursive: true, force: true });
}
