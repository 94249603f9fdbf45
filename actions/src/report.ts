/**
 * report: the run's sticky pull-request comment from a results folder, and a failed step when any gate
 * failed. Used at the end of a multi-job run, and by the workflow_run workflow that reports a fork's
 * pull request (whose results arrive as an artifact: untrusted data, only rendered, never run).
 */
import * as core from '@actions/core';
import { allGates, loadReportRows, renderReport } from '../../pipeline/report.js';
import { commentRun, failOnGates, readStepSettings, resultsFromAnotherRun } from './step.js';

export async function report(): Promise<void> {
  // The report step exists to comment: on by default wherever there is a pull request to comment on.
  const settings = readStepSettings(true);
  const rows = await loadReportRows(settings.resultsDir);
  await core.summary.addRaw(renderReport(rows, { title: settings.commentKey, untrusted: resultsFromAnotherRun() })).write();
  if (settings.comment) await commentRun(settings);
  failOnGates(allGates(rows).filter((g) => !g.passed));
}
