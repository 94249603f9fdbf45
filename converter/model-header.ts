/**
 * The .m header: distributed-llama's key/value pairs (keys 0-21 keep their meaning) plus GLM keys from
 * 256 up. Every value is one int32; float values are stored as their IEEE-754 binary32 bits so that
 * eps 1.5625e-7 or routed_scaling_factor 2.5 survive exactly (distributed-llama truncates floats to int,
 * so its keys 12 rope_theta and 20 norm_epsilon are replaced by 256 and 257 and never written).
 */
import { WeightType } from './dtypes.js';
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
}

type Kind = 'int' | 'f32' | 'bool';
interface KeyDef {
  readonly id: number;
  readonly field: keyof ModelHeader;
  readonly kind: Kind;
  /** Value when the key is absent; keys without one are required. */
  readonly absent?: number | boolean;
}

/** Every key, in the order the writer emits them. */
export const HEADER_KEYS: readonly KeyDef[] = [
  { id: 0, field: 'version', kind: 'int', absent: 0 },
  { id: 1, field: 'archType', kind: 'int' },
  { id: 11, field: 'hiddenAct', kind: 'int', absent: HiddenAct.Silu },
  { id: 2, field: 'dim', kind: 'int' },
  { id: 3, field: 'hiddenDim', kind: 'int' },
  { id: 4, field: 'nLayers', kind: 'int' },
  { id: 5, field: 'nHeads', kind: 'int' },
  { id: 6, field: 'nKvHeads', kind: 'int' },
  { id: 13, field: 'weightType', kind: 'int' },
  { id: 10, field: 'maxSeqLen', kind: 'int' },
  { id: 9, field: 'vocabSize', kind: 'int' },
  { id: 7, field: 'nExperts', kind: 'int', absent: 0 },
  { id: 8, field: 'nActiveExperts', kind: 'int', absent: 0 },
  { id: 18, field: 'ropeStyle', kind: 'int', absent: RopeStyle.Interleaved },
  { id: 19, field: 'headDim', kind: 'int' },
  { id: 21, field: 'moeHiddenDim', kind: 'int', absent: 0 },
  { id: 256, field: 'ropeTheta', kind: 'f32' },
  { id: 257, field: 'normEpsilon', kind: 'f32' },
  { id: 258, field: 'ropeDim', kind: 'int' },
  { id: 259, field: 'attentionBias', kind: 'bool', absent: false },
  { id: 260, field: 'qkNorm', kind: 'bool', absent: false },
  { id: 261, field: 'nSharedExperts', kind: 'int', absent: 0 },
  { id: 262, field: 'firstDenseLayers', kind: 'int', absent: 0 },
  { id: 263, field: 'routedScalingFactor', kind: 'f32', absent: 1 },
  { id: 264, field: 'normTopkProb', kind: 'bool', absent: false },
  { id: 265, field: 'nExpertGroups', kind: 'int', absent: 1 },
  { id: 266, field: 'topkGroups', kind: 'int', absent: 1 },
];

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
  const buf = Buffer.alloc(8 + 8 * HEADER_KEYS.length);
  buf.writeInt32LE(MODEL_MAGIC, 0);
  buf.writeInt32LE(buf.length, 4);
  HEADER_KEYS.forEach((key, i) => {
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
      if (key.absent === undefined) fail(`required header key ${key.id} (${key.field}) is missing`);
      header[key.field] = key.absent!;
    } else {
      // Strict: a flag is 0 or 1 and a float is finite, so every accepted header has one encoding.
      if (key.kind === 'bool' && value !== 0 && value !== 1) fail(`header key ${key.id} (${key.field}) is ${value}; expected 0 or 1`);
      if (key.kind === 'f32' && !Number.isFinite(f32FromBits(value))) fail(`header key ${key.id} (${key.field}) is not a finite number`);
      header[key.field] = key.kind === 'f32' ? f32FromBits(value) : key.kind === 'bool' ? value !== 0 : value;
    }
  }
  for (const key of raw.keys()) {
    fail(key in DLLAMA_ONLY_KEYS ? `header key ${key} (${DLLAMA_ONLY_KEYS[key]}) is not used by GLM files` : `unknown header key ${key}`);
  }
  const h = header as unknown as ModelHeader;
  if (!(h.weightType in WeightType)) fail(`unknown weights_float_type ${h.weightType}`);
  return { header: h, headerSize };
}
