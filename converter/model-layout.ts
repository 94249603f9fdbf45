/**
 * The tensors of a .m file, in file order, derived from the header alone: the converter writes this
 * list, inspect and the engine read it. Names follow llama.cpp's GGUF names where one exists.
 * Matrices are row-major [rows = out_features, cols = in_features] in the file's weight type;
 * the embedding, norms, biases, router and correction bias are always F32 (as distributed-llama keeps them).
 */
import { WeightType, encodedBytes } from './dtypes.js';
import { ArchType, type ModelHeader } from './model-header.js';

export interface TensorSpec {
  readonly name: string;
  /** [rows, cols] for matrices, [n] for vectors. */
  readonly shape: readonly number[];
  readonly type: WeightType;
}

export interface PlacedTensor extends TensorSpec {
  readonly offset: number;
  readonly bytes: number;
}

/** True when `layer` of a GLM4_MOE model uses routed experts (the first layers stay dense). */
export function isMoeLayer(header: ModelHeader, layer: number): boolean {
  return header.archType === ArchType.GLM4_MOE && layer >= header.firstDenseLayers;
}

export function modelTensors(h: ModelHeader): TensorSpec[] {
  const out = [embeddingTensor(h)];
  for (let l = 0; l < h.nLayers; l++) out.push(...layerTensors(h, l));
  out.push(...outputTensors(h), ...mtpTensors(h));
  return out;
}

/**
 * The optional MTP (next-n) section after the output head: GLM-4.5's layer num_hidden_layers, whose
 * input is eh_proj([enorm(embedding of token t+1); hnorm(hidden state at t)]), then a MoE decoder layer
 * and shared_head's norm; the embedding and the output head are the main model's.
 */
function mtpTensors(h: ModelHeader): TensorSpec[] {
  if (h.mtpLayers === 0) return [];
  const b = `blk.${h.nLayers}.nextn.`;
  return [
    { name: `${b}enorm.weight`, shape: [h.dim], type: WeightType.F32 },
    { name: `${b}hnorm.weight`, shape: [h.dim], type: WeightType.F32 },
    { name: `${b}eh_proj.weight`, shape: [h.dim, 2 * h.dim], type: h.weightType },
    ...layerTensors(h, h.nLayers),
    { name: `${b}shared_head_norm.weight`, shape: [h.dim], type: WeightType.F32 },
  ];
}

const embeddingTensor = (h: ModelHeader): TensorSpec => ({ name: 'token_embd.weight', shape: [h.vocabSize, h.dim], type: WeightType.F32 });
const outputTensors = (h: ModelHeader): TensorSpec[] => [
  { name: 'output_norm.weight', shape: [h.dim], type: WeightType.F32 },
  { name: 'output.weight', shape: [h.vocabSize, h.dim], type: h.outputType ?? h.weightType },
];

/** The tensors of layer `l`, in file order. */
function layerTensors(h: ModelHeader, l: number): TensorSpec[] {
  const W = h.weightType;
  const F32 = WeightType.F32;
  const qDim = h.nHeads * h.headDim;
  const kvDim = h.nKvHeads * h.headDim;
  const sandwich = h.archType === ArchType.GLM4;
  const out: TensorSpec[] = [];
  const add = (name: string, shape: number[], type: WeightType) => out.push({ name, shape, type });
  const b = `blk.${l}.`;
  add(`${b}attn_norm.weight`, [h.dim], F32);
  add(`${b}attn_q.weight`, [qDim, h.dim], W);
  add(`${b}attn_k.weight`, [kvDim, h.dim], W);
  add(`${b}attn_v.weight`, [kvDim, h.dim], W);
  if (h.attentionBias) {
    add(`${b}attn_q.bias`, [qDim], F32);
    add(`${b}attn_k.bias`, [kvDim], F32);
    add(`${b}attn_v.bias`, [kvDim], F32);
  }
  if (h.qkNorm) {
    add(`${b}attn_q_norm.weight`, [h.headDim], F32);
    add(`${b}attn_k_norm.weight`, [h.headDim], F32);
  }
  add(`${b}attn_output.weight`, [h.dim, qDim], W);
  if (sandwich) add(`${b}post_attention_norm.weight`, [h.dim], F32);
  add(`${b}ffn_norm.weight`, [h.dim], F32);
  if (isMoeLayer(h, l)) {
    add(`${b}ffn_gate_inp.weight`, [h.nExperts, h.dim], F32);
    add(`${b}exp_probs_b.bias`, [h.nExperts], F32);
    for (let e = 0; e < h.nExperts; e++) {
      add(`${b}ffn_gate.${e}.weight`, [h.moeHiddenDim, h.dim], W);
      add(`${b}ffn_up.${e}.weight`, [h.moeHiddenDim, h.dim], W);
      add(`${b}ffn_down.${e}.weight`, [h.dim, h.moeHiddenDim], W);
    }
    if (h.nSharedExperts > 0) {
      const shared = h.moeHiddenDim * h.nSharedExperts;
      add(`${b}ffn_gate_shexp.weight`, [shared, h.dim], W);
      add(`${b}ffn_up_shexp.weight`, [shared, h.dim], W);
      add(`${b}ffn_down_shexp.weight`, [h.dim, shared], W);
    }
  } else {
    add(`${b}ffn_gate.weight`, [h.hiddenDim, h.dim], W);
    add(`${b}ffn_up.weight`, [h.hiddenDim, h.dim], W);
    add(`${b}ffn_down.weight`, [h.dim, h.hiddenDim], W);
  }
  if (sandwich) add(`${b}post_ffw_norm.weight`, [h.dim], F32);
  return out;
}

const tensorBytes = (specs: readonly TensorSpec[]): bigint => specs.reduce((n, t) => n + BigInt(encodedBytes(t.type, tensorElements(t))), 0n);

/**
 * The file size the header implies, without listing every layer: one dense and one MoE layer are
 * measured and multiplied by their counts, so a header claiming millions of layers costs nothing
 * before the size check refuses it. A bigint, since a hostile header's product may pass 2^53.
 */
export function expectedFileSize(h: ModelHeader, headerSize: number): bigint {
  const firstMoe = h.archType === ArchType.GLM4_MOE ? Math.min(h.firstDenseLayers, h.nLayers) : h.nLayers;
  let total = BigInt(headerSize) + tensorBytes([embeddingTensor(h), ...outputTensors(h), ...mtpTensors(h)]);
  if (firstMoe > 0) total += BigInt(firstMoe) * tensorBytes(layerTensors(h, 0));
  if (firstMoe < h.nLayers) total += BigInt(h.nLayers - firstMoe) * tensorBytes(layerTensors(h, firstMoe));
  return total;
}

export function tensorElements(t: TensorSpec): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

/** The file layout: each tensor's byte offset (tensors follow the header back to back, unpadded). */
export function placeTensors(specs: readonly TensorSpec[], headerSize: number): PlacedTensor[] {
  let offset = headerSize;
  return specs.map((t) => {
    const bytes = encodedBytes(t.type, tensorElements(t));
    const placed = { ...t, offset, bytes };
    offset += bytes;
    return placed;
  });
}
