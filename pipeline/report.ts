/**
 * The run report: every result of a workflow run beside the base branch's (perplexity, KL, tokens/s, $/M
 * tokens, quantization error) with a pass/fail mark per gate, as one Markdown document. The same text goes
 * to the job summary and to the pull request's sticky comment.
 */
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseResults, type Gate, type StepResults } from './results.js';
import { InputError } from '../converter/errors.js';

/** One step's result with the base branch's result for the same model, quantization and runner. */
export interface ReportRow {
  current: StepResults;
  base?: StepResults;
  /** Where the base came from (e.g. "cache baselines/x64/glm.q40.m/benchmark.json"), for the footer. */
  baseSource?: string;
}

interface Metric {
  label: string;
  /** The gate (Gate.name) this metric is judged by, if any. */
  gate?: string;
  value(r: StepResults): number | undefined;
  format(v: number): string;
  better: 'higher' | 'lower';
}

const fixed = (digits: number) => (v: number) => v.toFixed(digits);
const percent = (v: number) => `${(100 * v).toFixed(2)}%`;

function metricsOf(kind: StepResults['kind']): Metric[] {
  switch (kind) {
    case 'perplexity':
      return [
        { label: 'perplexity', gate: 'perplexity-increase', value: (r) => (r.kind === 'perplexity' ? r.perplexity : undefined), format: fixed(4), better: 'lower' },
        { label: 'KL divergence (mean)', gate: 'kld', value: (r) => (r.kind === 'perplexity' ? r.kld : undefined), format: (v) => v.toExponential(3), better: 'lower' },
        { label: 'top-1 agreement', value: (r) => (r.kind === 'perplexity' ? r.top1Agreement : undefined), format: percent, better: 'higher' },
      ];
    case 'benchmark':
      return [
        { label: 'prefill tok/s', gate: 'prefill-tps', value: (r) => (r.kind === 'benchmark' ? r.prefillTps : undefined), format: fixed(1), better: 'higher' },
        { label: 'decode tok/s', gate: 'decode-tps', value: (r) => (r.kind === 'benchmark' ? r.decodeTps : undefined), format: fixed(1), better: 'higher' },
        { label: '$ / M tokens', value: (r) => (r.kind === 'benchmark' ? r.usdPerMillionTokens : undefined), format: (v) => `$${v.toFixed(4)}`, better: 'lower' },
        { label: 'best batched decode tok/s', value: (r) => (r.kind === 'benchmark' ? r.best?.aggregateDecodeTps : undefined), format: fixed(1), better: 'higher' },
        { label: '$ / M tokens, batched', value: (r) => (r.kind === 'benchmark' ? r.best?.usdPerMillionTokens : undefined), format: (v) => `$${v.toFixed(4)}`, better: 'lower' },
      ];
    case 'quantize':
      return [
        { label: 'worst RMSE', value: (r) => (r.kind === 'quantize' ? Math.max(...r.errors.map((e) => e.rmse)) : undefined), format: (v) => v.toExponential(3), better: 'lower' },
        { label: 'file size (MiB)', value: (r) => (r.kind === 'quantize' ? r.bytes / 2 ** 20 : undefined), format: fixed(1), better: 'lower' },
      ];
  }
}

/**
 * Table cells come from result files, which for fork pull requests are untrusted: no Markdown or HTML
 * gets through, and nothing GitHub turns into a link or a notification either. A zero-width space
 * (U+200B) after `@` and `#`, inside `://`, `www.` and `GH-` keeps the text readable but stops
 * @mentions (team ones included), #123 and GH-123 references and bare-URL autolinks.
 */
function cell(text: string): string {
  const entities: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };
  return text
    .replace(/[\r\n]+/g, ' ')
    .replace(/[&<>]/g, (c) => entities[c] as string)
    .replace(/[|\\`*_[\]]/g, (c) => `\\${c}`)
    .replace(/[@#]/g, (c) => `${c}\u200b`)
    .replace(/:\/\//g, ':\u200b//')
    .replace(/\b(www)\./gi, '$1\u200b.')
    .replace(/\b(GH)-/gi, '$1\u200b-');
}

function change(current: number, base: number, better: Metric['better']): string {
  if (base === 0) return '';
  const pct = (100 * (current - base)) / Math.abs(base);
  const improved = better === 'higher' ? pct > 0 : pct < 0;
  const sign = pct > 0 ? '+' : '';
  return Math.abs(pct) < 0.005 ? '0.00%' : `${sign}${pct.toFixed(2)}% ${improved ? '(better)' : '(worse)'}`;
}

function gateMark(gate: Gate | undefined, untrusted: boolean): string {
  if (!gate) return '';
  if (untrusted) return `${gate.skipped ? 'reported skipped' : gate.passed ? 'reported pass' : 'reported fail'}: ${cell(gate.detail)}`;
  return `${gate.skipped ? '➖ skipped:' : gate.passed ? '✅' : '❌'} ${cell(gate.detail)}`;
}

/** The model a result is about: the model file's name (which carries the quantization). */
export function subjectOf(r: StepResults): string {
  return basename(r.kind === 'quantize' ? r.output : r.model);
}

export function allGates(rows: readonly ReportRow[]): Gate[] {
  return rows.flatMap((r) => ('gates' in r.current ? r.current.gates : []));
}

export interface RenderOptions {
  title: string;
  /** A hidden line that identifies the comment (see reportMarker). */
  marker?: string;
  /** Link to the workflow run. */
  runUrl?: string;
  /**
   * The results were produced by code this repository has not reviewed (a fork's pull request run):
   * the report says so in its title and shows the verdicts as the fork's claims, without pass or fail signs.
   */
  untrusted?: boolean;
}

export function renderReport(rows: readonly ReportRow[], options: RenderOptions): string {
  const gates = allGates(rows);
  const failed = gates.filter((g) => !g.passed);
  const skipped = gates.filter((g) => g.skipped).length;
  const judged = gates.length - skipped;
  const skippedNote = skipped ? ` (${skipped} not judged: see the marks below)` : '';
  const untrusted = options.untrusted ?? false;
  const lines: string[] = [];
  if (options.marker) lines.push(options.marker);
  if (untrusted) {
    lines.push(`### ⚠️ glm-dllama: unverified results from a fork's code: ${cell(options.title)}`, '');
    lines.push("The fork's own code (its pull request's version of the converter, engine and gates) produced every figure and verdict below; nothing here was checked by this repository's code.", '');
  } else {
    lines.push(`### ${failed.length ? '❌' : '✅'} glm-dllama: ${cell(options.title)}`, '');
  }
  const verdict =
    gates.length === 0
      ? 'No gates were set in this run.'
      : failed.length === 0
        ? `All ${judged} gates passed${skippedNote}.`
        : `${failed.length} of ${judged} gates failed: ${failed.map((g) => cell(g.name)).join(', ')}${skippedNote}.`;
  lines.push(untrusted && gates.length > 0 ? `As the fork's run reports it: ${verdict.charAt(0).toLowerCase()}${verdict.slice(1)}` : verdict, '');
  if (rows.length === 0) {
    lines.push('No results were produced.');
  } else {
    lines.push('| model | metric | this run | base | change | gate |', '|---|---|---:|---:|---:|---|');
    const sorted = [...rows].sort((a, b) => subjectOf(a.current).localeCompare(subjectOf(b.current)) || a.current.kind.localeCompare(b.current.kind));
    for (const row of sorted) {
      const gatesOfRow = 'gates' in row.current ? row.current.gates : [];
      for (const m of metricsOf(row.current.kind)) {
        const v = m.value(row.current);
        if (v === undefined || !Number.isFinite(v)) continue;
        const b = row.base && row.base.kind === row.current.kind ? m.value(row.base) : undefined;
        const baseText = b === undefined || !Number.isFinite(b) ? '–' : m.format(b);
        const changeText = b === undefined || !Number.isFinite(b) ? '' : change(v, b, m.better);
        const gate = m.gate ? gatesOfRow.find((g) => g.name === m.gate) : undefined;
        lines.push(`| ${cell(subjectOf(row.current))} | ${m.label} | ${m.format(v)} | ${baseText} | ${changeText} | ${gateMark(gate, untrusted)} |`);
      }
      // Gates that no metric row shows still get a line of their own.
      for (const g of gatesOfRow.filter((g) => !metricsOf(row.current.kind).some((m) => m.gate === g.name))) {
        lines.push(`| ${cell(subjectOf(row.current))} | ${cell(g.name)} | ${g.actual} ${cell(g.unit)} | | | ${gateMark(g, untrusted)} |`);
      }
    }
  }
  const sources = [...new Set(rows.map((r) => r.baseSource).filter((s): s is string => !!s))];
  lines.push('');
  lines.push(sources.length ? `Base results: ${sources.map(cell).join('; ')}.` : 'No base-branch results were found for comparison.');
  if (options.runUrl) lines.push(`[Workflow run](${options.runUrl})`);
  return lines.join('\n') + '\n';
}

/** The hidden line by which a run kind's comment is found again and updated in place. */
export function reportMarker(key: string): string {
  return `<!-- glm-dllama-report: ${key.replace(/-->|[\r\n]/g, '')} -->`;
}

/**
 * Results of one workflow run, kept as one JSON file per step in a folder (uploaded as an artifact where the
 * report is written by another workflow).
 */
export async function saveReportRow(dir: string, row: ReportRow): Promise<string> {
  await mkdir(dir, { recursive: true });
  const name = `${row.current.kind}--${subjectOf(row.current).replace(/[^A-Za-z0-9._-]/g, '_')}.json`;
  const path = join(dir, name);
  await writeFile(`${path}.tmp`, JSON.stringify(row, null, 2));
  await rename(`${path}.tmp`, path);
  return path;
}

export async function loadReportRows(dir: string): Promise<ReportRow[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const rows: ReportRow[] = [];
  for (const name of names) {
    const file = join(dir, name);
    let json: { current?: unknown; base?: unknown; baseSource?: unknown } | null;
    try {
      json = JSON.parse(await readFile(file, 'utf8')) as typeof json;
    } catch (e) {
      throw new InputError(file, `not valid JSON (${(e as Error).message})`);
    }
    if (!json || typeof json !== 'object' || json.current === undefined) throw new InputError(file, 'not a report row (no "current" field)');
    rows.push({
      current: parseResults(JSON.stringify(json.current), `${file} (current)`),
      base: json.base === undefined || json.base === null ? undefined : parseResults(JSON.stringify(json.base), `${file} (base)`),
      baseSource: typeof json.baseSource === 'string' ? json.baseSource : undefined,
    });
  }
  return rows;
}
