/** Typed access to a checkpoint's config.json: every missing or invalid field is an error naming it. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from './errors.js';

export class ConfigReader {
  constructor(
    readonly file: string,
    readonly json: Readonly<Record<string, unknown>>,
  ) {}

  static async load(dir: string): Promise<ConfigReader> {
    const file = join(dir, 'config.json');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new InputError(file, 'cannot read config.json; is this a Hugging Face checkpoint directory?');
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new InputError(file, `not valid JSON (${(e as Error).message})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InputError(file, 'not a JSON object');
    return new ConfigReader(file, json as Record<string, unknown>);
  }

  fail(field: string, detail: string): never {
    throw new InputError(this.file, `field ${field}: ${detail}`);
  }

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  /** A positive integer (or >= 0 with `allowZero`); `fallback` is used only when the key is absent. */
  int(key: string, fallback?: number, allowZero = false): number {
    const v = this.has(key) ? this.json[key] : fallback;
    if (v === undefined) this.fail(key, 'is missing');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < (allowZero ? 0 : 1)) {
      this.fail(key, `expected a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(v)}`);
    }
    return v as number;
  }

  number(key: string, fallback?: number): number {
    const v = this.has(key) ? this.json[key] : fallback;
    if (v === undefined) this.fail(key, 'is missing');
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `expected a number, got ${JSON.stringify(v)}`);
    return v as number;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.has(key) ? this.json[key] : fallback;
    if (v === undefined) this.fail(key, 'is missing');
    if (typeof v !== 'boolean') this.fail(key, `expected true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  }

  /**
   * A RoPE field read at top level or, as transformers v5 writes it, under rope_parameters.
   * A top-level value and a nested one that disagree are an error.
   */
  ropeNumber(key: string, fallback?: number): number {
    const nested = this.json.rope_parameters;
    const inner = typeof nested === 'object' && nested !== null ? (nested as Record<string, unknown>)[key] : undefined;
    if (inner === undefined || inner === null) return this.number(key, fallback);
    if (typeof inner !== 'number' || !Number.isFinite(inner)) this.fail(`rope_parameters.${key}`, `expected a number, got ${JSON.stringify(inner)}`);
    if (this.has(key) && this.json[key] !== inner) {
      this.fail(key, `${JSON.stringify(this.json[key])} disagrees with rope_parameters.${key} = ${inner}`);
    }
    return inner as number;
  }
}
