/** quantize: an f32/f16 .m -> q40/q80 (or back to f32), with the quantization error per tensor kind. */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as core from '@actions/core';
import { quantizeModel } from '../../pipeline/quantize.js';
import { downloadObject, keyPath } from '../../pipeline/spaces.js';
import { WEIGHT_TYPES } from './convert-glm.js';
import { ensureEngine } from './engine.js';
import { choiceInput, numberInput, optionalInput, requiredInput } from './inputs.js';
import { spacesTargetInputs } from './spaces-inputs.js';
import { finishStep, readStepSettings } from './step.js';

/** The imatrix input: a local path, or `spaces:<key>` fetched from the bucket the Spaces inputs name. */
async function imatrixFile(): Promise<string | undefined> {
  const value = optionalInput('imatrix');
  if (!value?.startsWith('spaces:')) return value;
  const key = keyPath(value.slice('spaces:'.length), 'imatrix');
  const file = join(process.env.RUNNER_TEMP ?? tmpdir(), key.split('/').pop()!);
  await downloadObject(spacesTargetInputs(), key, file);
  core.info(`imatrix: fetched ${key} to ${file}`);
  return file;
}

export async function quantize(): Promise<void> {
  const input = requiredInput('model');
  const weights = choiceInput('weights', WEIGHT_TYPES, 'q40');
  const outputTypeInput = optionalInput('output-type');
  const outputType = outputTypeInput === undefined ? undefined : choiceInput('output-type', WEIGHT_TYPES, weights);
  const output = optionalInput('out') ?? `${input.replace(/(\.(q40|q80|f16|f32))?\.m$/, '')}.${weights}.m`;
  const threads = numberInput('threads', { min: 1, integer: true });
  const settings = readStepSettings();
  await ensureEngine();
  const imatrix = await imatrixFile();
  const results = await quantizeModel({ input, output, weights, threads, ...(imatrix ? { imatrix } : {}), ...(outputType ? { outputType } : {}) });
  core.setOutput('model-path', results.output);
  core.setOutput('errors', JSON.stringify(results.errors));
  await finishStep(settings, results);
}
