/**
 * The typed tokenizer description every source is parsed into once, at the boundary: a Hugging Face
 * tokenizer.json, a ChatGLM tiktoken `tokenizer.model`, or a .t file all give a TokenizerSpec, and one
 * Tokenizer runs any of them.
 */
import { readFile } from 'node:fs/promises';
import { InputError } from '../converter/errors.js';
import { Fields } from './json-fields.js';
import type { BpeSpec } from './bpe.js';
import type { AddedTokenSpec } from './added-tokens.js';
import { parseNormalizer, type NormalizerSpec } from './normalizers.js';
import { parsePreTokenizer, type PreTokenizerSpec } from './pre-tokenizers.js';
import { parsePostProcessor, type PostProcessorSpec } from './post-processors.js';
import { parseDecoder, type DecoderSpec } from './decoders.js';

export interface TokenizerSpec {
  readonly model: BpeSpec;
  /** Added tokens with the ids the Rust library assigns them, in file order. */
  readonly addedTokens: readonly AddedTokenSpec[];
  readonly normalizer: NormalizerSpec | null;
  readonly preTokenizer: PreTokenizerSpec | null;
  readonly postProcessor: PostProcessorSpec | null;
  readonly decoder: DecoderSpec | null;
}

/** Ids at or above this are refused (the pair map packs ids in 26 bits; real vocabularies are far smaller). */
export const MAX_VOCAB = 1 << 24;

/** Builds the model's merge triples from token-string pairs, as the Rust BPE builder does. */
export function mergeTriples(f: Fields, pairs: readonly (readonly [string, string])[], vocab: ReadonlyMap<string, number>, prefix: string | null, path: string): Uint32Array {
  const out = new Uint32Array(pairs.length * 3);
  const prefixLength = prefix ? prefix.length : 0;
  pairs.forEach(([a, b], rank) => {
    const left = vocab.get(a);
    const right = vocab.get(b);
    if (left === undefined) f.fail(`${path}[${rank}]`, `merge token ${JSON.stringify(a)} is not in the vocabulary`);
    if (right === undefined) f.fail(`${path}[${rank}]`, `merge token ${JSON.stringify(b)} is not in the vocabulary`);
    const mergedToken = a + b.slice(prefixLength);
    const merged = vocab.get(mergedToken);
    if (merged === undefined) f.fail(`${path}[${rank}]`, `merged token ${JSON.stringify(mergedToken)} is not in the vocabulary`);
    out[3 * rank] = left;
    out[3 * rank + 1] = right;
    out[3 * rank + 2] = merged;
  });
  return out;
}

/**
 * Assigns added-token ids the way the Rust library does when it loads a file: a content already in the
 * model vocabulary (or added before) keeps that id, a new one gets the next id after the vocabulary.
 */
export function resolveAddedTokens(tokens: readonly AddedTokenSpec[], modelVocab: ReadonlyMap<string, number>, modelSize: number): AddedTokenSpec[] {
  const byContent = new Map<string, number>();
  const byId = new Map<number, AddedTokenSpec>();
  let next = modelSize;
  for (const t of tokens) {
    if (t.content.length === 0) continue;
    const existing = byContent.get(t.content) ?? modelVocab.get(t.content);
    const id = existing ?? next++;
    byContent.set(t.content, id);
    byId.set(id, { ...t, id });
  }
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

function parseModel(f: Fields, v: unknown): BpeSpec {
  const o = f.object(v, 'model');
  const type = o['type'] === undefined ? 'BPE' : f.string(o['type'], 'model.type');
  if (type !== 'BPE') f.fail('model.type', `unsupported model type ${JSON.stringify(type)} (only BPE tokenizers are supported)`);
  const dropout = o['dropout'];
  if (dropout !== null && dropout !== undefined && dropout !== 0) f.fail('model.dropout', 'BPE dropout makes encoding random and is not supported');
  const vocabObject = f.object(o['vocab'], 'model.vocab');
  const vocab = new Map<string, number>();
  const tokens: (string | undefined)[] = [];
  for (const [token, idValue] of Object.entries(vocabObject)) {
    const id = f.uint(idValue, `model.vocab[${JSON.stringify(token)}]`);
    if (id >= MAX_VOCAB) f.fail(`model.vocab[${JSON.stringify(token)}]`, `id ${id} is too large`);
    if (tokens[id] !== undefined) f.fail('model.vocab', `id ${id} is given to both ${JSON.stringify(tokens[id])} and ${JSON.stringify(token)}`);
    tokens[id] = token;
    vocab.set(token, id);
  }
  const pairs = f.array(o['merges'] ?? [], 'model.merges').map((m, i): [string, string] => {
    if (typeof m === 'string') {
      const parts = m.split(' ');
      if (parts.length !== 2) f.fail(`model.merges[${i}]`, `expected "left right", found ${JSON.stringify(m)}`);
      return [parts[0]!, parts[1]!];
    }
    const a = f.array(m, `model.merges[${i}]`);
    if (a.length !== 2) f.fail(`model.merges[${i}]`, 'expected a pair of tokens');
    return [f.string(a[0], `model.merges[${i}][0]`), f.string(a[1], `model.merges[${i}][1]`)];
  });
  const prefix = f.optionalString(o['continuing_subword_prefix'], 'model.continuing_subword_prefix');
  return {
    type: 'BPE',
    tokens,
    merges: mergeTriples(f, pairs, vocab, prefix, 'model.merges'),
    unkToken: f.optionalString(o['unk_token'], 'model.unk_token'),
    continuingSubwordPrefix: prefix === '' ? null : prefix,
    endOfWordSuffix: ((s) => (s === '' ? null : s))(f.optionalString(o['end_of_word_suffix'], 'model.end_of_word_suffix')),
    fuseUnk: f.bool(o['fuse_unk'] ?? false, 'model.fuse_unk'),
    byteFallback: f.bool(o['byte_fallback'] ?? false, 'model.byte_fallback'),
    ignoreMerges: f.bool(o['ignore_merges'] ?? false, 'model.ignore_merges'),
  };
}

export function parseAddedTokenList(f: Fields, v: unknown, path: string): AddedTokenSpec[] {
  return f.array(v ?? [], path).map((t, i) => {
    const where = `${path}[${i}]`;
    const o = f.object(t, where);
    const special = f.bool(o['special'] ?? false, `${where}.special`);
    return {
      id: f.uint(o['id'], `${where}.id`),
      content: f.string(o['content'], `${where}.content`),
      singleWord: f.bool(o['single_word'] ?? false, `${where}.single_word`),
      lstrip: f.bool(o['lstrip'] ?? false, `${where}.lstrip`),
      rstrip: f.bool(o['rstrip'] ?? false, `${where}.rstrip`),
      normalized: f.bool(o['normalized'] ?? !special, `${where}.normalized`),
      special,
    };
  });
}

/** Parses a tokenizer.json document (already read as text); `file` names it in errors. */
export function parseTokenizerJson(text: string, file: string): TokenizerSpec {
  const f = new Fields(file);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(file, `not valid JSON (${(e as Error).message})`);
  }
  const root = f.object(json, '');
  if (root['version'] !== undefined && root['version'] !== '1.0') f.fail('version', `unknown tokenizer.json version ${JSON.stringify(root['version'])}`);
  const model = parseModel(f, root['model']);
  const vocab = new Map<string, number>();
  model.tokens.forEach((t, id) => t !== undefined && vocab.set(t, id));
  const added = parseAddedTokenList(f, root['added_tokens'], 'added_tokens');
  return {
    model,
    addedTokens: resolveAddedTokens(added, vocab, vocab.size),
    normalizer: parseNormalizer(f, root['normalizer'], 'normalizer'),
    preTokenizer: parsePreTokenizer(f, root['pre_tokenizer'], 'pre_tokenizer'),
    postProcessor: parsePostProcessor(f, root['post_processor'], 'post_processor'),
    decoder: parseDecoder(f, root['decoder'], 'decoder'),
  };
}

export async function readTokenizerJson(file: string): Promise<TokenizerSpec> {
  return parseTokenizerJson(await readFile(file, 'utf8'), file);
}
