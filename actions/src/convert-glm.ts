/** convert-glm: a local checkpoint or hf:owner/name@revision -> a .m model (and its .t tokenizer). */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as core from '@actions/core';
import { lazyProgress } from '../../cli/progress.js';
import { convertModel } from '../../pipeline/convert-model.js';
import { ensureEngine } from './engine.js';
import { choiceInput, optionalInput, requiredInput, secretInput } from './inputs.js';

export const WEIGHT_TYPES = ['q40', 'q80', 'f16', 'f32'] as const;

export async function convertGlm(): Promise<void> {
  const options = {
    model: requiredInput('model'),
    weights: choiceInput('weights', WEIGHT_TYPES, 'q40'),
    outDir: optionalInput('out-dir') ?? 'models',
    token: secretInput('hf-token', false),
    cacheDir: optionalInput('cache-dir') ?? join(process.env.RUNNER_TOOL_CACHE ?? tmpdir(), 'glm-dllama-hub'),
    hubUrl: optionalInput('hub-url'),
  };
  await ensureEngine();
  // One progress line per phase: the download's total differs from the conversion's.
  const download = lazyProgress('download');
  const conversion = lazyProgress('convert');
  const r = await download.around(() =>
    conversion.around(() =>
      convertModel({
        ...options,
        log: core.info,
        onProgress: (p) => (p.phase === 'download' ? download.update(p.done, p.total, p.file) : conversion.update(p.done, p.total, p.tensor)),
      }),
    ),
  );
  core.setOutput('model-path', r.modelPath);
  core.setOutput('tokenizer-path', r.tokenizerPath ?? '');
  core.setOutput('sha256', r.sha256);
  core.setOutput('bytes', String(r.bytes));
  core.setOutput('params', String(r.params));
  core.setOutput('source-commit', r.sourceCommit ?? '');
  await core.summary
    .addHeading(`convert-glm: ${r.modelPath}`, 3)
    .addTable([
      [{ data: 'field', header: true }, { data: 'value', header: true }],
      ['source', r.sourceRepo ? `${r.sourceRepo}@${r.sourceRevision ?? ''} (commit ${r.sourceCommit ?? '?'})` : options.model],
      ['architecture', r.architecture],
      ['weights', options.weights],
      ['parameters', r.params.toLocaleString('en-US')],
      ['bytes', r.bytes.toLocaleString('en-US')],
      ['sha256', r.sha256],
      ['tokenizer', r.tokenizerPath ?? '(none)'],
    ])
    .write();
}
