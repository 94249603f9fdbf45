/**
 * The data behind the generated docs pages and charts, read and validated once here: the measured figures
 * (docs/data/performance.yaml) and the benchmark history (pipeline results files), and the charts drawn
 * from them. Used by `npm run docs:generate` and by the tests that read the charts back.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { InputError } from '../converter/errors.js';
import { packageRoot } from '../engine/native.js';
import { parseResults, type BenchmarkResults, type PerplexityResults } from '../pipeline/results.js';
import type { ChartData } from './svg-chart.js';

const root = packageRoot();

/** Reads a YAML or JSON data file, validated against `schema`; errors name the file and the field. */
export function readData<T>(file: string, schema: object): T {
  const text = readFileSync(file, 'utf8');
  const value: unknown = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  const validate = new Ajv({ allErrors: false }).compile(schema);
  if (!validate(value)) {
    const e = validate.errors![0]!;
    throw new InputError(relative(root, file), `field ${e.instancePath.slice(1).replace(/\//g, '.') || '(root)'} ${e.message ?? 'is invalid'}`);
  }
  return value as T;
}

interface EngineRun {
  weights: string;
  run: number;
  prefill: { engine: number; llamaCpp: number };
  decode: { engine: number; llamaCpp: number };
}

export interface PerformanceData {
  machine: string;
  headlines: { what: string; command: string; headline: string; details: string }[];
  engineVsLlamaCpp: { date: string; promptTokens: number; genTokens: number; runs: EngineRun[] };
}

const pair = { type: 'object', required: ['engine', 'llamaCpp'], properties: { engine: { type: 'number', exclusiveMinimum: 0 }, llamaCpp: { type: 'number', exclusiveMinimum: 0 } } };
const text = { type: 'string', minLength: 1 };
const PERFORMANCE_SCHEMA = {
  type: 'object',
  required: ['machine', 'headlines', 'engineVsLlamaCpp'],
  properties: {
    machine: text,
    headlines: { type: 'array', items: { type: 'object', required: ['what', 'command', 'headline', 'details'], properties: { what: text, command: text, headline: text, details: text } } },
    engineVsLlamaCpp: {
      type: 'object',
      required: ['date', 'promptTokens', 'genTokens', 'runs'],
      properties: {
        date: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' },
        promptTokens: { type: 'integer' },
        genTokens: { type: 'integer' },
        runs: { type: 'array', minItems: 1, items: { type: 'object', required: ['weights', 'run', 'prefill', 'decode'], properties: { weights: text, run: { type: 'integer' }, prefill: pair, decode: pair } } },
      },
    },
  },
};

export function performanceData(file = join(root, 'docs', 'data', 'performance.yaml')): PerformanceData {
  // YAML reads an unquoted date as a string here (yaml 2's core schema has no timestamps).
  return readData<PerformanceData>(file, PERFORMANCE_SCHEMA);
}

/** The engine-against-llama.cpp charts: one bar pair per weight type and run. */
export function engineCharts(data: PerformanceData): Record<'engine-prefill' | 'engine-decode', ChartData> {
  const runs = data.engineVsLlamaCpp.runs;
  const categories = runs.map((r) => `${r.weights} run ${r.run}`);
  const chart = (phase: 'prefill' | 'decode', tokens: number): ChartData => ({
    title: `${phase === 'prefill' ? 'Prefill' : 'Decode'} of ${tokens} tokens: this engine and llama.cpp`,
    unit: 'tokens/s',
    categories,
    series: [
      { name: 'glm-dllama engine', values: runs.map((r) => r[phase].engine) },
      { name: 'llama.cpp', values: runs.map((r) => r[phase].llamaCpp) },
    ],
  });
  return { 'engine-prefill': chart('prefill', data.engineVsLlamaCpp.promptTokens), 'engine-decode': chart('decode', data.engineVsLlamaCpp.genTokens) };
}

/** One dated pipeline run of a model and quantization: the results files the pipeline wrote. */
export interface HistoryEntry {
  date: string;
  model: string;
  quant: string;
  benchmark?: BenchmarkResults;
  perplexity?: PerplexityResults;
}

/** Reads `<dir>/<YYYY-MM-DD>/<model>/<quant>/{benchmark,perplexity}.json` (pipeline/results.ts files), oldest first. */
export function readHistory(dir = join(root, 'docs', 'data', 'benchmark-history')): HistoryEntry[] {
  const entries: HistoryEntry[] = [];
  for (const date of readdirSync(dir).sort()) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new InputError(join(dir, date), 'expected a folder named by its date, YYYY-MM-DD');
    for (const model of readdirSync(join(dir, date)).sort()) {
      for (const quant of readdirSync(join(dir, date, model)).sort()) {
        const entry: HistoryEntry = { date, model, quant };
        for (const name of readdirSync(join(dir, date, model, quant)).sort()) {
          const file = join(dir, date, model, quant, name);
          const results = parseResults(readFileSync(file, 'utf8'), file);
          if (results.kind === 'benchmark') entry.benchmark = results;
          else if (results.kind === 'perplexity') entry.perplexity = results;
        }
        entries.push(entry);
      }
    }
  }
  return entries;
}

/** Decode tokens/s over time (one line per model and quant) and the latest KL divergence per quant and model. */
export function historyCharts(history: HistoryEntry[]): Record<'history-decode' | 'history-kld', ChartData> {
  const dates = [...new Set(history.map((h) => h.date))];
  const seriesNames = [...new Set(history.map((h) => `${h.model} ${h.quant}`))];
  const decode: ChartData = {
    title: 'Decode speed of the published models over time',
    unit: 'tokens/s',
    categories: dates,
    series: seriesNames.map((name) => ({ name, values: dates.map((d) => history.find((h) => h.date === d && `${h.model} ${h.quant}` === name)?.benchmark?.decodeTps ?? null) })),
  };
  const quants = [...new Set(history.map((h) => h.quant))].sort();
  const models = [...new Set(history.map((h) => h.model))];
  const latestKld = (model: string, quant: string) => history.filter((h) => h.model === model && h.quant === quant && h.perplexity?.kld !== undefined).at(-1)?.perplexity?.kld ?? null;
  const kld: ChartData = {
    title: 'KL divergence from the reference, per weight type (latest run)',
    unit: 'nats',
    categories: quants,
    series: models.map((model) => ({ name: model, values: quants.map((q) => latestKld(model, q)) })),
  };
  return { 'history-decode': decode, 'history-kld': kld };
}
