/**
 * Checkpoint -> GGUF (llama.cpp's format), from the same plan and streaming encoder as the .m writer:
 * every GGUF tensor is one or more planned .m tensors back to back (the expert stacks ffn_*_exps are the
 * per-expert matrices in expert order; glm4 and chatglm keep their fused ffn_up = [gate; up]), so the
 * bytes of each matrix are exactly those of the .m file. Architectures: glm4moe -> `glm4moe` (NeoX rope),
 * glm4 -> `glm4`, glm (ChatGLM remote code and GlmForCausalLM) -> `chatglm` (split q/k/v). With --mtp the
 * MTP layer becomes llama.cpp's NextN block: the last block (block_count counts it, nextn_predict_layers = 1)
 * with its blk.L.nextn.* tensors, whose .m names are already llama.cpp's. The mapping and metadata are documented in docs/gguf.md.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ConfigReader } from './config.js';
import { planConversion, streamSettings, streamTensors, writeFileAtomically, type ConvertOptions, type PlannedTensor } from './convert.js';
import { WeightType } from './dtypes.js';
import { InputError } from './errors.js';
import { writeFully } from './io.js';
import { imatrixForConversion, type ImatrixUse } from './imatrix.js';
import { GGUF_DEFAULT_ALIGNMENT, GgmlType, encodeGgufHeader, gguf, placeGgufTensors, type GgufTensorInfo, type GgufValue } from './gguf-format.js';
import { ArchType, RopeStyle, type ModelHeader } from './model-header.js';
import { isMoeLayer } from './model-layout.js';

export type GgufConvertOptions = Pick<ConvertOptions, 'modelDir' | 'outFile' | 'weights' | 'threads' | 'chunkBytes' | 'onProgress' | 'signal' | 'mtp' | 'imatrix' | 'outputType'>;

export interface GgufConvertResult {
  outFile: string;
  /** GGUF `general.architecture`: glm4moe, glm4 or chatglm. */
  architecture: GgufArchitecture;
  /** The checkpoint architecture module that read it (chatglm, glm, glm4, glm4moe). */
  sourceArchitecture: string;
  header: ModelHeader;
  parameters: number;
  /** Size of the written GGUF file. */
  bytes: number;
  /** GGUF tensors (expert stacks and fused gate|up count once). */
  tensors: number;
  /** `gpt2` when the checkpoint's tokenizer.json was embedded, `no_vocab` otherwise. */
  vocabulary: 'gpt2' | 'no_vocab';
  /** Checkpoint bytes read. */
  sourceBytes: number;
  /** The imatrix that weighted the Q4_0 encoding, if any. */
  imatrix?: ImatrixUse;
  seconds: number;
}

export type GgufArchitecture = 'glm4moe' | 'glm4' | 'chatglm';

export function ggufArchitecture(header: ModelHeader): GgufArchitecture {
  switch (header.archType) {
    case ArchType.GLM4_MOE:
      return 'glm4moe';
    case ArchType.GLM4:
      return 'glm4';
    case ArchType.GLM:
      return 'chatglm';
  }
}

const GGML_TYPES: Readonly<Record<WeightType, GgmlType>> = {
  [WeightType.F32]: GgmlType.F32,
  [WeightType.F16]: GgmlType.F16,
  [WeightType.Q40]: GgmlType.Q4_0,
  [WeightType.Q80]: GgmlType.Q8_0,
};

/** llama.cpp's general.file_type (llama_ftype) for a weight type. */
const FILE_TYPES: Readonly<Record<WeightType, number>> = {
  [WeightType.F32]: 0, // ALL_F32
  [WeightType.F16]: 1, // MOSTLY_F16
  [WeightType.Q40]: 2, // MOSTLY_Q4_0
  [WeightType.Q80]: 7, // MOSTLY_Q8_0
};

/** One GGUF tensor: its name, ne (fastest first), type, and the planned .m tensors whose bytes it concatenates. */
export interface GgufTensorPlan {
  readonly name: string;
  readonly ne: readonly number[];
  readonly type: GgmlType;
  readonly parts: readonly PlannedTensor[];
}

/**
 * Maps the planned .m tensors (in .m order) to GGUF tensors. Every planned tensor is used exactly once;
 * the parts of a GGUF tensor have one type and one row length.
 */
export function ggufTensors(header: ModelHeader, planned: readonly PlannedTensor[]): GgufTensorPlan[] {
  const byName = new Map(planned.map((t) => [t.spec.name, t]));
  const used = new Set<string>();
  const take = (name: string): PlannedTensor => {
    const t = byName.get(name);
    if (!t) throw new Error(`internal: GGUF export needs .m tensor ${name}`);
    if (used.has(name)) throw new Error(`internal: .m tensor ${name} used twice in the GGUF export`);
    used.add(name);
    return t;
  };
  const out: GgufTensorPlan[] = [];
  const add = (name: string, parts: PlannedTensor[], ne?: number[]): void => {
    const first = parts[0]!;
    if (parts.some((p) => p.spec.type !== first.spec.type || p.rowLength !== first.rowLength)) throw new Error(`internal: parts of ${name} differ in type or row length`);
    out.push({ name, ne: ne ?? [...first.spec.shape].reverse(), type: GGML_TYPES[first.spec.type], parts });
  };
  const fusedGateUp = header.archType !== ArchType.GLM4_MOE;
  for (const t of planned) {
    const name = t.spec.name;
    if (used.has(name)) continue;
    const m = /^blk\.(\d+)\.(.+)$/.exec(name);
    if (!m) {
      add(name, [take(name)]);
      continue;
    }
    const layer = Number(m[1]);
    const rest = m[2]!;
    const b = `blk.${layer}.`;
    if (rest === 'ffn_norm.weight' && header.archType === ArchType.GLM4_MOE) {
      // llama.cpp's glm4moe names the pre-FFN norm (HF post_attention_layernorm) post_attention_norm.
      add(`${b}post_attention_norm.weight`, [take(name)]);
    } else if ((rest === 'ffn_gate.weight' || rest === 'ffn_up.weight') && fusedGateUp) {
      // chatglm and glm4 read one fused ffn_up = [gate; up]: ne [dim, 2 * hidden_dim], gate first.
      add(`${b}ffn_up.weight`, [take(`${b}ffn_gate.weight`), take(`${b}ffn_up.weight`)], [header.dim, 2 * header.hiddenDim]);
    } else if (/^ffn_(gate|up|down)\.\d+\.weight$/.test(rest)) {
      if (!isMoeLayer(header, layer)) throw new Error(`internal: expert tensor ${name} in a dense layer`);
      const E = header.nExperts;
      const Im = header.moeHiddenDim;
      const stack = (proj: string) => Array.from({ length: E }, (_, e) => take(`${b}ffn_${proj}.${e}.weight`));
      add(`${b}ffn_gate_exps.weight`, stack('gate'), [header.dim, Im, E]);
      add(`${b}ffn_up_exps.weight`, stack('up'), [header.dim, Im, E]);
      add(`${b}ffn_down_exps.weight`, stack('down'), [Im, header.dim, E]);
    } else {
      add(name, [take(name)]);
    }
  }
  if (used.size !== planned.length) throw new Error(`internal: the GGUF export leaves ${planned.length - used.size} planned tensors unused`);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Metadata

/** llama.cpp token types. */
export enum GgufTokenType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export interface GgufVocabulary {
  tokens: string[];
  tokenTypes: number[];
  merges: string[];
  /** Ids of added tokens by content. */
  added: Map<string, number>;
}

async function readJsonFile(file: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InputError(file, `cannot read (${(e as Error).message})`);
  }
  try {
    const json = JSON.parse(text) as unknown;
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not a JSON object');
    return json as Record<string, unknown>;
  } catch (e) {
    throw new InputError(file, `not valid JSON (${(e as Error).message})`);
  }
}

/**
 * The GPT-2 style vocabulary of a Hugging Face tokenizer.json (byte-level BPE), padded to `vocabSize`
 * with `[PAD<id>]` tokens of type UNUSED, as llama.cpp's own converter pads GLM's embedding rows.
 */
export function vocabularyFromTokenizerJson(file: string, json: Record<string, unknown>, vocabSize: number): GgufVocabulary {
  const model = json.model as Record<string, unknown> | undefined;
  if (!model || model.type !== 'BPE') throw new InputError(file, `model.type is ${JSON.stringify(model?.type)}; only byte-level BPE tokenizers can be exported to GGUF`);
  const vocab = model.vocab as Record<string, unknown> | undefined;
  if (!vocab || typeof vocab !== 'object') throw new InputError(file, 'model.vocab is missing');
  const tokens = new Array<string | undefined>(vocabSize).fill(undefined);
  const tokenTypes = new Array<number>(vocabSize).fill(GgufTokenType.UNUSED);
  const place = (id: unknown, text: string, type: GgufTokenType, what: string): void => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new InputError(file, `${what} ${JSON.stringify(text)} has invalid id ${JSON.stringify(id)}`);
    if (id >= vocabSize) throw new InputError(file, `${what} ${JSON.stringify(text)} has id ${id}, past the model's vocab_size ${vocabSize}`);
    const previous = tokens[id];
    if (previous !== undefined && previous !== text) throw new InputError(file, `id ${id} is both ${JSON.stringify(previous)} and ${JSON.stringify(text)}`);
    tokens[id] = text;
    tokenTypes[id] = type;
  };
  for (const [text, id] of Object.entries(vocab)) place(id, text, GgufTokenType.NORMAL, 'token');
  const added = new Map<string, number>();
  const addedTokens = json.added_tokens;
  if (addedTokens !== undefined && !Array.isArray(addedTokens)) throw new InputError(file, 'added_tokens is not a list');
  for (const entry of (addedTokens ?? []) as Record<string, unknown>[]) {
    const content = entry.content;
    if (typeof content !== 'string') throw new InputError(file, `added token ${JSON.stringify(entry)} has no content`);
    place(entry.id, content, entry.special === true ? GgufTokenType.CONTROL : GgufTokenType.USER_DEFINED, 'added token');
    added.set(content, entry.id as number);
  }
  const rawMerges = model.merges;
  if (rawMerges !== undefined && !Array.isArray(rawMerges)) throw new InputError(file, 'model.merges is not a list');
  const merges = ((rawMerges ?? []) as unknown[]).map((m, i) => {
    if (typeof m === 'string') return m;
    if (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string')) return `${m[0]} ${m[1]}`;
    throw new InputError(file, `model.merges[${i}] is neither "a b" nor ["a", "b"]`);
  });
  return { tokens: tokens.map((t, id) => t ?? `[PAD${id}]`), tokenTypes, merges, added };
}

async function chatTemplate(modelDir: string): Promise<string | undefined> {
  const file = join(modelDir, 'tokenizer_config.json');
  const config = await readJsonFile(file);
  const template = config?.chat_template;
  if (typeof template === 'string') return template;
  if (Array.isArray(template)) {
    const named = template as { name?: unknown; template?: unknown }[];
    const chosen = named.find((t) => t.name === 'default') ?? named[0];
    if (typeof chosen?.template === 'string') return chosen.template;
  }
  try {
    return await readFile(join(modelDir, 'chat_template.jinja'), 'utf8');
  } catch {
    return undefined;
  }
}

/** The tokenizer metadata of a GGUF: the checkpoint's tokenizer.json when it has one, else `no_vocab`. */
export async function ggufTokenizerMetadata(modelDir: string, header: ModelHeader): Promise<Map<string, GgufValue>> {
  const out = new Map<string, GgufValue>();
  const file = join(modelDir, 'tokenizer.json');
  const json = await readJsonFile(file);
  if (!json) {
    out.set('tokenizer.ggml.model', gguf.str('no_vocab'));
    return out;
  }
  const arch = ggufArchitecture(header);
  const vocab = vocabularyFromTokenizerJson(file, json, header.vocabSize);
  out.set('tokenizer.ggml.model', gguf.str('gpt2'));
  out.set('tokenizer.ggml.pre', gguf.str(arch === 'chatglm' ? 'chatglm-bpe' : 'glm4'));
  out.set('tokenizer.ggml.tokens', gguf.strings(vocab.tokens));
  out.set('tokenizer.ggml.token_type', gguf.i32s(vocab.tokenTypes));
  out.set('tokenizer.ggml.merges', gguf.strings(vocab.merges));
  // llama.cpp's converters' choices for GLM (spec 5.2): eos = unk = pad = <|endoftext|>, eot = <|user|>,
  // eom = <|observation|>, bos = [gMASK] for glm4moe and <|endoftext|> otherwise, never added automatically.
  const ids: [string, string][] = [
    ['bos', arch === 'glm4moe' ? '[gMASK]' : '<|endoftext|>'],
    ['eos', '<|endoftext|>'],
    ['eot', '<|user|>'],
    ['eom', '<|observation|>'],
    ['unknown', '<|endoftext|>'],
    ['padding', '<|endoftext|>'],
  ];
  for (const [key, content] of ids) {
    const id = vocab.added.get(content);
    if (id !== undefined) out.set(`tokenizer.ggml.${key}_token_id`, gguf.u32(id));
  }
  out.set('tokenizer.ggml.add_bos_token', gguf.bool(false));
  const template = await chatTemplate(modelDir);
  if (template !== undefined) out.set('tokenizer.chat_template', gguf.str(template));
  return out;
}

/** The model name for general.name: the config's _name_or_path, else the checkpoint folder's name. */
async function modelName(modelDir: string): Promise<string> {
  const config = await ConfigReader.load(modelDir);
  const named = config.json._name_or_path;
  return typeof named === 'string' && named.length > 0 ? named : basename(modelDir);
}

/**
 * Every metadata key llama.cpp reads for the architecture, including those it would otherwise default
 * silently (rope.dimension_count, rope.freq_base, key_length/value_length, expert_weights_scale,
 * expert_weights_norm, leading_dense_block_count, expert_gating_func), with the exact value types its
 * loader requires (u32 counts, f32 floats, bool flags).
 */
export function ggufModelMetadata(header: ModelHeader, name: string): Map<string, GgufValue> {
  const arch = ggufArchitecture(header);
  const expectedRope = arch === 'glm4moe' ? RopeStyle.HalfSplit : RopeStyle.Interleaved;
  if (header.ropeStyle !== expectedRope) throw new Error(`internal: ${arch} needs rope style ${expectedRope}, the plan has ${header.ropeStyle}`);
  const m = new Map<string, GgufValue>();
  const k = (key: string, value: GgufValue) => m.set(`${arch}.${key}`, value);
  m.set('general.architecture', gguf.str(arch));
  m.set('general.type', gguf.str('model'));
  m.set('general.name', gguf.str(name));
  m.set('general.file_type', gguf.u32(FILE_TYPES[header.weightType]));
  m.set('general.quantization_version', gguf.u32(2));
  m.set('general.alignment', gguf.u32(GGUF_DEFAULT_ALIGNMENT));
  k('vocab_size', gguf.u32(header.vocabSize));
  k('context_length', gguf.u32(header.maxSeqLen));
  k('embedding_length', gguf.u32(header.dim));
  k('block_count', gguf.u32(header.nLayers + header.mtpLayers));
  k('feed_forward_length', gguf.u32(header.hiddenDim));
  k('attention.head_count', gguf.u32(header.nHeads));
  k('attention.head_count_kv', gguf.u32(header.nKvHeads));
  k('attention.key_length', gguf.u32(header.headDim));
  k('attention.value_length', gguf.u32(header.headDim));
  k('attention.layer_norm_rms_epsilon', gguf.f32(header.normEpsilon));
  k('rope.dimension_count', gguf.u32(header.ropeDim));
  k('rope.freq_base', gguf.f32(header.ropeTheta));
  if (arch === 'glm4moe') {
    k('expert_count', gguf.u32(header.nExperts));
    k('expert_used_count', gguf.u32(header.nActiveExperts));
    k('expert_shared_count', gguf.u32(header.nSharedExperts));
    k('expert_feed_forward_length', gguf.u32(header.moeHiddenDim));
    k('leading_dense_block_count', gguf.u32(header.firstDenseLayers));
    k('expert_gating_func', gguf.u32(2)); // sigmoid
    k('expert_weights_scale', gguf.f32(header.routedScalingFactor));
    k('expert_weights_norm', gguf.bool(header.normTopkProb));
    // Optional, default 0: written only with the NextN block, so files without it keep their bytes.
    if (header.mtpLayers > 0) k('nextn_predict_layers', gguf.u32(header.mtpLayers));
    // Group-limited routing: llama.cpp asserts used < count when count > 1; using every group is a no-op.
    if (header.nExpertGroups > 1 && header.topkGroups < header.nExpertGroups) {
      k('expert_group_count', gguf.u32(header.nExpertGroups));
      k('expert_group_used_count', gguf.u32(header.topkGroups));
    }
  }
  if (arch === 'chatglm' && header.nHeads * header.headDim !== header.dim) {
    // llama.cpp's chatglm loader sizes attn_output as [dim, dim].
    throw new Error(`llama.cpp's chatglm needs num_heads x head_dim = hidden_size, not ${header.nHeads} x ${header.headDim} != ${header.dim}`);
  }
  return m;
}

// ------------------------------------------------------------------------------------------------

/** Converts a checkpoint to a llama.cpp GGUF with the same weight types and bytes as the .m writer. */
export async function convertToGguf(options: GgufConvertOptions): Promise<GgufConvertResult> {
  const started = performance.now();
  const settings = streamSettings(options);
  const plan = await planConversion(options.modelDir, settings.weightType, { mtp: options.mtp ?? false, outputType: settings.outputType });
  const { checkpoint, header } = plan;
  try {
    const weighted = options.imatrix ? await imatrixForConversion(options.imatrix, header) : undefined;
    const tensors = ggufTensors(header, plan.tensors);
    const placed: GgufTensorInfo[] = placeGgufTensors(tensors);
    const metadata = ggufModelMetadata(header, await modelName(options.modelDir));
    const tokenizer = await ggufTokenizerMetadata(options.modelDir, header);
    for (const [key, value] of tokenizer) metadata.set(key, value);
    const encodedHeader = encodeGgufHeader(metadata, placed);
    // Each GGUF tensor's parts back to back, then zeros up to the next tensor's aligned offset.
    const items = tensors.flatMap((t, i) => {
      const end = placed[i]!.offset + placed[i]!.bytes;
      const nextOffset = i + 1 < placed.length ? placed[i + 1]!.offset : end;
      return t.parts.map((tensor, j) => (j === t.parts.length - 1 ? { tensor, padAfter: nextOffset - end } : { tensor }));
    });
    const last = placed[placed.length - 1];
    const expected = encodedHeader.length + (last ? last.offset + last.bytes : 0);
    let sourceBytes = 0;
    await writeFileAtomically(options.outFile, options.signal, async (out) => {
      await writeFully(out, encodedHeader);
      const streamed = await streamTensors(out, checkpoint, items, encodedHeader.length, { ...settings, ...(weighted ? { importance: weighted.importance } : {}) });
      sourceBytes = streamed.sourceBytes;
      return encodedHeader.length + streamed.bytesWritten;
    });
    return {
      outFile: options.outFile,
      architecture: ggufArchitecture(header),
      sourceArchitecture: plan.architecture.name,
      header,
      parameters: placed.reduce((n, t) => n + t.ne.reduce((a, b) => a * b, 1), 0),
      bytes: expected,
      tensors: tensors.length,
      vocabulary: (tokenizer.get('tokenizer.ggml.model')?.value as 'gpt2' | 'no_vocab' | undefined) ?? 'no_vocab',
      sourceBytes,
      ...(weighted ? { imatrix: weighted.use } : {}),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await checkpoint.close();
  }
}
