/**
 * ChatGLM4's `tokenizer.model` (glm-4-9b-chat, remote code): a tiktoken vocabulary, one line per token,
 * `base64(token bytes) rank`. It becomes the same byte-level BPE as a tokenizer.json: vocabulary entries in
 * GPT-2 byte characters, a merge for every split of a token into two tokens (ranked by the merged token's
 * rank, as tiktoken merges the pair whose concatenation ranks lowest), whole words looked up first
 * (tiktoken's shortcut, `ignore_merges`), the GLM split regex, and `[gMASK]<sop>` added in front as
 * ChatGLM4Tokenizer.build_inputs_with_special_tokens does.
 */
import { InputError } from '../converter/errors.js';
import { GLM4_SPECIAL_TOKENS, GLM_SPLIT_REGEX } from '../converter/fixture-tokenizer.js';
import type { AddedTokenSpec } from './added-tokens.js';
import { BYTE_TO_CHAR } from './byte-level.js';
import type { PostProcessorSpec } from './post-processors.js';
import type { TokenizerSpec } from './spec.js';
import { MAX_VOCAB } from './spec.js';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function byteLevel(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += BYTE_TO_CHAR[b]!;
  return s;
}

/**
 * Parses the text of a tiktoken file. `added`: the special tokens (from tokenizer_config.json's
 * added_tokens_decoder); when absent, ChatGLM4's 14 special tokens follow the last rank.
 */
export function parseTiktokenModel(text: string, file: string, added?: readonly AddedTokenSpec[]): TokenizerSpec {
  const tokens: (string | undefined)[] = [];
  const byRank: Uint8Array[] = [];
  const vocab = new Map<string, number>();
  const lines = text.split('\n');
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return;
    const parts = line.split(/\s+/);
    const where = `line ${index + 1}`;
    if (parts.length !== 2 || !BASE64.test(parts[0]!) || !/^\d+$/.test(parts[1]!)) {
      throw new InputError(file, `${where}: expected "base64 rank", found ${JSON.stringify(line.slice(0, 60))}`);
    }
    const rank = Number(parts[1]);
    if (rank >= MAX_VOCAB) throw new InputError(file, `${where}: rank ${rank} is too large`);
    const bytes = new Uint8Array(Buffer.from(parts[0]!, 'base64'));
    if (bytes.length === 0) throw new InputError(file, `${where}: empty token`);
    const token = byteLevel(bytes);
    if (tokens[rank] !== undefined) throw new InputError(file, `${where}: rank ${rank} appears twice`);
    if (vocab.has(token)) throw new InputError(file, `${where}: token ${JSON.stringify(parts[0])} appears twice`);
    tokens[rank] = token;
    byRank[rank] = bytes;
    vocab.set(token, rank);
  });
  if (vocab.size === 0) throw new InputError(file, 'no tokens: not a tiktoken tokenizer.model');
  for (let b = 0; b < 256; b++) {
    if (!vocab.has(BYTE_TO_CHAR[b]!)) throw new InputError(file, `the single byte 0x${b.toString(16).padStart(2, '0')} has no token; every byte needs one`);
  }
  // every split of a token into two tokens is a merge, ranked by the merged token's rank
  const triples: number[] = [];
  byRank.forEach((bytes, rank) => {
    if (!bytes || bytes.length < 2) return;
    const token = tokens[rank]!;
    for (let k = 1; k < token.length; k++) {
      const left = vocab.get(token.slice(0, k));
      const right = vocab.get(token.slice(k));
      if (left !== undefined && right !== undefined) triples.push(left, right, rank);
    }
  });
  const modelSize = vocab.size;
  const specials: AddedTokenSpec[] =
    added && added.length > 0
      ? [...added]
      : GLM4_SPECIAL_TOKENS.map((content, i) => ({ id: modelSize + i, content, singleWord: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const gmask = specials.find((t) => t.content === '[gMASK]');
  const sop = specials.find((t) => t.content === '<sop>');
  const postProcessor: PostProcessorSpec | null =
    gmask && sop
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '[gMASK]', type_id: 0 } }, { SpecialToken: { id: '<sop>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: '[gMASK]', type_id: 0 } }, { SpecialToken: { id: '<sop>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: {
            '[gMASK]': { id: '[gMASK]', ids: [gmask.id], tokens: ['[gMASK]'] },
            '<sop>': { id: '<sop>', ids: [sop.id], tokens: ['<sop>'] },
          },
        }
      : null;
  for (const s of specials) {
    if (s.id < tokens.length && tokens[s.id] !== undefined) throw new InputError(file, `special token ${JSON.stringify(s.content)} has id ${s.id}, which is a regular token's rank`);
  }
  return {
    model: {
      type: 'BPE',
      tokens,
      merges: Uint32Array.from(triples),
      unkToken: null,
      continuingSubwordPrefix: null,
      endOfWordSuffix: null,
      fuseUnk: false,
      byteFallback: false,
      ignoreMerges: true,
    },
    addedTokens: specials.sort((a, b) => a.id - b.id),
    normalizer: null,
    preTokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: GLM_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    postProcessor,
    decoder: { type: 'ByteLevel' },
  };
}
