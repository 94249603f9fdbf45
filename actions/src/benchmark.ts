/** benchmark: prefill and decode tokens/s over repeated runs, $/M tokens, and a noise-aware regression gate. */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import * as core from '@actions/core';
import { runBenchmark } from '../../pipeline/benchmark.js';
import { parseResults } from '../../pipeline/results.js';
import type { ReportRow } from '../../pipeline/report.js';
import { ensureEngine } from './engine.js';
import { choiceInput, InputError, listInput, numberInput, optionalInput, requiredInput, secretInput } from './inputs.js';
import { baselineId, finishStep, readBase, readStepSettings, type StepSettings } from './step.js';

/** The base results: the `baseline` file when given, else the baseline store's entry for this model and runner. */
async function baseFor(settings: StepSettings, model: string): Promise<Pick<ReportRow, 'base' | 'baseSource'>> {
  const file = optionalInput('baseline');
  if (!file) return readBase(settings, baselineId(settings, 'benchmark', basename(model)));
  const results = parseResults(await readFile(file, 'utf8'), file);
  if (results.kind !== 'benchmark') throw new InputError('baseline', `${file} holds ${results.kind} results, not benchmark results`);
  return { base: results, baseSource: file };
}

export async function benchmark(): Promise<void> {
  const model = requiredInput('model');
  const options = {
    model,
    promptTokens: numberInput('prompt-tokens', { min: 1, integer: true }),
    genTokens: numberInput('gen-tokens', { min: 1, integer: true }),
    threads: numberInput('threads', { min: 1, integer: true }),
    repeat: numberInput('repeat', { min: 1, integer: true }),
    costPerHour: numberInput('cost-per-hour', { min: 0 }),
    maxRegression: numberInput('max-regression', { min: 0 }),
    workers: listInput('workers'),
    device: optionalInput('device') ?? 'auto',
    concurrency: listInput('concurrency').map((v) => {
      const n = Number(v);
      if (!(Number.isSafeInteger(n) && n > 0)) throw new InputError('concurrency', `"${v}" is not a positive integer`);
      return n;
    }),
  };
  const settings = readStepSettings();
  await ensureEngine();
  const base = await baseFor(settings, model);
  const baseline = base.base?.kind === 'benchmark' ? base.base : undefined;
  const { workers, device, ...rest } = options;
  const cluster = workers.length ? { workers, sync: choiceInput('sync', ['q80', 'f32'] as const, 'q80'), secret: secretInput('worker-secret', false) } : {};
  const results = await runBenchmark({ ...rest, baseline, distributed: { device, ...cluster } });
  core.setOutput('prefill-tps', String(results.prefillTps));
  core.setOutput('decode-tps', String(results.decodeTps));
  core.setOutput('usd-per-million-tokens', results.usdPerMillionTokens === undefined ? '' : String(results.usdPerMillionTokens));
  core.setOutput('best-concurrency', results.best ? String(results.best.concurrency) : '');
  core.setOutput('best-aggregate-tps', results.best ? String(results.best.aggregateDecodeTps) : '');
  core.setOutput('best-usd-per-million-tokens', results.best?.usdPerMillionTokens === undefined ? '' : String(results.best.usdPerMillionTokens));
  await finishStep(settings, results, base);
}
