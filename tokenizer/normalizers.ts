/** Normalizers: the text transformations applied before pre-tokenization (and to `normalized` added tokens). */
import type { Fields, JsonObject } from './json-fields.js';
import { compilePattern, type PatternSpec } from './regex.js';
import { toByteLevel } from './byte-level.js';

export type NormalizerSpec =
  | { readonly type: 'NFC' | 'NFD' | 'NFKC' | 'NFKD' | 'Lowercase' | 'StripAccents' | 'ByteLevel' }
  | { readonly type: 'Sequence'; readonly normalizers: readonly NormalizerSpec[] }
  | { readonly type: 'Replace'; readonly pattern: PatternSpec; readonly content: string }
  | { readonly type: 'Prepend'; readonly prepend: string }
  | { readonly type: 'Strip'; readonly strip_left: boolean; readonly strip_right: boolean };

const TYPES = ['NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase', 'StripAccents', 'ByteLevel', 'Sequence', 'Replace', 'Prepend', 'Strip'] as const;

export function parsePatternSpec(f: Fields, v: unknown, path: string): PatternSpec {
  const o = f.object(v, path);
  if ('Regex' in o) return { Regex: f.string(o['Regex'], `${path}.Regex`) };
  if ('String' in o) return { String: f.string(o['String'], `${path}.String`) };
  return f.fail(path, 'expected {"String": …} or {"Regex": …}');
}

export function parseNormalizer(f: Fields, v: unknown, path: string): NormalizerSpec | null {
  if (v === null || v === undefined) return null;
  const o: JsonObject = f.object(v, path);
  const type = f.type(o, path);
  switch (type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
    case 'Lowercase':
    case 'StripAccents':
    case 'ByteLevel':
      return { type };
    case 'Sequence':
      return {
        type,
        normalizers: f.array(o['normalizers'], `${path}.normalizers`).map((n, i) => {
          const spec = parseNormalizer(f, n, `${path}.normalizers[${i}]`);
          return spec ?? f.fail(`${path}.normalizers[${i}]`, 'null normalizer in a sequence');
        }),
      };
    case 'Replace':
      return { type, pattern: parsePatternSpec(f, o['pattern'], `${path}.pattern`), content: f.string(o['content'], `${path}.content`) };
    case 'Prepend':
      return { type, prepend: f.string(o['prepend'], `${path}.prepend`) };
    case 'Strip':
      return { type, strip_left: f.bool(o['strip_left'], `${path}.strip_left`), strip_right: f.bool(o['strip_right'], `${path}.strip_right`) };
    default:
      return f.unsupported(path, 'normalizer', type, TYPES);
  }
}

export type Normalize = (text: string) => string;

const LEADING_SPACE = /^\p{White_Space}+/u;
const TRAILING_SPACE = /\p{White_Space}+$/u;
const MARKS = /\p{M}/gu;

/** The function a normalizer spec stands for (null: the identity, so callers can skip the work). */
export function buildNormalizer(spec: NormalizerSpec | null): Normalize | null {
  if (!spec) return null;
  switch (spec.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = spec.type;
      return (s) => s.normalize(form);
    }
    case 'Lowercase':
      return (s) => s.toLowerCase();
    case 'StripAccents':
      return (s) => s.replace(MARKS, '');
    case 'ByteLevel':
      return toByteLevel;
    case 'Sequence': {
      const steps = spec.normalizers.map(buildNormalizer).filter((n): n is Normalize => n !== null);
      if (steps.length === 0) return null;
      if (steps.length === 1) return steps[0]!;
      return (s) => steps.reduce((acc, step) => step(acc), s);
    }
    case 'Replace': {
      const re = compilePattern(spec.pattern);
      const content = spec.content;
      return (s) => s.replace(re, () => content);
    }
    case 'Prepend': {
      const prepend = spec.prepend;
      return (s) => (s.length === 0 ? s : prepend + s);
    }
    case 'Strip': {
      const { strip_left: left, strip_right: right } = spec;
      return (s) => {
        let out = s;
        if (left) out = out.replace(LEADING_SPACE, '');
        if (right) out = out.replace(TRAILING_SPACE, '');
        return out;
      };
    }
  }
}
