/**
 * Every architecture's fixture converts to every weight type, reads back within that type's error bound,
 * and the split of fused checkpoint tensors is checked against the checkpoint directly (by Hugging Face
 * name, independently of the converter's own source mapping).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { readModelFile, readTensor } from '../converter/model-file.js';
import { compareWithSource } from '../converter/verify.js';
import { ArchType, RopeStyle, toF32, type ModelHeader } from '../converter/model-header.js';
import { Checkpoint, type ConvertibleDtype } from '../converter/safetensors.js';
import { SOURCE_DTYPE_BYTES, SOURCE_DTYPE_IDS, WEIGHT_TYPE_NAMES, WeightType, type WeightTypeName } from '../converter/dtypes.js';
import { FIXTURE_ARCHS, type FixtureArch } from '../converter/fixture.js';
import { native } from '../engine/native.js';
import { fixture, removeDir, tempDir, filesIn } from './helpers.js';

let dir: string;
const checkpoints = new Map<FixtureArch, string>();

beforeAll(async () => {
  dir = await tempDir();
  for (const arch of FIXTURE_ARCHS) checkpoints.set(arch, await fixture(dir, { arch }));
});
afterAll(async () => removeDir(dir));

/** Bound on |converted - source| for a tensor whose largest |value| is `absmax`. */
function bound(type: string, absmax: number): number {
  switch (type) {
    case 'f32':
      return 0; // bf16 widens exactly
    case 'f16':
      return absmax * 2 ** -11;
    case 'q80':
      return (absmax / 127) * 0.51 + absmax * 2 ** -11;
    case 'q40':
      return (absmax / 8) * 1.01; // one step at the clipped positive end, plus fp16 scale rounding
    default:
      throw new Error(type);
  }
}

describe.each(FIXTURE_ARCHS.map((a) => [a]))('%s fixture', (arch) => {
  it.each(WEIGHT_TYPE_NAMES.map((w) => [w]))('converts to %s and reads back within the bound', async (weights: WeightTypeName) => {
    const modelDir = checkpoints.get(arch)!;
    const outFile = join(dir, `${arch}.${weights}.m`);
    const result = await convert({ modelDir, outFile, weights, threads: 2 });
    const model = await readModelFile(outFile);
    expect(model.fileSize).toBe(result.bytes);
    expect(model.parameters).toBe(result.parameters);
    const errors = await compareWithSource(modelDir, outFile);
    expect(errors).toHaveLength(model.tensors.length);
    const tooLarge = errors.filter((e) => e.maxAbsError > bound(e.type, e.maxAbsSource));
    expect(tooLarge).toEqual([]);
    // Matrices carry the chosen type; embedding, norms, biases and router stay f32.
    for (const e of errors) {
      const isMatrix = /(attn_[qkv]|attn_output|ffn_(gate|up|down)[^_]*|_shexp|^output)\.weight$/.test(e.name) && !e.name.includes('norm');
      expect([e.name, e.type]).toEqual([e.name, isMatrix ? weights : 'f32']);
    }
  });
});

it('records each architecture\'s values exactly in the header', async () => {
  const headerOf = async (arch: FixtureArch) => {
    const out = join(dir, `${arch}.header.m`);
    await convert({ modelDir: checkpoints.get(arch)!, outFile: out, weights: 'q80' });
    return (await readModelFile(out)).header;
  };
  const chatglm = await headerOf('chatglm');
  const config = JSON.parse(await readFile(join(checkpoints.get('chatglm')!, 'config.json'), 'utf8'));
  expect(chatglm).toMatchObject({
    archType: ArchType.GLM,
    ropeStyle: RopeStyle.Interleaved,
    ropeTheta: toF32(10000 * config.rope_ratio),
    ropeDim: config.kv_channels / 2,
    normEpsilon: toF32(config.layernorm_epsilon),
    nKvHeads: config.multi_query_group_num,
    vocabSize: config.padded_vocab_size,
    nLayers: config.num_layers,
    maxSeqLen: config.seq_length,
  });
  const moe = await headerOf('glm4moe');
  const moeConfig = JSON.parse(await readFile(join(checkpoints.get('glm4moe')!, 'config.json'), 'utf8'));
  expect(moe).toMatchObject({
    archType: ArchType.GLM4_MOE,
    ropeStyle: RopeStyle.HalfSplit,
    ropeDim: moeConfig.head_dim * moeConfig.partial_rotary_factor,
    routedScalingFactor: moeConfig.routed_scaling_factor,
    nExperts: moeConfig.n_routed_experts,
    nActiveExperts: moeConfig.num_experts_per_tok,
    nSharedExperts: moeConfig.n_shared_experts,
    firstDenseLayers: moeConfig.first_k_dense_replace,
    moeHiddenDim: moeConfig.moe_intermediate_size,
    nLayers: moeConfig.num_hidden_layers, // the MTP layer is not converted
    normTopkProb: true,
  });
  expect(moe.nHeads * moe.headDim).not.toBe(moe.dim);
  expect((await headerOf('glm4')).archType).toBe(ArchType.GLM4);
});

/** Rows [first, first + count) of a checkpoint tensor as float32, read by its Hugging Face name. */
async function checkpointRows(modelDir: string, name: string, first: number, count: number): Promise<Float32Array> {
  const ckpt = await Checkpoint.open(modelDir);
  try {
    const info = ckpt.get(name)!;
    const dtype = info.dtype as ConvertibleDtype;
    const rowLength = info.shape.length > 1 ? info.shape[info.shape.length - 1]! : 1;
    const n = count * rowLength;
    const bytes = Buffer.alloc(n * SOURCE_DTYPE_BYTES[dtype]);
    await ckpt.read(info, first * rowLength * SOURCE_DTYPE_BYTES[dtype], bytes);
    const out = Buffer.alloc(n * 4);
    await native().encode(bytes, SOURCE_DTYPE_IDS[dtype], out, WeightType.F32, n, 1);
    return new Float32Array(out.buffer, out.byteOffset, n);
  } finally {
    await ckpt.close();
  }
}

type Header = ModelHeader;
it.each([
  ['chatglm', 'blk.1.attn_k.weight', 'transformer.encoder.layers.1.self_attention.query_key_value.weight', (h: Header) => h.nHeads * h.headDim, (h: Header) => h.nKvHeads * h.headDim],
  ['chatglm', 'blk.2.attn_v.bias', 'transformer.encoder.layers.2.self_attention.query_key_value.bias', (h: Header) => (h.nHeads + h.nKvHeads) * h.headDim, (h: Header) => h.nKvHeads * h.headDim],
  ['chatglm', 'blk.0.ffn_up.weight', 'transformer.encoder.layers.0.mlp.dense_h_to_4h.weight', (h: Header) => h.hiddenDim, (h: Header) => h.hiddenDim],
  ['glm', 'blk.2.ffn_gate.weight', 'model.layers.2.mlp.gate_up_proj.weight', () => 0, (h: Header) => h.hiddenDim],
  ['glm4', 'blk.1.ffn_up.weight', 'model.layers.1.mlp.gate_up_proj.weight', (h: Header) => h.hiddenDim, (h: Header) => h.hiddenDim],
  ['glm4', 'blk.1.post_attention_norm.weight', 'model.layers.1.post_self_attn_layernorm.weight', () => 0, (h: Header) => h.dim],
  ['glm4', 'blk.1.ffn_norm.weight', 'model.layers.1.post_attention_layernorm.weight', () => 0, (h: Header) => h.dim],
  ['glm4moe', 'blk.2.ffn_down.5.weight', 'model.layers.2.mlp.experts.5.down_proj.weight', () => 0, (h: Header) => h.dim],
  ['glm4moe', 'blk.1.exp_probs_b.bias', 'model.layers.1.mlp.gate.e_score_correction_bias', () => 0, (h: Header) => h.nExperts],
] as const)('%s: %s holds the right rows of %s', async (arch, tensor, source, first, count) => {
  const out = join(dir, `${arch}.rows.f32.m`);
  await convert({ modelDir: checkpoints.get(arch)!, outFile: out, weights: 'f32' });
  const model = await readModelFile(out);
  const converted = await readTensor(model, tensor);
  const expected = await checkpointRows(checkpoints.get(arch)!, source, first(model.header), count(model.header));
  expect(converted.length).toBe(expected.length);
  expect(Buffer.from(converted.buffer, converted.byteOffset, converted.byteLength).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength))).toBe(true);
});

it('is deterministic and leaves only the model and its tokenizer', async () => {
  const sub = await tempDir();
  try {
    const a = join(sub, 'a.m');
    const b = join(sub, 'b.m');
    await convert({ modelDir: checkpoints.get('glm4moe')!, outFile: a, weights: 'q40', threads: 1 });
    await convert({ modelDir: checkpoints.get('glm4moe')!, outFile: b, weights: 'q40', threads: 2, chunkBytes: 4096 });
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);
    expect(await filesIn(sub)).toEqual(['a.m', 'a.t', 'b.m', 'b.t']);
    expect((await readFile(join(sub, 'a.t'))).equals(await readFile(join(sub, 'b.t')))).toBe(true);
  } finally {
    await removeDir(sub);
  }
});

it('leaves no file behind when cancelled mid-way', async () => {
  const sub = await tempDir();
  try {
    const controller = new AbortController();
    const outFile = join(sub, 'cancelled.m');
    await expect(
      convert({
        modelDir: checkpoints.get('glm4moe')!,
        outFile,
        weights: 'q40',
        chunkBytes: 1024,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.tensorsDone >= 5) controller.abort();
        },
      }),
    ).rejects.toThrow(/cancelled/);
    expect(await filesIn(sub)).toEqual([]);
  } finally {
    await removeDir(sub);
  }
});
