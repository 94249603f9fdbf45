/**
 * Typed reading of JSON values at the boundary: every accessor checks the type and, on failure, throws an
 * InputError that names the file and the field path (`model.merges[12]`), so bad files fail clearly.
 */
import { InputError } from '../converter/errors.js';

export type JsonObject = Record<string, unknown>;

export class Fields {
  constructor(readonly file: string) {}

  fail(path: string, detail: string): never {
    throw new InputError(this.file, path ? `field ${path}: ${detail}` : detail);
  }

  describe(v: unknown): string {
    if (v === null) return 'null';
    if (Array.isArray(v)) return 'an array';
    return typeof v === 'string' ? `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}` : `${typeof v} ${JSON.stringify(v)}`;
  }

  object(v: unknown, path: string): JsonObject {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, `expected an object, found ${this.describe(v)}`);
    return v as JsonObject;
  }

  array(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `expected an array, found ${this.describe(v)}`);
    return v;
  }

  string(v: unknown, path: string): string {
    if (typeof v !== 'string') this.fail(path, `expected a string, found ${this.describe(v)}`);
    return v;
  }

  bool(v: unknown, path: string, fallback?: boolean): boolean {
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'boolean') this.fail(path, `expected true or false, found ${this.describe(v)}`);
    return v;
  }

  /** A non-negative integer (token ids, counts). */
  uint(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(path, `expected a non-negative integer, found ${this.describe(v)}`);
    return v;
  }

  optionalString(v: unknown, path: string): string | null {
    return v === undefined || v === null ? null : this.string(v, path);
  }

  /** The `type` tag of a component object. */
  type(o: JsonObject, path: string): string {
    return this.string(o['type'], `${path}.type`);
  }

  unsupported(path: string, what: string, type: string, supported: readonly string[]): never {
    this.fail(`${path}.type`, `unsupported ${what} type ${JSON.stringify(type)} (supported: ${supported.join(', ')})`);
  }
}
