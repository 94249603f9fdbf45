/** The report action and the pieces every step shares, run as the runner runs them, against a local GitHub API. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { saveReportRow, renderReport, reportMarker, loadReportRows } from '../pipeline/report.js';
import type { BenchmarkResults, PerplexityResults } from '../pipeline/results.js';
import { runAction, pullRequestEvent } from '../pipeline/local-runner.js';
import { startGithubServer, type GithubServer } from './github-server.js';
import { removeDir, tempDir } from './helpers.js';

const bench = (decode: number, gates: BenchmarkResults['gates'] = []): BenchmarkResults => ({
  kind: 'benchmark', model: '/models/glm.q40.m', threads: 2, promptTokens: 16, genTokens: 8, prefillTps: 120.5, decodeTps: decode,
  prefillTpsAll: [119, 120.5, 121], decodeTpsAll: [decode - 1, decode, decode + 1], peakRssBytes: 1 << 26, kernels: 'avx2',
  usdPerMillionTokens: 1.25, costPerHour: 0.5, gates, passed: gates.every((g) => g.passed),
});

const ppl = (passed: boolean): PerplexityResults => ({
  kind: 'perplexity', model: '/models/glm.q40.m', text: 'eval.txt', tokens: 400, perplexity: 12.5, kld: 0.012, top1Agreement: 0.93,
  referencePerplexity: 12.1, reference: 'glm.f32.m', passed,
  gates: [{ name: 'perplexity-increase', passed, actual: 3.3, limit: passed ? 5 : 2, unit: '%', detail: passed ? 'perplexity +3.31% <= 5%' : 'perplexity +3.31% > 2%' }],
});

describe('run report', () => {
  it('puts each metric beside the base with its change and gate mark', () => {
    const text = renderReport([{ current: bench(50), base: bench(40), baseSource: 'cache x' }, { current: ppl(false) }], { title: 'model gate', marker: reportMarker('model gate') });
    expect(text.split('\n')[0]).toBe('<!-- glm-dllama-report: model gate -->');
    expect(text).toContain('| glm.q40.m | decode tok/s | 50.0 | 40.0 | +25.00% (better) |');
    expect(text).toContain('| glm.q40.m | perplexity | 12.5000 | – |  | ❌ perplexity +3.31% &gt; 2% |');
    expect(text).toContain('1 of 1 gates failed: perplexity-increase.');
    expect(text).toContain('Base results: cache x.');
  });

  it('escapes table cells from untrusted result files', () => {
    const evil = { ...bench(50), model: '/x/a|b<img src=x>.m' };
    const text = renderReport([{ current: evil }], { title: 't' });
    expect(text).toContain('a\\|b&lt;img src=x&gt;.m');
    expect(text).not.toContain('<img');
  });

  it('leaves no @mention, #123 or GH-123 reference or bare link active in a cell', () => {
    const detail = 'ping @octocat and @org/team, see #123, owner/repo#7, GH-42, https://evil.example/x and www.evil.example';
    const evil = { ...bench(50), model: '/x/@admin.m', gates: [{ name: 'decode-tps', passed: true, actual: 50, limit: 1, unit: 'tok/s', detail }] };
    const text = renderReport([{ current: evil }], { title: '@maintainers #1' });
    const shown = text.replaceAll('\u200b', '');
    expect(shown).toContain(detail); // the same text to a reader ...
    expect(shown).toContain('@admin.m');
    // ... but nothing GitHub links or notifies
    expect(text).not.toMatch(/@[\w-]|#\d|GH-\d|:\/\/|www\./i);
  });

  it("titles a fork's results as unverified and shows its verdicts without pass signs", () => {
    const text = renderReport([{ current: bench(50, [{ name: 'decode-tps', passed: true, actual: 50, limit: 1, unit: 'tok/s', detail: '50 >= 1' }]) }], { title: 'fixture gate', untrusted: true });
    expect(text.split('\n')[0]).toBe("### ⚠️ glm-dllama: unverified results from a fork's code: fixture gate");
    expect(text).toContain("As the fork's run reports it: all 1 gates passed.");
    expect(text).toContain('| reported pass: 50 &gt;= 1 |');
    expect(text).not.toMatch(/✅|❌/);
  });
});

describe('report action', () => {
  let dir: string;
  let github: GithubServer;
  beforeEach(async () => {
    dir = await tempDir();
    github = await startGithubServer({ tokens: ['good-token'], readOnlyTokens: ['fork-token'], owner: 'octo', repo: 'models' });
  });
  afterEach(async () => {
    await github.close();
    await removeDir(dir);
  });

  it('creates one sticky comment, updates it on the next run, and fails on a failed gate', async () => {
    const results = join(dir, 'results');
    await saveReportRow(results, { current: bench(50), base: bench(52) });
    await saveReportRow(results, { current: ppl(true) });
    const inputs = { 'results-dir': results, 'github-token': 'good-token', 'baseline-store': 'none' };
    const first = await runAction('report', inputs, { githubUrl: github.url, event: pullRequestEvent(7) });
    // The runner hides what ::add-mask:: names; nothing else may print the token.
    expect((first.stderr + first.stdout).replace('::add-mask::good-token', '')).not.toContain('good-token');
    expect(first.code).toBe(0);
    expect(github.comments).toHaveLength(1);
    expect(github.comments[0]?.issue).toBe(7);
    expect(github.comments[0]?.body).toContain('<!-- glm-dllama-report: model gate -->');
    expect(github.comments[0]?.body).toContain('All 1 gates passed.');
    expect(first.summary).toContain('| glm.q40.m | decode tok/s | 50.0 | 52.0 | -3.85% (worse) |');

    // Someone else's comment on the same pull request is left alone.
    github.comments.push({ id: 1, body: 'looks good', issue: 7 });
    await saveReportRow(results, { current: ppl(false) });
    const second = await runAction('report', inputs, { githubUrl: github.url, event: pullRequestEvent(7) });
    expect(second.code).toBe(1);
    expect(second.stdout).toContain('::error::gate perplexity-increase failed: perplexity +3.31%25 > 2%25'); // % escaped as the runner expects
    expect(github.comments.map((c) => c.id).sort()).toEqual([1, 1000]);
    expect(github.comments.find((c) => c.id === 1000)?.body).toContain('1 of 1 gates failed');
    expect(github.comments.find((c) => c.id === 1)?.body).toBe('looks good');
    expect(github.calls.filter((c) => c.method === 'PATCH').map((c) => c.path)).toEqual(['/repos/octo/models/issues/comments/1000']);
    expect(github.calls.filter((c) => c.method === 'POST')).toHaveLength(1);
  });

  it('finds its comment past the first page of a busy pull request', async () => {
    for (let i = 0; i < 130; i++) github.comments.push({ id: i + 1, body: `comment ${i}`, issue: 7 });
    const results = join(dir, 'results');
    await saveReportRow(results, { current: bench(50) });
    const inputs = { 'results-dir': results, 'github-token': 'good-token', 'baseline-store': 'none' };
    expect((await runAction('report', inputs, { githubUrl: github.url, event: pullRequestEvent(7) })).code).toBe(0);
    expect((await runAction('report', inputs, { githubUrl: github.url, event: pullRequestEvent(7) })).code).toBe(0);
    expect(github.comments.filter((c) => c.body.includes('glm-dllama-report'))).toHaveLength(1);
    expect(github.calls.some((c) => c.method === 'GET' && c.path.includes('page=2'))).toBe(true);
  });

  it('takes the pull request number from an input for workflow_run reports', async () => {
    const results = join(dir, 'results');
    await saveReportRow(results, { current: bench(50) });
    const run = await runAction('report', { 'results-dir': results, 'github-token': 'good-token', 'pr-number': '12', 'baseline-store': 'none' }, { githubUrl: github.url, eventName: 'workflow_run', event: {} });
    expect(run.code).toBe(0);
    expect(github.comments.map((c) => c.issue)).toEqual([12]);
    expect(github.comments[0]!.body).toContain("unverified results from a fork's code");
    expect(github.comments[0]!.body).not.toContain('✅');
  });

  it('warns instead of failing where the token is read-only (a fork pull request)', async () => {
    const results = join(dir, 'results');
    await saveReportRow(results, { current: bench(50) });
    const run = await runAction('report', { 'results-dir': results, 'github-token': 'fork-token', 'baseline-store': 'none' }, { githubUrl: github.url, event: pullRequestEvent(7) });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('::warning::cannot comment on pull request #7 (read-only token');
    expect(github.comments).toHaveLength(0);
  });

  it('fails clearly on a wrong token', async () => {
    const results = join(dir, 'results');
    await saveReportRow(results, { current: bench(50) });
    const run = await runAction('report', { 'results-dir': results, 'github-token': 'nope', 'baseline-store': 'none' }, { githubUrl: github.url, event: pullRequestEvent(7) });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/::error::Bad credentials/);
  });

  it('rejects a results file that is not a report row, naming it', async () => {
    const results = join(dir, 'results');
    await saveReportRow(results, { current: bench(50) });
    await writeFile(join(results, 'zz.json'), '{"kind":"benchmark"}');
    await expect(loadReportRows(results)).rejects.toThrow(`${join(results, 'zz.json')}: not a report row`);
  });

  it('names the input in errors, and the root action runs any action by `command`', async () => {
    const bad = await runAction('root', { command: 'explode' });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('::error::input `command`: "explode" is not one of convert-glm, quantize, verify-perplexity, benchmark, publish-to-spaces, report');
    const store = await runAction('report', { 'baseline-store': 'somewhere' });
    expect(store.stdout).toContain('::error::input `baseline-store`: "somewhere" is not cache, spaces, none or an absolute folder path');
    const results = join(dir, 'results');
    await saveReportRow(results, { current: bench(50) });
    const viaRoot = await runAction('root', { command: 'report', 'results-dir': results, comment: 'false', 'baseline-store': 'none' }, { event: pullRequestEvent(7) });
    expect(viaRoot.code).toBe(0);
    expect(viaRoot.summary).toContain('decode tok/s');
    expect(await readFile(join(results, 'benchmark--glm.q40.m.json'), 'utf8')).toContain('"decodeTps": 50');
  });
});
