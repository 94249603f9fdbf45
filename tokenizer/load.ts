/**
 * Loading a tokenizer from what a user has: a .t file, a tokenizer.json, a ChatGLM tokenizer.model, or a
 * checkpoint directory (with tokenizer_config.json for the chat template and special tokens, and
 * generation_config.json / config.json for the stop ids). And the conversion of a directory to a .t.
 */
import { existsSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../converter/errors.js';
import { Fields, type JsonObject } from './json-fields.js';
import { parseAddedTokenList, parseTokenizerJson, type TokenizerSpec } from './spec.js';
import { parseTiktokenModel } from './tiktoken.js';
import { T_MAGIC, decodeTFile, writeTFile } from './t-file.js';
import { Tokenizer } from './tokenizer.js';
import type { AddedTokenSpec } from './added-tokens.js';

export type TokenizerSource = 't' | 'tokenizer.json' | 'tokenizer.model';

export interface LoadedTokenizer {
  readonly tokenizer: Tokenizer;
  readonly source: TokenizerSource;
  /** The file the tokenizer came from. */
  readonly file: string;
  readonly chatTemplate: string | null;
  /** Generation stops on any of these ids. */
  readonly stopIds: readonly number[];
  /** Strings the chat template may use: bos_token, eos_token, pad_token, unk_token. */
  readonly templateTokens: Readonly<Record<string, string>>;
  /** BOS for distributed-llama (see docs/tokenizer-format.md) and whether it is added. */
  readonly bosId?: number;
  readonly addBos: boolean;
}

async function readJson(file: string): Promise<JsonObject | null> {
  if (!existsSync(file)) return null;
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new InputError(file, `not valid JSON (${(e as Error).message})`);
  }
  return new Fields(file).object(json, '');
}

function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as JsonObject)['content'] === 'string') return (v as JsonObject)['content'] as string;
  return undefined;
}

/** What a checkpoint directory says beside the tokenizer file itself. */
interface DirectoryInfo {
  readonly chatTemplate: string | null;
  readonly templateTokens: Record<string, string>;
  readonly eosIdsFromConfig: number[];
  readonly eosToken?: string;
  readonly bosIdFromConfig?: number;
  readonly addBos: boolean;
  readonly addedFromConfig: AddedTokenSpec[];
}

function idList(f: Fields, v: unknown, path: string): number[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v.map((x, i) => f.uint(x, `${path}[${i}]`));
  return [f.uint(v, path)];
}

async function directoryInfo(dir: string): Promise<DirectoryInfo> {
  const configFile = join(dir, 'tokenizer_config.json');
  const config = await readJson(configFile);
  const f = new Fields(configFile);
  let chatTemplate: string | null = null;
  const templateValue = config?.['chat_template'];
  if (typeof templateValue === 'string') chatTemplate = templateValue;
  else if (Array.isArray(templateValue)) {
    // a list of named templates: take "default"
    for (const [i, t] of templateValue.entries()) {
      const o = f.object(t, `chat_template[${i}]`);
      if (o['name'] === 'default') chatTemplate = f.string(o['template'], `chat_template[${i}].template`);
    }
  } else if (templateValue !== undefined && templateValue !== null) f.fail('chat_template', 'expected a string or a list of {name, template}');
  const jinjaFile = join(dir, 'chat_template.jinja');
  if (chatTemplate === null && existsSync(jinjaFile)) chatTemplate = await readFile(jinjaFile, 'utf8');
  const templateTokens: Record<string, string> = {};
  for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
    const s = tokenString(config?.[key]);
    if (s !== undefined) templateTokens[key] = s;
  }
  const eosIds: number[] = [];
  let bosId: number | undefined;
  for (const name of ['generation_config.json', 'config.json']) {
    const file = join(dir, name);
    const json = await readJson(file);
    if (!json) continue;
    const ff = new Fields(file);
    for (const id of idList(ff, json['eos_token_id'], 'eos_token_id')) if (!eosIds.includes(id)) eosIds.push(id);
    const bos = json['bos_token_id'];
    if (bosId === undefined && typeof bos === 'number') bosId = ff.uint(bos, 'bos_token_id');
  }
  const added: AddedTokenSpec[] = [];
  const decoder = config?.['added_tokens_decoder'];
  if (decoder !== undefined && decoder !== null) {
    const entries = Object.entries(f.object(decoder, 'added_tokens_decoder')).map(([id, t]) => ({ ...f.object(t, `added_tokens_decoder.${id}`), id: Number(id) }));
    added.push(...parseAddedTokenList(f, entries, 'added_tokens_decoder'));
  }
  return {
    chatTemplate,
    templateTokens,
    eosIdsFromConfig: eosIds,
    eosToken: templateTokens['eos_token'],
    bosIdFromConfig: bosId,
    addBos: config?.['add_bos_token'] === true,
    addedFromConfig: added,
  };
}

function stopIds(info: DirectoryInfo, tokenizer: Tokenizer): number[] {
  const ids = info.eosIdsFromConfig.filter((id) => id < tokenizer.vocabSize);
  if (ids.length === 0 && info.eosToken !== undefined) {
    const id = tokenizer.tokenToId(info.eosToken);
    if (id !== undefined) ids.push(id);
  }
  return ids;
}

async function isTFile(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const b = Buffer.alloc(4);
    const { bytesRead } = await handle.read(b, 0, 4, 0);
    return bytesRead === 4 && b.readInt32LE(0) === T_MAGIC;
  } finally {
    await handle.close();
  }
}

/** Loads the spec of a tokenizer.json or tokenizer.model with what its directory says. */
async function loadFromCheckpointFile(file: string): Promise<{ spec: TokenizerSpec; info: DirectoryInfo; source: TokenizerSource }> {
  const info = await directoryInfo(dirname(file));
  const text = await readFile(file, 'utf8');
  if (file.endsWith('.json') || text.trimStart().startsWith('{')) return { spec: parseTokenizerJson(text, file), info, source: 'tokenizer.json' };
  // tiktoken: the added tokens of tokenizer_config.json (ids as given), else ChatGLM4's specials
  const spec = parseTiktokenModel(text, file, info.addedFromConfig.length > 0 ? info.addedFromConfig : undefined);
  const vocab = new Map<string, number>();
  spec.model.tokens.forEach((t, id) => t !== undefined && vocab.set(t, id));
  for (const t of spec.addedTokens) {
    if (vocab.has(t.content)) throw new InputError(file, `special token ${JSON.stringify(t.content)} is also a regular token`);
  }
  return { spec, info, source: 'tokenizer.model' };
}

/**
 * Loads a tokenizer from a .t file, a tokenizer.json, a tokenizer.model, or a checkpoint directory
 * (tokenizer.json preferred over tokenizer.model).
 */
export async function loadTokenizer(path: string): Promise<LoadedTokenizer> {
  let file = path;
  if (!existsSync(path)) throw new InputError(path, 'no such file or directory');
  if ((await stat(path)).isDirectory()) {
    const json = join(path, 'tokenizer.json');
    const model = join(path, 'tokenizer.model');
    if (existsSync(json)) file = json;
    else if (existsSync(model)) file = model;
    else throw new InputError(path, 'has neither tokenizer.json nor tokenizer.model');
  }
  if (await isTFile(file)) {
    const t = decodeTFile(await readFile(file), file);
    return {
      tokenizer: new Tokenizer(t.spec),
      source: 't',
      file,
      chatTemplate: t.chatTemplate,
      stopIds: t.eosIds,
      templateTokens: t.templateTokens,
      bosId: t.bosId,
      addBos: t.addBos,
    };
  }
  const { spec, info, source } = await loadFromCheckpointFile(file);
  const tokenizer = new Tokenizer(spec);
  return {
    tokenizer,
    source,
    file,
    chatTemplate: info.chatTemplate,
    stopIds: stopIds(info, tokenizer),
    templateTokens: info.templateTokens,
    bosId: info.bosIdFromConfig,
    addBos: info.addBos,
  };
}

export interface ConvertTokenizerResult {
  readonly outFile: string;
  /** Ids in the .t (one past the largest id). */
  readonly vocabSize: number;
  readonly mergeCount: number;
  readonly addedTokens: number;
  readonly stopIds: readonly number[];
  readonly hasChatTemplate: boolean;
  readonly source: TokenizerSource;
  readonly bytes: number;
}

/** Converts a checkpoint directory's tokenizer (tokenizer.json or tokenizer.model + configs) to a .t file. */
export async function convertTokenizer(modelDir: string, outFile: string): Promise<ConvertTokenizerResult> {
  const loaded = await loadTokenizer(modelDir);
  if (loaded.source === 't') throw new InputError(modelDir, 'is already a .t file');
  return saveTokenizer(loaded, outFile);
}

/** Writes a loaded tokenizer, with its chat template and stop ids, as a .t file. */
export async function saveTokenizer(loaded: LoadedTokenizer, outFile: string): Promise<ConvertTokenizerResult> {
  const { tokenizer } = loaded;
  const bytes = await writeTFile(outFile, {
    spec: tokenizer.spec,
    chatTemplate: loaded.chatTemplate,
    eosIds: loaded.stopIds,
    bosId: loaded.bosId,
    addBos: loaded.addBos,
    templateTokens: loaded.templateTokens,
  });
  return {
    outFile,
    vocabSize: tokenizer.vocabSize,
    mergeCount: tokenizer.spec.model.merges.length / 3,
    addedTokens: tokenizer.spec.addedTokens.length,
    stopIds: loaded.stopIds,
    hasChatTemplate: loaded.chatTemplate !== null,
    source: loaded.source,
    bytes,
  };
}

/** True when a checkpoint directory holds a tokenizer convert can write beside the model. */
export function hasTokenizer(modelDir: string): boolean {
  return existsSync(join(modelDir, 'tokenizer.json')) || existsSync(join(modelDir, 'tokenizer.model'));
}

/** The default .t path beside a .m file: `m.q40.m` -> `m.q40.t`. */
export function tokenizerPathFor(modelFile: string): string {
  const name = basename(modelFile);
  const stem = name.endsWith('.m') ? name.slice(0, -2) : name;
  return join(dirname(modelFile), `${stem}.t`);
}
