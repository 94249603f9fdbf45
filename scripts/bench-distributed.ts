/**
 * `npm run bench:distributed`: the bench fixture (GLM-4.5 layout, ~300M parameters, q40) on 1, 2 and 4
 * nodes of this machine (the root plus `glm-engine worker` processes on loopback), with MoE experts
 * sliced and placed, and one node with as many threads as the nodes have together (where the cores
 * allow) as the baseline. Prints prefill and decode tokens/s and the bytes per decoded token each node
 * sent and received, next to the formula of docs/distributed.md and distributed-llama's for the same
 * shapes, and fails if a measured count differs from our formula. On a 2-core machine the nodes share
 * the cores, so the speed-up of real machines cannot show: what this measures is the traffic and the
 * overhead of the exchange.
 *
 *   npm run bench:distributed [-- --nodes 1,2,4 --threads 1 --prompt-tokens 128 --gen-tokens 32 --repeat 3 --sync q80 --keep DIR]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { convert } from '../converter/convert.js';
import { writeFixture } from '../converter/fixture.js';
import { readModelFile } from '../converter/model-file.js';
import { decodeTraffic, dllamaDecodeTraffic, type BenchResult, type NodeTraffic, type SyncType } from '../engine/index.js';
import { ENGINE, startWorker, stopWorker } from '../engine/worker-process.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1,2,4' },
    threads: { type: 'string', default: '1' },
    'prompt-tokens': { type: 'string', default: '128' },
    'gen-tokens': { type: 'string', default: '32' },
    repeat: { type: 'string', default: '3' },
    sync: { type: 'string', default: 'q80' },
    keep: { type: 'string' },
  },
});
const nodeCounts = values.nodes!.split(',').map(Number);
if (nodeCounts.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new Error('--nodes: expected node counts such as 1,2,4');
if (values.sync !== 'q80' && values.sync !== 'f32') throw new Error('--sync must be q80 or f32');
const threads = Number(values.threads);
if (!Number.isSafeInteger(threads) || threads < 1) throw new Error('--threads: expected a positive integer');
const sync: SyncType = values.sync;

const bytes = (t: NodeTraffic | undefined) => (t ? `${t.sent.toFixed(0)} / ${t.received.toFixed(0)}` : '-');

const work = values.keep ?? (await mkdtemp(join(tmpdir(), 'glm-dllama-bench-distributed-')));
try {
  const checkpoint = join(work, 'glm4moe-bench');
  if (!existsSync(join(checkpoint, 'config.json'))) await writeFixture({ arch: 'glm4moe', size: 'bench', outDir: checkpoint, seed: 1 });
  const model = join(work, 'bench.q40.m');
  if (!existsSync(model)) await convert({ modelDir: checkpoint, outFile: model, weights: 'q40' });
  const { header } = await readModelFile(model);
  const rows: string[][] = [];
  const mismatches: string[] = [];
  // One node given as many threads as N nodes have together, where the machine has the cores: the
  // fair baseline for the overhead of the exchange on one machine.
  const runs = [
    ...nodeCounts.flatMap((nodes) => (nodes === 1 ? ['-'] : ['slice', 'place']).map((experts) => ({ nodes, threads, experts }))),
    ...nodeCounts.filter((n) => n > 1 && n * threads <= availableParallelism()).map((n) => ({ nodes: 1, threads: n * threads, experts: '-' })),
  ];
  for (const { nodes, threads: nodeThreads, experts } of runs) {
    const workers = await Promise.all(Array.from({ length: nodes - 1 }, () => startWorker(['--threads', String(nodeThreads)])));
    try {
      const args = ['bench', '--model', model, '--threads', String(nodeThreads), '--prompt-tokens', values['prompt-tokens']!, '--gen-tokens', values['gen-tokens']!];
      args.push('--repeat', values.repeat!, '--json');
      if (nodes > 1) args.push('--workers', workers.map((w) => w.address).join(','), '--sync', sync, '--experts', experts);
      const run = spawnSync(ENGINE, args, { encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`glm-engine ${args.join(' ')} failed:\n${run.stderr}`);
      const r = JSON.parse(run.stdout) as BenchResult;
      const ours = decodeTraffic(header, nodes, sync);
      const theirs = dllamaDecodeTraffic(header, nodes, sync);
      if (JSON.stringify(r.decode_bytes_per_token) !== JSON.stringify(ours)) {
        mismatches.push(`${nodes} nodes: measured ${JSON.stringify(r.decode_bytes_per_token)}, formula ${JSON.stringify(ours)}`);
      }
      rows.push([
        String(nodes),
        String(nodeThreads),
        experts,
        r.prefill_tps.toFixed(1),
        r.decode_tps.toFixed(1),
        bytes(r.decode_bytes_per_token[0]),
        bytes(r.decode_bytes_per_token[1]),
        bytes(ours[0]) + ' | ' + bytes(ours[1]),
        bytes(theirs[0]) + ' | ' + bytes(theirs[1]),
      ]);
    } finally {
      workers.forEach(stopWorker);
    }
  }
  const titles = ['nodes', 'threads/node', 'experts', 'prefill tok/s', 'decode tok/s', 'root sent / recv', 'worker sent / recv', 'formula root | worker', 'distributed-llama root | worker'];
  const widths = titles.map((t, i) => Math.max(t.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(
    `bench:distributed, glm4moe bench fixture (dim ${header.dim}, ${header.nLayers} layers, vocab ${header.vocabSize}), q40 weights, ${sync} sync, ` +
      `on this machine (${availableParallelism()} cores); prefill ${values['prompt-tokens']}, decode ${values['gen-tokens']} tokens, median of ${values.repeat}; ` +
      'bytes per decoded token',
  );
  console.log([line(titles), ...rows.map(line)].join('\n'));
  if (mismatches.length > 0) throw new Error(`measured bytes differ from the formula:\n${mismatches.join('\n')}`);
} finally {
  if (!values.keep) await rm(work, { recursive: true, force: true });
}
