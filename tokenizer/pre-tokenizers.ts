/**
 * Pre-tokenizers: split normalized text into the pieces ("words") the model encodes one by one.
 * Each split runs on one piece at a time, so lookarounds never see across piece boundaries, exactly
 * as in the Rust library.
 */
import type { Fields, JsonObject } from './json-fields.js';
import { compileOniguruma, compilePattern, type PatternSpec } from './regex.js';
import { parsePatternSpec } from './normalizers.js';
import { parseByteLevelOptions, toByteLevel, type ByteLevelOptions } from './byte-level.js';

export type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
const BEHAVIORS: readonly SplitBehavior[] = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];

export type PreTokenizerSpec =
  | { readonly type: 'Sequence'; readonly pretokenizers: readonly PreTokenizerSpec[] }
  | { readonly type: 'Split'; readonly pattern: PatternSpec; readonly behavior: SplitBehavior; readonly invert: boolean }
  | ({ readonly type: 'ByteLevel' } & ByteLevelOptions)
  | { readonly type: 'Digits'; readonly individual_digits: boolean }
  | { readonly type: 'Whitespace' }
  | { readonly type: 'WhitespaceSplit' };

const TYPES = ['Sequence', 'Split', 'ByteLevel', 'Digits', 'Whitespace', 'WhitespaceSplit'] as const;

export function parsePreTokenizer(f: Fields, v: unknown, path: string): PreTokenizerSpec | null {
  if (v === null || v === undefined) return null;
  const o: JsonObject = f.object(v, path);
  const type = f.type(o, path);
  switch (type) {
    case 'Sequence':
      return {
        type,
        pretokenizers: f.array(o['pretokenizers'], `${path}.pretokenizers`).map((p, i) => {
          const spec = parsePreTokenizer(f, p, `${path}.pretokenizers[${i}]`);
          return spec ?? f.fail(`${path}.pretokenizers[${i}]`, 'null pre-tokenizer in a sequence');
        }),
      };
    case 'Split': {
      const behavior = f.string(o['behavior'], `${path}.behavior`);
      if (!(BEHAVIORS as readonly string[]).includes(behavior)) f.fail(`${path}.behavior`, `unknown split behavior ${JSON.stringify(behavior)}`);
      const pattern = parsePatternSpec(f, o['pattern'], `${path}.pattern`);
      try {
        compilePattern(pattern);
      } catch (e) {
        f.fail(`${path}.pattern`, (e as Error).message);
      }
      return { type, pattern, behavior: behavior as SplitBehavior, invert: f.bool(o['invert'], `${path}.invert`, false) };
    }
    case 'ByteLevel':
      return { type, ...parseByteLevelOptions(f, o, path) };
    case 'Digits':
      return { type, individual_digits: f.bool(o['individual_digits'], `${path}.individual_digits`, false) };
    case 'Whitespace':
    case 'WhitespaceSplit':
      return { type };
    default:
      return f.unsupported(path, 'pre-tokenizer', type, TYPES);
  }
}

/** One step: maps every piece to its sub-pieces (appending to `out`). */
type Step = (piece: string, out: string[]) => void;

/** Splits `piece` on the matches of the global regex `re` with a behavior; empty pieces are dropped. */
export function splitWith(re: RegExp, behavior: SplitBehavior, invert: boolean): Step {
  if (behavior === 'Isolated') {
    // Matches and the gaps between them, in order: the hot path for the GLM / Qwen regexes.
    return (piece, out) => {
      re.lastIndex = 0;
      let prev = 0;
      let m: RegExpExecArray | null;
      while ((m = re.exec(piece)) !== null) {
        const start = m.index;
        const text = m[0];
        if (text.length === 0) {
          // an empty match: step one code point on, as Oniguruma's iterator does
          const cp = piece.codePointAt(start);
          re.lastIndex = start + (cp !== undefined && cp > 0xffff ? 2 : 1);
          if (start > prev) out.push(piece.slice(prev, start));
          prev = start;
          continue;
        }
        if (start > prev) out.push(piece.slice(prev, start));
        out.push(text);
        prev = start + text.length;
      }
      if (prev < piece.length) out.push(piece.slice(prev));
    };
  }
  return (piece, out) => {
    // (start, end, isMatch) covering the piece
    const segments: [number, number, boolean][] = [];
    re.lastIndex = 0;
    let prev = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(piece)) !== null) {
      const start = m.index;
      const end = start + m[0].length;
      if (end === start) {
        const cp = piece.codePointAt(start);
        re.lastIndex = start + (cp !== undefined && cp > 0xffff ? 2 : 1);
      }
      if (prev !== start) segments.push([prev, start, invert]);
      segments.push([start, end, !invert]);
      prev = end;
    }
    if (prev !== piece.length) segments.push([prev, piece.length, invert]);
    const kept: [number, number][] = [];
    if (behavior === 'Removed') {
      for (const [s, e, isMatch] of segments) if (!isMatch) kept.push([s, e]);
    } else if (behavior === 'Contiguous') {
      let previous = false;
      for (const [s, e, isMatch] of segments) {
        const last = kept[kept.length - 1];
        if (isMatch === previous && last) last[1] = e;
        else kept.push([s, e]);
        previous = isMatch;
      }
    } else if (behavior === 'MergedWithPrevious') {
      let previous = false;
      for (const [s, e, isMatch] of segments) {
        const last = kept[kept.length - 1];
        if (isMatch && !previous && last) last[1] = e;
        else kept.push([s, e]);
        previous = isMatch;
      }
    } else {
      let previous = false;
      for (let i = segments.length - 1; i >= 0; i--) {
        const [s, e, isMatch] = segments[i]!;
        const last = kept[kept.length - 1];
        if (isMatch && !previous && last) last[0] = s;
        else kept.push([s, e]);
        previous = isMatch;
      }
      kept.reverse();
    }
    for (const [s, e] of kept) if (e > s) out.push(piece.slice(s, e));
  };
}

/** GPT-2's own split regex, used by ByteLevel with `use_regex`. */
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

export interface CompiledPreTokenizer {
  /** Splits one normalized piece into the model's words (appended to `out`). */
  readonly run: (piece: string, out: string[]) => void;
  /**
   * True when the last step maps the words to byte-level characters: that mapping is left to the model,
   * which reads the words' UTF-8 bytes directly (same result, and its cache is keyed by the plain text).
   */
  readonly byteLevelWords: boolean;
}

function leaves(spec: PreTokenizerSpec | null): PreTokenizerSpec[] {
  if (!spec) return [];
  return spec.type === 'Sequence' ? spec.pretokenizers.flatMap(leaves) : [spec];
}

export function compilePreTokenizer(spec: PreTokenizerSpec | null): CompiledPreTokenizer {
  const steps: Step[] = [];
  const specs = leaves(spec);
  let byteLevelWords = false;
  specs.forEach((leaf, index) => {
    const last = index === specs.length - 1;
    switch (leaf.type) {
      case 'Split':
        steps.push(splitWith(compilePattern(leaf.pattern), leaf.behavior, leaf.invert));
        break;
      case 'ByteLevel':
        if (leaf.add_prefix_space) steps.push((piece, out) => out.push(piece.startsWith(' ') ? piece : ` ${piece}`));
        if (leaf.use_regex) steps.push(splitWith(compileOniguruma(GPT2_PATTERN), 'Isolated', false));
        if (last) byteLevelWords = true;
        else steps.push((piece, out) => out.push(toByteLevel(piece)));
        break;
      case 'Digits':
        steps.push(leaf.individual_digits ? splitWith(/\p{N}/gu, 'Isolated', false) : splitWith(/\p{N}+/gu, 'Isolated', false));
        break;
      case 'Whitespace':
        steps.push(splitWith(/[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}\p{White_Space}]+/gu, 'Removed', true));
        break;
      case 'WhitespaceSplit':
        steps.push(splitWith(/\p{White_Space}/gu, 'Removed', false));
        break;
      case 'Sequence':
        break; // flattened by leaves()
    }
  });
  if (steps.length === 0) return { run: (piece, out) => void (piece.length > 0 && out.push(piece)), byteLevelWords };
  if (steps.length === 1) return { run: steps[0]!, byteLevelWords };
  const run = (piece: string, out: string[]): void => {
    let current = [piece];
    for (const step of steps) {
      const next: string[] = [];
      for (const p of current) step(p, next);
      current = next;
    }
    for (const p of current) out.push(p);
  };
  return { run, byteLevelWords };
}
