/**
 * The .t tokenizer file: distributed-llama's container (magic 0x567124, key/value header, chat template,
 * eos ids, vocabulary), followed by a glm-dllama extension that carries what exact BPE needs (the
 * pipeline description with the pre-tokenizer pattern, the byte-level mapping, how each vocabulary entry
 * spells its model token, the merges, the added tokens with their flags). distributed-llama reads the
 * first part and ignores the rest; glm-dllama reads both and gets back the very tokenizer it wrote.
 * Byte by byte in docs/tokenizer-format.md.
 */
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { InputError } from '../converter/errors.js';
import type { AddedTokenSpec } from './added-tokens.js';
import { BYTE_TO_CODEPOINT, byteLevelTokenBytes, isByteLevelString } from './byte-level.js';
import { Fields } from './json-fields.js';
import { parseNormalizer } from './normalizers.js';
import { parsePreTokenizer } from './pre-tokenizers.js';
import { parsePostProcessor } from './post-processors.js';
import { parseDecoder } from './decoders.js';
import { MAX_VOCAB, type TokenizerSpec } from './spec.js';

export const T_MAGIC = 0x567124;
export const EXT_MAGIC = 0x544d4c47; // "GLMT"
export const EXT_VERSION = 1;

/** distributed-llama header keys. */
export const T_KEYS = {
  version: 0,
  vocab_size: 1,
  max_token_length: 2,
  bos_id: 3,
  eos_id: 4,
  pad_id: 5,
  chat_eos_id: 6,
  chat_template: 7,
  chat_stop: 8,
  n_eos_tokens: 9,
  add_bos: 10,
} as const;

/** Extension section tags. */
export const SECTION = { pipeline: 1, byteMap: 2, entryKinds: 3, explicitTokens: 4, merges: 5, addedTokens: 6 } as const;

/** How the model token of an id is spelled, relative to the id's vocabulary entry bytes. */
export const ENTRY_KIND = { none: 0, byteLevel: 1, utf8: 2, explicit: 3 } as const;

export interface TFile {
  readonly spec: TokenizerSpec;
  readonly chatTemplate: string | null;
  readonly eosIds: readonly number[];
  readonly bosId: number;
  readonly addBos: boolean;
  /** Token strings the chat template may use (`bos_token`, `eos_token`…). */
  readonly templateTokens: Readonly<Record<string, string>>;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

class Writer {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Uint8Array): void {
    const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    this.chunks.push(buf);
    this.length += buf.length;
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u8(v: number): void {
    this.push(Uint8Array.of(v));
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  bytes(b: Uint8Array): void {
    this.push(b);
  }
  u32Array(values: ArrayLike<number>): void {
    const b = Buffer.alloc(values.length * 4);
    for (let i = 0; i < values.length; i++) b.writeUInt32LE(values[i]!, i * 4);
    this.push(b);
  }
  done(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function addedFlags(t: AddedTokenSpec): number {
  return (t.special ? 1 : 0) | (t.singleWord ? 2 : 0) | (t.lstrip ? 4 : 0) | (t.rstrip ? 8 : 0) | (t.normalized ? 16 : 0);
}

export interface TFileContent {
  readonly spec: TokenizerSpec;
  readonly chatTemplate: string | null;
  readonly eosIds: readonly number[];
  /** BOS id for distributed-llama; by default the first added token after the model vocabulary (its regular/special boundary). */
  readonly bosId?: number;
  readonly addBos?: boolean;
  readonly templateTokens?: Readonly<Record<string, string>>;
}

/** The bytes of a .t file. */
export function encodeTFile(content: TFileContent): Buffer {
  const { spec } = content;
  const added = new Map<number, AddedTokenSpec>();
  for (const t of spec.addedTokens) added.set(t.id, t);
  let vocabSize = spec.model.tokens.length;
  for (const t of spec.addedTokens) vocabSize = Math.max(vocabSize, t.id + 1);

  // vocabulary entries (what distributed-llama prints for an id) and how each spells the model token
  const entries: Uint8Array[] = [];
  const kinds = new Uint8Array(vocabSize);
  const explicit: [number, string][] = [];
  let maxLength = 1;
  for (let id = 0; id < vocabSize; id++) {
    const model = spec.model.tokens[id];
    const a = added.get(id);
    let entry: Uint8Array;
    if (a) entry = utf8.encode(a.content);
    else if (model !== undefined) entry = byteLevelTokenBytes(model);
    else entry = utf8.encode(`<|unused_${id}|>`);
    if (model === undefined) kinds[id] = ENTRY_KIND.none;
    else if (!a && isByteLevelString(model)) kinds[id] = ENTRY_KIND.byteLevel;
    else if (Buffer.from(utf8.encode(model)).equals(Buffer.from(entry))) kinds[id] = ENTRY_KIND.utf8;
    else {
      kinds[id] = ENTRY_KIND.explicit;
      explicit.push([id, model]);
    }
    if (entry.length === 0) entry = utf8.encode(`<|empty_${id}|>`);
    entries.push(entry);
    maxLength = Math.max(maxLength, entry.length);
  }
  const modelCount = spec.model.tokens.filter((t) => t !== undefined).length;
  const firstAddedAfterModel = spec.addedTokens.find((t) => t.id >= modelCount)?.id ?? vocabSize;
  const bosId = content.bosId ?? firstAddedAfterModel;
  const template = content.chatTemplate === null ? null : utf8.encode(content.chatTemplate);
  if (template && template.includes(0)) throw new Error('chat template contains a NUL byte');

  const w = new Writer();
  const kv: [number, number][] = [
    [T_KEYS.bos_id, bosId],
    [T_KEYS.version, 1],
    [T_KEYS.vocab_size, vocabSize],
    [T_KEYS.max_token_length, maxLength],
  ];
  if (template) kv.push([T_KEYS.chat_template, template.length]);
  kv.push([T_KEYS.n_eos_tokens, content.eosIds.length], [T_KEYS.add_bos, content.addBos ? 1 : 0]);
  w.i32(T_MAGIC);
  w.i32(8 + 8 * kv.length);
  for (const [k, v] of kv) {
    w.i32(k);
    w.i32(v);
  }
  if (template) w.bytes(template);
  for (const id of content.eosIds) w.i32(id);
  for (let id = 0; id < vocabSize; id++) {
    w.f32(id === 0 ? 0 : -id);
    w.u32(entries[id]!.length);
    w.bytes(entries[id]!);
  }

  // extension
  const m = spec.model;
  const pipeline = {
    model: {
      unk_token: m.unkToken,
      continuing_subword_prefix: m.continuingSubwordPrefix,
      end_of_word_suffix: m.endOfWordSuffix,
      fuse_unk: m.fuseUnk,
      byte_fallback: m.byteFallback,
      ignore_merges: m.ignoreMerges,
    },
    normalizer: spec.normalizer,
    pre_tokenizer: spec.preTokenizer,
    post_processor: spec.postProcessor,
    decoder: spec.decoder,
    template_tokens: content.templateTokens ?? {},
  };
  const sections: [number, Buffer][] = [];
  sections.push([SECTION.pipeline, Buffer.from(JSON.stringify(pipeline), 'utf8')]);
  {
    const s = new Writer();
    s.u32Array(BYTE_TO_CODEPOINT);
    sections.push([SECTION.byteMap, s.done()]);
  }
  sections.push([SECTION.entryKinds, Buffer.from(kinds)]);
  {
    const s = new Writer();
    s.u32(explicit.length);
    for (const [id, token] of explicit) {
      const b = utf8.encode(token);
      s.u32(id);
      s.u32(b.length);
      s.bytes(b);
    }
    sections.push([SECTION.explicitTokens, s.done()]);
  }
  {
    const s = new Writer();
    s.u32(m.merges.length / 3);
    s.u32Array(m.merges);
    sections.push([SECTION.merges, s.done()]);
  }
  {
    const s = new Writer();
    s.u32(spec.addedTokens.length);
    for (const t of spec.addedTokens) {
      const b = utf8.encode(t.content);
      s.u32(t.id);
      s.u8(addedFlags(t));
      s.u32(b.length);
      s.bytes(b);
    }
    sections.push([SECTION.addedTokens, s.done()]);
  }
  w.u32(EXT_MAGIC);
  w.u32(EXT_VERSION);
  w.u32(sections.length);
  for (const [tag, payload] of sections) {
    w.u32(tag);
    w.u32(payload.length);
    w.bytes(payload);
  }
  return w.done();
}

/** Writes a .t file atomically (temporary name, then rename). Returns its size in bytes. */
export async function writeTFile(file: string, content: TFileContent): Promise<number> {
  const bytes = encodeTFile(content);
  const temp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(temp, bytes);
    await rename(temp, file);
  } catch (e) {
    await unlink(temp).catch(() => undefined);
    throw e;
  }
  return bytes.length;
}

class Reader {
  offset = 0;
  constructor(
    readonly buf: Buffer,
    readonly file: string,
  ) {}
  need(n: number, what: string): void {
    if (n < 0 || this.offset + n > this.buf.length) {
      throw new InputError(this.file, `truncated: ${what} needs ${n} bytes at offset ${this.offset} but the file has ${this.buf.length} bytes`);
    }
  }
  i32(what: string): number {
    this.need(4, what);
    const v = this.buf.readInt32LE(this.offset);
    this.offset += 4;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.offset);
    this.offset += 4;
    return v;
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.offset++]!;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return b;
  }
  text(n: number, what: string): string {
    const b = this.bytes(n, what);
    try {
      return utf8Strict.decode(b);
    } catch {
      throw new InputError(this.file, `${what} at offset ${this.offset - n} is not valid UTF-8`);
    }
  }
}

/** Parses the bytes of a .t file written by glm-dllama. */
export function decodeTFile(buf: Buffer, file: string): TFile {
  const r = new Reader(buf, file);
  const magic = r.i32('magic');
  if (magic !== T_MAGIC) throw new InputError(file, `not a tokenizer .t file (magic 0x${(magic >>> 0).toString(16)}, expected 0x${T_MAGIC.toString(16)})`);
  const headerSize = r.i32('header size');
  if (headerSize < 8 || (headerSize - 8) % 8 !== 0) throw new InputError(file, `bad header size ${headerSize}`);
  const values = new Map<number, number>();
  for (let i = 0; i < (headerSize - 8) / 8; i++) {
    const key = r.i32('header key');
    const value = r.i32('header value');
    if (key < 0 || key > 10) throw new InputError(file, `unknown header key ${key}`);
    values.set(key, value);
  }
  if (values.get(T_KEYS.version) !== 1) throw new InputError(file, `header key version is ${values.get(T_KEYS.version)}, expected 1`);
  const vocabSize = values.get(T_KEYS.vocab_size) ?? -1;
  if (vocabSize <= 0 || vocabSize > MAX_VOCAB) throw new InputError(file, `header key vocab_size is ${vocabSize}`);
  const templateLength = values.get(T_KEYS.chat_template) ?? 0;
  if (templateLength < 0) throw new InputError(file, `header key chat_template is ${templateLength}`);
  const chatTemplate = values.has(T_KEYS.chat_template) ? r.text(templateLength, 'chat template') : null;
  r.bytes(Math.max(0, values.get(T_KEYS.chat_stop) ?? 0), 'chat stop');
  const nEos = values.get(T_KEYS.n_eos_tokens) ?? 0;
  if (nEos < 0 || nEos > 1024) throw new InputError(file, `header key n_eos_tokens is ${nEos}`);
  const eosIds: number[] = [];
  for (let i = 0; i < nEos; i++) eosIds.push(r.i32('eos id'));
  for (const key of [T_KEYS.eos_id, T_KEYS.chat_eos_id]) {
    const v = values.get(key);
    if (v !== undefined && v >= 0 && !eosIds.includes(v)) eosIds.push(v);
  }
  for (const id of eosIds) if (id < 0 || id >= vocabSize) throw new InputError(file, `eos id ${id} is outside the vocabulary (0..${vocabSize - 1})`);
  const entries: Buffer[] = [];
  for (let id = 0; id < vocabSize; id++) {
    r.need(8, `vocabulary entry ${id}`);
    r.offset += 4; // score
    const length = r.u32(`length of vocabulary entry ${id}`);
    entries.push(r.bytes(length, `vocabulary entry ${id}`));
  }
  if (r.offset === buf.length) {
    throw new InputError(file, 'has no glm-dllama extension after the vocabulary (written by another converter?): exact BPE needs the merges and the pre-tokenizer, convert the tokenizer again with glm-dllama convert-tokenizer');
  }
  if (r.u32('extension magic') !== EXT_MAGIC) throw new InputError(file, `bytes after the vocabulary (offset ${r.offset - 4}) are not a glm-dllama extension`);
  const version = r.u32('extension version');
  if (version !== EXT_VERSION) throw new InputError(file, `extension version ${version} is not supported (this build reads ${EXT_VERSION})`);
  const count = r.u32('section count');
  const sections = new Map<number, Buffer>();
  for (let i = 0; i < count; i++) {
    const tag = r.u32('section tag');
    const length = r.u32('section length');
    sections.set(tag, r.bytes(length, `section ${tag}`));
  }
  if (r.offset !== buf.length) throw new InputError(file, `${buf.length - r.offset} unexpected bytes after the last section`);
  const section = (tag: number, name: string): Reader => {
    const b = sections.get(tag);
    if (!b) throw new InputError(file, `extension section ${tag} (${name}) is missing`);
    return new Reader(b, `${file} (section ${name})`);
  };

  // pipeline description, validated by the same parsers as tokenizer.json
  const p = section(SECTION.pipeline, 'pipeline');
  let pipelineJson: unknown;
  try {
    pipelineJson = JSON.parse(p.text(p.buf.length, 'pipeline JSON'));
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(file, `pipeline section is not valid JSON (${(e as Error).message})`);
  }
  const f = new Fields(`${file} (pipeline section)`);
  const pj = f.object(pipelineJson, '');
  const mj = f.object(pj['model'], 'model');

  const byteMap = section(SECTION.byteMap, 'byte map');
  for (let b = 0; b < 256; b++) {
    const cp = byteMap.u32('byte map');
    if (cp !== BYTE_TO_CODEPOINT[b]) throw new InputError(file, `byte map maps byte ${b} to U+${cp.toString(16)}; only GPT-2's byte-level mapping is supported`);
  }
  const kindsBuf = section(SECTION.entryKinds, 'entry kinds').buf;
  if (kindsBuf.length !== vocabSize) throw new InputError(file, `entry kinds section has ${kindsBuf.length} bytes for ${vocabSize} ids`);
  const explicitReader = section(SECTION.explicitTokens, 'explicit tokens');
  const explicit = new Map<number, string>();
  for (let i = 0, n = explicitReader.u32('count'); i < n; i++) {
    const id = explicitReader.u32('id');
    explicit.set(id, explicitReader.text(explicitReader.u32('length'), 'token'));
  }
  const tokens: (string | undefined)[] = new Array<string | undefined>(vocabSize);
  const latin = new Array<string>(256);
  for (let b = 0; b < 256; b++) latin[b] = String.fromCodePoint(BYTE_TO_CODEPOINT[b]!);
  let lastModelId = -1;
  for (let id = 0; id < vocabSize; id++) {
    const kind = kindsBuf[id]!;
    const entry = entries[id]!;
    if (kind === ENTRY_KIND.none) continue;
    if (kind === ENTRY_KIND.byteLevel) {
      let s = '';
      for (const b of entry) s += latin[b]!;
      tokens[id] = s;
    } else if (kind === ENTRY_KIND.utf8) {
      try {
        tokens[id] = utf8Strict.decode(entry);
      } catch {
        throw new InputError(file, `vocabulary entry ${id} is not valid UTF-8`);
      }
    } else if (kind === ENTRY_KIND.explicit) {
      const t = explicit.get(id);
      if (t === undefined) throw new InputError(file, `id ${id} is marked explicit but the explicit tokens section lacks it`);
      tokens[id] = t;
    } else throw new InputError(file, `entry kind ${kind} of id ${id} is unknown`);
    lastModelId = id;
  }
  tokens.length = lastModelId + 1;

  const mergesReader = section(SECTION.merges, 'merges');
  const mergeCount = mergesReader.u32('count');
  const mergeBytes = mergesReader.bytes(mergeCount * 12, 'merges');
  const merges = new Uint32Array(mergeCount * 3);
  for (let i = 0; i < merges.length; i++) {
    const v = mergeBytes.readUInt32LE(i * 4);
    if (v >= tokens.length || tokens[v] === undefined) throw new InputError(file, `merge ${Math.floor(i / 3)} names id ${v}, which has no model token`);
    merges[i] = v;
  }
  const addedReader = section(SECTION.addedTokens, 'added tokens');
  const addedTokens: AddedTokenSpec[] = [];
  for (let i = 0, n = addedReader.u32('count'); i < n; i++) {
    const id = addedReader.u32('id');
    const flags = addedReader.u8('flags');
    const content = addedReader.text(addedReader.u32('length'), 'content');
    if (id >= vocabSize) throw new InputError(file, `added token ${JSON.stringify(content)} has id ${id}, outside the vocabulary`);
    addedTokens.push({ id, content, special: (flags & 1) !== 0, singleWord: (flags & 2) !== 0, lstrip: (flags & 4) !== 0, rstrip: (flags & 8) !== 0, normalized: (flags & 16) !== 0 });
  }
  const templateTokens: Record<string, string> = {};
  for (const [k, v] of Object.entries(f.object(pj['template_tokens'] ?? {}, 'template_tokens'))) templateTokens[k] = f.string(v, `template_tokens.${k}`);
  const prefix = f.optionalString(mj['continuing_subword_prefix'], 'model.continuing_subword_prefix');
  const suffix = f.optionalString(mj['end_of_word_suffix'], 'model.end_of_word_suffix');
  return {
    spec: {
      model: {
        type: 'BPE',
        tokens,
        merges,
        unkToken: f.optionalString(mj['unk_token'], 'model.unk_token'),
        continuingSubwordPrefix: prefix,
        endOfWordSuffix: suffix,
        fuseUnk: f.bool(mj['fuse_unk'], 'model.fuse_unk'),
        byteFallback: f.bool(mj['byte_fallback'], 'model.byte_fallback'),
        ignoreMerges: f.bool(mj['ignore_merges'], 'model.ignore_merges'),
      },
      addedTokens,
      normalizer: parseNormalizer(f, pj['normalizer'], 'normalizer'),
      preTokenizer: parsePreTokenizer(f, pj['pre_tokenizer'], 'pre_tokenizer'),
      postProcessor: parsePostProcessor(f, pj['post_processor'], 'post_processor'),
      decoder: parseDecoder(f, pj['decoder'], 'decoder'),
    },
    chatTemplate,
    eosIds,
    bosId: values.get(T_KEYS.bos_id) ?? -1,
    addBos: (values.get(T_KEYS.add_bos) ?? 0) === 1,
    templateTokens,
  };
}

export async function readTFile(file: string): Promise<TFile> {
  return decodeTFile(await readFile(file), file);
}
