/**
 * publish-to-spaces: uploads a model's files to a staging prefix, verifies them, and promotes them to
 * models/<model>/<quant>/ with checksums.txt, manifest.json and a model card. The manifest takes the
 * run's perplexity and speed from the results folder when the earlier steps left them there.
 */
import { basename, join } from 'node:path';
import { tmpdir } from 'node:os';
import * as core from '@actions/core';
import { packageVersion } from '../../engine/native.js';
import { parseAcl, publishModel, type ModelFacts } from '../../pipeline/publish.js';
import { loadReportRows } from '../../pipeline/report.js';
import { booleanInput, InputError, listInput, optionalInput, requiredInput } from './inputs.js';
import { spacesTargetInputs } from './spaces-inputs.js';
import { lazyProgress } from '../../cli/progress.js';

/** Perplexity, KL and speed measured earlier in this run for the published model file, and the imatrix that made it. */
async function measuredFacts(resultsDir: string, modelFile: string | undefined): Promise<Partial<ModelFacts>> {
  if (!modelFile) return {};
  const facts: Partial<ModelFacts> = {};
  for (const { current } of await loadReportRows(resultsDir)) {
    if (current.kind === 'perplexity' && basename(current.model) === basename(modelFile)) Object.assign(facts, { perplexity: current.perplexity, kld: current.kld });
    if (current.kind === 'benchmark' && basename(current.model) === basename(modelFile)) Object.assign(facts, { prefillTps: current.prefillTps, decodeTps: current.decodeTps });
    if (current.kind === 'quantize' && basename(current.output) === basename(modelFile) && current.imatrix) {
      Object.assign(facts, { imatrix: current.imatrix.file, calibration: current.imatrix.datasets });
    }
  }
  return facts;
}

export async function publishToSpaces(): Promise<void> {
  const files = listInput('files');
  if (files.length === 0) throw new InputError('files', 'is required: the model (.m) and tokenizer (.t) files to publish');
  const target = spacesTargetInputs();
  const acl = parseAcl(optionalInput('acl') ?? 'private', 'acl');
  const resultsDir = optionalInput('results-dir') ?? join(process.env.RUNNER_TEMP ?? tmpdir(), 'glm-dllama-results');
  const facts: ModelFacts = {
    model: requiredInput('model-name'),
    quant: requiredInput('quant'),
    sourceRepo: optionalInput('source-repo'),
    sourceRevision: optionalInput('source-revision'),
    converterVersion: packageVersion(),
    ...(await measuredFacts(resultsDir, files.find((f) => f.endsWith('.m')))),
  };
  const progress = lazyProgress('publish');
  const r = await progress.around(() =>
    publishModel({
      target,
      files,
      facts,
      acl,
      prefix: optionalInput('prefix') ?? 'models',
      promote: booleanInput('promote', true),
      log: core.info,
      onProgress: (done, total) => progress.update(done, total, ''),
    }),
  );
  core.setOutput('urls', r.urls.join('\n'));
  core.setOutput('cdn-urls', r.cdnUrls.join('\n'));
  core.setOutput('manifest-url', r.manifestUrl);
  await core.summary
    .addHeading(`publish-to-spaces: ${facts.model} ${facts.quant}`, 3)
    .addList([...r.uploaded.map((k) => `uploaded ${k}`), ...r.skipped.map((k) => `unchanged, skipped ${k}`), ...r.promoted.map((k) => `promoted ${k}`)])
    .addRaw(`manifest: ${r.manifestUrl}\n`)
    .write();
}
