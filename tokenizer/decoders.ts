/** Decoders: token strings back to text, the Rust library's `decode_chain` step by step. */
import type { Fields, JsonObject } from './json-fields.js';
import { parsePatternSpec } from './normalizers.js';
import { compilePattern, type PatternSpec } from './regex.js';
import { byteLevelTokenBytes } from './byte-level.js';

export type DecoderSpec =
  | { readonly type: 'ByteLevel' }
  | { readonly type: 'ByteFallback' }
  | { readonly type: 'Fuse' }
  | { readonly type: 'Sequence'; readonly decoders: readonly DecoderSpec[] }
  | { readonly type: 'Replace'; readonly pattern: PatternSpec; readonly content: string }
  | { readonly type: 'Strip'; readonly content: string; readonly start: number; readonly stop: number };

const TYPES = ['ByteLevel', 'ByteFallback', 'Fuse', 'Sequence', 'Replace', 'Strip'] as const;

export function parseDecoder(f: Fields, v: unknown, path: string): DecoderSpec | null {
  if (v === null || v === undefined) return null;
  const o: JsonObject = f.object(v, path);
  const type = f.type(o, path);
  switch (type) {
    case 'ByteLevel':
    case 'ByteFallback':
    case 'Fuse':
      return { type };
    case 'Sequence':
      return {
        type,
        decoders: f.array(o['decoders'], `${path}.decoders`).map((d, i) => {
          const spec = parseDecoder(f, d, `${path}.decoders[${i}]`);
          return spec ?? f.fail(`${path}.decoders[${i}]`, 'null decoder in a sequence');
        }),
      };
    case 'Replace':
      return { type, pattern: parsePatternSpec(f, o['pattern'], `${path}.pattern`), content: f.string(o['content'], `${path}.content`) };
    case 'Strip': {
      const content = f.string(o['content'], `${path}.content`);
      if (Array.from(content).length !== 1) f.fail(`${path}.content`, 'expected a single character');
      return { type, content, start: f.uint(o['start'], `${path}.start`), stop: f.uint(o['stop'], `${path}.stop`) };
    }
    default:
      return f.unsupported(path, 'decoder', type, TYPES);
  }
}

type Chain = (tokens: string[]) => string[];

const lossy = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function concatBytes(parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function chain(spec: DecoderSpec): Chain {
  switch (spec.type) {
    case 'ByteLevel':
      return (tokens) => [lossy.decode(concatBytes(tokens.map(byteLevelTokenBytes)))];
    case 'Fuse':
      return (tokens) => [tokens.join('')];
    case 'Sequence': {
      const steps = spec.decoders.map(chain);
      return (tokens) => steps.reduce((acc, step) => step(acc), tokens);
    }
    case 'Replace': {
      const re = compilePattern(spec.pattern);
      const content = spec.content;
      return (tokens) => tokens.map((t) => t.replace(re, () => content));
    }
    case 'Strip': {
      const { content, start, stop } = spec;
      return (tokens) =>
        tokens.map((t) => {
          const chars = Array.from(t);
          let s = 0;
          while (s < start && s < chars.length && chars[s] === content) s++;
          let e = chars.length;
          let removed = 0;
          while (removed < stop && e > s && chars[e - 1] === content) {
            e--;
            removed++;
          }
          return chars.slice(s, e).join('');
        });
    }
    case 'ByteFallback':
      return (tokens) => {
        const out: string[] = [];
        let bytes: number[] = [];
        const flush = (): void => {
          if (bytes.length === 0) return;
          try {
            out.push(strict.decode(Uint8Array.from(bytes)));
          } catch {
            for (let i = 0; i < bytes.length; i++) out.push('\uFFFD');
          }
          bytes = [];
        };
        for (const t of tokens) {
          const m = t.length === 6 ? /^<0x([0-9A-Fa-f]{2})>$/.exec(t) : null;
          if (m) bytes.push(parseInt(m[1]!, 16));
          else {
            flush();
            out.push(t);
          }
        }
        flush();
        return out;
      };
  }
}

export interface CompiledDecoder {
  /** Token strings to text. */
  readonly decode: (tokens: string[]) => string;
  /** True when the decoder is exactly ByteLevel: text = UTF-8 of the tokens' bytes (allows byte streaming). */
  readonly byteLevel: boolean;
}

export function compileDecoder(spec: DecoderSpec | null): CompiledDecoder {
  if (!spec) return { decode: (tokens) => tokens.join(' '), byteLevel: false };
  const run = chain(spec);
  return { decode: (tokens) => run(tokens).join(''), byteLevel: spec.type === 'ByteLevel' };
}
