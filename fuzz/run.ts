/**
 * Runs a TypeScript fuzz target for a number of inputs or seconds and reports what it found: the figures
 * (inputs, inputs per second) and, for a finding, the shrunk input saved where a regression test replays it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { scratch, type FuzzTarget } from './targets.js';

export interface FuzzOptions {
  /** Stop after this many inputs (default: unbounded, then `seconds` must be given). */
  runs?: number;
  seconds?: number;
  seed?: number;
  /** A check that takes longer than this is a finding (a parser spinning on a count it trusted). */
  slowMs?: number;
  /** Where a finding's input is saved (default: not saved). */
  findingsDir?: string;
  /** Called with each input's bytes before it is checked, so that a watchdog can name the input that hung. */
  onInput?: (encoded: Buffer) => void;
}

export interface FuzzReport {
  target: string;
  runs: number;
  seconds: number;
  perSecond: number;
  seed: number;
  /** The shrunk failing input's file and the error, when the property failed. */
  finding?: { error: string; file?: string };
}

export async function fuzz(target: FuzzTarget, work: string, options: FuzzOptions): Promise<FuzzReport> {
  const prepared = await target.prepare(await scratch(work, target));
  const slowMs = options.slowMs ?? 5000;
  const seed = options.seed ?? Date.now() % 2 ** 31;
  let runs = 0;
  const started = performance.now();
  try {
    const property = fc.asyncProperty(prepared.input, async (input) => {
      runs++;
      options.onInput?.(prepared.encode(input));
      const t0 = performance.now();
      await prepared.check(input);
      const ms = performance.now() - t0;
      if (ms > slowMs) throw new Error(`slow input: ${ms.toFixed(0)} ms (limit ${slowMs} ms)`);
    });
    const details = await fc.check(property, {
      seed,
      numRuns: options.runs ?? Number.MAX_SAFE_INTEGER,
      ...(options.seconds ? { interruptAfterTimeLimit: options.seconds * 1000, markInterruptAsFailure: false } : {}),
      endOnFailure: false,
    });
    const seconds = (performance.now() - started) / 1000;
    const report: FuzzReport = { target: target.name, runs, seconds, perSecond: runs / seconds, seed };
    if (details.failed && details.counterexample) {
      const [input] = details.counterexample;
      const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
      let file: string | undefined;
      if (options.findingsDir) {
        await mkdir(options.findingsDir, { recursive: true });
        file = join(options.findingsDir, `${target.name}--seed-${seed}.bin`);
        await writeFile(file, prepared.encode(input));
      }
      report.finding = { error, file };
    }
    return report;
  } finally {
    await prepared.close?.();
  }
}
