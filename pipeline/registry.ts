/**
 * The models registry (models/registry.yaml): which checkpoints the workflows convert, quantize, verify,
 * benchmark and publish. Parsed with `yaml`, validated once against models/registry.schema.json with ajv,
 * and returned as typed values; revision updates are written back through yaml's Document API so the
 * file's comments and layout survive the scheduled refresh.
 */
import { readFileSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isSeq, parseDocument, type Document } from 'yaml';
import { modelInfo } from '@huggingface/hub';
import { packageRoot } from '../engine/native.js';
import { InputError } from '../converter/errors.js';
import { withCause } from './hub.js';
import type { FixtureArch } from '../converter/fixture.js';

export type Quantization = 'q40' | 'q80';
export type Architecture = 'glm' | 'glm4' | 'glm4moe';

/** Where a model's checkpoint comes from: a Hugging Face repository at a commit, or a generated fixture. */
export type ModelSource =
  | { kind: 'hub'; repo: string; /** null while the registry says `unpinned` */ revision: string | null }
  | { kind: 'fixture'; arch: FixtureArch };

export interface Gates {
  /** percent over the f16 reference */
  maxPplIncrease: number;
  /** mean KL divergence from the f16 reference, nats per token */
  maxKld: number;
  /** percent drop in decode throughput against the baseline */
  maxRegression: number;
}

export interface BenchmarkSettings {
  promptTokens?: number;
  genTokens?: number;
  threads?: number;
  costPerHour?: number;
}

export interface RegistryModel {
  id: string;
  source: ModelSource;
  architecture: Architecture;
  quantizations: Quantization[];
  gates: Gates;
  benchmark: BenchmarkSettings;
  runnerLabels: string[];
}

export interface Registry {
  file: string;
  models: RegistryModel[];
}

/** The file as the schema describes it (kebab-case keys), before it becomes a Registry. */
interface RawModel {
  id: string;
  repo?: string;
  revision?: string;
  fixture?: FixtureArch;
  architecture: Architecture;
  quantizations: Quantization[];
  gates: { 'max-ppl-increase': number; 'max-kld': number; 'max-regression': number };
  benchmark?: { 'prompt-tokens'?: number; 'gen-tokens'?: number; threads?: number; 'cost-per-hour'?: number };
  'runner-labels': string[];
}
interface RawRegistry {
  version: 1;
  models: RawModel[];
}

export const UNPINNED = 'unpinned';

/** One problem in a registry file: `path` is the field, e.g. `models[2].gates.max-kld`. */
export interface RegistryIssue {
  path: string;
  message: string;
}

export class RegistryError extends Error {
  constructor(
    readonly file: string,
    readonly issues: RegistryIssue[],
  ) {
    super(`${file}: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`);
    this.name = 'RegistryError';
  }
}

let validator: ReturnType<Ajv['compile']> | undefined;

function validate(data: unknown): ErrorObject[] {
  if (!validator) {
    const schema = JSON.parse(readFileSync(join(packageRoot(), 'models', 'registry.schema.json'), 'utf8')) as object;
    validator = new Ajv({ allErrors: true, verbose: true }).compile(schema);
  }
  return validator(data) ? [] : (validator.errors ?? []);
}

/** `/models/2/gates` + missing `max-kld` -> `models[2].gates.max-kld`. */
function fieldPath(error: ErrorObject): string {
  const parts = error.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const missing = error.keyword === 'required' ? (error.params as { missingProperty: string }).missingProperty : undefined;
  const extra = error.keyword === 'additionalProperties' ? (error.params as { additionalProperty: string }).additionalProperty : undefined;
  const named = missing ?? extra;
  if (named) parts.push(named);
  return parts.reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : path ? `${path}.${part}` : part), '');
}

function issuesOf(errors: ErrorObject[]): RegistryIssue[] {
  // `if` only says which branch failed; the branch's own error names the field.
  const seen = new Set<string>();
  const issues: RegistryIssue[] = [];
  for (const error of errors) {
    if (error.keyword === 'if') continue;
    let message = error.message ?? 'is invalid';
    if (error.keyword === 'enum') message = `must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    if (error.keyword === 'additionalProperties') message = 'is not a known field';
    if (error.keyword === 'required') message = 'is required';
    if (error.keyword === 'false schema') message = 'is not allowed with fixture';
    // YAML reads an unquoted 0123abc... or 1e5 as a number.
    if (error.keyword === 'type' && (error.params as { type: string }).type === 'string' && typeof error.data === 'number') message += ' (quote it in the YAML)';
    const issue = { path: fieldPath(error), message };
    const key = `${issue.path}\0${issue.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      issues.push(issue);
    }
  }
  return issues;
}

function toModel(raw: RawModel): RegistryModel {
  const source: ModelSource = raw.fixture
    ? { kind: 'fixture', arch: raw.fixture }
    : { kind: 'hub', repo: raw.repo!, revision: raw.revision === UNPINNED ? null : raw.revision! };
  const bench = raw.benchmark ?? {};
  return {
    id: raw.id,
    source,
    architecture: raw.architecture,
    quantizations: raw.quantizations,
    gates: { maxPplIncrease: raw.gates['max-ppl-increase'], maxKld: raw.gates['max-kld'], maxRegression: raw.gates['max-regression'] },
    benchmark: {
      promptTokens: bench['prompt-tokens'],
      genTokens: bench['gen-tokens'],
      threads: bench.threads,
      costPerHour: bench['cost-per-hour'],
    },
    runnerLabels: raw['runner-labels'],
  };
}

/** Parses and validates registry text; `file` names the source in errors. */
export function parseRegistry(text: string, file: string): Registry {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) throw new RegistryError(file, doc.errors.map((e) => ({ path: '', message: e.message })));
  const data: unknown = doc.toJS();
  const errors = validate(data);
  if (errors.length > 0) throw new RegistryError(file, issuesOf(errors));
  const raw = data as RawRegistry;
  const ids = new Set<string>();
  const duplicates: RegistryIssue[] = [];
  raw.models.forEach((m, i) => {
    if (ids.has(m.id)) duplicates.push({ path: `models[${i}].id`, message: `duplicate id ${m.id}` });
    ids.add(m.id);
  });
  if (duplicates.length > 0) throw new RegistryError(file, duplicates);
  return { file, models: raw.models.map(toModel) };
}

export async function loadRegistry(file: string): Promise<Registry> {
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new InputError(file, `cannot read the registry (${e.code ?? e.message}); run from the repository that holds it, or name the file`);
  });
  return parseRegistry(text, file);
}

export interface HubOptions {
  /** default https://huggingface.co, or $HF_ENDPOINT */
  hubUrl?: string;
  accessToken?: string;
}

/** The commit a Hugging Face repository's default branch points at now. */
export async function latestRevision(repo: string, options: HubOptions = {}): Promise<string> {
  let info;
  try {
    info = await modelInfo({
      name: repo,
      hubUrl: options.hubUrl ?? process.env.HF_ENDPOINT,
      accessToken: options.accessToken,
      additionalFields: ['sha'],
    });
  } catch (e) {
    throw new Error(`${repo}: ${withCause(e)}`, { cause: e });
  }
  if (typeof info.sha !== 'string' || !/^[0-9a-f]{40}$/.test(info.sha)) {
    throw new Error(`${repo}: the hub returned no commit sha for the default branch`);
  }
  return info.sha;
}

export interface RevisionUpdate {
  id: string;
  repo: string;
  /** null when the registry had it unpinned */
  current: string | null;
  latest: string;
}

/** The hub-sourced models whose upstream revision differs from the pinned one. */
export async function checkUpdates(registry: Registry, options: HubOptions = {}): Promise<RevisionUpdate[]> {
  const updates: RevisionUpdate[] = [];
  for (const model of registry.models) {
    if (model.source.kind !== 'hub') continue;
    const latest = await latestRevision(model.source.repo, options);
    if (latest !== model.source.revision) updates.push({ id: model.id, repo: model.source.repo, current: model.source.revision, latest });
  }
  return updates;
}

/** Writes the new revisions into the registry file, keeping its comments; temporary name, then rename. */
export async function writeRevisions(file: string, updates: RevisionUpdate[]): Promise<void> {
  const text = await readFile(file, 'utf8');
  const doc: Document = parseDocument(text);
  const models = doc.get('models');
  if (!isSeq(models)) throw new RegistryError(file, [{ path: 'models', message: 'must be a sequence' }]);
  for (const update of updates) {
    const node = models.items.find((item) => isMap(item) && item.get('id') === update.id);
    if (!isMap(node)) throw new RegistryError(file, [{ path: 'models', message: `no model with id ${update.id}` }]);
    node.set('revision', update.latest);
  }
  const out = doc.toString({ flowCollectionPadding: false });
  parseRegistry(out, file); // never write a file that no longer validates
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, out);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** One job of a workflow matrix: a model at one quantization. */
export interface MatrixEntry {
  id: string;
  quant: Quantization;
  /** `hf:owner/name@revision` for convert-glm, or empty for a fixture */
  model: string;
  fixture: string;
  'runs-on': string[];
  'max-ppl-increase': number;
  'max-kld': number;
  'max-regression': number;
  /** '' where the registry leaves the action's default */
  'prompt-tokens': number | '';
  'gen-tokens': number | '';
  threads: number | '';
  'cost-per-hour': number | '';
}

/** Which models a change touches: every model when a path under `allPrefixes` changed, else new or edited entries. */
export function affectedModels(head: Registry, base: Registry | undefined, changedPaths: string[], allPrefixes: string[]): RegistryModel[] {
  if (!base || changedPaths.some((p) => allPrefixes.some((prefix) => p.startsWith(prefix)))) return head.models;
  const before = new Map(base.models.map((m) => [m.id, JSON.stringify(m)]));
  return head.models.filter((m) => before.get(m.id) !== JSON.stringify(m));
}

/**
 * The matrix entries for `models`: one per quantization. Unpinned hub models are left out (listed in
 * `skipped`), since their conversion would not be reproducible. `selfHostedLabel`, when given, is added
 * to every entry that runs on a self-hosted runner: the publish workflow's own runners, which no
 * pull-request job may share.
 */
export function matrixOf(models: RegistryModel[], selfHostedLabel?: string): { include: MatrixEntry[]; skipped: string[] } {
  const include: MatrixEntry[] = [];
  const skipped: string[] = [];
  for (const m of models) {
    if (m.source.kind === 'hub' && m.source.revision === null) {
      skipped.push(m.id);
      continue;
    }
    const model = m.source.kind === 'hub' ? `hf:${m.source.repo}@${m.source.revision}` : '';
    const fixture = m.source.kind === 'fixture' ? m.source.arch : '';
    for (const quant of m.quantizations) {
      include.push({
        id: m.id,
        quant,
        model,
        fixture,
        'runs-on': selfHostedLabel && m.runnerLabels.includes('self-hosted') ? [...m.runnerLabels, selfHostedLabel] : m.runnerLabels,
        'max-ppl-increase': m.gates.maxPplIncrease,
        'max-kld': m.gates.maxKld,
        'max-regression': m.gates.maxRegression,
        'prompt-tokens': m.benchmark.promptTokens ?? '',
        'gen-tokens': m.benchmark.genTokens ?? '',
        threads: m.benchmark.threads ?? '',
        'cost-per-hour': m.benchmark.costPerHour ?? '',
      });
    }
  }
  return { include, skipped };
}
