/** quantize: an f32/f16 .m -> q40/q80 (or back to f32), with the quantization error per tensor kind. */
import * as core from '@actions/core';
import { quantizeModel } from '../../pipeline/quantize.js';
import { WEIGHT_TYPES } from './convert-glm.js';
import { ensureEngine } from './engine.js';
import { choiceInput, numberInput, optionalInput, requiredInput } from './inputs.js';
import { finishStep, readStepSettings } from './step.js';

export async function quantize(): Promise<void> {
  const input = requiredInput('model');
  const weights = choiceInput('weights', WEIGHT_TYPES, 'q40');
  const output = optionalInput('out') ?? `${input.replace(/(\.(q40|q80|f16|f32))?\.m$/, '')}.${weights}.m`;
  const threads = numberInput('threads', { min: 1, integer: true });
  const settings = readStepSettings();
  await ensureEngine();
  const results = await quantizeModel({ input, output, weights, threads });
  core.setOutput('model-path', results.output);
  core.setOutput('errors', JSON.stringify(results.errors));
  await finishStep(settings, results);
}
