/** The actions' one bundle: each action's entry (and the root action's `command` input) runs one of these. */
import * as core from '@actions/core';
import { benchmark } from './benchmark.js';
import { convertGlm } from './convert-glm.js';
import { InputError, requiredInput } from './inputs.js';
import { publishToSpaces } from './publish-to-spaces.js';
import { quantize } from './quantize.js';
import { report } from './report.js';
import { verifyPerplexityStep } from './verify-perplexity.js';

export const COMMANDS: Record<string, () => Promise<void>> = {
  'convert-glm': convertGlm,
  quantize,
  'verify-perplexity': verifyPerplexityStep,
  benchmark,
  'publish-to-spaces': publishToSpaces,
  report,
};

/** Runs an action; `command` undefined reads it from the root action's `command` input. Never throws. */
export async function run(command?: string): Promise<void> {
  try {
    const name = command ?? requiredInput('command');
    const action = COMMANDS[name];
    if (!action) throw new InputError('command', `"${name}" is not one of ${Object.keys(COMMANDS).join(', ')}`);
    await action();
  } catch (e) {
    core.setFailed(e instanceof Error ? e.message : String(e));
  }
}
