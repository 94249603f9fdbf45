/**
 * `npm run model-sizes`: what each GLM model needs, computed from the .m layout (the same code that
 * writes the files) and the published config values: the .m file per weight type, the bf16 checkpoint,
 * the KV cache, and the weights each node holds when a model is split across nodes.
 */
import { encodedBytes, WeightType } from '../converter/dtypes.js';
import { ArchType, HiddenAct, RopeStyle, type ModelHeader } from '../converter/model-header.js';
import { modelTensors, tensorElements } from '../converter/model-layout.js';

type Shape = Pick<ModelHeader, 'archType' | 'dim' | 'hiddenDim' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'attentionBias' | 'qkNorm'> &
  Partial<Pick<ModelHeader, 'nExperts' | 'nActiveExperts' | 'moeHiddenDim' | 'nSharedExperts' | 'firstDenseLayers'>>;

// config.json values of the published checkpoints (head_dim 128, vocabulary 151,552 for all).
const MODELS: [string, Shape][] = [
  ['glm-4-9b-chat', { archType: ArchType.GLM, dim: 4096, hiddenDim: 13696, nLayers: 40, nHeads: 32, nKvHeads: 2, attentionBias: true, qkNorm: false }],
  ['GLM-4-9B-0414', { archType: ArchType.GLM4, dim: 4096, hiddenDim: 13696, nLayers: 40, nHeads: 32, nKvHeads: 2, attentionBias: true, qkNorm: false }],
  ['GLM-4-32B-0414', { archType: ArchType.GLM4, dim: 6144, hiddenDim: 23040, nLayers: 61, nHeads: 48, nKvHeads: 2, attentionBias: false, qkNorm: false }],
  ['GLM-4.5-Air, INTELLECT-3', { archType: ArchType.GLM4_MOE, dim: 4096, hiddenDim: 10944, nLayers: 46, nHeads: 96, nKvHeads: 8, attentionBias: true, qkNorm: false, nExperts: 128, nActiveExperts: 8, moeHiddenDim: 1408, nSharedExperts: 1, firstDenseLayers: 1 }],
  ['GLM-4.5', { archType: ArchType.GLM4_MOE, dim: 5120, hiddenDim: 12288, nLayers: 92, nHeads: 96, nKvHeads: 8, attentionBias: true, qkNorm: true, nExperts: 160, nActiveExperts: 8, moeHiddenDim: 1536, nSharedExperts: 1, firstDenseLayers: 3 }],
];

function header(shape: Shape, weightType: WeightType): ModelHeader {
  return {
    version: 0, weightType, hiddenAct: HiddenAct.Silu, headDim: 128, vocabSize: 151552, maxSeqLen: 131072, ropeStyle: RopeStyle.HalfSplit,
    ropeTheta: 10000, ropeDim: 64, normEpsilon: 1e-5, nExperts: 0, nActiveExperts: 0, moeHiddenDim: 0, nSharedExperts: 0, firstDenseLayers: 0,
    routedScalingFactor: 1, normTopkProb: true, nExpertGroups: 1, topkGroups: 1, mtpLayers: 0, ...shape,
  };
}

const GB = 1e9;
const gb = (bytes: number) => (bytes / GB).toFixed(1);

function bytesOf(h: ModelHeader): { total: number; embedding: number; params: number; active: number } {
  let total = 0;
  let embedding = 0;
  let params = 0;
  let active = 0;
  for (const t of modelTensors(h)) {
    const n = tensorElements(t);
    const bytes = encodedBytes(t.type, n);
    total += bytes;
    params += n;
    if (t.name === 'token_embd.weight') embedding = bytes;
    // Per token a MoE layer reads only its active experts' rows (and one embedding row).
    const expert = /\.ffn_(gate|up|down)\.(\d+)\.weight$/.exec(t.name);
    if (t.name !== 'token_embd.weight' && (!expert || Number(expert[2]) < h.nActiveExperts)) active += n;
  }
  return { total, embedding, params, active };
}

const lines = [
  '| model | parameters | active / token | bf16 checkpoint | .m q40 | .m q80 | .m f16 | KV cache, 4096 tokens (f32 / f16) | q40 per node of 2 / 4 / 8 |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
];
for (const [name, shape] of MODELS) {
  const q40 = bytesOf(header(shape, WeightType.Q40));
  const q80 = bytesOf(header(shape, WeightType.Q80));
  const f16 = bytesOf(header(shape, WeightType.F16));
  const kv = (bytesPerValue: number) => shape.nLayers * 4096 * shape.nKvHeads * 128 * 2 * bytesPerValue;
  // The root keeps the embedding; every other tensor is split evenly.
  const perNode = [2, 4, 8].map((n) => gb(q40.embedding + (q40.total - q40.embedding) / n)).join(' / ');
  lines.push(
    `| ${name} | ${(q40.params / 1e9).toFixed(2)}B | ${(q40.active / 1e9).toFixed(2)}B | ${gb(2 * q40.params)} GB | ${gb(q40.total)} GB | ${gb(q80.total)} GB | ${gb(f16.total)} GB | ${gb(kv(4))} / ${gb(kv(2))} GB | ${perNode} GB |`,
  );
}
console.log(lines.join('\n'));
console.log('\nGB = 10^9 bytes. The embedding (151,552 x dim) stays f32 in every weight type, as distributed-llama keeps it; the bf16 checkpoint excludes the MTP layer, which is not converted.');
