/** Config parsing per architecture and the checkpoint-layout variants each must accept. */
import { copyFile, readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigReader } from '../converter/config.js';
import { architectureOf } from '../converter/architectures/index.js';
import { convert } from '../converter/convert.js';
import { readModelFile } from '../converter/model-file.js';
import { Checkpoint, writeSafetensors, type TensorToWrite } from '../converter/safetensors.js';
import { compareWithSource } from '../converter/verify.js';
import { fixture, removeDir, tempDir } from './helpers.js';

const reader = (json: Record<string, unknown>) => new ConfigReader('/m/config.json', json);

const glm4Config = {
  architectures: ['Glm4ForCausalLM'],
  hidden_size: 4096,
  intermediate_size: 13696,
  num_hidden_layers: 40,
  num_attention_heads: 32,
  num_key_value_heads: 2,
  head_dim: 128,
  vocab_size: 151552,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  partial_rotary_factor: 0.5,
  attention_bias: true,
};

describe('config parsing', () => {
  const parse = (json: Record<string, unknown>) => {
    const config = reader(json);
    return architectureOf(config).parseConfig(config);
  };

  it('reads rope fields at top level or under rope_parameters, defaulting the factor to 0.5', () => {
    expect(parse(glm4Config)).toMatchObject({ ropeTheta: 10000, ropeDim: 64 });
    const { rope_theta: _t, partial_rotary_factor: _p, ...bare } = glm4Config;
    expect(parse({ ...bare, rope_parameters: { rope_type: 'default', rope_theta: 5e6, partial_rotary_factor: 0.25 } })).toMatchObject({ ropeTheta: 5e6, ropeDim: 32 });
    expect(parse({ ...bare, rope_theta: 5e6 })).toMatchObject({ ropeDim: 64 }); // missing factor: 0.5
    expect(() => parse({ ...glm4Config, rope_parameters: { rope_theta: 1e6 } })).toThrow(/config\.json: field rope_theta: 10000 disagrees with rope_parameters\.rope_theta = 1000000/);
    expect(() => parse({ ...bare })).toThrow(/field rope_theta: is missing/);
    expect(() => parse({ ...glm4Config, partial_rotary_factor: 0.3 })).toThrow(/field partial_rotary_factor: 0\.3 x head_dim 128 = 38\.4 is not an even number/);
  });

  it('names wrongly typed and out-of-range fields', () => {
    expect(() => parse({ ...glm4Config, hidden_size: '4096' })).toThrow(/field hidden_size: expected a positive integer, got "4096"/);
    expect(() => parse({ ...glm4Config, attention_bias: 1 })).toThrow(/field attention_bias: expected true or false, got 1/);
    expect(() => parse({ ...glm4Config, hidden_act: 'gelu' })).toThrow(/field hidden_act: "gelu" is not supported/);
    expect(() => parse({ ...glm4Config, architectures: 'Glm4ForCausalLM' })).toThrow(/field architectures: expected a list of class names/);
  });

  it('reads ChatGLM remote-code keys, with the remote code\'s rope base rule', () => {
    const p = parse({
      architectures: ['ChatGLMModel'],
      padded_vocab_size: 151552,
      hidden_size: 4096,
      ffn_hidden_size: 13696,
      num_layers: 40,
      num_attention_heads: 32,
      multi_query_attention: true,
      multi_query_group_num: 2,
      kv_channels: 128,
      rope_ratio: 500,
      layernorm_epsilon: 1.5625e-7,
      seq_length: 131072,
      add_qkv_bias: true,
      add_bias_linear: false,
      rmsnorm: true,
    });
    expect(p).toMatchObject({ ropeTheta: 5e6, ropeDim: 64, normEpsilon: 1.5625e-7, nKvHeads: 2, vocabSize: 151552, nLayers: 40, maxSeqLen: 131072, attentionBias: true });
    expect(() => parse({ architectures: ['ChatGLMModel'], rmsnorm: false })).toThrow(/field rmsnorm: must be true/);
  });

  it('checks the MoE fields of GLM-4.5', () => {
    const moe = {
      ...glm4Config,
      architectures: ['Glm4MoeForCausalLM'],
      n_routed_experts: 128,
      num_experts_per_tok: 8,
      n_shared_experts: 1,
      moe_intermediate_size: 1408,
      first_k_dense_replace: 1,
      routed_scaling_factor: 2.5,
      n_group: 1,
      topk_group: 1,
    };
    expect(parse(moe)).toMatchObject({ nExperts: 128, routedScalingFactor: 2.5, normTopkProb: true, qkNorm: false, ropeStyle: 1 });
    expect(() => parse({ ...moe, num_experts_per_tok: 200 })).toThrow(/field num_experts_per_tok: 200 exceeds n_routed_experts = 128/);
    expect(() => parse({ ...moe, n_group: 3 })).toThrow(/field n_group: 3 does not divide n_routed_experts = 128/);
    expect(() => parse({ ...moe, first_k_dense_replace: 41 })).toThrow(/field first_k_dense_replace: 41 exceeds num_hidden_layers = 40/);
    const { n_shared_experts: _s, ...noShared } = moe;
    expect(() => parse(noShared)).toThrow(/field n_shared_experts: is missing/);
  });
});

describe('checkpoint variants', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir();
  });
  afterAll(async () => removeDir(dir));

  it('converts transformers v5 stacked experts to the same bytes as per-expert tensors', async () => {
    const original = await fixture(dir, { arch: 'glm4moe' });
    const config = JSON.parse(await readFile(join(original, 'config.json'), 'utf8'));
    const stacked = join(dir, 'stacked');
    await mkdir(stacked);
    await copyFile(join(original, 'config.json'), join(stacked, 'config.json'));
    const ckpt = await Checkpoint.open(original);
    const read = async (name: string) => {
      const info = ckpt.get(name)!;
      const bytes = Buffer.alloc(info.byteLength);
      await ckpt.read(info, 0, bytes);
      return { info, bytes };
    };
    const tensors: TensorToWrite[] = [];
    const experts = /^model\.layers\.(\d+)\.mlp\.experts\.\d+\./;
    for (const name of ckpt.tensors.keys()) {
      if (experts.test(name)) continue;
      const { info, bytes } = await read(name);
      tensors.push({ name, dtype: info.dtype, shape: info.shape, data: () => [bytes] });
    }
    const E = config.n_routed_experts;
    const im = config.moe_intermediate_size;
    const h = config.hidden_size;
    for (let layer = config.first_k_dense_replace; layer <= config.num_hidden_layers; layer++) {
      const gateUp: Buffer[] = [];
      const down: Buffer[] = [];
      for (let e = 0; e < E; e++) {
        const p = `model.layers.${layer}.mlp.experts.${e}.`;
        gateUp.push((await read(`${p}gate_proj.weight`)).bytes, (await read(`${p}up_proj.weight`)).bytes);
        down.push((await read(`${p}down_proj.weight`)).bytes);
      }
      tensors.push({ name: `model.layers.${layer}.mlp.experts.gate_up_proj`, dtype: 'BF16', shape: [E, 2 * im, h], data: () => gateUp });
      tensors.push({ name: `model.layers.${layer}.mlp.experts.down_proj`, dtype: 'BF16', shape: [E, h, im], data: () => down });
    }
    await ckpt.close();
    await writeSafetensors(join(stacked, 'model.safetensors'), tensors);

    await convert({ modelDir: original, outFile: join(dir, 'a.m'), weights: 'q40' });
    await convert({ modelDir: stacked, outFile: join(dir, 'b.m'), weights: 'q40' });
    expect((await readFile(join(dir, 'a.m'))).equals(await readFile(join(dir, 'b.m')))).toBe(true);
  });

  it.each([
    ['glm4moe with q/k norms', { arch: 'glm4moe', qkNorm: true }, ['blk.1.attn_q_norm.weight', 'blk.2.attn_k_norm.weight'], []],
    ['glm4 without attention biases', { arch: 'glm4', attentionBias: false }, ['blk.0.post_ffw_norm.weight'], ['blk.0.attn_q.bias']],
    ['chatglm without biases, f16 source', { arch: 'chatglm', attentionBias: false, dtype: 'f16' }, ['blk.2.ffn_down.weight'], ['blk.0.attn_k.bias']],
    ['glm from f32', { arch: 'glm', dtype: 'f32' }, ['blk.0.attn_v.bias'], []],
  ] as const)('%s converts and reads back', async (_name, options, present, absent) => {
    const model = await fixture(dir, options);
    const out = join(dir, `${_name.replace(/\W+/g, '-')}.m`);
    await convert({ modelDir: model, outFile: out, weights: 'q80' });
    const file = await readModelFile(out);
    const names = file.tensors.map((t) => t.name);
    for (const n of present) expect(names).toContain(n);
    for (const n of absent) expect(names).not.toContain(n);
    expect(file.header.attentionBias).toBe('attentionBias' in options ? options.attentionBias : true);
    expect(file.header.qkNorm).toBe('qkNorm' in options ? options.qkNorm : false);
    const errors = await compareWithSource(model, out);
    expect(errors.filter((e) => e.maxAbsError > (e.maxAbsSource / 127) * 0.51 + e.maxAbsSource * 2 ** -11)).toEqual([]);
  });

  it('skips the MTP layer stored after the last decoder layer', async () => {
    const model = await fixture(dir, { arch: 'glm4moe', seed: 7 });
    const config = JSON.parse(await readFile(join(model, 'config.json'), 'utf8'));
    const ckpt = await Checkpoint.open(model);
    const mtp = [...ckpt.tensors.keys()].filter((n) => n.startsWith(`model.layers.${config.num_hidden_layers}.`));
    await ckpt.close();
    expect(mtp).toEqual(expect.arrayContaining([`model.layers.${config.num_hidden_layers}.eh_proj.weight`]));
    const out = join(dir, 'mtp.m');
    await convert({ modelDir: model, outFile: out, weights: 'q40' });
    const names = (await readModelFile(out)).tensors.map((t) => t.name);
    expect(names.filter((n) => n.startsWith(`blk.${config.num_hidden_layers}.`))).toEqual([]);
    expect(names).toContain(`blk.${config.num_hidden_layers - 1}.ffn_gate_inp.weight`);
  });
});
