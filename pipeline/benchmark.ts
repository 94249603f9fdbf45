/**
 * The benchmark step: prefill and decode speed over repeated runs, the cost per million generated
 * tokens at the runner's price, and a noise-aware regression gate against the base branch's results
 * (docs/quality-gates.md explains the rule and why).
 */
import { availableParallelism, cpus } from 'node:os';
import { bench, benchConcurrency, median, type DistributedOptions } from '../engine/index.js';
import { allPassed, skippedGate, threshold, type BenchmarkResults, type ConcurrencyFigures, type Gate } from './results.js';

/** Largest median slowdown, in percent, allowed when a baseline is given without a limit. */
export const DEFAULT_MAX_REGRESSION = 10;
/** Runs per measurement by default: enough for the rank test to tolerate one outlier. */
export const DEFAULT_REPEAT = 5;
/** The speed gates' unit: their value is the slowdown of the median (negative when faster). */
const SLOWDOWN = '% slower';
/** One-sided significance level of the rank test. */
export const SIGNIFICANCE = 0.05;

export interface BenchmarkOptions {
  model: string;
  promptTokens?: number;
  genTokens?: number;
  threads?: number;
  repeat?: number;
  /** The runner's price in USD per hour. */
  costPerHour?: number;
  /** The base branch's results on the same runner type. */
  baseline?: BenchmarkResults;
  /** Largest allowed slowdown of the median, in percent (default 10). */
  maxRegression?: number;
  /** Concurrency levels (e.g. [1, 2, 4, 8]): also measure that many generations decoded together at each. */
  concurrency?: readonly number[];
  /** The device (cpu, vulkan, vulkan:N, auto), and glm-engine workers (host:port) to run the model across with the cluster's sync type, secret and expert split. */
  distributed?: DistributedOptions & { device?: string; cpuExperts?: 'all' | number };
}

/** USD per million tokens produced at `tokensPerSecond` on a machine that costs `costPerHour` USD. */
export function usdPerMillionTokens(tokensPerSecond: number, costPerHour: number): number {
  if (!(Number.isFinite(tokensPerSecond) && tokensPerSecond > 0)) throw new RangeError(`tokens per second must be a positive number, got ${tokensPerSecond}`);
  threshold('cost-per-hour', costPerHour);
  return (costPerHour / (tokensPerSecond * 3600)) * 1e6;
}

/**
 * How many of the C(n+m, n) ways to split n+m ranked values into groups of n and m give each value of
 * the Mann-Whitney U (0..n*m): the coefficients of the Gaussian binomial [n+m choose n], built as the
 * product over k of (1 - q^(m+k)) / (1 - q^k), truncated at degree n*m (exact, as the result is a
 * polynomial of that degree).
 */
function rankSumCounts(n: number, m: number): Float64Array {
  const size = n * m + 1;
  const c = new Float64Array(size);
  c[0] = 1;
  for (let k = 1; k <= n; k++) {
    for (let u = size - 1; u >= m + k; u--) c[u]! -= c[u - m - k]!;
    for (let u = k; u < size; u++) c[u]! += c[u - k]!;
  }
  return c;
}

/** Exact one-sided p-value of U >= `u` when both groups come from one distribution; a half from ties is rounded down, which can only raise p. */
export function rankTestPValue(n: number, m: number, u: number): number {
  const counts = rankSumCounts(n, m);
  let total = 0;
  let tail = 0;
  for (let k = 0; k < counts.length; k++) {
    total += counts[k]!;
    if (k >= Math.floor(u)) tail += counts[k]!;
  }
  return tail / total;
}

export interface RegressionJudgement {
  regressed: boolean;
  detail: string;
  /** Change of the median, in percent (negative: slower). */
  changePct: number;
  /** One-sided p-value that the current runs are slower than the base's allowance band. */
  pValue: number;
  currentMedian: number;
  baseMedian: number;
}

function checkSamples(what: string, values: readonly number[]): void {
  if (values.length === 0 || values.some((v) => !(Number.isFinite(v) && v > 0))) {
    throw new RangeError(`${what} runs must be positive numbers, got [${values.join(', ')}]`);
  }
}

/** Refuses sample sizes at which the rank test can never reach significance: a verdict on them would be noise. */
function checkSampleSizes(current: number, base: number): void {
  const smallest = rankTestPValue(current, base, current * base);
  if (smallest > SIGNIFICANCE) {
    throw new RangeError(
      `cannot judge a regression on ${current} current and ${base} base run(s): even fully separated runs would leave a ${(100 * smallest).toFixed(1)}% chance of noise; ` +
        'use at least 3 runs on each side (repeat)',
    );
  }
}

/**
 * Speed regression, noise-aware: regressed only when (1) the median of the current runs is more than
 * `maxRegressionPct` below the base median, and (2) a one-sided exact Mann-Whitney test finds the
 * current runs below the base runs scaled down by that allowance at the 5% level. (1) is the size that
 * matters; (2) asks whether the slowdown beyond the allowance is more than run-to-run noise, so one slow
 * run cannot fail the gate and a drop barely past the allowance within the spread is not called.
 */
export function judgeRegression(current: readonly number[], base: readonly number[], maxRegressionPct: number): RegressionJudgement {
  checkSamples('current', current);
  checkSamples('base', base);
  threshold('max-regression', maxRegressionPct);
  checkSampleSizes(current.length, base.length);
  const currentMedian = median(current);
  const baseMedian = median(base);
  const changePct = 100 * (currentMedian / baseMedian - 1);
  const allowance = 1 - maxRegressionPct / 100;
  let u = 0;
  for (const c of current) {
    for (const b of base) u += c < b * allowance ? 1 : c === b * allowance ? 0.5 : 0;
  }
  const pValue = rankTestPValue(current.length, base.length, u);
  const slowerThanAllowed = -changePct > maxRegressionPct;
  const regressed = slowerThanAllowed && pValue <= SIGNIFICANCE;
  const range = (v: readonly number[]) => `${Math.min(...v).toFixed(1)}-${Math.max(...v).toFixed(1)}`;
  const verdict = regressed
    ? `slower than the ${maxRegressionPct}% allowance beyond run-to-run noise (rank test p = ${pValue.toFixed(3)})`
    : slowerThanAllowed
      ? `the median is past the ${maxRegressionPct}% allowance but the runs overlap the base's too much to rule out noise (rank test p = ${pValue.toFixed(3)} > ${SIGNIFICANCE})`
      : `within the ${maxRegressionPct}% allowance`;
  const detail =
    `median ${currentMedian.toFixed(1)} tok/s against ${baseMedian.toFixed(1)} (${Math.abs(changePct).toFixed(1)}% ${changePct >= 0 ? 'faster' : 'slower'}), ` +
    `${current.length} runs ${range(current)} against ${base.length} runs ${range(base)}: ${verdict}`;
  return { regressed, detail, changePct, pValue, currentMedian, baseMedian };
}

function cpuName(): string {
  return `${cpus()[0]?.model.trim() ?? 'unknown CPU'} x${availableParallelism()}`;
}

/** Settings that must match for two runs to be compared at all. */
function checkComparable(baseline: BenchmarkResults, o: { promptTokens: number; genTokens: number }): void {
  for (const field of ['promptTokens', 'genTokens'] as const) {
    if (baseline[field] !== o[field]) {
      throw new RangeError(`the baseline (${baseline.model}) ran with ${field} ${baseline[field]} but this run uses ${o[field]}; compare like with like`);
    }
  }
}

export async function runBenchmark(o: BenchmarkOptions): Promise<BenchmarkResults> {
  const maxRegression = threshold('max-regression', o.maxRegression) ?? DEFAULT_MAX_REGRESSION;
  const costPerHour = threshold('cost-per-hour', o.costPerHour);
  const { baseline } = o;
  // Lengths left unset are the baseline's (like with like), else the engine's defaults fitted to the model's context.
  const settings = { promptTokens: o.promptTokens ?? baseline?.promptTokens, genTokens: o.genTokens ?? baseline?.genTokens, repeat: o.repeat ?? DEFAULT_REPEAT };
  if (baseline) {
    // Fail before spending the runner's time on a measurement that cannot be judged.
    checkComparable(baseline, { promptTokens: settings.promptTokens!, genTokens: settings.genTokens! });
    checkSampleSizes(settings.repeat, Math.min(baseline.prefillTpsAll.length, baseline.decodeTpsAll.length));
  }
  if (o.concurrency?.length && o.distributed?.workers?.length) throw new RangeError('concurrency: batched decoding does not run with workers yet');
  const r = bench(o.model, { ...settings, ...(o.threads ? { threads: o.threads } : {}), ...o.distributed });
  const concurrency = o.concurrency?.length ? await concurrencyFigures(o, r.prompt_tokens, r.gen_tokens, costPerHour) : undefined;
  const cpu = cpuName();
  const gates: Gate[] = [];
  if (baseline) {
    const speeds = [
      ['prefill-tps', r.prefill_tps_all, baseline.prefillTpsAll],
      ['decode-tps', r.decode_tps_all, baseline.decodeTpsAll],
    ] as const;
    const elsewhere =
      baseline.cpu !== undefined && baseline.cpu !== cpu
        ? `the baseline ran on ${baseline.cpu}, this run on ${cpu}`
        : (baseline.nodes ?? 1) !== r.nodes
          ? `the baseline ran on ${baseline.nodes ?? 1} node(s), this run on ${r.nodes}`
        : baseline.threads !== r.threads
          ? `the baseline ran on ${baseline.threads} threads, this run on ${r.threads}`
          : undefined;
    for (const [name, current, base] of speeds) {
      if (elsewhere) {
        gates.push(skippedGate(name, maxRegression, SLOWDOWN, `not compared: ${elsewhere}, so a difference would say more about the machines than the code`));
        continue;
      }
      const j = judgeRegression(current, base, maxRegression);
      gates.push({ name, passed: !j.regressed, actual: -j.changePct, limit: maxRegression, unit: SLOWDOWN, detail: j.detail });
    }
  }
  return {
    kind: 'benchmark',
    model: o.model,
    threads: r.threads,
    promptTokens: r.prompt_tokens,
    genTokens: r.gen_tokens,
    ...(r.fitted_to_context ? { fittedToContext: true, contextLength: r.context_length } : {}),
    prefillTps: r.prefill_tps,
    decodeTps: r.decode_tps,
    prefillTpsAll: r.prefill_tps_all,
    decodeTpsAll: r.decode_tps_all,
    peakRssBytes: r.peak_rss_bytes,
    kernels: r.kernels,
    cpu,
    nodes: r.nodes,
    ...(r.nodes > 1 ? { decodeBytesPerToken: r.decode_bytes_per_token } : {}),
    ...(costPerHour !== undefined ? { costPerHour, usdPerMillionTokens: usdPerMillionTokens(r.decode_tps, costPerHour) } : {}),
    ...(concurrency ? { concurrency, best: concurrency.reduce((a, b) => (b.aggregateDecodeTps > a.aggregateDecodeTps ? b : a)) } : {}),
    gates,
    passed: allPassed(gates),
  };
}

/** Batched decoding at each concurrency level, with the cost per million tokens of its aggregate. */
async function concurrencyFigures(o: BenchmarkOptions, promptTokens: number, genTokens: number, costPerHour: number | undefined): Promise<ConcurrencyFigures[]> {
  const c = await benchConcurrency(o.model, { levels: o.concurrency!, promptTokens, genTokens, ...(o.threads ? { threads: o.threads } : {}) });
  return c.levels.map((l) => ({
    concurrency: l.concurrency,
    aggregateDecodeTps: l.aggregate_decode_tps,
    perStreamDecodeTps: l.per_stream_decode_tps,
    ttftMeanSeconds: l.ttft_mean_s,
    ...(costPerHour !== undefined && l.aggregate_decode_tps > 0 ? { usdPerMillionTokens: usdPerMillionTokens(l.aggregate_decode_tps, costPerHour) } : {}),
  }));
}
