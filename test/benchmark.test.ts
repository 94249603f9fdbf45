/**
 * benchmark: the noise-aware regression rule on synthetic samples, its exact rank test against brute
 * force, the cost figure, and runs of the tiny fixture against synthetic baselines.
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { median } from '../engine/index.js';
import { judgeRegression, rankTestPValue, runBenchmark, usdPerMillionTokens } from '../pipeline/benchmark.js';
import { parseResults, type BenchmarkResults } from '../pipeline/results.js';
import { cli, fixture, removeDir, tempDir } from './helpers.js';

describe('judgeRegression', () => {
  const base = [100, 97, 103, 99, 101];

  it('passes runs that differ from the base by noise only', () => {
    const j = judgeRegression([98, 104, 96, 100, 102], base, 10);
    expect(j.regressed).toBe(false);
    expect(j.detail).toMatch(/median 100\.0 tok\/s against 100\.0 \(0\.0% faster\), 5 runs 96\.0-104\.0 against 5 runs 97\.0-103\.0: within the 10% allowance/);
  });

  it('fails a clear drop, even on three runs a side', () => {
    const j = judgeRegression([71, 69, 70], [100, 101, 99], 10);
    expect(j.regressed).toBe(true);
    expect(j.changePct).toBeCloseTo(-30, 9);
    expect(j.pValue).toBeCloseTo(1 / 20, 12); // the one split of 6 values in 3 + 3 that is fully separated
    expect(j.detail).toMatch(/slower than the 10% allowance beyond run-to-run noise \(rank test p = 0\.050\)/);
  });

  it('passes one slow outlier', () => {
    expect(judgeRegression([99, 40, 101, 100, 98], base, 10).regressed).toBe(false);
    expect(judgeRegression([99, 40, 101], [100, 101, 99], 10).regressed).toBe(false);
  });

  it('passes a consistent drop within the allowance, and improvements', () => {
    expect(judgeRegression([95, 94, 95.5, 94.5, 95], base, 10).regressed).toBe(false);
    expect(judgeRegression([150, 160, 155], base, 10).regressed).toBe(false);
  });

  it('gives the benefit of the doubt to a median just past the allowance inside wide noise', () => {
    const j = judgeRegression([86, 120, 70, 88, 95], [100, 80, 125, 92, 104], 10);
    expect(j.changePct).toBeLessThan(-10);
    expect(j.regressed).toBe(false);
    expect(j.detail).toMatch(/past the 10% allowance but the runs overlap the base's too much to rule out noise \(rank test p = 0\.\d+ > 0\.05\)/);
  });

  it('refuses to judge single samples, or too few runs to ever reach significance', () => {
    expect(() => judgeRegression([50], [100], 10)).toThrow(/cannot judge a regression on 1 current and 1 base run\(s\): .* use at least 3 runs on each side/);
    expect(() => judgeRegression([50, 51], [100, 101, 99], 10)).toThrow(/on 2 current and 3 base/);
    expect(() => judgeRegression([50, 51, 52], [], 10)).toThrow(/base runs must be positive numbers, got \[\]/);
    expect(() => judgeRegression([50, 0, 52], base, 10)).toThrow(/current runs must be positive numbers/);
    expect(() => judgeRegression([50, 51, 52], base, -5)).toThrow(/max-regression must be a finite number >= 0/);
  });
});

describe('rankTestPValue', () => {
  /** P(U >= u) by listing every way to pick which of the n + m ranks belong to the first group. */
  function bruteForce(n: number, m: number, u: number): number {
    let hits = 0;
    let total = 0;
    for (let mask = 0; mask < 1 << (n + m); mask++) {
      let ones = 0;
      for (let b = 0; b < n + m; b++) ones += (mask >> b) & 1;
      if (ones !== n) continue;
      // U counts (first, second) pairs where the first-group value ranks lower.
      let pairs = 0;
      for (let i = 0; i < n + m; i++) for (let j = i + 1; j < n + m; j++) if ((mask >> i) & 1 && !((mask >> j) & 1)) pairs++;
      total++;
      if (pairs >= u) hits++;
    }
    return hits / total;
  }

  it.each([
    [1, 1],
    [3, 3],
    [2, 5],
    [4, 3],
    [5, 5],
  ])('matches brute force for %i and %i runs', (n, m) => {
    for (let u = 0; u <= n * m; u++) expect(rankTestPValue(n, m, u)).toBeCloseTo(bruteForce(n, m, u), 12);
    expect(rankTestPValue(n, m, 0)).toBeCloseTo(1, 12);
  });

  it('rounds a half from ties down, never lowering p', () => {
    expect(rankTestPValue(3, 3, 8.5)).toBe(rankTestPValue(3, 3, 8));
    expect(rankTestPValue(3, 3, 8.5)).toBeGreaterThan(rankTestPValue(3, 3, 9));
  });
});

describe('usdPerMillionTokens', () => {
  it('is the price of the hours a million tokens take', () => {
    expect(usdPerMillionTokens(1, 3.6)).toBeCloseTo(1000, 9); // 1e6 s = 277.8 h at $3.60
    expect(usdPerMillionTokens(100, 0.5)).toBeCloseTo(50 / 36, 12); // 1e4 s = 2.78 h at $0.50
    expect(usdPerMillionTokens(50, 0)).toBe(0);
    expect(() => usdPerMillionTokens(0, 1)).toThrow(/tokens per second must be a positive number/);
    expect(() => usdPerMillionTokens(10, -1)).toThrow(/cost-per-hour must be a finite number >= 0/);
  });
});

describe('runBenchmark', () => {
  let dir: string;
  let model: string;
  let measured: BenchmarkResults;
  const settings = { promptTokens: 16, genTokens: 8, threads: 1, repeat: 3 };

  beforeAll(async () => {
    dir = await tempDir();
    model = join(dir, 'm.q40.m');
    await convert({ modelDir: await fixture(dir, { arch: 'glm4' }), outFile: model, weights: 'q40', tokenizerFile: null });
    measured = await runBenchmark({ model, ...settings, costPerHour: 0.9 });
  });
  afterAll(async () => removeDir(dir));

  const scaled = (factor: number, extra: Partial<BenchmarkResults> = {}): BenchmarkResults => ({
    ...measured,
    prefillTpsAll: measured.prefillTpsAll.map((v) => v * factor),
    decodeTpsAll: measured.decodeTpsAll.map((v) => v * factor),
    ...extra,
  });

  it('reports the medians of the repeats, the cost, and no gates without a baseline', () => {
    expect(measured).toMatchObject({ kind: 'benchmark', model, threads: 1, promptTokens: 16, genTokens: 8, costPerHour: 0.9, gates: [], passed: true });
    expect(measured.prefillTpsAll).toHaveLength(3);
    expect(measured.prefillTps).toBe(median(measured.prefillTpsAll));
    expect(measured.decodeTps).toBe(median(measured.decodeTpsAll));
    expect(measured.usdPerMillionTokens).toBeCloseTo(0.9 / (measured.decodeTps * 3600) * 1e6, 12);
    expect(measured.peakRssBytes).toBeGreaterThan(0);
    expect(measured.cpu).toMatch(/ x\d+$/);
    expect(parseResults(JSON.stringify(measured), 'b.json')).toEqual(measured);
  });

  it('with concurrency levels, reports batched decoding at each and the cost at the best level', async () => {
    const r = await runBenchmark({ model, ...settings, repeat: 1, costPerHour: 0.9, concurrency: [1, 3] });
    expect(r.concurrency!.map((c) => c.concurrency)).toEqual([1, 3]);
    for (const c of r.concurrency!) {
      expect(c.aggregateDecodeTps).toBeGreaterThan(0);
      expect(c.perStreamDecodeTps).toBeCloseTo(c.aggregateDecodeTps / c.concurrency, 9);
      expect(c.ttftMeanSeconds).toBeGreaterThan(0);
      expect(c.usdPerMillionTokens).toBeCloseTo(usdPerMillionTokens(c.aggregateDecodeTps, 0.9), 12);
    }
    const best = r.concurrency!.reduce((a, b) => (b.aggregateDecodeTps > a.aggregateDecodeTps ? b : a));
    expect(r.best).toEqual(best);
    expect(parseResults(JSON.stringify(r), 'b.json')).toEqual(r);
    await expect(runBenchmark({ model, ...settings, concurrency: [2], distributed: { workers: ['127.0.0.1:1'] } })).rejects.toThrow(/concurrency: batched decoding does not run with workers yet/);
  });

  // A factor of 1000, not 10: a loaded machine can stall one short repeat of the measured baseline by 10x.
  it('fails against a base a thousand times faster and passes against one a thousand times slower', async () => {
    const slower = await runBenchmark({ model, ...settings, baseline: scaled(1000) });
    expect(slower.passed).toBe(false);
    expect(slower.gates.map((g) => [g.name, g.passed, g.limit])).toEqual([
      ['prefill-tps', false, 10],
      ['decode-tps', false, 10],
    ]);
    expect(slower.gates[1]!.actual).toBeGreaterThan(50);
    const faster = await runBenchmark({ model, ...settings, baseline: scaled(0.001), maxRegression: 5 });
    expect(faster.passed).toBe(true);
    expect(faster.gates.map((g) => [g.passed, g.limit])).toEqual([
      [true, 5],
      [true, 5],
    ]);
  });

  it('does not compare runs from other hardware or thread counts', async () => {
    const other = await runBenchmark({ model, ...settings, baseline: scaled(10, { cpu: 'Some Other CPU x64' }) });
    expect(other.passed).toBe(true);
    expect(other.gates.every((g) => g.skipped)).toBe(true);
    expect(other.gates[0]!.detail).toMatch(/not compared: the baseline ran on Some Other CPU x64, this run on .* x\d+/);
    const threads = await runBenchmark({ model, ...settings, baseline: scaled(10, { threads: 7 }) });
    expect(threads.gates[1]!.detail).toMatch(/the baseline ran on 7 threads, this run on 1/);
  });

  it("fits the default lengths to the model's context, or takes the baseline's", async () => {
    const fitted = await runBenchmark({ model, threads: 1, repeat: 1 });
    expect(fitted).toMatchObject({ promptTokens: 192, genTokens: 64, fittedToContext: true, contextLength: 256 });
    expect(parseResults(JSON.stringify(fitted), 'b.json')).toEqual(fitted);
    const likeBase = await runBenchmark({ model, threads: 1, repeat: 3, baseline: measured });
    expect(likeBase).toMatchObject({ promptTokens: 16, genTokens: 8 });
    expect(likeBase.fittedToContext).toBeUndefined();
    await expect(runBenchmark({ model, threads: 1, repeat: 1, promptTokens: 250, genTokens: 8 })).rejects.toThrow(
      /250 prompt \+ 8 generated tokens exceed the model's context of 256/,
    );
    const engine = spawnSync(join(process.cwd(), 'build', 'Release', 'glm-engine'), ['bench', '--model', model, '--threads', '1', '--repeat', '1'], { encoding: 'utf8' });
    expect(engine.status).toBe(0);
    expect(engine.stdout).toMatch(/^prefill 192 tokens: .*\ndecode 64 tokens/);
    expect(engine.stderr).toMatch(/192 prompt \+ 64 generated tokens, to fit the model's context of 256 \(--prompt-tokens, --gen-tokens to choose\)/);
    const cliRun = cli('bench', '--model', model, '--threads', '1', '--repeat', '1');
    expect(cliRun.status).toBe(0);
    expect(cliRun.stderr).toMatch(/^192 prompt \+ 64 generated tokens, to fit the model's context of 256/);
  });

  it('refuses a baseline it cannot judge before running', async () => {
    await expect(runBenchmark({ model, ...settings, baseline: scaled(1, { promptTokens: 512 }) })).rejects.toThrow(/ran with promptTokens 512 but this run uses 16/);
    await expect(runBenchmark({ model, ...settings, baseline: scaled(1, { decodeTpsAll: [100] }) })).rejects.toThrow(/on 3 current and 1 base run/);
    await expect(runBenchmark({ model, ...settings, repeat: 1, baseline: measured })).rejects.toThrow(/on 1 current and 3 base run/);
  });

  it('glm-dllama benchmark exits 1 on a regression and reads only benchmark baselines', async () => {
    const base = join(dir, 'base.json');
    await writeFile(base, JSON.stringify(scaled(1000)));
    const args = ['benchmark', '--model', model, '--prompt-tokens', '16', '--gen-tokens', '8', '--threads', '1', '--repeat', '3'];
    const regressed = cli(...args, '--baseline', base, '--cost-per-hour', '0.5');
    expect(regressed.status).toBe(1);
    expect(regressed.stdout).toMatch(/^ {2}FAIL {2}decode-tps: .*slower than the 10% allowance/m);
    expect(regressed.stdout).toMatch(/^cost {4}\$[\d.]+ per million generated tokens at \$0\.5\/hour/m);
    const json = cli(...args, '--json');
    expect(json.status).toBe(0);
    expect(parseResults(json.stdout, 'stdout')).toMatchObject({ kind: 'benchmark', passed: true, gates: [] });
    const wrong = join(dir, 'wrong.json');
    await writeFile(wrong, JSON.stringify({ kind: 'quantize' }));
    const refused = cli(...args, '--baseline', wrong);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/wrong\.json: field model is missing/);
  });
});
