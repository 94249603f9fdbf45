/**
 * Tiny deterministic GLM checkpoints in the exact on-disk layout of the real models (config.json, sharded
 * safetensors with an index, tokenizer files, generation_config.json), for tests, benchmarks and the demo.
 *
 * Every tensor's values depend only on (seed, tensor name): each tensor has its own PRNG stream seeded from a
 * hash of both, so adding, removing or reordering tensors never changes another tensor's bytes. Tensors are
 * generated and written in chunks of at most ~4 MB of float32, so even the ~300M-parameter `bench` size is
 * never held in memory.
 */
import { mkdir, readdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SOURCE_DTYPE_IDS, WeightType } from './dtypes.js';
import { native } from '../engine/native.js';
import { INDEX_FILE, SINGLE_FILE, elementCount, writeSafetensors, type TensorToWrite } from './safetensors.js';
import {
  fixtureSpecialId,
  fixtureTiktokenModel,
  fixtureTokenizerConfig,
  fixtureTokenizerJson,
} from './fixture-tokenizer.js';

export type FixtureArch = 'chatglm' | 'glm' | 'glm4' | 'glm4moe';
export const FIXTURE_ARCHS: readonly FixtureArch[] = ['chatglm', 'glm', 'glm4', 'glm4moe'];
export type FixtureSize = 'tiny' | 'small' | 'bench';
export const FIXTURE_SIZES: readonly FixtureSize[] = ['tiny', 'small', 'bench'];
export type FixtureDtype = 'bf16' | 'f16' | 'f32';
export const FIXTURE_DTYPES: readonly FixtureDtype[] = ['bf16', 'f16', 'f32'];

export interface FixtureOptions {
  arch: FixtureArch;
  outDir: string;
  /** Integer seed; default 1. */
  seed?: number;
  /** Default 'tiny'. */
  size?: FixtureSize;
  /** Storage dtype of every tensor except `e_score_correction_bias` (always F32, as HF stores it); default 'bf16'. */
  dtype?: FixtureDtype;
  /** q/k/v (or query_key_value) biases; default true. */
  attentionBias?: boolean;
  /** glm4moe only: `use_qk_norm` with per-head q_norm / k_norm weights; default false. */
  qkNorm?: boolean;
  /** Called with (bytes of tensor data written so far, total bytes of tensor data). */
  onProgress?: (done: number, total: number) => void;
}

export interface FixtureResult {
  outDir: string;
  /** File names written into outDir, sorted. */
  files: string[];
  tensors: number;
  /** Elements of every stored tensor (including the MTP layer and ChatGLM's inv_freq buffer). */
  parameters: number;
  /** Bytes of tensor data (= the index's metadata.total_size). */
  bytes: number;
}

/** Model dimensions of one (arch, size). MoE fields are set for glm4moe only. */
export interface FixtureDims {
  readonly vocab: number;
  readonly hidden: number;
  readonly layers: number;
  readonly intermediate: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly maxPositions: number;
  readonly moeIntermediate?: number;
  readonly experts?: number;
  readonly expertsPerToken?: number;
  readonly sharedExperts?: number;
  readonly firstDense?: number;
}

export function fixtureDims(arch: FixtureArch, size: FixtureSize): FixtureDims {
  const moe = arch === 'glm4moe';
  switch (size) {
    case 'tiny':
      return moe
        ? { vocab: 576, hidden: 64, layers: 3, intermediate: 128, heads: 4, kvHeads: 2, headDim: 32, maxPositions: 256,
            moeIntermediate: 32, experts: 8, expertsPerToken: 2, sharedExperts: 1, firstDense: 1 }
        : { vocab: 576, hidden: 64, layers: 3, intermediate: 128, heads: 4, kvHeads: 2, headDim: 16, maxPositions: 256 };
    case 'small':
      return moe
        ? { vocab: 576, hidden: 256, layers: 4, intermediate: 512, heads: 8, kvHeads: 2, headDim: 64, maxPositions: 1024,
            moeIntermediate: 128, experts: 16, expertsPerToken: 4, sharedExperts: 1, firstDense: 1 }
        : { vocab: 576, hidden: 256, layers: 4, intermediate: 512, heads: 8, kvHeads: 2, headDim: 32, maxPositions: 1024 };
    case 'bench':
      return moe
        ? { vocab: 32768, hidden: 1024, layers: 8, intermediate: 2048, heads: 16, kvHeads: 4, headDim: 128, maxPositions: 4096,
            moeIntermediate: 512, experts: 16, expertsPerToken: 4, sharedExperts: 1, firstDense: 1 }
        : { vocab: 32768, hidden: 1024, layers: 8, intermediate: 8192, heads: 8, kvHeads: 2, headDim: 128, maxPositions: 4096 };
  }
}

const TORCH_DTYPE: Readonly<Record<FixtureDtype, string>> = { bf16: 'bfloat16', f16: 'float16', f32: 'float32' };
const ST_DTYPE: Readonly<Record<FixtureDtype, string>> = { bf16: 'BF16', f16: 'F16', f32: 'F32' };

interface ResolvedOptions {
  arch: FixtureArch;
  size: FixtureSize;
  dtype: FixtureDtype;
  seed: number;
  attentionBias: boolean;
  qkNorm: boolean;
}

function resolve(options: FixtureOptions): ResolvedOptions {
  const { arch } = options;
  if (!FIXTURE_ARCHS.includes(arch)) throw new Error(`unknown fixture arch "${String(arch)}"; expected one of ${FIXTURE_ARCHS.join(', ')}`);
  const size = options.size ?? 'tiny';
  if (!FIXTURE_SIZES.includes(size)) throw new Error(`unknown fixture size "${String(size)}"; expected one of ${FIXTURE_SIZES.join(', ')}`);
  const dtype = options.dtype ?? 'bf16';
  if (!FIXTURE_DTYPES.includes(dtype)) throw new Error(`unknown fixture dtype "${String(dtype)}"; expected one of ${FIXTURE_DTYPES.join(', ')}`);
  const seed = options.seed ?? 1;
  if (!Number.isSafeInteger(seed)) throw new Error(`fixture seed must be an integer, got ${seed}`);
  const qkNorm = options.qkNorm ?? false;
  if (qkNorm && arch !== 'glm4moe') throw new Error(`qkNorm is only supported for glm4moe, not ${arch}`);
  return { arch, size, dtype, seed, attentionBias: options.attentionBias ?? true, qkNorm };
}

// ------------------------------------------------------------------------------------------------
// config.json / generation_config.json

function stopIds(arch: FixtureArch): number[] {
  return ['<|endoftext|>', '<|user|>', '<|observation|>'].map((t) => fixtureSpecialId(arch, t));
}

/** The config.json of a fixture, with the real key names of its architecture. */
export function fixtureConfig(options: Omit<FixtureOptions, 'outDir'>): Record<string, unknown> {
  const o = resolve({ ...options, outDir: '' });
  const d = fixtureDims(o.arch, o.size);
  const eos = stopIds(o.arch);
  const pad = fixtureSpecialId(o.arch, '<|endoftext|>');
  const torchDtype = TORCH_DTYPE[o.dtype];
  switch (o.arch) {
    case 'chatglm':
      return {
        _name_or_path: 'THUDM/glm-4-9b-chat',
        add_bias_linear: false,
        add_qkv_bias: o.attentionBias,
        apply_query_key_layer_scaling: true,
        apply_residual_connection_post_layernorm: false,
        architectures: ['ChatGLMModel'],
        attention_dropout: 0.0,
        attention_softmax_in_fp32: true,
        attn_implementation: 'sdpa',
        auto_map: {
          AutoConfig: 'configuration_chatglm.ChatGLMConfig',
          AutoModel: 'modeling_chatglm.ChatGLMForConditionalGeneration',
          AutoModelForCausalLM: 'modeling_chatglm.ChatGLMForConditionalGeneration',
          AutoModelForSeq2SeqLM: 'modeling_chatglm.ChatGLMForConditionalGeneration',
          AutoModelForSequenceClassification: 'modeling_chatglm.ChatGLMForSequenceClassification',
        },
        bias_dropout_fusion: true,
        classifier_dropout: null,
        eos_token_id: eos,
        ffn_hidden_size: d.intermediate,
        fp32_residual_connection: false,
        hidden_dropout: 0.0,
        hidden_size: d.hidden,
        kv_channels: d.headDim,
        layernorm_epsilon: 1.5625e-7,
        model_type: 'chatglm',
        multi_query_attention: true,
        multi_query_group_num: d.kvHeads,
        num_attention_heads: d.heads,
        num_layers: d.layers,
        original_rope: true,
        pad_token_id: pad,
        padded_vocab_size: d.vocab,
        post_layer_norm: true,
        rmsnorm: true,
        rope_ratio: 500,
        seq_length: d.maxPositions,
        tie_word_embeddings: false,
        torch_dtype: torchDtype,
        transformers_version: '4.44.0',
        use_cache: true,
      };
    case 'glm':
    case 'glm4': {
      const glm4 = o.arch === 'glm4';
      const config: Record<string, unknown> = {
        architectures: [glm4 ? 'Glm4ForCausalLM' : 'GlmForCausalLM'],
        attention_bias: o.attentionBias,
        attention_dropout: 0.0,
        eos_token_id: eos,
        head_dim: d.headDim,
        hidden_act: 'silu',
        hidden_size: d.hidden,
        initializer_range: 0.02,
        intermediate_size: d.intermediate,
        max_position_embeddings: d.maxPositions,
        model_type: o.arch,
        num_attention_heads: d.heads,
        num_hidden_layers: d.layers,
        num_key_value_heads: d.kvHeads,
        pad_token_id: pad,
        // glm-4-9b-chat-hf has no partial_rotary_factor key (HF defaults it to 0.5).
        ...(glm4 ? { partial_rotary_factor: 0.5 } : {}),
        rms_norm_eps: glm4 ? 1e-5 : 1.5625e-7,
        rope_theta: glm4 ? 10000.0 : 5000000.0,
        tie_word_embeddings: false,
        torch_dtype: torchDtype,
        transformers_version: glm4 ? '4.51.3' : '4.46.0',
        use_cache: true,
        vocab_size: d.vocab,
      };
      return config;
    }
    case 'glm4moe':
      return {
        architectures: ['Glm4MoeForCausalLM'],
        attention_bias: o.attentionBias,
        attention_dropout: 0.0,
        eos_token_id: eos,
        first_k_dense_replace: d.firstDense,
        head_dim: d.headDim,
        hidden_act: 'silu',
        hidden_size: d.hidden,
        initializer_range: 0.02,
        intermediate_size: d.intermediate,
        max_position_embeddings: d.maxPositions,
        model_type: 'glm4_moe',
        moe_intermediate_size: d.moeIntermediate,
        n_group: 1,
        n_routed_experts: d.experts,
        n_shared_experts: d.sharedExperts,
        norm_topk_prob: true,
        num_attention_heads: d.heads,
        num_experts_per_tok: d.expertsPerToken,
        num_hidden_layers: d.layers,
        num_key_value_heads: d.kvHeads,
        num_nextn_predict_layers: 1,
        pad_token_id: pad,
        partial_rotary_factor: 0.5,
        rms_norm_eps: 1e-5,
        rope_scaling: null,
        rope_theta: 1000000,
        routed_scaling_factor: 2.5,
        tie_word_embeddings: false,
        topk_group: 1,
        torch_dtype: torchDtype,
        transformers_version: '4.54.0',
        use_cache: true,
        use_qk_norm: o.qkNorm,
        vocab_size: d.vocab,
      };
  }
}

function generationConfig(arch: FixtureArch): Record<string, unknown> {
  const eos = stopIds(arch);
  const pad = fixtureSpecialId(arch, '<|endoftext|>');
  switch (arch) {
    case 'chatglm':
      return { do_sample: true, eos_token_id: eos, max_length: 128000, pad_token_id: pad, temperature: 0.8, top_p: 0.8, transformers_version: '4.44.0' };
    case 'glm':
      return { _from_model_config: true, do_sample: true, eos_token_id: eos, max_length: 128000, pad_token_id: pad, temperature: 0.8, top_p: 0.8, transformers_version: '4.46.0' };
    case 'glm4':
      return { _from_model_config: true, eos_token_id: eos, pad_token_id: pad, transformers_version: '4.51.3' };
    case 'glm4moe':
      return { _from_model_config: true, do_sample: true, eos_token_id: eos, pad_token_id: pad, temperature: 0.6, top_p: 0.95, transformers_version: '4.54.0' };
  }
}

// ------------------------------------------------------------------------------------------------
// Tensor plan

type Init =
  | { kind: 'matrix'; fanIn: number }
  | { kind: 'uniform'; center: number; amplitude: number }
  | { kind: 'invFreq'; dim: number; base: number };

/** One tensor of a fixture: name, PyTorch shape, safetensors dtype and how its values are drawn. */
export interface FixtureTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly init: Init;
}

/** The tensors of a fixture in the order they are written (layer by layer, like HF). */
export function fixtureTensors(options: Omit<FixtureOptions, 'outDir'>): FixtureTensor[] {
  const o = resolve({ ...options, outDir: '' });
  const d = fixtureDims(o.arch, o.size);
  const dt = ST_DTYPE[o.dtype];
  const out: FixtureTensor[] = [];
  const H = d.hidden;
  const qDim = d.heads * d.headDim;
  const kvDim = d.kvHeads * d.headDim;
  const matrix = (name: string, rows: number, cols: number): void => {
    out.push({ name, shape: [rows, cols], dtype: dt, init: { kind: 'matrix', fanIn: cols } });
  };
  const norm = (name: string, n = H): void => {
    out.push({ name, shape: [n], dtype: dt, init: { kind: 'uniform', center: 1, amplitude: 0.1 } });
  };
  const bias = (name: string, n: number): void => {
    out.push({ name, shape: [n], dtype: dt, init: { kind: 'uniform', center: 0, amplitude: 0.1 } });
  };

  if (o.arch === 'chatglm') {
    const p = 'transformer.';
    matrix(`${p}embedding.word_embeddings.weight`, d.vocab, H);
    // The remote code's RotaryEmbedding(kv_channels / 2) buffer: inv_freq = 1 / 10000^(2i / dim), dim = kv_channels / 2.
    out.push({
      name: `${p}rotary_pos_emb.inv_freq`,
      shape: [d.headDim / 4],
      dtype: dt,
      init: { kind: 'invFreq', dim: d.headDim / 2, base: 10000 },
    });
    for (let l = 0; l < d.layers; l++) {
      const lp = `${p}encoder.layers.${l}.`;
      norm(`${lp}input_layernorm.weight`);
      matrix(`${lp}self_attention.query_key_value.weight`, qDim + 2 * kvDim, H);
      if (o.attentionBias) bias(`${lp}self_attention.query_key_value.bias`, qDim + 2 * kvDim);
      matrix(`${lp}self_attention.dense.weight`, H, qDim);
      norm(`${lp}post_attention_layernorm.weight`);
      matrix(`${lp}mlp.dense_h_to_4h.weight`, 2 * d.intermediate, H);
      matrix(`${lp}mlp.dense_4h_to_h.weight`, H, d.intermediate);
    }
    norm(`${p}encoder.final_layernorm.weight`);
    matrix(`${p}output_layer.weight`, d.vocab, H);
    return out;
  }

  const attention = (lp: string): void => {
    for (const [proj, rows] of [['q_proj', qDim], ['k_proj', kvDim], ['v_proj', kvDim]] as const) {
      matrix(`${lp}self_attn.${proj}.weight`, rows, H);
      if (o.attentionBias) bias(`${lp}self_attn.${proj}.bias`, rows);
    }
    matrix(`${lp}self_attn.o_proj.weight`, H, qDim);
    if (o.qkNorm) {
      norm(`${lp}self_attn.q_norm.weight`, d.headDim);
      norm(`${lp}self_attn.k_norm.weight`, d.headDim);
    }
  };
  const moeLayer = (lp: string): void => {
    const E = d.experts!;
    const Im = d.moeIntermediate!;
    const Is = Im * d.sharedExperts!;
    matrix(`${lp}mlp.gate.weight`, E, H);
    out.push({ name: `${lp}mlp.gate.e_score_correction_bias`, shape: [E], dtype: 'F32', init: { kind: 'uniform', center: 0, amplitude: 0.05 } });
    for (let e = 0; e < E; e++) {
      matrix(`${lp}mlp.experts.${e}.gate_proj.weight`, Im, H);
      matrix(`${lp}mlp.experts.${e}.up_proj.weight`, Im, H);
      matrix(`${lp}mlp.experts.${e}.down_proj.weight`, H, Im);
    }
    matrix(`${lp}mlp.shared_experts.gate_proj.weight`, Is, H);
    matrix(`${lp}mlp.shared_experts.up_proj.weight`, Is, H);
    matrix(`${lp}mlp.shared_experts.down_proj.weight`, H, Is);
  };

  matrix('model.embed_tokens.weight', d.vocab, H);
  const moe = o.arch === 'glm4moe';
  const layerCount = moe ? d.layers + 1 : d.layers; // glm4moe: + the MTP (NextN) layer at index num_hidden_layers
  for (let l = 0; l < layerCount; l++) {
    const lp = `model.layers.${l}.`;
    if (moe && l === d.layers) {
      matrix(`${lp}eh_proj.weight`, H, 2 * H);
      norm(`${lp}enorm.weight`);
      norm(`${lp}hnorm.weight`);
    }
    norm(`${lp}input_layernorm.weight`);
    attention(lp);
    if (o.arch === 'glm4') norm(`${lp}post_self_attn_layernorm.weight`);
    norm(`${lp}post_attention_layernorm.weight`);
    if (!moe) {
      matrix(`${lp}mlp.gate_up_proj.weight`, 2 * d.intermediate, H);
      matrix(`${lp}mlp.down_proj.weight`, H, d.intermediate);
    } else if (l < d.firstDense!) {
      matrix(`${lp}mlp.gate_proj.weight`, d.intermediate, H);
      matrix(`${lp}mlp.up_proj.weight`, d.intermediate, H);
      matrix(`${lp}mlp.down_proj.weight`, H, d.intermediate);
    } else {
      moeLayer(lp);
    }
    if (o.arch === 'glm4') norm(`${lp}post_mlp_layernorm.weight`);
    if (moe && l === d.layers) norm(`${lp}shared_head.norm.weight`);
  }
  norm('model.norm.weight');
  matrix('lm_head.weight', d.vocab, H);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Deterministic values

const DTYPE_BYTES: Readonly<Record<string, number>> = { F32: 4, F16: 2, BF16: 2 };
/** Elements generated per chunk (4 MB of float32). */
const CHUNK_ELEMENTS = 1 << 20;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Two independent 32-bit hashes of a string (FNV-1a and a multiplicative variant), finalised. */
function hashString(s: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return [fmix32(a), fmix32(b ^ s.length)];
}

/** The xoshiro128** state of one tensor's stream, from (seed, name) only. */
function streamState(seed: number, name: string): Uint32Array {
  const [a, b] = hashString(`${seed}\u0000${name}`);
  const state = new Uint32Array(4);
  let x = a;
  for (let i = 0; i < 4; i++) {
    // splitmix32 steps from a, mixed with b
    x = (x + 0x9e3779b9) >>> 0;
    state[i] = fmix32(x ^ Math.imul(b, i + 1));
  }
  if ((state[0]! | state[1]! | state[2]! | state[3]!) === 0) state[0] = 1;
  return state;
}

/**
 * Fills `out` with `out.length` uniform values in [-1, 1), continuing the xoshiro128** stream in `s`
 * (state updated in place).
 */
function fillUniform(s: Uint32Array, out: Float32Array, offset: number, count: number, scale: number, center: number): void {
  let s0 = s[0]!;
  let s1 = s[1]!;
  let s2 = s[2]!;
  let s3 = s[3]!;
  const k = 2 * scale * 2.3283064365386963e-10; // 2·scale / 2^32
  const c = center - scale;
  for (let i = 0; i < count; i++) {
    const m = Math.imul(s1, 5);
    const r = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    out[offset + i] = c + r * k;
  }
  s[0] = s0;
  s[1] = s1;
  s[2] = s2;
  s[3] = s3;
}

/** float32 → bfloat16 bits, round to nearest even (NaN stays a quiet NaN). */
function encodeBf16(src: Float32Array): Uint8Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    if ((b & 0x7fffffff) > 0x7f800000) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return new Uint8Array(out.buffer);
}

async function encode(values: Float32Array, dtype: string): Promise<Uint8Array> {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  switch (dtype) {
    case 'F32':
      return bytes;
    case 'BF16':
      return encodeBf16(values);
    case 'F16': {
      const out = new Uint8Array(values.length * 2);
      await native().encode(bytes, SOURCE_DTYPE_IDS.F32, out, WeightType.F16, values.length, 1);
      return out;
    }
    default:
      throw new Error(`fixture: cannot encode ${dtype}`);
  }
}

/** The float32 values of a fixture tensor, chunk by chunk (whole rows per chunk). */
export function* fixtureTensorValues(seed: number, tensor: FixtureTensor): Generator<Float32Array> {
  const total = elementCount(tensor.shape);
  const init = tensor.init;
  if (init.kind === 'invFreq') {
    const values = new Float32Array(total);
    for (let i = 0; i < total; i++) values[i] = 1 / Math.pow(init.base, (2 * i) / init.dim);
    yield values;
    return;
  }
  const state = streamState(seed, tensor.name);
  const cols = tensor.shape.length >= 2 ? tensor.shape[tensor.shape.length - 1]! : total;
  const rows = cols === 0 ? 0 : total / cols;
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_ELEMENTS / Math.max(1, cols)));
  const [rowKey] = hashString(`${seed}\u0001${tensor.name}`);
  for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, rows - r0);
    const values = new Float32Array(n * cols);
    for (let r = 0; r < n; r++) {
      if (init.kind === 'matrix') {
        // uniform in ±1/sqrt(fan_in), each row scaled by a factor in [0.5, 1) so rows differ in range
        const rowScale = 0.5 + 0.5 * (fmix32(rowKey ^ Math.imul(r0 + r + 1, 0x9e3779b9)) / 4294967296);
        fillUniform(state, values, r * cols, cols, rowScale / Math.sqrt(init.fanIn), 0);
      } else {
        fillUniform(state, values, r * cols, cols, init.amplitude, init.center);
      }
    }
    yield values;
  }
}

// ------------------------------------------------------------------------------------------------
// Writing

const TINY_SHARDS_MIN = 2;
const BENCH_SHARD_BYTES = 256 * 1024 * 1024;
const SHARD_FILE = /^model-\d{5}-of-\d{5}\.safetensors(\.partial)?$/;

function shardName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

function tensorBytes(t: FixtureTensor): number {
  return elementCount(t.shape) * DTYPE_BYTES[t.dtype]!;
}

/** Greedy split in write order; tiny/small aim at 2 shards, bench at shards of at most 256 MiB. */
function planShards(tensors: readonly FixtureTensor[], size: FixtureSize): FixtureTensor[][] {
  const total = tensors.reduce((s, t) => s + tensorBytes(t), 0);
  const limit = size === 'bench' ? BENCH_SHARD_BYTES : Math.ceil(total / TINY_SHARDS_MIN);
  const shards: FixtureTensor[][] = [];
  let current: FixtureTensor[] = [];
  let bytes = 0;
  for (const t of tensors) {
    const b = tensorBytes(t);
    if (current.length > 0 && bytes + b > limit) {
      shards.push(current);
      current = [];
      bytes = 0;
    }
    current.push(t);
    bytes += b;
  }
  if (current.length > 0) shards.push(current);
  if (shards.length < TINY_SHARDS_MIN && shards[0] && shards[0].length > 1) {
    const only = shards[0];
    return [only.slice(0, only.length - 1), only.slice(only.length - 1)];
  }
  return shards;
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Writes a fixture checkpoint into `options.outDir` (created if needed). */
export async function writeFixture(options: FixtureOptions): Promise<FixtureResult> {
  const o = resolve(options);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('fixture: a little-endian host is required');
  const { outDir } = options;
  await mkdir(outDir, { recursive: true });

  const tensors = fixtureTensors(o);
  const shards = planShards(tensors, o.size);
  const totalBytes = tensors.reduce((s, t) => s + tensorBytes(t), 0);
  const parameters = tensors.reduce((s, t) => s + elementCount(t.shape), 0);
  const files: string[] = [];

  // Remove files of an earlier fixture that this one would not overwrite.
  const names = shards.map((_, i) => shardName(i, shards.length));
  for (const entry of await readdir(outDir)) {
    const stale =
      (SHARD_FILE.test(entry) && !names.includes(entry)) ||
      entry === SINGLE_FILE ||
      (entry === 'tokenizer.model' && o.arch !== 'chatglm');
    if (stale) await unlink(join(outDir, entry));
  }

  let done = 0;
  const progress = options.onProgress;
  progress?.(0, totalBytes);
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < shards.length; i++) {
    const name = names[i]!;
    const toWrite: TensorToWrite[] = shards[i]!.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      data: async function* () {
        for (const values of fixtureTensorValues(o.seed, t)) {
          const bytes = await encode(values, t.dtype);
          yield bytes;
          // resumed only after the consumer has written the chunk
          done += bytes.length;
          progress?.(done, totalBytes);
        }
      },
    }));
    await writeSafetensors(join(outDir, name), toWrite, { format: 'pt' });
    for (const t of shards[i]!) weightMap[t.name] = name;
    files.push(name);
  }

  const sortedMap: Record<string, string> = {};
  for (const key of Object.keys(weightMap).sort()) sortedMap[key] = weightMap[key]!;
  const textFiles: [string, string][] = [
    [INDEX_FILE, json({ metadata: { total_size: totalBytes }, weight_map: sortedMap })],
    ['config.json', json(fixtureConfig(o))],
    ['generation_config.json', json(generationConfig(o.arch))],
    ['tokenizer.json', json(fixtureTokenizerJson(o.arch))],
    ['tokenizer_config.json', json(fixtureTokenizerConfig(o.arch))],
  ];
  if (o.arch === 'chatglm') textFiles.push(['tokenizer.model', fixtureTiktokenModel()]);
  for (const [name, text] of textFiles) {
    await writeFile(join(outDir, name), text);
    files.push(name);
  }
  files.sort();
  return { outDir, files, tensors: tensors.length, parameters, bytes: totalBytes };
}
