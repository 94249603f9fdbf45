/** Commander parsers for option values, shared by every command: a bad value is a usage error saying what was expected. */
import { InvalidArgumentError } from 'commander';
import { availableParallelism } from 'node:os';

const numberArg =
  (ok: (n: number) => boolean, expected: string) =>
  (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !ok(n)) throw new InvalidArgumentError(`expected ${expected}`);
    return n;
  };

export const positiveInt = numberArg((n) => Number.isSafeInteger(n) && n > 0, 'a positive integer');
export const nonNegativeInt = numberArg((n) => Number.isSafeInteger(n) && n >= 0, 'a non-negative integer');
export const nonNegative = numberArg((n) => Number.isFinite(n) && n >= 0, 'a non-negative number');
export const probability = numberArg((n) => n >= 0 && n <= 1, 'a number between 0 and 1');

/** A comma-separated list (a repeated option replaces it). */
export function commaList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** A comma-separated list that a repeated option adds to. */
/** A comma-separated list of positive integers, e.g. --concurrency 1,2,4,8. */
export function positiveIntList(value: string): number[] {
  return commaList(value).map((v) => positiveInt(v));
}

export function repeatableList(value: string, previous: string[] = []): string[] {
  return [...previous, ...commaList(value)];
}

/**
 * The engine's --threads: more threads than cores make them wait on each other at every step (decoding
 * runs many times slower), which is allowed but said once on stderr.
 */
export function engineThreads(value: string): number {
  const threads = positiveInt(value);
  const cores = availableParallelism();
  if (threads > cores) {
    process.stderr.write(`glm-dllama: warning: --threads ${threads} is more than the ${cores} cores here, which slows the engine down sharply; leave it out to use every core\n`);
  }
  return threads;
}
