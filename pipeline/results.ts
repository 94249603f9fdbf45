/**
 * The JSON every pipeline step writes (quantize, verify-perplexity, benchmark). The same file, kept from
 * the base branch, is the baseline the next run is compared with, so it is validated whenever it is read:
 * a baseline from an older or hand-edited run fails with the file and field named, not with a NaN later.
 */
import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject, type Schema } from 'ajv';
import { InputError } from '../converter/errors.js';
import { WEIGHT_TYPE_NAMES, type WeightTypeName } from '../converter/dtypes.js';
import type { ImatrixUse } from '../converter/imatrix.js';

/**
 * One threshold check; `passed` is the verdict. `actual` and `limit` are in `unit`: most gates pass when
 * actual <= limit; a speed gate's actual is the median slowdown, judged together with the runs' spread.
 */
export interface Gate {
  name: string;
  passed: boolean;
  actual: number;
  limit: number;
  unit: string;
  detail: string;
  /** The check could not be made (no reference, different hardware); it then counts as passed and `detail` says why. */
  skipped?: boolean;
}

export interface QuantizationError {
  /** Tensor kind: the name without layer and expert numbers (`attn_q`, `ffn_down_exps`, `output`). */
  kind: string;
  tensors: number;
  /** Root mean square of (decoded output - input) over every element of the kind. */
  rmse: number;
  maxAbs: number;
}

export interface QuantizeResults {
  kind: 'quantize';
  model: string;
  output: string;
  weights: WeightTypeName;
  errors: QuantizationError[];
  bytes: number;
  sha256: string;
  /** The input's weight type. */
  inputWeights?: WeightTypeName;
  /** The tokenizer (.t) copied from beside the input to beside the output. */
  tokenizer?: string;
  /** The importance matrix that weighted the q40 encoding, and its calibration text. */
  imatrix?: ImatrixUse;
  seconds?: number;
}

export interface PerplexityResults {
  kind: 'perplexity';
  model: string;
  text: string;
  tokens: number;
  perplexity: number;
  /** Mean KL(reference || model) per position, nats (reference model only). */
  kld?: number;
  /** Largest KL divergence at one position, nats. */
  maxKld?: number;
  top1Agreement?: number;
  referencePerplexity?: number;
  reference?: string;
  gates: Gate[];
  passed: boolean;
  /** SHA-256 of the text file and the chunk length: a baseline is only comparable when both match. */
  textSha256?: string;
  ctx?: number;
}

export interface BenchmarkResults {
  kind: 'benchmark';
  model: string;
  threads: number;
  promptTokens: number;
  genTokens: number;
  /** Set when the default lengths were shortened to fit the model's context (contextLength tokens). */
  fittedToContext?: boolean;
  contextLength?: number;
  /** Medians of the repeats. */
  prefillTps: number;
  decodeTps: number;
  prefillTpsAll: number[];
  decodeTpsAll: number[];
  peakRssBytes: number;
  kernels: string;
  /** USD per million generated tokens at `costPerHour`, from the decode median. */
  usdPerMillionTokens?: number;
  costPerHour?: number;
  gates: Gate[];
  passed: boolean;
  /** CPU model and logical core count, e.g. "AMD EPYC 7763 64-Core Processor x4": runs on other hardware are not compared. */
  cpu?: string;
  /** Machines the model ran across (1 without workers); runs on other cluster sizes are not compared. */
  nodes?: number;
  /** Bytes each node sent and received per decoded token (distributed runs). */
  decodeBytesPerToken?: { sent: number; received: number }[];
  /** With the concurrency input: batched decoding at each level, and the level of the highest aggregate. */
  concurrency?: ConcurrencyFigures[];
  best?: ConcurrencyFigures;
}

/** One concurrency level of a benchmark: that many generations decoded together. */
export interface ConcurrencyFigures {
  concurrency: number;
  aggregateDecodeTps: number;
  perStreamDecodeTps: number;
  ttftMeanSeconds: number;
  /** At the runner's price, from the aggregate. */
  usdPerMillionTokens?: number;
}

export type StepResults = QuantizeResults | PerplexityResults | BenchmarkResults;

const positive = { type: 'number', exclusiveMinimum: 0 };
const nonNegative = { type: 'number', minimum: 0 };
const count = { type: 'integer', minimum: 1 };
const string = { type: 'string' };
const boolean = { type: 'boolean' };
const sha256 = { type: 'string', pattern: '^[0-9a-f]{64}$' };
const weightType = { enum: WEIGHT_TYPE_NAMES };
const tpsList = { type: 'array', minItems: 1, items: positive };

// Unknown fields are allowed: a newer step may add some, and an older reader must still read the file.
const object = (required: string[], properties: Record<string, Schema>): Schema => ({ type: 'object', required, properties });

const gated = {
  gates: { type: 'array', items: object(['name', 'passed', 'actual', 'limit', 'unit', 'detail'], { name: string, passed: boolean, actual: { type: 'number' }, limit: { type: 'number' }, unit: string, detail: string, skipped: boolean }) },
  passed: boolean,
};

const SCHEMAS: Record<StepResults['kind'], Schema> = {
  quantize: object(['kind', 'model', 'output', 'weights', 'errors', 'bytes', 'sha256'], {
    model: string,
    output: string,
    weights: weightType,
    inputWeights: weightType,
    tokenizer: string,
    imatrix: object(['file', 'datasets', 'chunks', 'chunkSize', 'matched', 'missing'], {
      file: string,
      datasets: { type: 'array', items: string },
      chunks: { type: 'integer', minimum: 0 },
      chunkSize: { type: 'integer', minimum: 0 },
      matched: { type: 'integer', minimum: 1 },
      missing: { type: 'integer', minimum: 0 },
    }),
    errors: { type: 'array', items: object(['kind', 'tensors', 'rmse', 'maxAbs'], { kind: string, tensors: count, rmse: nonNegative, maxAbs: nonNegative }) },
    bytes: count,
    sha256,
    seconds: nonNegative,
  }),
  perplexity: object(['kind', 'model', 'text', 'tokens', 'perplexity', 'gates', 'passed'], {
    model: string,
    text: string,
    tokens: { type: 'integer', minimum: 2 },
    perplexity: { type: 'number', minimum: 1 },
    kld: nonNegative,
    maxKld: nonNegative,
    top1Agreement: { type: 'number', minimum: 0, maximum: 1 },
    referencePerplexity: { type: 'number', minimum: 1 },
    reference: string,
    textSha256: sha256,
    ctx: { type: 'integer', minimum: 2 },
    ...gated,
  }),
  benchmark: object(
    ['kind', 'model', 'threads', 'promptTokens', 'genTokens', 'prefillTps', 'decodeTps', 'prefillTpsAll', 'decodeTpsAll', 'peakRssBytes', 'kernels', 'gates', 'passed'],
    {
      model: string,
      threads: count,
      promptTokens: count,
      genTokens: count,
      fittedToContext: { type: 'boolean' },
      contextLength: count,
      prefillTps: positive,
      decodeTps: positive,
      prefillTpsAll: tpsList,
      decodeTpsAll: tpsList,
      concurrency: { type: 'array', items: object(['concurrency', 'aggregateDecodeTps', 'perStreamDecodeTps', 'ttftMeanSeconds'], { concurrency: count, aggregateDecodeTps: nonNegative, perStreamDecodeTps: nonNegative, ttftMeanSeconds: nonNegative, usdPerMillionTokens: positive }) },
      best: object(['concurrency', 'aggregateDecodeTps', 'perStreamDecodeTps', 'ttftMeanSeconds'], { concurrency: count, aggregateDecodeTps: nonNegative, perStreamDecodeTps: nonNegative, ttftMeanSeconds: nonNegative, usdPerMillionTokens: positive }),
      peakRssBytes: nonNegative,
      kernels: string,
      usdPerMillionTokens: nonNegative,
      costPerHour: nonNegative,
      cpu: string,
      nodes: positive,
      decodeBytesPerToken: { type: 'array', items: { type: 'object', required: ['sent', 'received'], properties: { sent: nonNegative, received: nonNegative } } },
      ...gated,
    },
  ),
};

const ajv = new Ajv({ allErrors: false });
const validators = Object.fromEntries(Object.entries(SCHEMAS).map(([kind, schema]) => [kind, ajv.compile(schema)]));

/** `/gates/0/passed` -> `gates[0].passed`; a missing property is named by itself. */
function fieldOf(error: ErrorObject): string {
  const path = error.instancePath
    .split('/')
    .slice(1)
    .map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`))
    .join('')
    .replace(/^\./, '');
  const missing = (error.params as { missingProperty?: string }).missingProperty;
  return missing ? (path ? `${path}.${missing}` : missing) : path;
}

/** Parses and validates a step's results JSON; errors name `file` and the field at fault. */
export function parseResults(json: string, file: string): StepResults {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new InputError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InputError(file, 'expected a JSON object of step results');
  const kind = (value as { kind?: unknown }).kind;
  const validate = typeof kind === 'string' ? validators[kind] : undefined;
  if (!validate) throw new InputError(file, `field kind is ${JSON.stringify(kind)}; expected one of ${Object.keys(SCHEMAS).join(', ')}`);
  if (!validate(value)) {
    const error = validate.errors![0]!;
    const field = fieldOf(error);
    throw new InputError(file, error.keyword === 'required' ? `field ${field} is missing` : `field ${field} ${error.message ?? 'is invalid'}`);
  }
  return value as StepResults;
}

/** Parses results that must be of one kind (a baseline for the step that reads it). */
export function parseResultsOf<K extends StepResults['kind']>(json: string, file: string, kind: K): Extract<StepResults, { kind: K }> {
  const results = parseResults(json, file);
  if (results.kind !== kind) throw new InputError(file, `field kind is "${results.kind}"; expected "${kind}" results here`);
  return results as Extract<StepResults, { kind: K }>;
}

/** Reads and parses a results file that must be of one kind (a baseline); errors name the file. */
export async function readResultsFile<K extends StepResults['kind']>(file: string, kind: K): Promise<Extract<StepResults, { kind: K }>> {
  const json = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new InputError(file, `cannot read the ${kind} results (${e.code ?? e.message})`);
  });
  return parseResultsOf(json, file, kind);
}

/** A measured gate: passes when `actual` <= `limit`. */
export function checkGate(name: string, actual: number, limit: number, unit: string, detail: string): Gate {
  return { name, passed: actual <= limit, actual, limit, unit, detail };
}

/** A gate that could not be measured: it passes, and `detail` says why it was not measured. */
export function skippedGate(name: string, limit: number, unit: string, detail: string): Gate {
  return { name, passed: true, actual: 0, limit, unit, detail, skipped: true };
}

/** A threshold option: a finite number >= 0; `name` is the option as the user wrote it. */
export function threshold(name: string, value: number | undefined): number | undefined {
  if (value !== undefined && !(Number.isFinite(value) && value >= 0)) throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
  return value;
}

/** All gates passed (skipped ones count as passed). */
export function allPassed(gates: readonly Gate[]): boolean {
  return gates.every((g) => g.passed);
}
