/**
 * The data behind the generated docs pages and charts, read and validated once here: the measured figures
 * (docs/data/performance.yaml), the benchmark history (pipeline results files) and the charts drawn from
 * them, and the model downloads (the registry and the published manifests). Used by `npm run docs:generate` and by the tests that read the charts back.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { InputError } from '../converter/errors.js';
import { packageRoot } from '../engine/native.js';
import { MANIFEST_NAME, type FileEntry, type Manifest } from '../pipeline/manifest.js';
import { loadRegistry, type RegistryModel } from '../pipeline/registry.js';
import { parseResults, type BenchmarkResults, type PerplexityResults } from '../pipeline/results.js';
import { cdnUrl } from '../pipeline/spaces.js';
import type { UsageExport } from '../server/analytics.js';
import type { ChartData } from './svg-chart.js';

const root = packageRoot();

/** Reads a YAML or JSON data file, validated against `schema`; errors name the file and the field. */
export function readData<T>(file: string, schema: object): T {
  const text = readFileSync(file, 'utf8');
  const value: unknown = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  const validate = new Ajv({ allErrors: false }).compile(schema);
  if (!validate(value)) {
    const e = validate.errors![0]!;
    throw new InputError(file.startsWith(`${root}/`) ? relative(root, file) : file, `field ${e.instancePath.slice(1).replace(/\//g, '.') || '(root)'} ${e.message ?? 'is invalid'}`);
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

// ---------------------------------------------------------------- demo API usage

const count = { type: 'integer', minimum: 0 };
const USAGE_SCHEMA = {
  type: 'object',
  required: ['generated', 'days'],
  properties: {
    generated: { type: 'string', minLength: 1 },
    source: { type: 'string', minLength: 1 },
    days: {
      type: 'array',
      items: {
        type: 'object',
        required: ['day', 'requests', 'promptTokens', 'completionTokens', 'clients', 'p50Ms', 'p95Ms', 'errorRate', 'rateLimited'],
        additionalProperties: false,
        properties: {
          day: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' },
          requests: count,
          promptTokens: count,
          completionTokens: count,
          clients: count,
          p50Ms: { type: 'number', minimum: 0 },
          p95Ms: { type: 'number', minimum: 0 },
          errorRate: { type: 'number', minimum: 0, maximum: 1 },
          rateLimited: count,
        },
      },
    },
  },
};

/** docs/data/usage.json: `glm-dllama usage-export` output, with a `source` line saying where the figures come from. */
export function readUsage(file = join(root, 'docs', 'data', 'usage.json')): UsageExport & { source?: string } {
  return readData<UsageExport & { source?: string }>(file, USAGE_SCHEMA);
}

/** Requests, distinct clients and refusals per day; p50 and p95 latency per day. */
export function usageCharts(usage: UsageExport): Record<'usage-requests' | 'usage-latency', ChartData> {
  const days = usage.days.map((d) => d.day);
  return {
    'usage-requests': {
      title: 'Demo API requests per day',
      unit: 'per day',
      categories: days,
      series: [
        { name: 'requests', values: usage.days.map((d) => d.requests) },
        { name: 'distinct clients', values: usage.days.map((d) => d.clients) },
        { name: 'refused (429)', values: usage.days.map((d) => d.rateLimited) },
      ],
    },
    'usage-latency': {
      title: 'Demo API latency per day (whole replies)',
      unit: 'ms',
      categories: days,
      series: [
        { name: 'p50', values: usage.days.map((d) => d.p50Ms) },
        { name: 'p95', values: usage.days.map((d) => d.p95Ms) },
      ],
    },
  };
}

// ---------------------------------------------------------------- model downloads

export interface Downloads {
  bucket: string;
  region: string;
  prefix: string;
}

const DOWNLOADS_SCHEMA = {
  type: 'object',
  required: ['bucket', 'region', 'prefix'],
  properties: { bucket: { type: 'string', minLength: 3 }, region: { type: 'string', pattern: '^[a-z]+[0-9]$' }, prefix: { type: 'string' } },
};

const MANIFEST_SCHEMA = {
  type: 'object',
  required: ['manifestVersion', 'model', 'quant', 'totalSize', 'files'],
  properties: {
    manifestVersion: { type: 'integer' },
    model: { type: 'string' },
    quant: { type: 'string' },
    totalSize: { type: 'integer', minimum: 0 },
    perplexity: { type: 'number' },
    kld: { type: 'number' },
    files: { type: 'array', items: { type: 'object', required: ['name', 'size', 'sha256'], properties: { name: { type: 'string' }, size: { type: 'integer' }, sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' } } } },
  },
};

/** One registry model in one weight type, with its published manifest and files when there are some. */
export interface ModelDownload {
  model: RegistryModel;
  quant: string;
  manifest?: Manifest;
  files: (FileEntry & { url: string })[];
}

/**
 * The download table's rows: `<dir>/registry.yaml`, the public address in `<dir>/downloads.yaml`, and the
 * copies of the published manifests, `<dir>/published/<model>/<quant>/manifest.json`.
 */
export async function modelDownloads(dir = join(root, 'models')): Promise<{ downloads: Downloads; models: ModelDownload[] }> {
  const registry = await loadRegistry(join(dir, 'registry.yaml'));
  const downloads = readData<Downloads>(join(dir, 'downloads.yaml'), DOWNLOADS_SCHEMA);
  // Public CDN addresses are built, never signed: the target's keys are placeholders that are never used.
  const target = { bucket: downloads.bucket, region: downloads.region, accessKeyId: 'unused', secretAccessKey: 'unused' };
  const models = registry.models.flatMap((model) =>
    model.quantizations.map((quant): ModelDownload => {
      const file = join(dir, 'published', model.id, quant, MANIFEST_NAME);
      if (!existsSync(file)) return { model, quant, files: [] };
      const manifest = readData<Manifest>(file, MANIFEST_SCHEMA);
      const files = manifest.files.map((f) => ({ ...f, url: cdnUrl(target, `${downloads.prefix}/${model.id}/${quant}/${f.name}`)! }));
      return { model, quant, manifest, files };
    }),
  );
  return { downloads, models };
}
