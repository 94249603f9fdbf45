/**
 * The .m header: distributed-llama's key/value pairs (keys 0-21 keep their meaning) plus GLM keys from
 * 256 up. Every value is one int32; float values are stored as their IEEE-754 binary32 bits so that
 * eps 1.5625e-7 or routed_scaling_factor 2.5 survive exactly (distributed-llama truncates floats to int,
 * so its keys 12 rope_theta and 20 norm_epsilon are replaced by 256 and 257 and never written).
 */
import { BLOCK_SIZE, WeightType } from './dtypes.js';
import { InputError } from './errors.js';

export const MODEL_MAGIC = 0x0a00abcd;

/** Architecture ids, continuing distributed-llama's 0xABCD00 (LLAMA), 0xABCD01 (QWEN3), 0xABCD02 (QWEN3_MOE). */
export enum ArchType {
  /** ChatGLM remote code and GlmForCausalLM: two norms per layer, fused gate/up in the checkpoint. */
  GLM = 0xabcd10,
  /** Glm4ForCausalLM (GLM-4-0414): sandwich norms, four per layer. */
  GLM4 = 0xabcd11,
  /** Glm4MoeForCausalLM (GLM-4.5, GLM-4.5-Air, INTELLECT-3): sigmoid-routed experts plus a shared expert. */
  GLM4_MOE = 0xabcd12,
}

export const ARCH_NAMES: Readonly<Record<ArchType, string>> = {
  [ArchType.GLM]: 'glm',
  [ArchType.GLM4]: 'glm4',
  [ArchType.GLM4_MOE]: 'glm4moe',
};

/** distributed-llama's rope_type values: 0 rotates adjacent pairs, 1 (its "FALCON") rotates x[i] with x[i + rotaryDim/2]. */
export enum RopeStyle {
  Interleaved = 0,
  HalfSplit = 1,
}

export enum HiddenAct {
  Gelu = 0,
  Silu = 1,
}

export interface ModelHeader {
  version: number;
  archType: ArchType;
  weightType: WeightType;
  hiddenAct: HiddenAct;
  /** hidden_size */
  dim: number;
  /** intermediate_size of the dense FFN layers */
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxSeqLen: number;
  ropeStyle: RopeStyle;
  ropeTheta: number;
  /** Number of leading dims of each head that are rotated (head_dim x partial_rotary_factor). */
  ropeDim: number;
  normEpsilon: number;
  attentionBias: boolean;
  qkNorm: boolean;
  nExperts: number;
  nActiveExperts: number;
  moeHiddenDim: number;
  nSharedExperts: number;
  firstDenseLayers: number;
  routedScalingFactor: number;
  normTopkProb: boolean;
  nExpertGroups: number;
  topkGroups: number;
  /**
   * GLM-4.5's multi-token-prediction (next-n) layers kept after the output head (0 or 1): the optional MTP
   * section of docs/model-format.md, used as a built-in draft model for speculative decoding.
   */
  mtpLayers: number;
  /**
   * The output head's type where it differs from weightType (q40 weights with a q80 or f16 head); absent,
   * the head is weightType like every matrix. Written only when set and different.
   */
  outputType?: WeightType;
}

type Kind = 'int' | 'f32' | 'bool';
interface KeyDef {
  readonly id: number;
  readonly field: keyof ModelHeader;
  /** The key's name in docs/model-format.md and in errors of both readers. */
  readonly name: string;
  readonly kind: Kind;
  /** Value when the key is absent; keys without one are required. */
  readonly absent?: number | boolean;
  /** An optional key: written only when the field is set and differs from `sameAs`, which it defaults to when absent. */
  readonly sameAs?: keyof ModelHeader;
  /**
   * Inclusive bounds of an int or bool value. They admit every real GLM (GLM-4.5: 151,552 vocabulary,
   * 160 experts, 96 heads, 92 layers) and keep every product the readers form (n_heads x head_dim,
   * n_layers x n_experts x tensor bytes) far inside 64 bits, so no size computation can wrap.
   * engine/src/model-limits.h is generated from this table (scripts/model-limits.ts), so the native
   * loader refuses exactly what decodeHeader refuses.
   */
  readonly range?: readonly [number, number];
  /** Written only when it differs from `absent`, so files without the feature keep their exact bytes. */
  readonly omitWhenAbsent?: boolean;
}

const BOOL = [0, 1] as const;
const DIM = 1 << 16;

/** Every key, in the order the writer emits them. */
export const HEADER_KEYS: readonly KeyDef[] = [
  { id: 0, field: 'version', name: 'version', kind: 'int', absent: 0, range: [0, 0xffff] },
  { id: 1, field: 'archType', name: 'arch_type', kind: 'int', range: [ArchType.GLM, ArchType.GLM4_MOE] },
  { id: 11, field: 'hiddenAct', name: 'hidden_act', kind: 'int', absent: HiddenAct.Silu, range: [HiddenAct.Silu, HiddenAct.Silu] },
  { id: 2, field: 'dim', name: 'dim', kind: 'int', range: [1, DIM] },
  { id: 3, field: 'hiddenDim', name: 'hidden_dim', kind: 'int', range: [0, DIM] },
  { id: 4, field: 'nLayers', name: 'n_layers', kind: 'int', range: [1, 1 << 10] },
  { id: 5, field: 'nHeads', name: 'n_heads', kind: 'int', range: [1, 1 << 12] },
  { id: 6, field: 'nKvHeads', name: 'n_kv_heads', kind: 'int', range: [1, 1 << 12] },
  { id: 13, field: 'weightType', name: 'weights_float_type', kind: 'int', range: [WeightType.F32, WeightType.Q80] },
  { id: 10, field: 'maxSeqLen', name: 'max_seq_len', kind: 'int', range: [1, 1 << 24] },
  { id: 9, field: 'vocabSize', name: 'vocab_size', kind: 'int', range: [1, 1 << 24] },
  { id: 7, field: 'nExperts', name: 'n_experts', kind: 'int', absent: 0, range: [0, 1 << 12] },
  { id: 8, field: 'nActiveExperts', name: 'n_active_experts', kind: 'int', absent: 0, range: [0, 1 << 12] },
  { id: 18, field: 'ropeStyle', name: 'rope_type', kind: 'int', absent: RopeStyle.Interleaved, range: [RopeStyle.Interleaved, RopeStyle.HalfSplit] },
  { id: 19, field: 'headDim', name: 'head_dim', kind: 'int', range: [1, DIM] },
  { id: 21, field: 'moeHiddenDim', name: 'moe_hidden_dim', kind: 'int', absent: 0, range: [0, DIM] },
  { id: 256, field: 'ropeTheta', name: 'rope_theta', kind: 'f32' },
  { id: 257, field: 'normEpsilon', name: 'norm_epsilon', kind: 'f32' },
  { id: 258, field: 'ropeDim', name: 'rope_dim', kind: 'int', range: [2, DIM] },
  { id: 259, field: 'attentionBias', name: 'attention_bias', kind: 'bool', absent: false, range: BOOL },
  { id: 260, field: 'qkNorm', name: 'qk_norm', kind: 'bool', absent: false, range: BOOL },
  { id: 261, field: 'nSharedExperts', name: 'n_shared_experts', kind: 'int', absent: 0, range: [0, 64] },
  { id: 262, field: 'firstDenseLayers', name: 'first_dense_layers', kind: 'int', absent: 0, range: [0, 1 << 10] },
  { id: 263, field: 'routedScalingFactor', name: 'routed_scaling_factor', kind: 'f32', absent: 1 },
  { id: 264, field: 'normTopkProb', name: 'norm_topk_prob', kind: 'bool', absent: false, range: BOOL },
  { id: 265, field: 'nExpertGroups', name: 'n_expert_groups', kind: 'int', absent: 1, range: [1, 1 << 12] },
  { id: 266, field: 'topkGroups', name: 'topk_groups', kind: 'int', absent: 1, range: [1, 1 << 12] },
  { id: 267, field: 'outputType', name: 'output_float_type', kind: 'int', sameAs: 'weightType', range: [WeightType.F32, WeightType.Q80] },
  // Optional sections after the output head start at 300, apart from the per-tensor keys above.
  { id: 300, field: 'mtpLayers', name: 'mtp_layers', kind: 'int', absent: 0, range: [0, 1], omitWhenAbsent: true },
];

/**
 * The keys a header writes: every key, less an optional one that is unset or equals its default (the
 * field it is the same as, or its absent value), so files without the feature keep their exact bytes.
 */
function keysOf(header: ModelHeader): KeyDef[] {
  return HEADER_KEYS.filter((k) =>
    k.sameAs ? header[k.field] !== undefined && header[k.field] !== header[k.sameAs] : !(k.omitWhenAbsent && header[k.field] === k.absent));
}

/** Far above any real header (8 bytes per key); a larger declared size is refused without reading it. */
export const MAX_HEADER_BYTES = 64 * 1024;

/** Header keys of distributed-llama that a GLM file never carries (their values would be truncated). */
const DLLAMA_ONLY_KEYS: Readonly<Record<number, string>> = {
  12: 'rope_theta (int)',
  14: 'rope_scaling_factor',
  15: 'rope_scaling_low_freq_factor',
  16: 'rope_scaling_high_freq_factor',
  17: 'rope_scaling_orig_max_seq_len',
  20: 'norm_epsilon (5 or 6)',
};

const f32View = new DataView(new ArrayBuffer(4));

export function f32Bits(value: number): number {
  f32View.setFloat32(0, value, true);
  return f32View.getInt32(0, true);
}

export function f32FromBits(bits: number): number {
  f32View.setInt32(0, bits, true);
  return f32View.getFloat32(0, true);
}

/** Rounds a JS number to the float32 the file will hold, so headers compare equal after a round trip. */
export function toF32(value: number): number {
  return f32FromBits(f32Bits(value));
}

export function encodeHeader(header: ModelHeader): Buffer {
  const keys = keysOf(header);
  const buf = Buffer.alloc(8 + 8 * keys.length);
  buf.writeInt32LE(MODEL_MAGIC, 0);
  buf.writeInt32LE(buf.length, 4);
  keys.forEach((key, i) => {
    const value = header[key.field];
    const encoded = key.kind === 'f32' ? f32Bits(value as number) : key.kind === 'bool' ? (value ? 1 : 0) : (value as number);
    if (!Number.isInteger(encoded) || encoded < -0x80000000 || encoded > 0x7fffffff) {
      throw new RangeError(`header field ${key.field} = ${String(value)} does not fit an int32`);
    }
    buf.writeInt32LE(key.id, 8 + 8 * i);
    buf.writeInt32LE(encoded, 12 + 8 * i);
  });
  return buf;
}

/**
 * Reads the header from the first bytes of a .m file. `describe` names the file in errors.
 * Returns the header and its size (the offset of the first tensor).
 */
/** "GGUF" read as a little-endian int32: a llama.cpp file given where a .m file belongs. */
const GGUF_MAGIC = 0x46554747;

export function decodeHeader(bytes: Uint8Array, describe: string): { header: ModelHeader; headerSize: number } {
  const fail = (detail: string): never => {
    throw new InputError(describe, detail);
  };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, too short for a model header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getInt32(0, true);
  if (magic === 0xabcd00 || magic === 0xabcd01) fail('model file uses distributed-llama\'s pre-2024 format, which is not supported');
  if (magic === GGUF_MAGIC) fail("this is a GGUF file (llama.cpp's format); glm-dllama's engine and inspect read distributed-llama .m files, which `glm-dllama convert` writes");
  if (magic !== MODEL_MAGIC) fail(`bad magic 0x${(magic >>> 0).toString(16)} (expected 0x${MODEL_MAGIC.toString(16)}); not a model file`);
  const headerSize = view.getInt32(4, true);
  if (headerSize < 8 || (headerSize - 8) % 8 !== 0) fail(`header size ${headerSize} is not 8 + 8 x pairs`);
  if (headerSize > MAX_HEADER_BYTES) fail(`header size ${headerSize} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (headerSize > bytes.length) fail(`header size ${headerSize} runs past the end of the file (${bytes.length} bytes read)`);
  const raw = new Map<number, number>();
  for (let at = 8; at < headerSize; at += 8) {
    const key = view.getInt32(at, true);
    if (raw.has(key)) fail(`header key ${key} appears twice`);
    raw.set(key, view.getInt32(at + 4, true));
  }
  const arch = raw.get(1);
  if (arch === undefined) fail('header key 1 (arch_type) is missing');
  if (!(arch! in ARCH_NAMES)) {
    fail(`unsupported arch_type 0x${(arch! >>> 0).toString(16)}; glm-dllama reads GLM files (${Object.entries(ARCH_NAMES).map(([id, n]) => `0x${Number(id).toString(16)} ${n}`).join(', ')})`);
  }
  const header: Partial<Record<keyof ModelHeader, number | boolean>> = {};
  for (const key of HEADER_KEYS) {
    const value = raw.get(key.id);
    raw.delete(key.id);
    if (value === undefined) {
      if (key.sameAs) continue;
      if (key.absent === undefined) fail(`required header key ${key.id} (${key.name}) is missing`);
      header[key.field] = key.absent!;
      continue;
    }
    if (key.range && (value < key.range[0] || value > key.range[1])) {
      fail(`header field ${key.name} = ${value} is outside ${key.range[0]}..${key.range[1]}`);
    }
    header[key.field] = key.kind === 'f32' ? f32FromBits(value) : key.kind === 'bool' ? value !== 0 : value;
  }
  for (const key of raw.keys()) {
    fail(key in DLLAMA_ONLY_KEYS ? `header key ${key} (${DLLAMA_ONLY_KEYS[key]}) is not used by GLM files` : `unknown header key ${key}`);
  }
  const h = header as unknown as ModelHeader;
  checkHeader(h, fail);
  return { header: h, headerSize };
}

/**
 * What the forward pass divides by, indexes with or cuts into blocks, beyond each field's own range.
 * engine/src/model.cpp (checkHeader) makes the same checks in the same order: keep the two in step
 * (test/model-limits.test.ts runs one corpus of crafted files through both readers).
 */
function checkHeader(h: ModelHeader, fail: (detail: string) => never): void {
  if (h.nHeads % h.nKvHeads !== 0) fail(`n_kv_heads (${h.nKvHeads}) does not divide n_heads (${h.nHeads})`);
  if (h.ropeDim > h.headDim || h.ropeDim % 2 !== 0) fail(`rope_dim (${h.ropeDim}) must be even and within head_dim (${h.headDim})`);
  for (const [name, value] of [['rope_theta', h.ropeTheta], ['norm_epsilon', h.normEpsilon], ['routed_scaling_factor', h.routedScalingFactor]] as const) {
    if (!Number.isFinite(value) || value <= 0) fail(`header field ${name} = ${value} must be a positive finite number`);
  }
  const moe = h.archType === ArchType.GLM4_MOE;
  if (moe) {
    if (h.nExperts < 1) fail('n_experts must be positive in a glm4moe file');
    if (h.moeHiddenDim < 1) fail('moe_hidden_dim must be positive in a glm4moe file');
    if (h.nActiveExperts < 1 || h.nActiveExperts > h.nExperts) fail(`n_active_experts (${h.nActiveExperts}) must be within 1..n_experts (${h.nExperts})`);
    if (h.nExperts % h.nExpertGroups !== 0 || h.topkGroups > h.nExpertGroups) fail('n_expert_groups must divide n_experts, and topk_groups must not exceed it');
    if (h.firstDenseLayers > h.nLayers) fail(`first_dense_layers (${h.firstDenseLayers}) exceeds n_layers (${h.nLayers})`);
  }
  if (h.mtpLayers > 0 && !moe) fail('mtp_layers is only defined for glm4moe files');
  const denseLayers = !moe || h.firstDenseLayers > 0;
  const moeLayers = moe && (h.firstDenseLayers < h.nLayers || h.mtpLayers > 0); // the MTP layer is a MoE layer
  if (denseLayers && h.hiddenDim < 1) fail('hidden_dim must be positive when the model has dense layers');
  if (h.weightType === WeightType.Q40 || h.weightType === WeightType.Q80) {
    // The row lengths (columns) of the quantized matrices must be whole 32-value blocks.
    const rows: [string, number][] = [['dim', h.dim], ['n_heads x head_dim', h.nHeads * h.headDim]];
    if (denseLayers) rows.push(['hidden_dim', h.hiddenDim]);
    if (moeLayers) rows.push(['moe_hidden_dim', h.moeHiddenDim], ['moe_hidden_dim x n_shared_experts', h.moeHiddenDim * h.nSharedExperts]);
    for (const [name, cols] of rows) {
      if (cols % BLOCK_SIZE !== 0) fail(`${name} (${cols}) is not a multiple of ${BLOCK_SIZE}, which quantized rows need`);
    }
  }
  if ((h.outputType === WeightType.Q40 || h.outputType === WeightType.Q80) && h.dim % BLOCK_SIZE !== 0) {
    fail(`dim (${h.dim}) is not a multiple of ${BLOCK_SIZE}, which the quantized output head needs`);
  }
}
