/**
 * `npm run bench:convert`: converts the bench fixture (GLM-4.5 layout, ~300M parameters, bf16) to q40 and
 * prints input throughput and peak memory. The conversion runs in a child process so that its peak RSS
 * is the converter's alone, not the fixture generator's. The checkpoint is freshly written, so it is
 * read from the page cache: this measures the converter, not the disk.
 *
 *   npm run bench:convert [-- --arch glm4moe --weights q40 --threads 2 --repeat 5 --keep DIR --imatrix]
 *
 * --imatrix prices the importance-weighted q40 search: every matrix is weighted by a synthetic imatrix
 * (varied positive column values; the cost does not depend on them).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { convert, planConversion } from '../converter/convert.js';
import { writeFixture, type FixtureArch } from '../converter/fixture.js';
import { WeightType, encodedBytes, weightTypeFromName, type WeightTypeName } from '../converter/dtypes.js';
import { imatrixLayout, writeImatrix, type ImatrixEntry } from '../converter/imatrix.js';
import { native } from '../engine/native.js';

const { values } = parseArgs({
  options: {
    arch: { type: 'string', default: 'glm4moe' },
    weights: { type: 'string', default: 'q40' },
    threads: { type: 'string', default: String(availableParallelism()) },
    repeat: { type: 'string', default: '5' },
    keep: { type: 'string' },
    child: { type: 'string' },
    out: { type: 'string' },
    imatrix: { type: 'boolean', default: false },
    'imatrix-file': { type: 'string' },
  },
});

/** An imatrix for every matrix of the checkpoint's .m layout, with varied positive values. */
async function syntheticImatrix(modelDir: string, file: string): Promise<void> {
  const plan = await planConversion(modelDir, WeightType.Q40);
  await plan.checkpoint.close();
  const entries = new Map<string, ImatrixEntry>();
  for (const [name, { cols, mats }] of imatrixLayout(plan.header)) {
    const sumSquares = Float32Array.from({ length: cols * mats }, (_, i) => 1 + ((i * 2654435761) >>> 24));
    entries.set(name, { name, cols, mats, sumSquares, counts: new Float32Array(mats).fill(1) });
  }
  await writeImatrix(file, { datasets: ['synthetic'], chunkCount: 1, chunkSize: 1, entries });
}

/**
 * This process's peak resident memory. Linux's VmHWM belongs to the process image alone; getrusage's
 * maxRSS would also count the parent's memory at the fork that preceded exec.
 */
function peakRssKiB(): number {
  const status = existsSync('/proc/self/status') ? readFileSync('/proc/self/status', 'utf8') : '';
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status);
  return hwm ? Number(hwm[1]) : process.resourceUsage().maxRSS;
}

/** The native encoder alone, in memory: what the conversion would reach with free I/O. */
async function benchEncoder(weights: WeightTypeName, threads: number, weighted: boolean): Promise<void> {
  const n = 64 * 1024 * 1024;
  const src = new Uint8Array(n * 2);
  const words = new Uint16Array(src.buffer);
  for (let i = 0; i < n; i++) words[i] = 0x3c00 + ((i * 2654435761) >>> 20); // bf16 values of varied magnitude
  const type = weightTypeFromName(weights);
  const dst = new Uint8Array(encodedBytes(type, n));
  const importance = weighted ? Float32Array.from({ length: 4096 }, (_, j) => 1 + (j % 13)) : undefined;
  await native().encode(src, 2, dst, type, n, threads); // first touch of dst
  const started = performance.now();
  await native().encode(src, 2, dst, type, n, threads, importance);
  const seconds = (performance.now() - started) / 1000;
  const path = weighted ? 'importance-weighted search' : native().setSimd(true);
  console.log(`encoder only (${path}, ${threads} threads, in memory): ${((n * 2) / 1e9 / seconds).toFixed(2)} GB/s of bf16 input`);
}

if (values.child) {
  // Child: one conversion, then a JSON line with its timing and this process's peak RSS.
  const result = await convert({
    modelDir: values.child,
    outFile: values.out!,
    weights: values.weights as WeightTypeName,
    threads: Number(values.threads),
    ...(values['imatrix-file'] ? { imatrix: values['imatrix-file'] } : {}),
  });
  console.log(JSON.stringify({ seconds: result.seconds, sourceBytes: result.sourceBytes, bytes: result.bytes, parameters: result.parameters, maxRssKiB: peakRssKiB() }));
} else {
  const work = values.keep ?? (await mkdtemp(join(tmpdir(), 'glm-dllama-bench-')));
  const modelDir = join(work, `${values.arch}-bench`);
  try {
    if (!existsSync(join(modelDir, 'config.json'))) {
      const started = performance.now();
      await writeFixture({ arch: values.arch as FixtureArch, size: 'bench', outDir: modelDir, seed: 1 });
      console.log(`generated the bench fixture in ${((performance.now() - started) / 1000).toFixed(1)} s: ${modelDir}`);
    }
    // Flush the freshly written checkpoint so that the kernel's write-back does not compete with the runs.
    spawnSync('sync');
    await benchEncoder(values.weights as WeightTypeName, Number(values.threads), values.imatrix!);
    const imatrixFile = join(work, 'synthetic.imatrix.gguf');
    if (values.imatrix) await syntheticImatrix(modelDir, imatrixFile);
    const script = fileURLToPath(import.meta.url);
    const runs = [];
    for (let i = 0; i < Number(values.repeat); i++) {
      const args = [script, '--child', modelDir, '--out', join(work, `bench.${values.weights}.m`), '--weights', values.weights!, '--threads', values.threads!];
      const child = spawnSync(process.execPath, values.imatrix ? [...args, '--imatrix-file', imatrixFile] : args, { encoding: 'utf8' });
      if (child.status !== 0) throw new Error(`conversion failed: ${child.stderr}`);
      const run = JSON.parse(child.stdout.trim().split('\n').pop()!) as { seconds: number; sourceBytes: number; bytes: number; parameters: number; maxRssKiB: number };
      runs.push(run);
      console.log(
        `run ${i + 1}: ${(run.sourceBytes / 1e9).toFixed(3)} GB bf16 in ${run.seconds.toFixed(3)} s = ${(run.sourceBytes / 1e9 / run.seconds).toFixed(2)} GB/s of input; ` +
          `${(run.bytes / 1e6).toFixed(1)} MB ${values.weights} written; peak RSS ${(run.maxRssKiB / 1024).toFixed(0)} MiB`,
      );
    }
    const speeds = runs.map((r) => r.sourceBytes / 1e9 / r.seconds).sort((a, b) => a - b);
    const median = speeds[Math.floor(speeds.length / 2)]!;
    const peak = Math.max(...runs.map((r) => r.maxRssKiB)) / 1024;
    console.log(
      `bench:convert ${values.arch} bf16 -> ${values.weights}${values.imatrix ? ' with an imatrix' : ''}, ${values.threads} threads, ${runs[0]!.parameters / 1e6}M converted parameters: ` +
        `median ${median.toFixed(2)} GB/s of input (min ${speeds[0]!.toFixed(2)}, max ${speeds[speeds.length - 1]!.toFixed(2)}), peak RSS ${peak.toFixed(0)} MiB`,
    );
  } finally {
    if (!values.keep) await rm(work, { recursive: true, force: true });
  }
}
