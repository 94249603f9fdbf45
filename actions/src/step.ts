/**
 * What every step action shares: where results go, the base branch's results to compare with, the job
 * summary, the run's sticky pull-request comment, saving this run's results as the next baseline, and
 * failing the step when a gate fails.
 */
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import * as core from '@actions/core';
import { context, getOctokit } from '@actions/github';
import { directoryBaselineStore, type BaselineId, type BaselineStore } from '../../pipeline/baseline.js';
import { upsertStickyComment } from '../../pipeline/pr-comment.js';
import { allGates, loadReportRows, renderReport, reportMarker, saveReportRow, subjectOf, type ReportRow } from '../../pipeline/report.js';
import type { Gate, StepResults } from '../../pipeline/results.js';
import { spacesBaselineStore } from '../../pipeline/spaces-baseline.js';
import { actionsCacheBaselineStore } from './baseline-cache.js';
import { booleanInput, InputError, numberInput, optionalInput } from './inputs.js';
import { spacesTargetInputs } from './spaces-inputs.js';

export interface StepSettings {
  resultsDir: string;
  comment: boolean;
  commentKey: string;
  githubToken?: string;
  prNumber?: number;
  runnerLabel: string;
  /** The branch whose baselines are read: a pull request's base, else the current branch. */
  baseBranch: string;
  /** The branch this run's results belong to (where save-baseline saves). */
  branch: string;
  store?: BaselineStore;
  saveBaseline: boolean;
}

function defaultBranchPush(): boolean {
  const defaultBranch = (context.payload.repository as { default_branch?: string } | undefined)?.default_branch;
  return context.eventName === 'push' && defaultBranch !== undefined && context.ref === `refs/heads/${defaultBranch}`;
}

function baselineStore(): BaselineStore | undefined {
  const value = optionalInput('baseline-store') ?? 'cache';
  if (value === 'none') return undefined;
  if (value === 'cache') return actionsCacheBaselineStore();
  if (value === 'spaces') return spacesBaselineStore(spacesTargetInputs());
  if (isAbsolute(value)) return directoryBaselineStore(value);
  throw new InputError('baseline-store', `"${value}" is not cache, spaces, none or an absolute folder path`);
}

/** `commentByDefault`: comment when the `comment` input is not given (default: on pull_request events). */
export function readStepSettings(commentByDefault = context.eventName === 'pull_request' || context.eventName === 'pull_request_target'): StepSettings {
  const token = optionalInput('github-token');
  if (token) core.setSecret(token);
  const pr = numberInput('pr-number', { min: 1, integer: true }) ?? (context.payload.pull_request?.number as number | undefined);
  const branch = process.env.GITHUB_HEAD_REF || context.ref.replace(/^refs\/heads\//, '');
  const baseBranch = (context.payload.pull_request?.base as { ref?: string } | undefined)?.ref ?? (process.env.GITHUB_BASE_REF || branch);
  return {
    resultsDir: optionalInput('results-dir') ?? join(process.env.RUNNER_TEMP ?? tmpdir(), 'glm-dllama-results'),
    comment: booleanInput('comment', commentByDefault),
    commentKey: optionalInput('comment-key') ?? (process.env.GITHUB_WORKFLOW || 'glm-dllama'),
    githubToken: token,
    prNumber: pr,
    runnerLabel: optionalInput('runner-label') ?? `${process.env.RUNNER_OS ?? process.platform}-${process.env.RUNNER_ARCH ?? process.arch}`.toLowerCase(),
    branch,
    baseBranch,
    store: baselineStore(),
    saveBaseline: booleanInput('save-baseline', defaultBranchPush()),
  };
}

/** The baseline this run compares with (`save`: the one it would save). */
export function baselineId(settings: StepSettings, kind: StepResults['kind'], model: string, save = false): BaselineId {
  return { kind, model, runnerLabel: settings.runnerLabel, branch: save ? settings.branch : settings.baseBranch };
}

/** The base branch's results for the same model, quantization, runner and step, if stored. */
export async function readBase(settings: StepSettings, id: BaselineId): Promise<Pick<ReportRow, 'base' | 'baseSource'>> {
  if (!settings.store) return {};
  const base = await settings.store.read(id);
  if (!base) {
    core.info(`no base results at ${settings.store.describe(id)}`);
    return {};
  }
  core.info(`base results: ${settings.store.describe(id)}`);
  return { base, baseSource: settings.store.describe(id) };
}

function runUrl(): string | undefined {
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_RUN_ID: id } = process.env;
  return server && repo && id ? `${server}/${repo}/actions/runs/${id}` : undefined;
}

/**
 * Results a workflow_run workflow reports came from another run: a fork's pull request, whose code
 * this repository has not reviewed (see fork-pr-report.yml).
 */
export function resultsFromAnotherRun(): boolean {
  return context.eventName === 'workflow_run';
}

/** Posts (or updates) the run's sticky comment with every result in the results folder. */
export async function commentRun(settings: StepSettings): Promise<void> {
  if (!settings.prNumber) {
    core.info('not a pull request (no pr-number): no comment');
    return;
  }
  if (!settings.githubToken) throw new InputError('github-token', 'is required to comment on the pull request');
  const rows = await loadReportRows(settings.resultsDir);
  const marker = reportMarker(settings.commentKey);
  const body = renderReport(rows, { title: settings.commentKey, marker, runUrl: runUrl(), untrusted: resultsFromAnotherRun() });
  const octokit = getOctokit(settings.githubToken);
  try {
    const c = await upsertStickyComment(octokit, { ...context.repo, issueNumber: settings.prNumber, marker, body });
    core.info(`${c.action} the pull request comment ${c.url}`);
  } catch (e) {
    const status = (e as { status?: number }).status;
    // A fork's pull request gets a read-only token: the results travel as an artifact to a workflow_run report instead.
    if (status === 403) core.warning(`cannot comment on pull request #${settings.prNumber} (read-only token, as for fork pull requests): results are in ${settings.resultsDir}`);
    else throw e;
  }
}

/**
 * Ends a step: keeps the result (with its base) for the run's report, writes the job summary, comments,
 * saves the baseline on the default branch (`base`: the base results when the step already looked them up), sets `results`, and fails the step when a gate failed.
 */
export async function finishStep(settings: StepSettings, current: StepResults, base?: Pick<ReportRow, 'base' | 'baseSource'>): Promise<void> {
  const id = baselineId(settings, current.kind, subjectOf(current));
  const row: ReportRow = { current, ...(base ?? (await readBase(settings, id))) };
  const file = await saveReportRow(settings.resultsDir, row);
  core.setOutput('results', file);
  await core.summary.addRaw(renderReport([row], { title: `${current.kind} ${subjectOf(current)}`, runUrl: runUrl() })).write();
  if (settings.comment) await commentRun(settings);
  const failed = allGates([{ current }]).filter((g) => !g.passed);
  if (settings.saveBaseline && settings.store && failed.length === 0) {
    const saveId = baselineId(settings, current.kind, subjectOf(current), true);
    await settings.store.write(saveId, current);
    core.info(`saved as the baseline: ${settings.store.describe(saveId)}`);
  }
  failOnGates(failed);
}

/** Fails the step, naming each failed gate, so that branch protection can require it. */
export function failOnGates(failed: readonly Gate[]): void {
  if (failed.length) core.setFailed(failed.map((g) => `gate ${g.name} failed: ${g.detail}`).join('\n'));
}
