/**
 * The tokenizer: text to ids and back, exactly as the Hugging Face `tokenizers` library does it with the
 * same description. Pipeline: lone surrogates become U+FFFD (as the Node binding does); non-normalized
 * added tokens are cut out; the rest is normalized; normalized added tokens are cut out; the rest is
 * pre-tokenized into words; each word goes through BPE; the post-processor adds its special tokens.
 */
import { AddedTokenMatcher, type AddedTokenSpec, type Segment } from './added-tokens.js';
import { BpeModel } from './bpe.js';
import { buildNormalizer, type Normalize } from './normalizers.js';
import { compilePreTokenizer, type CompiledPreTokenizer } from './pre-tokenizers.js';
import { singleFraming, type Framing } from './post-processors.js';
import { compileDecoder, type CompiledDecoder } from './decoders.js';
import { byteLevelTokenBytes } from './byte-level.js';
import type { TokenizerSpec } from './spec.js';

export interface EncodeOptions {
  /** Add the post-processor's special tokens (e.g. `[gMASK]<sop>`). Default true, as in the libraries. */
  readonly addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave out special added tokens. Default false. */
  readonly skipSpecialTokens?: boolean;
}

export interface Encoding {
  readonly ids: number[];
  /** Token strings: vocabulary entries (byte-level spelling), the matched text of added tokens. */
  readonly pieces: string[];
}

/** A token id the tokenizer does not have. */
export class TokenIdError extends RangeError {
  constructor(
    readonly id: number,
    readonly vocabSize: number,
  ) {
    super(`token id ${id} is out of range: the vocabulary has ids 0..${vocabSize - 1}${Number.isInteger(id) && id >= 0 && id < vocabSize ? ' but none at this id' : ''}`);
    this.name = 'TokenIdError';
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const ANY_SURROGATE = /[\uD800-\uDFFF]/;

/** Replaces unpaired surrogates with U+FFFD, as a conversion to UTF-8 does. */
export function wellFormed(text: string): string {
  return ANY_SURROGATE.test(text) ? text.replace(LONE_SURROGATE, '\uFFFD') : text;
}

const lossyUtf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export class Tokenizer {
  readonly model: BpeModel;
  /** One past the largest id (model or added). */
  readonly vocabSize: number;
  private readonly normalize: Normalize | null;
  private readonly preTokenizer: CompiledPreTokenizer;
  private readonly rawMatcher: AddedTokenMatcher;
  private readonly normalizedMatcher: AddedTokenMatcher;
  private readonly framing: Framing;
  private readonly decoder: CompiledDecoder;
  private readonly addedById = new Map<number, AddedTokenSpec>();
  /** The string of an added token for decoding (its normalized form when it is matched normalized). */
  private readonly addedDecodeString = new Map<number, string>();
  private readonly addedByContent = new Map<string, number>();
  private readonly specialContents = new Set<string>();
  private tokenBytesCache: (Uint8Array | undefined)[] = [];

  constructor(readonly spec: TokenizerSpec) {
    this.model = new BpeModel(spec.model);
    this.normalize = buildNormalizer(spec.normalizer);
    this.preTokenizer = compilePreTokenizer(spec.preTokenizer);
    this.framing = singleFraming(spec.postProcessor);
    this.decoder = compileDecoder(spec.decoder);
    let size = spec.model.tokens.length;
    for (const t of spec.addedTokens) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t.id);
      if (t.special) this.specialContents.add(t.content);
      const normalizedContent = t.normalized && this.normalize ? this.normalize(t.content) : t.content;
      this.addedDecodeString.set(t.id, normalizedContent);
      size = Math.max(size, t.id + 1);
    }
    this.vocabSize = size;
    this.rawMatcher = new AddedTokenMatcher(spec.addedTokens.filter((t) => !t.normalized));
    this.normalizedMatcher = new AddedTokenMatcher(
      spec.addedTokens.filter((t) => t.normalized),
      (t) => this.addedDecodeString.get(t.id) ?? t.content,
    );
  }

  /** Ids and token strings of `text`. */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    const ids: number[] = [];
    const pieces: string[] = [];
    this.run(wellFormed(text), ids, pieces);
    return this.frame(ids, pieces, options);
  }

  /** Ids only (a little faster than `encode`). */
  encodeIds(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    this.run(wellFormed(text), ids, null);
    if (options.addSpecialTokens ?? true) return [...this.framing.prefixIds, ...ids, ...this.framing.suffixIds];
    return ids;
  }

  /** Encodes UTF-8 bytes; invalid sequences become U+FFFD first (as Rust's `from_utf8_lossy`). */
  encodeBytes(bytes: Uint8Array, options: EncodeOptions = {}): Encoding {
    return this.encode(lossyUtf8.decode(bytes), options);
  }

  private frame(ids: number[], pieces: string[], options: EncodeOptions): Encoding {
    if (!(options.addSpecialTokens ?? true)) return { ids, pieces };
    const f = this.framing;
    if (f.prefixIds.length === 0 && f.suffixIds.length === 0) return { ids, pieces };
    return { ids: [...f.prefixIds, ...ids, ...f.suffixIds], pieces: [...f.prefixTokens, ...pieces, ...f.suffixTokens] };
  }

  /** The ids the post-processor puts before a single sequence (GLM's `[gMASK]<sop>` where the file adds them). */
  get specialPrefixIds(): readonly number[] {
    return this.framing.prefixIds;
  }

  private run(text: string, ids: number[], pieces: string[] | null): void {
    const segments: Segment[] = [];
    this.rawMatcher.split(text, segments);
    for (const segment of segments) {
      if (segment.id >= 0) {
        ids.push(segment.id);
        pieces?.push(segment.text);
        continue;
      }
      const normalized = this.normalize ? this.normalize(segment.text) : segment.text;
      if (this.normalizedMatcher.empty) {
        this.words(normalized, ids, pieces);
        continue;
      }
      const inner: Segment[] = [];
      this.normalizedMatcher.split(normalized, inner);
      for (const s of inner) {
        if (s.id >= 0) {
          ids.push(s.id);
          pieces?.push(s.text);
        } else {
          this.words(s.text, ids, pieces);
        }
      }
    }
  }

  private readonly wordBuffer: string[] = [];

  private words(text: string, ids: number[], pieces: string[] | null): void {
    if (text.length === 0) return;
    const words = this.wordBuffer;
    words.length = 0;
    this.preTokenizer.run(text, words);
    const byteLevel = this.preTokenizer.byteLevelWords;
    const model = this.model;
    const tokens = this.spec.model.tokens;
    for (let w = 0; w < words.length; w++) {
      const wordIds = model.tokenize(words[w]!, byteLevel);
      for (let i = 0; i < wordIds.length; i++) {
        const id = wordIds[i]!;
        ids.push(id);
        pieces?.push(tokens[id]!);
      }
    }
  }

  /** The string of a token id (added token content, or vocabulary entry); undefined when there is none. */
  idToToken(id: number): string | undefined {
    const added = this.addedById.get(id);
    if (added) return added.content;
    return this.spec.model.tokens[id];
  }

  /** The id of a token string (added tokens first, as in the Rust library). */
  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token) ?? this.model.vocab.get(token);
  }

  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special ?? false;
  }

  /** Throws TokenIdError for an id without a token. */
  checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.decodeString(id) === undefined) throw new TokenIdError(id, this.vocabSize);
  }

  /** The token string the decoder sees for an id. */
  decodeString(id: number): string | undefined {
    return this.addedDecodeString.get(id) ?? this.spec.model.tokens[id];
  }

  /** The token strings to decode, with ids checked and special tokens left out when asked. */
  decodeTokens(ids: readonly number[], options: DecodeOptions = {}): string[] {
    const skip = options.skipSpecialTokens ?? false;
    const tokens: string[] = [];
    for (const id of ids) {
      this.checkId(id);
      const token = this.decodeString(id)!;
      if (skip && this.specialContents.has(token)) continue;
      tokens.push(token);
    }
    return tokens;
  }

  /** Text of token ids. An id without a token is an error (TokenIdError). */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (!this.decoder.byteLevel) return this.decoder.decode(this.decodeTokens(ids, options));
    // ByteLevel alone: the UTF-8 (lossy) of the tokens' bytes, from a per-id cache
    const skip = options.skipSpecialTokens ?? false;
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const id of ids) {
      const bytes = this.tokenBytes(id);
      if (skip && this.specialContents.has(this.decodeString(id)!)) continue;
      parts.push(bytes);
      total += bytes.length;
    }
    const all = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return lossyUtf8.decode(all);
  }

  /** True when decoding is plain UTF-8 of per-token bytes (the ByteLevel decoder). */
  get byteLevelDecoder(): boolean {
    return this.decoder.byteLevel;
  }

  /** The bytes a token stands for under the ByteLevel decoder. */
  tokenBytes(id: number): Uint8Array {
    let bytes = this.tokenBytesCache[id];
    if (bytes === undefined) {
      this.checkId(id);
      bytes = byteLevelTokenBytes(this.decodeString(id)!);
      this.tokenBytesCache[id] = bytes;
    }
    return bytes;
  }

  /** Decodes a list of token strings directly (used by streaming decoders). */
  decodeTokenStrings(tokens: string[]): string {
    return this.decoder.decode(tokens);
  }
}
