/** verify-perplexity: perplexity, KL divergence and top-1 agreement against a reference; fails on a crossed gate. */
import * as core from '@actions/core';
import { verifyPerplexity } from '../../pipeline/verify.js';
import { ensureEngine } from './engine.js';
import { numberInput, optionalInput, requiredInput } from './inputs.js';
import { finishStep, readStepSettings } from './step.js';

export async function verifyPerplexityStep(): Promise<void> {
  const options = {
    model: requiredInput('model'),
    tokenizer: optionalInput('tokenizer'),
    text: optionalInput('text'),
    reference: optionalInput('reference'),
    maxPplIncrease: numberInput('max-ppl-increase', { min: 0 }),
    maxKld: numberInput('max-kld', { min: 0 }),
    ctx: numberInput('ctx', { min: 2, integer: true }),
    threads: numberInput('threads', { min: 1, integer: true }),
    device: optionalInput('device'),
  };
  const settings = readStepSettings();
  await ensureEngine();
  const results = await verifyPerplexity(options);
  core.setOutput('perplexity', String(results.perplexity));
  core.setOutput('kld', results.kld === undefined ? '' : String(results.kld));
  core.setOutput('top1-agreement', results.top1Agreement === undefined ? '' : String(results.top1Agreement));
  core.setOutput('passed', String(results.passed));
  await finishStep(settings, results);
}
