/** Action inputs, read once and validated into typed values; every error names the input. */
import * as core from '@actions/core';

export class InputError extends Error {
  constructor(input: string, problem: string) {
    super(`input \`${input}\`: ${problem}`);
    this.name = 'InputError';
  }
}

export function optionalInput(name: string): string | undefined {
  const value = core.getInput(name);
  return value === '' ? undefined : value;
}

export function requiredInput(name: string): string {
  const value = optionalInput(name);
  if (value === undefined) throw new InputError(name, 'is required');
  return value;
}

/** A secret input: masked in every later log line. */
export function secretInput(name: string, required: boolean): string | undefined {
  const value = required ? requiredInput(name) : optionalInput(name);
  if (value) core.setSecret(value);
  return value;
}

export function numberInput(name: string, options: { min?: number; integer?: boolean } = {}): number | undefined {
  const text = optionalInput(name);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || text.trim() === '') throw new InputError(name, `"${text}" is not a number`);
  if (options.integer && !Number.isInteger(value)) throw new InputError(name, `"${text}" is not a whole number`);
  if (options.min !== undefined && value < options.min) throw new InputError(name, `${value} is below the minimum ${options.min}`);
  return value;
}

export function booleanInput(name: string, fallback: boolean): boolean {
  const text = optionalInput(name);
  if (text === undefined) return fallback;
  if (/^(true|yes|on|1)$/i.test(text)) return true;
  if (/^(false|no|off|0)$/i.test(text)) return false;
  throw new InputError(name, `"${text}" is not true or false`);
}

export function choiceInput<T extends string>(name: string, choices: readonly T[], fallback: T): T {
  const text = optionalInput(name) ?? fallback;
  if (!(choices as readonly string[]).includes(text)) throw new InputError(name, `"${text}" is not one of ${choices.join(', ')}`);
  return text as T;
}

/** A list given one per line or comma-separated. */
export function listInput(name: string): string[] {
  return (optionalInput(name) ?? '')
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
