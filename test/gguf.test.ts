/**
 * GGUF export. For each architecture's tiny fixture and each weight type:
 *  - the header read back has the metadata keys llama.cpp reads, with the exact value types, and the
 *    tensor names and ne of the GGUF mapping; every tensor's bytes equal the .m file's bytes for the same
 *    matrices (expert stacks and the fused gate|up are the .m tensors back to back);
 *  - llama.cpp (node-llama-cpp@3.21.1, CPU, in a child process) loads it and returns a finite next-token
 *    distribution at each of 24 positions;
 *  - f32: llama.cpp's log-probs match an independent float64 forward pass of the .m file
 *    (test/reference-forward.ts) within 1e-4 at every position and token, and deliberately wrong
 *    conventions in the reference miss by far more;
 *  - q80 / q40 / f16: they match the reference with ggml's activation rounding emulated. A float64 pass
 *    cannot follow float32 activations across every rounding boundary (one flipped Q8_0 or fp16 rounding
 *    shifts all later positions by 1e-4 to 3e-2), so these bounds are looser; the exact check of
 *    quantized files is the engine's, which runs in float32 like llama.cpp.
 */
import { copyFile, mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { convertToGguf } from '../converter/gguf.js';
import { GgmlType, GgufType, readGguf, readGgufTensorBytes, type GgufFile, type GgufValue } from '../converter/gguf-format.js';
import { readModelFile, type ModelFile } from '../converter/model-file.js';
import { ArchType, RopeStyle } from '../converter/model-header.js';
import { WEIGHT_TYPE_NAMES, type WeightTypeName } from '../converter/dtypes.js';
import { fixtureDims, type FixtureArch } from '../converter/fixture.js';
import { fixtureChatTemplate, fixtureSpecialId, fixtureSpecialTokens, FIXTURE_REGULAR_TOKENS } from '../converter/fixture-tokenizer.js';
import { CancelledError } from '../converter/errors.js';
import { fixture, removeDir, tempDir } from './helpers.js';
import { finiteLogprobsMaxDiff, llamaCppLogprobs } from './llama-cpp.js';
import { referenceLogprobs } from './reference-forward.js';

const ARCHS: readonly FixtureArch[] = ['glm4moe', 'glm4', 'chatglm', 'glm'];
const GGUF_ARCH: Readonly<Record<FixtureArch, string>> = { glm4moe: 'glm4moe', glm4: 'glm4', chatglm: 'chatglm', glm: 'chatglm' };
const GGML: Readonly<Record<WeightTypeName, GgmlType>> = { f32: GgmlType.F32, f16: GgmlType.F16, q40: GgmlType.Q4_0, q80: GgmlType.Q8_0 };
const VOCAB = 576;
/** 24 tokens spread over the fixture vocabulary, regular, special and padding ids alike. */
const TOKENS = Array.from({ length: 24 }, (_, i) => (i * 97 + 13) % VOCAB);

let dir: string;
const checkpoints = new Map<FixtureArch, string>();
const files = new Map<string, { m: string; gguf: string }>();

beforeAll(async () => {
  dir = await tempDir();
  for (const arch of ARCHS) {
    const modelDir = await fixture(dir, { arch });
    checkpoints.set(arch, modelDir);
    for (const weights of WEIGHT_TYPE_NAMES) {
      const m = join(dir, `${arch}.${weights}.m`);
      const gguf = join(dir, `${arch}.${weights}.gguf`);
      await convert({ modelDir, outFile: m, weights, threads: 2 });
      await convertToGguf({ modelDir, outFile: gguf, weights, threads: 2 });
      files.set(`${arch}.${weights}`, { m, gguf });
    }
  }
});
afterAll(async () => removeDir(dir));

function value(file: GgufFile, key: string): GgufValue {
  const v = file.metadata.get(key);
  if (!v) throw new Error(`${file.path}: no metadata key ${key}`);
  return v;
}

/** The .m bytes of one tensor. */
async function mBytes(model: ModelFile, name: string): Promise<Buffer> {
  const t = model.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`${model.path}: no tensor ${name}`);
  return (await readFile(model.path)).subarray(t.offset, t.offset + t.bytes);
}

/** The .m tensors a GGUF tensor is made of, in order. */
function mPartsOf(arch: FixtureArch, name: string, nExperts: number): string[] {
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  if (!m) return [name];
  const b = `blk.${m[1]}.`;
  const rest = m[2]!;
  const exps = /^ffn_(gate|up|down)_exps\.weight$/.exec(rest);
  if (exps) return Array.from({ length: nExperts }, (_, e) => `${b}ffn_${exps[1]}.${e}.weight`);
  if (arch === 'glm4moe' && rest === 'post_attention_norm.weight') return [`${b}ffn_norm.weight`];
  if (arch !== 'glm4moe' && rest === 'ffn_up.weight') return [`${b}ffn_gate.weight`, `${b}ffn_up.weight`];
  return [name];
}

describe.each(ARCHS.map((a) => [a]))('%s', (arch) => {
  const d = fixtureDims(arch, 'tiny');
  const prefix = GGUF_ARCH[arch];

  it('writes the metadata llama.cpp reads, with its value types', async () => {
    const file = await readGguf(files.get(`${arch}.q40`)!.gguf);
    const expectKey = (key: string, type: GgufType, expected: unknown) => {
      const v = value(file, key);
      expect([key, v.type, v.value]).toEqual([key, type, expected]);
    };
    expect(file.version).toBe(3);
    expect(file.alignment).toBe(32);
    expectKey('general.architecture', GgufType.STRING, prefix);
    expectKey('general.alignment', GgufType.UINT32, 32);
    expectKey('general.file_type', GgufType.UINT32, 2);
    expectKey(`${prefix}.context_length`, GgufType.UINT32, 256);
    expectKey(`${prefix}.embedding_length`, GgufType.UINT32, d.hidden);
    expectKey(`${prefix}.block_count`, GgufType.UINT32, d.layers);
    expectKey(`${prefix}.feed_forward_length`, GgufType.UINT32, d.intermediate);
    expectKey(`${prefix}.vocab_size`, GgufType.UINT32, VOCAB);
    expectKey(`${prefix}.attention.head_count`, GgufType.UINT32, d.heads);
    expectKey(`${prefix}.attention.head_count_kv`, GgufType.UINT32, d.kvHeads);
    expectKey(`${prefix}.attention.key_length`, GgufType.UINT32, d.headDim);
    expectKey(`${prefix}.attention.value_length`, GgufType.UINT32, d.headDim);
    expectKey(`${prefix}.rope.dimension_count`, GgufType.UINT32, d.headDim / 2);
    const eps = { glm4moe: 1e-5, glm4: 1e-5, chatglm: 1.5625e-7, glm: 1.5625e-7 }[arch];
    expectKey(`${prefix}.attention.layer_norm_rms_epsilon`, GgufType.FLOAT32, Math.fround(eps));
    const theta = { glm4moe: 1e6, glm4: 1e4, chatglm: 5e6, glm: 5e6 }[arch];
    expectKey(`${prefix}.rope.freq_base`, GgufType.FLOAT32, theta);
    const moeKeys = [...file.metadata.keys()].filter((k) => /expert|leading_dense|nextn/.test(k));
    if (arch === 'glm4moe') {
      expectKey('glm4moe.expert_count', GgufType.UINT32, d.experts);
      expectKey('glm4moe.expert_used_count', GgufType.UINT32, d.expertsPerToken);
      expectKey('glm4moe.expert_shared_count', GgufType.UINT32, d.sharedExperts);
      expectKey('glm4moe.expert_feed_forward_length', GgufType.UINT32, d.moeIntermediate);
      expectKey('glm4moe.leading_dense_block_count', GgufType.UINT32, d.firstDense);
      expectKey('glm4moe.expert_gating_func', GgufType.UINT32, 2);
      expectKey('glm4moe.expert_weights_scale', GgufType.FLOAT32, 2.5);
      expectKey('glm4moe.expert_weights_norm', GgufType.BOOL, true);
      // n_group = topk_group = 1: no group keys; without --mtp no nextn_predict_layers.
      expect(moeKeys.sort()).toEqual(
        ['count', 'feed_forward_length', 'gating_func', 'shared_count', 'used_count', 'weights_norm', 'weights_scale'].map((k) => `glm4moe.expert_${k}`).concat('glm4moe.leading_dense_block_count').sort(),
      );
    } else {
      expect(moeKeys).toEqual([]);
    }
  });

  it('embeds the tokenizer: vocabulary padded to vocab_size, token types, merges, special ids, chat template', async () => {
    const file = await readGguf(files.get(`${arch}.f32`)!.gguf);
    const tokens = value(file, 'tokenizer.ggml.tokens');
    const types = value(file, 'tokenizer.ggml.token_type');
    const merges = value(file, 'tokenizer.ggml.merges');
    expect(value(file, 'tokenizer.ggml.model').value).toBe('gpt2');
    expect(value(file, 'tokenizer.ggml.pre').value).toBe(prefix === 'chatglm' ? 'chatglm-bpe' : 'glm4');
    expect([tokens.type, types.type, merges.type]).toEqual([GgufType.ARRAY, GgufType.ARRAY, GgufType.ARRAY]);
    if (tokens.type !== GgufType.ARRAY || types.type !== GgufType.ARRAY || merges.type !== GgufType.ARRAY) return;
    expect([tokens.itemType, types.itemType, merges.itemType]).toEqual([GgufType.STRING, GgufType.INT32, GgufType.STRING]);
    expect(tokens.value).toHaveLength(VOCAB);
    expect(types.value).toHaveLength(VOCAB);
    expect(merges.value).toHaveLength(256);
    expect(merges.value.every((m) => typeof m === 'string' && m.split(' ').length === 2)).toBe(true);
    const specials = fixtureSpecialTokens(arch);
    expect(tokens.value.slice(FIXTURE_REGULAR_TOKENS, FIXTURE_REGULAR_TOKENS + specials.length)).toEqual(specials);
    expect(tokens.value[VOCAB - 1]).toBe(`[PAD${VOCAB - 1}]`);
    expect(types.value.slice(0, FIXTURE_REGULAR_TOKENS).every((t) => t === 1)).toBe(true);
    expect(types.value.slice(FIXTURE_REGULAR_TOKENS, FIXTURE_REGULAR_TOKENS + specials.length).every((t) => t === 3)).toBe(true);
    expect(types.value.slice(FIXTURE_REGULAR_TOKENS + specials.length).every((t) => t === 5)).toBe(true);
    const id = (t: string) => fixtureSpecialId(arch, t);
    const ids = Object.fromEntries(['bos', 'eos', 'eot', 'eom', 'unknown', 'padding'].map((k) => [k, value(file, `tokenizer.ggml.${k}_token_id`)]));
    expect(Object.values(ids).every((v) => v.type === GgufType.UINT32)).toBe(true);
    expect(Object.fromEntries(Object.entries(ids).map(([k, v]) => [k, v.value]))).toEqual({
      bos: id(arch === 'glm4moe' ? '[gMASK]' : '<|endoftext|>'),
      eos: id('<|endoftext|>'),
      eot: id('<|user|>'),
      eom: id('<|observation|>'),
      unknown: id('<|endoftext|>'),
      padding: id('<|endoftext|>'),
    });
    expect(value(file, 'tokenizer.ggml.add_bos_token')).toEqual({ type: GgufType.BOOL, value: false });
    expect(value(file, 'tokenizer.chat_template')).toEqual({ type: GgufType.STRING, value: fixtureChatTemplate(arch) });
  });

  it.each(WEIGHT_TYPE_NAMES.map((w) => [w]))('%s: tensor names, ne and types follow the GGUF mapping, bytes equal the .m file', async (weights) => {
    const { m, gguf } = files.get(`${arch}.${weights}`)!;
    const file = await readGguf(gguf);
    const model = await readModelFile(m);
    const H = d.hidden;
    const qDim = d.heads * d.headDim;
    const kvDim = d.kvHeads * d.headDim;
    const W = GGML[weights];
    const F32 = GgmlType.F32;
    const expected = new Map<string, [number[], GgmlType]>();
    const add = (name: string, ne: number[], type: GgmlType) => expected.set(name, [ne, type]);
    add('token_embd.weight', [H, VOCAB], F32);
    add('output_norm.weight', [H], F32);
    add('output.weight', [H, VOCAB], W);
    for (let l = 0; l < d.layers; l++) {
      const b = `blk.${l}.`;
      add(`${b}attn_norm.weight`, [H], F32);
      add(`${b}attn_q.weight`, [H, qDim], W);
      add(`${b}attn_k.weight`, [H, kvDim], W);
      add(`${b}attn_v.weight`, [H, kvDim], W);
      add(`${b}attn_q.bias`, [qDim], F32);
      add(`${b}attn_k.bias`, [kvDim], F32);
      add(`${b}attn_v.bias`, [kvDim], F32);
      add(`${b}attn_output.weight`, [qDim, H], W);
      if (arch === 'glm4moe') {
        add(`${b}post_attention_norm.weight`, [H], F32);
        if (l < d.firstDense!) {
          add(`${b}ffn_gate.weight`, [H, d.intermediate], W);
          add(`${b}ffn_up.weight`, [H, d.intermediate], W);
          add(`${b}ffn_down.weight`, [d.intermediate, H], W);
        } else {
          const E = d.experts!;
          const Im = d.moeIntermediate!;
          add(`${b}ffn_gate_inp.weight`, [H, E], F32);
          add(`${b}exp_probs_b.bias`, [E], F32);
          add(`${b}ffn_gate_exps.weight`, [H, Im, E], W);
          add(`${b}ffn_up_exps.weight`, [H, Im, E], W);
          add(`${b}ffn_down_exps.weight`, [Im, H, E], W);
          add(`${b}ffn_gate_shexp.weight`, [H, Im], W);
          add(`${b}ffn_up_shexp.weight`, [H, Im], W);
          add(`${b}ffn_down_shexp.weight`, [Im, H], W);
        }
      } else {
        if (arch === 'glm4') {
          add(`${b}post_attention_norm.weight`, [H], F32);
          add(`${b}post_ffw_norm.weight`, [H], F32);
        }
        add(`${b}ffn_norm.weight`, [H], F32);
        add(`${b}ffn_up.weight`, [H, 2 * d.intermediate], W);
        add(`${b}ffn_down.weight`, [d.intermediate, H], W);
      }
    }
    const actual = new Map(file.tensors.map((t) => [t.name, [t.ne, t.type] as [number[], GgmlType]]));
    expect(actual).toEqual(expected);
    // Data: aligned, and byte for byte the .m tensors it is made of.
    for (const t of file.tensors) {
      expect(t.offset % 32).toBe(0);
      const parts = await Promise.all(mPartsOf(arch, t.name, d.experts ?? 0).map((n) => mBytes(model, n)));
      const ok = Buffer.concat(parts).equals(await readGgufTensorBytes(file, t.name));
      expect([t.name, ok]).toEqual([t.name, true]);
    }
    const last = [...file.tensors].sort((a, b) => b.offset - a.offset)[0]!;
    expect(file.fileSize).toBe(file.dataOffset + last.offset + last.bytes);
  });

  it.each(WEIGHT_TYPE_NAMES.map((w) => [w]))('%s: llama.cpp loads it and agrees with the float64 reference', async (weights) => {
    const { m, gguf } = files.get(`${arch}.${weights}`)!;
    const got = await llamaCppLogprobs(gguf, TOKENS);
    expect(got).toHaveLength(TOKENS.length);
    for (const row of got) {
      expect(row).toHaveLength(VOCAB);
      expect(row.every(Number.isFinite)).toBe(true);
      expect(Math.abs(row.reduce((s, v) => s + Math.exp(v), 0) - 1)).toBeLessThan(1e-5);
    }
    if (weights === 'f32') {
      const diff = finiteLogprobsMaxDiff(await referenceLogprobs(m, TOKENS), got);
      expect(diff.compared).toBe(TOKENS.length * VOCAB);
      expect(diff.maxDiff).toBeLessThan(1e-4); // measured 1.0e-6 to 1.5e-6
    } else {
      const ref = await referenceLogprobs(m, TOKENS, { activations: 'ggml' });
      const all = finiteLogprobsMaxDiff(ref, got);
      const first = finiteLogprobsMaxDiff(ref.slice(0, 1), got.slice(0, 1));
      // Measured: q80/q40 1e-6 until a Q8_0 rounding flips (then up to 3e-2), f16 up to 1e-3.
      expect(all.maxDiff).toBeLessThan(0.1);
      expect(first.maxDiff).toBeLessThan(weights === 'f16' ? 5e-3 : 1e-3);
    }
  });
});

describe('the f32 comparison catches wrong conventions', () => {
  const cases: [FixtureArch, string, Parameters<typeof referenceLogprobs>[2]][] = [
    ['glm4moe', 'interleaved rope instead of half-split', { overrides: { ropeStyle: RopeStyle.Interleaved } }],
    ['glm4moe', 'routed_scaling_factor ignored', { overrides: { routedScalingFactor: 1 } }],
    ['glm4moe', 'top-k weights not normalised', { overrides: { normTopkProb: false } }],
    ['glm4moe', 'rotary over the whole head', { overrides: { ropeDim: 32 } }],
    ['glm4', 'half-split rope instead of interleaved', { overrides: { ropeStyle: RopeStyle.HalfSplit } }],
    ['glm4', 'no sandwich norms (read as glm)', { overrides: { archType: ArchType.GLM } }],
    ['chatglm', 'rope base 10000 (the stored inv_freq) instead of 10000 x rope_ratio', { overrides: { ropeTheta: 10000 } }],
  ];
  it.each(cases)('%s: %s', async (arch, _what, options) => {
    const { m, gguf } = files.get(`${arch}.f32`)!;
    const diff = finiteLogprobsMaxDiff(await referenceLogprobs(m, TOKENS, options), await llamaCppLogprobs(gguf, TOKENS));
    expect(diff.maxDiff).toBeGreaterThan(1e-3);
  });
});

describe('variants agree with the reference in f32', () => {
  it.each([
    ['glm4moe with q/k norm (GLM-4.5)', { arch: 'glm4moe', qkNorm: true, seed: 2 }],
    ['glm4 without attention biases (GLM-4-32B-0414)', { arch: 'glm4', attentionBias: false, seed: 2 }],
  ] as const)('%s', async (_what, options) => {
    const modelDir = await fixture(dir, options);
    const name = join(dir, `variant-${options.arch}`);
    await convert({ modelDir, outFile: `${name}.m`, weights: 'f32', threads: 2 });
    await convertToGguf({ modelDir, outFile: `${name}.gguf`, weights: 'f32', threads: 2 });
    const names = (await readGguf(`${name}.gguf`)).tensors.map((t) => t.name);
    expect(names.some((n) => n.endsWith('attn_q_norm.weight'))).toBe('qkNorm' in options);
    expect(names.some((n) => n.endsWith('attn_q.bias'))).toBe(!('attentionBias' in options));
    const diff = finiteLogprobsMaxDiff(await referenceLogprobs(`${name}.m`, TOKENS), await llamaCppLogprobs(`${name}.gguf`, TOKENS));
    expect(diff.maxDiff).toBeLessThan(1e-4);
  });
});

it("--mtp writes the MTP layer as llama.cpp's NextN block, which llama.cpp loads and skips", async () => {
  const modelDir = checkpoints.get('glm4moe')!;
  const name = join(dir, 'nextn');
  await convert({ modelDir, outFile: `${name}.m`, weights: 'f32', threads: 2, mtp: true, tokenizerFile: null });
  await convertToGguf({ modelDir, outFile: `${name}.gguf`, weights: 'f32', threads: 2, mtp: true });
  const file = await readGguf(`${name}.gguf`);
  const layers = Number(file.metadata.get('glm4moe.block_count')!.value);
  expect(Number(file.metadata.get('glm4moe.nextn_predict_layers')!.value)).toBe(1);
  const L = layers - 1;
  const names = file.tensors.map((t) => t.name);
  for (const t of ['nextn.eh_proj.weight', 'nextn.enorm.weight', 'nextn.hnorm.weight', 'nextn.shared_head_norm.weight', 'ffn_gate_exps.weight', 'attn_q.weight']) {
    expect(names).toContain(`blk.${L}.${t}`);
  }
  expect(file.tensors.find((t) => t.name === `blk.${L}.nextn.eh_proj.weight`)!.ne).toEqual([128, 64]);
  // llama.cpp accepts every tensor (it refuses unclaimed ones) and runs only the main layers.
  const diff = finiteLogprobsMaxDiff(await referenceLogprobs(`${name}.m`, TOKENS), await llamaCppLogprobs(`${name}.gguf`, TOKENS));
  expect(diff.maxDiff).toBeLessThan(1e-4);
});

describe('convertToGguf', () => {
  it('writes no_vocab when the checkpoint has no tokenizer.json; the harness survives llama.cpp aborting on it', async () => {
    const modelDir = join(dir, 'no-tokenizer');
    await mkdir(modelDir);
    const source = checkpoints.get('glm4')!;
    for (const f of await readdir(source)) if (!f.startsWith('tokenizer')) await copyFile(join(source, f), join(modelDir, f));
    const outFile = join(dir, 'no-tokenizer.gguf');
    const result = await convertToGguf({ modelDir, outFile, weights: 'q80', threads: 2 });
    expect(result.vocabulary).toBe('no_vocab');
    const file = await readGguf(outFile);
    expect(value(file, 'tokenizer.ggml.model').value).toBe('no_vocab');
    expect(value(file, 'glm4.vocab_size').value).toBe(VOCAB);
    expect(file.metadata.has('tokenizer.ggml.tokens')).toBe(false);
    // llama.cpp builds 576 dummy tokens, but node-llama-cpp tokenizes while loading and llama.cpp then
    // aborts (GGML_ASSERT "Tokenizer not initialized"): the child dies, the test process does not.
    await expect(llamaCppLogprobs(outFile, TOKENS.slice(0, 4))).rejects.toThrow(/llama\.cpp failed .*SIGABRT[\s\S]*Tokenizer not initialized/);
  });

  it('reports what it wrote', async () => {
    const outFile = join(dir, 'report.gguf');
    const result = await convertToGguf({ modelDir: checkpoints.get('glm4moe')!, outFile, weights: 'q40', threads: 2 });
    const file = await readGguf(outFile);
    expect(result).toMatchObject({ outFile, architecture: 'glm4moe', sourceArchitecture: 'glm4moe', tensors: file.tensors.length, bytes: file.fileSize, vocabulary: 'gpt2' });
    const model = await readModelFile(files.get('glm4moe.q40')!.m);
    expect(result.parameters).toBe(model.parameters);
  });

  it('leaves no file behind when cancelled', async () => {
    const outFile = join(dir, 'cancelled.gguf');
    const controller = new AbortController();
    controller.abort();
    await expect(convertToGguf({ modelDir: checkpoints.get('glm4')!, outFile, weights: 'q40', threads: 2, signal: controller.signal })).rejects.toThrow(CancelledError);
    expect(existsSync(outFile)).toBe(false);
    expect((await readdir(dir)).filter((f) => f.includes('cancelled'))).toEqual([]);
  });

  it('rejects a file that is not GGUF or is truncated', async () => {
    const path = files.get('glm4.f32')!.gguf;
    const bytes = await readFile(path);
    const truncated = join(dir, 'truncated.gguf');
    await writeFile(truncated, bytes.subarray(0, bytes.length - 100));
    await expect(readGguf(truncated)).rejects.toThrow(/truncated/);
    await expect(readGguf(files.get('glm4.f32')!.m)).rejects.toThrow(/not a GGUF file/);
    await unlink(truncated);
  });
});
