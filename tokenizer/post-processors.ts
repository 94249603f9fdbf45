/** Post-processors: the special tokens added around an encoded sequence when `addSpecialTokens` is on. */
import type { Fields, JsonObject } from './json-fields.js';
import { parseByteLevelOptions, type ByteLevelOptions } from './byte-level.js';

export type TemplatePiece = { readonly SpecialToken: { readonly id: string; readonly type_id: number } } | { readonly Sequence: { readonly id: 'A' | 'B'; readonly type_id: number } };

export interface TemplateSpecialToken {
  readonly id: string;
  readonly ids: readonly number[];
  readonly tokens: readonly string[];
}

export type PostProcessorSpec =
  | ({ readonly type: 'ByteLevel' } & ByteLevelOptions)
  | { readonly type: 'TemplateProcessing'; readonly single: readonly TemplatePiece[]; readonly pair: readonly TemplatePiece[]; readonly special_tokens: Readonly<Record<string, TemplateSpecialToken>> }
  | { readonly type: 'RobertaProcessing' | 'BertProcessing'; readonly sep: readonly [string, number]; readonly cls: readonly [string, number] }
  | { readonly type: 'Sequence'; readonly processors: readonly PostProcessorSpec[] };

const TYPES = ['ByteLevel', 'TemplateProcessing', 'RobertaProcessing', 'BertProcessing', 'Sequence'] as const;

function parsePieces(f: Fields, v: unknown, path: string): TemplatePiece[] {
  return f.array(v, path).map((p, i) => {
    const where = `${path}[${i}]`;
    const o = f.object(p, where);
    if ('SpecialToken' in o) {
      const s = f.object(o['SpecialToken'], `${where}.SpecialToken`);
      return { SpecialToken: { id: f.string(s['id'], `${where}.SpecialToken.id`), type_id: f.uint(s['type_id'] ?? 0, `${where}.SpecialToken.type_id`) } };
    }
    if ('Sequence' in o) {
      const s = f.object(o['Sequence'], `${where}.Sequence`);
      const id = f.string(s['id'], `${where}.Sequence.id`);
      if (id !== 'A' && id !== 'B') f.fail(`${where}.Sequence.id`, 'expected "A" or "B"');
      return { Sequence: { id, type_id: f.uint(s['type_id'] ?? 0, `${where}.Sequence.type_id`) } };
    }
    return f.fail(where, 'expected {"SpecialToken": …} or {"Sequence": …}');
  });
}

function parseTokenPair(f: Fields, v: unknown, path: string): [string, number] {
  const a = f.array(v, path);
  if (a.length !== 2) f.fail(path, 'expected [token, id]');
  return [f.string(a[0], `${path}[0]`), f.uint(a[1], `${path}[1]`)];
}

export function parsePostProcessor(f: Fields, v: unknown, path: string): PostProcessorSpec | null {
  if (v === null || v === undefined) return null;
  const o: JsonObject = f.object(v, path);
  const type = f.type(o, path);
  switch (type) {
    case 'ByteLevel':
      return { type, ...parseByteLevelOptions(f, o, path) };
    case 'TemplateProcessing': {
      const specials: Record<string, TemplateSpecialToken> = {};
      const so = f.object(o['special_tokens'] ?? {}, `${path}.special_tokens`);
      for (const [key, value] of Object.entries(so)) {
        const where = `${path}.special_tokens.${key}`;
        const t = f.object(value, where);
        const ids = f.array(t['ids'], `${where}.ids`).map((x, i) => f.uint(x, `${where}.ids[${i}]`));
        const tokens = f.array(t['tokens'], `${where}.tokens`).map((x, i) => f.string(x, `${where}.tokens[${i}]`));
        if (ids.length !== tokens.length) f.fail(where, 'ids and tokens differ in length');
        specials[key] = { id: f.string(t['id'], `${where}.id`), ids, tokens };
      }
      const single = parsePieces(f, o['single'], `${path}.single`);
      const pair = parsePieces(f, o['pair'] ?? [], `${path}.pair`);
      for (const [i, p] of [...single, ...pair].entries()) {
        if ('SpecialToken' in p && !specials[p.SpecialToken.id]) f.fail(`${path}`, `template piece ${i} names special token ${JSON.stringify(p.SpecialToken.id)} missing from special_tokens`);
      }
      return { type, single, pair, special_tokens: specials };
    }
    case 'RobertaProcessing':
    case 'BertProcessing':
      return { type, sep: parseTokenPair(f, o['sep'], `${path}.sep`), cls: parseTokenPair(f, o['cls'], `${path}.cls`) };
    case 'Sequence':
      return {
        type,
        processors: f.array(o['processors'], `${path}.processors`).map((p, i) => {
          const spec = parsePostProcessor(f, p, `${path}.processors[${i}]`);
          return spec ?? f.fail(`${path}.processors[${i}]`, 'null processor in a sequence');
        }),
      };
    default:
      return f.unsupported(path, 'post-processor', type, TYPES);
  }
}

/** What a post-processor puts around one sequence: ids and token strings before and after it. */
export interface Framing {
  readonly prefixIds: readonly number[];
  readonly prefixTokens: readonly string[];
  readonly suffixIds: readonly number[];
  readonly suffixTokens: readonly string[];
}

const NONE: Framing = { prefixIds: [], prefixTokens: [], suffixIds: [], suffixTokens: [] };

/** The framing of a single sequence (with special tokens added); nested sequences apply in order. */
export function singleFraming(spec: PostProcessorSpec | null): Framing {
  if (!spec) return NONE;
  switch (spec.type) {
    case 'ByteLevel':
      return NONE;
    case 'RobertaProcessing':
    case 'BertProcessing':
      return { prefixIds: [spec.cls[1]], prefixTokens: [spec.cls[0]], suffixIds: [spec.sep[1]], suffixTokens: [spec.sep[0]] };
    case 'TemplateProcessing': {
      const before = { ids: [] as number[], tokens: [] as string[] };
      const after = { ids: [] as number[], tokens: [] as string[] };
      let seen = false;
      for (const piece of spec.single) {
        if ('Sequence' in piece) {
          seen = true;
          continue;
        }
        const t = spec.special_tokens[piece.SpecialToken.id]!;
        const target = seen ? after : before;
        target.ids.push(...t.ids);
        target.tokens.push(...t.tokens);
      }
      return { prefixIds: before.ids, prefixTokens: before.tokens, suffixIds: after.ids, suffixTokens: after.tokens };
    }
    case 'Sequence': {
      let framing = NONE;
      for (const p of spec.processors) {
        const inner = singleFraming(p);
        framing = {
          prefixIds: [...inner.prefixIds, ...framing.prefixIds],
          prefixTokens: [...inner.prefixTokens, ...framing.prefixTokens],
          suffixIds: [...framing.suffixIds, ...inner.suffixIds],
          suffixTokens: [...framing.suffixTokens, ...inner.suffixTokens],
        };
      }
      return framing;
    }
  }
}
