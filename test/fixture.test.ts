import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FIXTURE_ARCHS,
  fixtureDims,
  writeFixture,
  type FixtureArch,
  type FixtureOptions,
  type FixtureResult,
  type FixtureSize,
} from '../converter/fixture.js';
import { byteToUnicodeTable, fixtureEncode, GLM4_SPECIAL_TOKENS, GLM45_SPECIAL_TOKENS } from '../converter/fixture-tokenizer.js';
import { Checkpoint, INDEX_FILE, elementCount, readShardHeader, type TensorInfo } from '../converter/safetensors.js';
import { native } from '../engine/native.js';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'glm-fixture-test-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let dirCount = 0;
async function write(options: Omit<FixtureOptions, 'outDir'>): Promise<FixtureResult> {
  const outDir = join(root, `${options.arch}-${options.size ?? 'tiny'}-${dirCount++}`);
  return writeFixture({ ...options, outDir });
}

async function readJson(dir: string, name: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(dir, name), 'utf8')) as Record<string, unknown>;
}

async function fileHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    out[name] = createHash('sha256').update(await readFile(join(dir, name))).digest('hex');
  }
  return out;
}

async function tensorBytes(ckpt: Checkpoint, info: TensorInfo): Promise<Buffer> {
  const buf = Buffer.alloc(info.byteLength);
  await ckpt.read(info, 0, buf);
  return buf;
}

async function tensorF32(ckpt: Checkpoint, name: string): Promise<Float32Array> {
  const info = ckpt.get(name);
  if (!info) throw new Error(`missing tensor ${name}`);
  const bytes = await tensorBytes(ckpt, info);
  const n = elementCount(info.shape);
  const out = new Float32Array(n);
  const u32 = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) {
    if (info.dtype === 'F32') out[i] = bytes.readFloatLE(4 * i);
    else if (info.dtype === 'BF16') u32[i] = bytes.readUInt16LE(2 * i) << 16;
    else throw new Error(`test decodes only F32/BF16, not ${info.dtype}`);
  }
  return out;
}

function shapeOf(ckpt: Checkpoint, name: string): readonly number[] | undefined {
  return ckpt.get(name)?.shape;
}

describe('determinism', () => {
  it('the same seed gives identical bytes in every file', async () => {
    const a = await write({ arch: 'glm4moe', seed: 7, qkNorm: true });
    const b = await write({ arch: 'glm4moe', seed: 7, qkNorm: true });
    expect(a.files).toEqual(b.files);
    const ha = await fileHashes(a.outDir);
    const hb = await fileHashes(b.outDir);
    expect(Object.keys(ha)).toEqual(a.files);
    expect(ha).toEqual(hb);
  });

  it('a different seed changes every random tensor but no file other than the shards', async () => {
    const a = await write({ arch: 'chatglm', seed: 7 });
    const b = await write({ arch: 'chatglm', seed: 8 });
    const ha = await fileHashes(a.outDir);
    const hb = await fileHashes(b.outDir);
    for (const name of a.files) {
      if (name.endsWith('.safetensors')) expect(ha[name]).not.toEqual(hb[name]);
      else expect(ha[name]).toEqual(hb[name]);
    }
    const ca = await Checkpoint.open(a.outDir);
    const cb = await Checkpoint.open(b.outDir);
    try {
      for (const info of ca.tensors.values()) {
        const same = (await tensorBytes(ca, info)).equals(await tensorBytes(cb, cb.get(info.name)!));
        // inv_freq is the fixed RoPE formula, the rest is random
        expect([info.name, same]).toEqual([info.name, info.name.endsWith('rotary_pos_emb.inv_freq')]);
      }
    } finally {
      await ca.close();
      await cb.close();
    }
  });

  it("a tensor's bytes do not depend on which other tensors exist or their order", async () => {
    const withBias = await write({ arch: 'glm4', seed: 3, attentionBias: true });
    const noBias = await write({ arch: 'glm4', seed: 3, attentionBias: false });
    const a = await Checkpoint.open(withBias.outDir);
    const b = await Checkpoint.open(noBias.outDir);
    try {
      expect(b.tensors.size).toBeLessThan(a.tensors.size);
      for (const info of b.tensors.values()) {
        expect((await tensorBytes(b, info)).equals(await tensorBytes(a, a.get(info.name)!))).toBe(true);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});

/** Expected shapes of a handful of tensors per arch, from the dims. */
function expectedShapes(arch: FixtureArch, size: FixtureSize): Record<string, number[]> {
  const d = fixtureDims(arch, size);
  const H = d.hidden;
  const q = d.heads * d.headDim;
  const kv = d.kvHeads * d.headDim;
  const last = d.layers - 1;
  switch (arch) {
    case 'chatglm':
      return {
        'transformer.embedding.word_embeddings.weight': [d.vocab, H],
        'transformer.rotary_pos_emb.inv_freq': [d.headDim / 4],
        [`transformer.encoder.layers.${last}.input_layernorm.weight`]: [H],
        [`transformer.encoder.layers.${last}.self_attention.query_key_value.weight`]: [q + 2 * kv, H],
        [`transformer.encoder.layers.${last}.self_attention.query_key_value.bias`]: [q + 2 * kv],
        [`transformer.encoder.layers.${last}.self_attention.dense.weight`]: [H, q],
        [`transformer.encoder.layers.${last}.post_attention_layernorm.weight`]: [H],
        [`transformer.encoder.layers.${last}.mlp.dense_h_to_4h.weight`]: [2 * d.intermediate, H],
        [`transformer.encoder.layers.${last}.mlp.dense_4h_to_h.weight`]: [H, d.intermediate],
        'transformer.encoder.final_layernorm.weight': [H],
        'transformer.output_layer.weight': [d.vocab, H],
      };
    case 'glm':
    case 'glm4': {
      const shapes: Record<string, number[]> = {
        'model.embed_tokens.weight': [d.vocab, H],
        [`model.layers.${last}.self_attn.q_proj.weight`]: [q, H],
        [`model.layers.${last}.self_attn.q_proj.bias`]: [q],
        [`model.layers.${last}.self_attn.k_proj.weight`]: [kv, H],
        [`model.layers.${last}.self_attn.v_proj.bias`]: [kv],
        [`model.layers.${last}.self_attn.o_proj.weight`]: [H, q],
        [`model.layers.${last}.input_layernorm.weight`]: [H],
        [`model.layers.${last}.post_attention_layernorm.weight`]: [H],
        [`model.layers.${last}.mlp.gate_up_proj.weight`]: [2 * d.intermediate, H],
        [`model.layers.${last}.mlp.down_proj.weight`]: [H, d.intermediate],
        'model.norm.weight': [H],
        'lm_head.weight': [d.vocab, H],
      };
      if (arch === 'glm4') {
        shapes[`model.layers.${last}.post_self_attn_layernorm.weight`] = [H];
        shapes[`model.layers.${last}.post_mlp_layernorm.weight`] = [H];
      }
      return shapes;
    }
    case 'glm4moe': {
      const E = d.experts!;
      const Im = d.moeIntermediate!;
      const L = d.layers; // the MTP layer
      return {
        'model.embed_tokens.weight': [d.vocab, H],
        'model.layers.0.self_attn.q_proj.weight': [q, H],
        'model.layers.0.self_attn.q_proj.bias': [q],
        'model.layers.0.self_attn.k_proj.weight': [kv, H],
        'model.layers.0.self_attn.o_proj.weight': [H, q],
        'model.layers.0.mlp.gate_proj.weight': [d.intermediate, H],
        'model.layers.0.mlp.up_proj.weight': [d.intermediate, H],
        'model.layers.0.mlp.down_proj.weight': [H, d.intermediate],
        [`model.layers.${last}.mlp.gate.weight`]: [E, H],
        [`model.layers.${last}.mlp.gate.e_score_correction_bias`]: [E],
        [`model.layers.${last}.mlp.experts.${E - 1}.gate_proj.weight`]: [Im, H],
        [`model.layers.${last}.mlp.experts.${E - 1}.up_proj.weight`]: [Im, H],
        [`model.layers.${last}.mlp.experts.${E - 1}.down_proj.weight`]: [H, Im],
        [`model.layers.${last}.mlp.shared_experts.gate_proj.weight`]: [Im * d.sharedExperts!, H],
        [`model.layers.${last}.mlp.shared_experts.down_proj.weight`]: [H, Im * d.sharedExperts!],
        [`model.layers.${L}.eh_proj.weight`]: [H, 2 * H],
        [`model.layers.${L}.enorm.weight`]: [H],
        [`model.layers.${L}.hnorm.weight`]: [H],
        [`model.layers.${L}.shared_head.norm.weight`]: [H],
        [`model.layers.${L}.self_attn.q_proj.weight`]: [q, H],
        [`model.layers.${L}.mlp.gate.weight`]: [E, H],
        [`model.layers.${L}.mlp.experts.0.down_proj.weight`]: [H, Im],
        'model.norm.weight': [H],
        'lm_head.weight': [d.vocab, H],
      };
    }
  }
}

/** Config values that must agree with the dims, under each arch's real key names. */
function checkConfig(arch: FixtureArch, size: FixtureSize, config: Record<string, unknown>): void {
  const d = fixtureDims(arch, size);
  expect(config.torch_dtype).toBe('bfloat16');
  expect(config.eos_token_id).toEqual([512, 519, 521]);
  expect(config.pad_token_id).toBe(512);
  expect(config.tie_word_embeddings).toBe(false);
  if (arch === 'chatglm') {
    expect(config).toMatchObject({
      architectures: ['ChatGLMModel'],
      model_type: 'chatglm',
      padded_vocab_size: d.vocab,
      hidden_size: d.hidden,
      ffn_hidden_size: d.intermediate,
      num_layers: d.layers,
      num_attention_heads: d.heads,
      multi_query_attention: true,
      multi_query_group_num: d.kvHeads,
      kv_channels: d.headDim,
      layernorm_epsilon: 1.5625e-7,
      seq_length: d.maxPositions,
      add_qkv_bias: true,
      add_bias_linear: false,
      rmsnorm: true,
      post_layer_norm: true,
      apply_residual_connection_post_layernorm: false,
      original_rope: true,
    });
    expect(config).not.toHaveProperty('vocab_size');
    expect(config).not.toHaveProperty('num_hidden_layers');
    expect(typeof config.rope_ratio).toBe('number');
    return;
  }
  expect(config).toMatchObject({
    vocab_size: d.vocab,
    hidden_size: d.hidden,
    intermediate_size: d.intermediate,
    num_hidden_layers: d.layers,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: d.headDim,
    max_position_embeddings: d.maxPositions,
    attention_bias: true,
  });
  if (arch === 'glm') {
    expect(config).toMatchObject({ architectures: ['GlmForCausalLM'], model_type: 'glm', rope_theta: 5000000, rms_norm_eps: 1.5625e-7 });
    expect(config).not.toHaveProperty('partial_rotary_factor');
  } else if (arch === 'glm4') {
    expect(config).toMatchObject({ architectures: ['Glm4ForCausalLM'], model_type: 'glm4', partial_rotary_factor: 0.5, rope_theta: 10000, rms_norm_eps: 1e-5 });
  } else {
    expect(config).toMatchObject({
      architectures: ['Glm4MoeForCausalLM'],
      model_type: 'glm4_moe',
      partial_rotary_factor: 0.5,
      rope_theta: 1000000,
      rms_norm_eps: 1e-5,
      n_routed_experts: d.experts,
      num_experts_per_tok: d.expertsPerToken,
      n_shared_experts: d.sharedExperts,
      moe_intermediate_size: d.moeIntermediate,
      first_k_dense_replace: 1,
      norm_topk_prob: true,
      routed_scaling_factor: 2.5,
      n_group: 1,
      topk_group: 1,
      use_qk_norm: false,
      num_nextn_predict_layers: 1,
    });
    expect(d.heads * d.headDim).not.toBe(d.hidden);
  }
}

describe.each(FIXTURE_ARCHS.flatMap((arch) => (['tiny', 'small'] as const).map((size) => [arch, size] as const)))(
  '%s %s checkpoint',
  (arch, size) => {
    let result: FixtureResult;
    let ckpt: Checkpoint;
    const progress: [number, number][] = [];

    beforeAll(async () => {
      result = await write({ arch, size, onProgress: (done, total) => progress.push([done, total]) });
      ckpt = await Checkpoint.open(result.outDir);
    });
    afterAll(async () => {
      await ckpt.close();
    });

    it('writes the expected files', () => {
      const expected = ['config.json', 'generation_config.json', INDEX_FILE, 'tokenizer.json', 'tokenizer_config.json'];
      if (arch === 'chatglm') expected.push('tokenizer.model');
      for (const name of expected) expect(result.files).toContain(name);
      const shards = result.files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
      expect(shards.length).toBeGreaterThanOrEqual(2);
      for (const s of shards) expect(s.endsWith(`-of-${String(shards.length).padStart(5, '0')}.safetensors`)).toBe(true);
      expect(result.files.length).toBe(expected.length + shards.length);
    });

    it('has an index that matches the shard headers', async () => {
      const index = (await readJson(result.outDir, INDEX_FILE)) as { metadata: { total_size: number }; weight_map: Record<string, string> };
      expect(Object.keys(index.weight_map).sort()).toEqual([...ckpt.tensors.keys()].sort());
      for (const [name, shard] of Object.entries(index.weight_map)) {
        const header = await readShardHeader(join(result.outDir, shard));
        expect(header.some((t) => t.name === name)).toBe(true);
      }
      expect(index.metadata.total_size).toBe(ckpt.dataBytes);
      expect(result.bytes).toBe(ckpt.dataBytes);
      expect(result.tensors).toBe(ckpt.tensors.size);
      let params = 0;
      for (const t of ckpt.tensors.values()) params += elementCount(t.shape);
      expect(result.parameters).toBe(params);
      expect(progress[progress.length - 1]).toEqual([result.bytes, result.bytes]);
    });

    it('has a config with the real key names and matching values', async () => {
      checkConfig(arch, size, await readJson(result.outDir, 'config.json'));
      const gen = await readJson(result.outDir, 'generation_config.json');
      expect(gen.eos_token_id).toEqual([512, 519, 521]);
    });

    it('has tensor shapes that match the config', () => {
      for (const [name, shape] of Object.entries(expectedShapes(arch, size))) {
        expect([name, shapeOf(ckpt, name)]).toEqual([name, shape]);
      }
      for (const t of ckpt.tensors.values()) {
        const f32 = t.name.endsWith('e_score_correction_bias');
        expect([t.name, t.dtype]).toEqual([t.name, f32 ? 'F32' : 'BF16']);
        // every matrix row is a whole number of 32-element blocks
        if (t.shape.length === 2) expect([t.name, t.shape[1]! % 32]).toEqual([t.name, 0]);
      }
    });

    it('has the right number of tensors', () => {
      const d = fixtureDims(arch, size);
      const n = ckpt.tensors.size;
      if (arch === 'chatglm') expect(n).toBe(4 + 7 * d.layers);
      else if (arch === 'glm') expect(n).toBe(3 + 11 * d.layers);
      else if (arch === 'glm4') expect(n).toBe(3 + 13 * d.layers);
      else {
        const attn = 9; // input norm, q/k/v weight+bias, o, post_attention norm
        const moe = 2 + 3 * d.experts! + 3;
        const mtp = 4;
        expect(n).toBe(3 + (attn + 3) + (d.layers - 1) * (attn + moe) + (attn + moe + mtp));
        expect([...ckpt.tensors.keys()].some((k) => k.startsWith(`model.layers.${d.layers + 1}.`))).toBe(false);
      }
    });
  },
);

describe('options', () => {
  it.each(FIXTURE_ARCHS)('attentionBias=false drops every attention bias (%s)', async (arch) => {
    const r = await write({ arch, attentionBias: false });
    const ckpt = await Checkpoint.open(r.outDir);
    try {
      const biases = [...ckpt.tensors.keys()].filter((k) => k.endsWith('.bias'));
      expect(biases.every((k) => k.endsWith('mlp.gate.e_score_correction_bias'))).toBe(true);
      if (arch !== 'glm4moe') expect(biases).toEqual([]);
      const config = await readJson(r.outDir, 'config.json');
      expect(config[arch === 'chatglm' ? 'add_qkv_bias' : 'attention_bias']).toBe(false);
    } finally {
      await ckpt.close();
    }
  });

  it('qkNorm adds per-head q_norm / k_norm on every glm4moe layer, the MTP layer included', async () => {
    const r = await write({ arch: 'glm4moe', qkNorm: true });
    const d = fixtureDims('glm4moe', 'tiny');
    const ckpt = await Checkpoint.open(r.outDir);
    try {
      for (let l = 0; l <= d.layers; l++) {
        expect(shapeOf(ckpt, `model.layers.${l}.self_attn.q_norm.weight`)).toEqual([d.headDim]);
        expect(shapeOf(ckpt, `model.layers.${l}.self_attn.k_norm.weight`)).toEqual([d.headDim]);
      }
      expect((await readJson(r.outDir, 'config.json')).use_qk_norm).toBe(true);
    } finally {
      await ckpt.close();
    }
  });

  it('qkNorm is refused for the dense archs', async () => {
    await expect(write({ arch: 'glm4', qkNorm: true })).rejects.toThrow(/glm4moe/);
  });

  it('rejects a non-integer seed', async () => {
    await expect(write({ arch: 'glm', seed: 1.5 })).rejects.toThrow(/integer/);
  });

  it('removes shards of an earlier, larger fixture in the same folder', async () => {
    const outDir = join(root, 'reuse');
    await writeFixture({ arch: 'chatglm', size: 'small', outDir });
    await writeFixture({ arch: 'glm4', outDir });
    const files = (await readdir(outDir)).sort();
    const r = await writeFixture({ arch: 'glm4', outDir });
    expect(files).toEqual(r.files);
    expect(existsSync(join(outDir, 'tokenizer.model'))).toBe(false);
    await (await Checkpoint.open(outDir)).close();
  });
});

describe('values and dtypes', () => {
  let f32: Checkpoint;
  let bf16: Checkpoint;
  let f16: Checkpoint;
  let chatglm: Checkpoint;
  const dirs: Record<string, string> = {};

  beforeAll(async () => {
    for (const dtype of ['f32', 'bf16', 'f16'] as const) {
      dirs[dtype] = (await write({ arch: 'glm4moe', dtype, seed: 11 })).outDir;
    }
    f32 = await Checkpoint.open(dirs.f32!);
    bf16 = await Checkpoint.open(dirs.bf16!);
    f16 = await Checkpoint.open(dirs.f16!);
    chatglm = await Checkpoint.open((await write({ arch: 'chatglm', dtype: 'f32' })).outDir);
  });
  afterAll(async () => {
    await Promise.all([f32, bf16, f16, chatglm].map((c) => c.close()));
  });

  it('writes torch_dtype and the tensor dtypes, keeping e_score_correction_bias in F32', async () => {
    for (const [dtype, ckpt, st, torch] of [
      ['f32', f32, 'F32', 'float32'],
      ['bf16', bf16, 'BF16', 'bfloat16'],
      ['f16', f16, 'F16', 'float16'],
    ] as const) {
      expect((await readJson(dirs[dtype]!, 'config.json')).torch_dtype).toBe(torch);
      for (const t of ckpt.tensors.values()) {
        expect([t.name, t.dtype]).toEqual([t.name, t.name.endsWith('e_score_correction_bias') ? 'F32' : st]);
      }
      const bias = 'model.layers.1.mlp.gate.e_score_correction_bias';
      expect((await tensorBytes(ckpt, ckpt.get(bias)!)).equals(await tensorBytes(f32, f32.get(bias)!))).toBe(true);
    }
  });

  it('rounds to bf16 and f16 to nearest even from the same float32 values', async () => {
    const names = ['model.layers.1.self_attn.q_proj.weight', 'model.layers.0.input_layernorm.weight', 'model.layers.2.self_attn.k_proj.bias'];
    for (const name of names) {
      const ref = await tensorF32(f32, name);
      const refBits = new Uint32Array(ref.buffer);
      const b = await tensorBytes(bf16, bf16.get(name)!);
      const h = await tensorBytes(f16, f16.get(name)!);
      for (let i = 0; i < ref.length; i++) {
        const x = refBits[i]!;
        const expectedBf16 = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
        if (b.readUInt16LE(2 * i) !== expectedBf16) throw new Error(`${name}[${i}]: bf16 ${b.readUInt16LE(2 * i)} != ${expectedBf16}`);
        const expectedF16 = native().f32ToF16(ref[i]!);
        if (h.readUInt16LE(2 * i) !== expectedF16) throw new Error(`${name}[${i}]: f16 ${h.readUInt16LE(2 * i)} != ${expectedF16}`);
      }
    }
  });

  it('draws values in the documented ranges', async () => {
    const d = fixtureDims('glm4moe', 'tiny');
    const within = (a: Float32Array, lo: number, hi: number): boolean => a.every((v) => v >= lo && v <= hi);
    const q = await tensorF32(f32, 'model.layers.1.self_attn.q_proj.weight');
    const bound = 1 / Math.sqrt(d.hidden);
    expect(within(q, -bound, bound)).toBe(true);
    const rowMax: number[] = [];
    for (let r = 0; r < q.length / d.hidden; r++) {
      rowMax.push(Math.max(...q.subarray(r * d.hidden, (r + 1) * d.hidden).map(Math.abs)));
    }
    expect(Math.max(...rowMax) / Math.min(...rowMax)).toBeGreaterThan(1.3); // rows have different scales
    const down = await tensorF32(f32, 'model.layers.1.mlp.experts.3.down_proj.weight');
    expect(within(down, -1 / Math.sqrt(d.moeIntermediate!), 1 / Math.sqrt(d.moeIntermediate!))).toBe(true);
    expect(within(await tensorF32(f32, 'model.norm.weight'), 0.9, 1.1)).toBe(true);
    const bias = await tensorF32(f32, 'model.layers.0.self_attn.q_proj.bias');
    expect(within(bias, -0.1, 0.1)).toBe(true);
    expect(bias.some((v) => v < 0) && bias.some((v) => v > 0)).toBe(true);
    expect(within(await tensorF32(f32, 'model.layers.2.mlp.gate.e_score_correction_bias'), -0.05, 0.05)).toBe(true);
    const mean = q.reduce((s, v) => s + v, 0) / q.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
  });

  it('stores ChatGLM inv_freq with the real formula', async () => {
    const d = fixtureDims('chatglm', 'tiny');
    const inv = await tensorF32(chatglm, 'transformer.rotary_pos_emb.inv_freq');
    const dim = d.headDim / 2;
    expect(inv.length).toBe(dim / 2);
    inv.forEach((v, i) => expect(v).toBeCloseTo(1 / Math.pow(10000, (2 * i) / dim), 6));
  });
});

describe.each(['chatglm', 'glm4moe'] as const)('%s tokenizer', (arch) => {
  let dir: string;
  let tokenizer: {
    added_tokens: { id: number; content: string; special: boolean }[];
    pre_tokenizer: { type: string; pretokenizers: Record<string, unknown>[] };
    decoder: { type: string };
    model: { type: string; vocab: Record<string, number>; merges: [string, string][] };
  };
  const specials = arch === 'glm4moe' ? GLM45_SPECIAL_TOKENS : GLM4_SPECIAL_TOKENS;

  beforeAll(async () => {
    dir = (await write({ arch })).outDir;
    tokenizer = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')) as typeof tokenizer;
  });

  it('has 512 regular tokens: the 256 bytes then the merges', () => {
    const { vocab } = tokenizer.model;
    expect(tokenizer.model.type).toBe('BPE');
    const ids = Object.values(vocab).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: 512 }, (_, i) => i));
    const table = byteToUnicodeTable();
    for (let b = 0; b < 256; b++) expect(vocab[table[b]!]).toBe(b);
    expect(vocab['Ġ']).toBe(32);
  });

  it('has merges whose parts and results are in the vocab, in id order', () => {
    const { vocab, merges } = tokenizer.model;
    expect(merges.length).toBe(256);
    merges.forEach(([a, b], r) => {
      expect(vocab[a]).toBeDefined();
      expect(vocab[b]).toBeDefined();
      expect(vocab[a + b]).toBe(256 + r);
      expect(Math.max(vocab[a]!, vocab[b]!)).toBeLessThan(256 + r);
    });
  });

  it(`has the ${specials.length} GLM special tokens from id 512`, async () => {
    expect(tokenizer.added_tokens.length).toBe(arch === 'glm4moe' ? 36 : 14);
    tokenizer.added_tokens.forEach((t, i) => {
      expect(t).toMatchObject({ id: 512 + i, content: specials[i], special: true });
    });
    const config = await readJson(dir, 'tokenizer_config.json');
    expect(config).toMatchObject({ tokenizer_class: 'PreTrainedTokenizerFast', eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' });
    const decoder = config.added_tokens_decoder as Record<string, { content: string }>;
    expect(Object.keys(decoder).length).toBe(specials.length);
    expect(decoder['519']!.content).toBe('<|user|>');
    expect(decoder['521']!.content).toBe('<|observation|>');
    const template = config.chat_template as string;
    expect(template.startsWith('[gMASK]<sop>')).toBe(true);
    expect(template).toContain('<|assistant|>');
    if (arch === 'glm4moe') expect(template).toContain('<think>');
  });

  it('uses the GLM split regex and byte-level pre-tokenizer / decoder', () => {
    const [split, byteLevel] = tokenizer.pre_tokenizer.pretokenizers;
    expect(tokenizer.pre_tokenizer.type).toBe('Sequence');
    expect(split).toMatchObject({ type: 'Split', behavior: 'Isolated' });
    expect((split!.pattern as { Regex: string }).Regex).toContain("(?i:'s|'t|'re|'ve|'m|'ll|'d)");
    expect(byteLevel).toMatchObject({ type: 'ByteLevel', add_prefix_space: false, use_regex: false });
    expect(tokenizer.decoder.type).toBe('ByteLevel');
  });

  it('encodes text into regular ids that spell the text back', () => {
    const text = "The river's café: 2024 tokens!\n";
    const ids = fixtureEncode(text);
    expect(ids.length).toBeLessThan(Buffer.byteLength(text));
    const byId = new Map(Object.entries(tokenizer.model.vocab).map(([s, id]) => [id, s]));
    const table = byteToUnicodeTable();
    const unicodeToByte = new Map(table.map((c, b) => [c, b]));
    const bytes = ids.flatMap((id) => [...byId.get(id)!].map((c) => unicodeToByte.get(c)!));
    expect(Buffer.from(bytes).toString('utf8')).toBe(text);
  });

  if (arch === 'chatglm') {
    it('writes tokenizer.model with the same tokens, base64 and rank', async () => {
      const lines = (await readFile(join(dir, 'tokenizer.model'), 'utf8')).trimEnd().split('\n');
      expect(lines.length).toBe(512);
      const table = byteToUnicodeTable();
      const byId = new Map(Object.entries(tokenizer.model.vocab).map(([s, id]) => [id, s]));
      lines.forEach((line, rank) => {
        const [b64, r] = line.split(' ');
        expect(Number(r)).toBe(rank);
        const spelled = [...Buffer.from(b64!, 'base64')].map((b) => table[b]).join('');
        expect(spelled).toBe(byId.get(rank));
      });
    });
  }
});
