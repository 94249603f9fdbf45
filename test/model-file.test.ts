/** The .m header and file checks: exact round trips, and clear refusals of foreign or damaged files. */
import { appendFile, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WeightType } from '../converter/dtypes.js';
import { ArchType, HEADER_KEYS, HiddenAct, RopeStyle, decodeHeader, encodeHeader, toF32, type ModelHeader } from '../converter/model-header.js';
import { modelTensors, placeTensors } from '../converter/model-layout.js';
import { readModelFile } from '../converter/model-file.js';
import { cli, fixture, removeDir, tempDir } from './helpers.js';

const header: ModelHeader = {
  version: 0,
  archType: ArchType.GLM4_MOE,
  weightType: WeightType.Q40,
  hiddenAct: HiddenAct.Silu,
  dim: 4096,
  hiddenDim: 10944,
  nLayers: 46,
  nHeads: 96,
  nKvHeads: 8,
  headDim: 128,
  vocabSize: 151552,
  maxSeqLen: 131072,
  ropeStyle: RopeStyle.HalfSplit,
  ropeTheta: 1e6,
  ropeDim: 64,
  normEpsilon: toF32(1.5625e-7),
  attentionBias: true,
  qkNorm: false,
  nExperts: 128,
  nActiveExperts: 8,
  moeHiddenDim: 1408,
  nSharedExperts: 1,
  firstDenseLayers: 1,
  routedScalingFactor: 2.5,
  normTopkProb: true,
  nExpertGroups: 1,
  topkGroups: 1,
  mtpLayers: 0,
};

describe('header', () => {
  it('round-trips every field exactly, floats as IEEE bits', () => {
    const bytes = encodeHeader(header);
    expect(bytes.readInt32LE(0)).toBe(0x0a00abcd);
    // Every key but the optional output_float_type and mtp_layers, which a header without those features omits.
    expect(bytes.readInt32LE(4)).toBe(8 + 8 * (HEADER_KEYS.length - 2));
    const { header: back, headerSize } = decodeHeader(bytes, 'x.m');
    expect(back).toEqual(header);
    expect(headerSize).toBe(bytes.length);
    // key 257 holds the float32 bits of eps, key 263 those of 2.5
    const pairs = new Map<number, number>();
    for (let at = 8; at < bytes.length; at += 8) pairs.set(bytes.readInt32LE(at), bytes.readInt32LE(at + 4));
    expect(pairs.get(257)! >>> 0).toBe(0x3427c5ac);
    expect(pairs.get(263)! >>> 0).toBe(0x40200000);
    expect(pairs.get(1)).toBe(0xabcd12);
    expect(pairs.has(12)).toBe(false); // distributed-llama's int rope_theta is never written
  });

  it('writes mtp_layers only for a file with the MTP section, and only for glm4moe', () => {
    const withMtp = encodeHeader({ ...header, mtpLayers: 1 });
    expect(withMtp.length).toBe(encodeHeader(header).length + 8);
    expect(decodeHeader(withMtp, 'x.m').header.mtpLayers).toBe(1);
    expect(() => decodeHeader(encodeHeader({ ...header, mtpLayers: 2 }), 'x.m')).toThrow(/header field mtp_layers = 2 is outside 0..1/);
    expect(() => decodeHeader(encodeHeader({ ...header, archType: ArchType.GLM4, mtpLayers: 1 }), 'x.m')).toThrow(/mtp_layers is only defined for glm4moe files/);
  });

  it('writes output_float_type (key 267) only for a head type of its own, and lays the head out in it', () => {
    const pairsOf = (bytes: Buffer) => {
      const pairs = new Map<number, number>();
      for (let at = 8; at < bytes.length; at += 8) pairs.set(bytes.readInt32LE(at), bytes.readInt32LE(at + 4));
      return pairs;
    };
    expect(encodeHeader({ ...header, outputType: WeightType.Q40 })).toEqual(encodeHeader(header));
    const withHead: ModelHeader = { ...header, outputType: WeightType.Q80 };
    const bytes = encodeHeader(withHead);
    expect(pairsOf(bytes).get(267)).toBe(WeightType.Q80);
    expect(decodeHeader(bytes, 'x.m').header).toEqual(withHead);
    expect(decodeHeader(encodeHeader(header), 'x.m').header.outputType).toBeUndefined();
    const types = new Map(modelTensors(withHead).map((t) => [t.name, t.type]));
    expect(types.get('output.weight')).toBe(WeightType.Q80);
    expect(types.get('blk.0.attn_q.weight')).toBe(WeightType.Q40);
    const bad = Buffer.from(bytes);
    bad.writeInt32LE(7, bytes.length - 4); // the last pair is key 267
    expect(() => decodeHeader(bad, 'x.m')).toThrow('x.m: header field output_float_type = 7 is outside 0..3');
  });

  it('accepts keys in any order and fills defaults for absent optional keys', () => {
    const bytes = encodeHeader(header);
    const pairs: [number, number][] = [];
    for (let at = 8; at < bytes.length; at += 8) pairs.push([bytes.readInt32LE(at), bytes.readInt32LE(at + 4)]);
    const kept = pairs.reverse().filter(([k]) => k !== 0 && k !== 265); // drop version and n_expert_groups
    const buf = Buffer.alloc(8 + 8 * kept.length);
    buf.writeInt32LE(0x0a00abcd, 0);
    buf.writeInt32LE(buf.length, 4);
    kept.forEach(([k, v], i) => {
      buf.writeInt32LE(k, 8 + 8 * i);
      buf.writeInt32LE(v, 12 + 8 * i);
    });
    expect(decodeHeader(buf, 'x.m').header).toEqual(header);
  });

  const withPair = (key: number, value: number): Buffer => {
    const bytes = encodeHeader(header);
    const extra = Buffer.alloc(8);
    extra.writeInt32LE(key, 0);
    extra.writeInt32LE(value, 4);
    const out = Buffer.concat([bytes, extra]);
    out.writeInt32LE(out.length, 4);
    return out;
  };

  it.each([
    ['a bad magic', () => Buffer.from([1, 2, 3, 4, 8, 0, 0, 0]), /x\.m: bad magic 0x4030201/],
    ['a GGUF file', () => Buffer.from('GGUF\x03\0\0\0', 'latin1'), /x\.m: this is a GGUF file \(llama\.cpp's format\)/],
    ['an old distributed-llama file', () => Buffer.from([0, 0xcd, 0xab, 0, 8, 0, 0, 0]), /pre-2024 format/],
    ['an unknown key', () => withPair(999, 1), /x\.m: unknown header key 999/],
    ['distributed-llama\'s int rope_theta', () => withPair(12, 10000), /header key 12 \(rope_theta \(int\)\) is not used by GLM files/],
    ['a repeated key', () => withPair(2, 64), /header key 2 appears twice/],
    ['a missing required key', () => {
      const b = encodeHeader(header);
      const out = Buffer.concat([b.subarray(0, 8), b.subarray(16)]); // drops the first pair (version)... then dim below
      out.writeInt32LE(out.length, 4);
      const at = [...Array((out.length - 8) / 8).keys()].find((i) => out.readInt32LE(8 + 8 * i) === 2)!;
      const cut = Buffer.concat([out.subarray(0, 8 + 8 * at), out.subarray(16 + 8 * at)]);
      cut.writeInt32LE(cut.length, 4);
      return cut;
    }, /required header key 2 \(dim\) is missing/],
    ['a foreign architecture', () => {
      const b = encodeHeader(header);
      b.writeInt32LE(0xabcd00, 8 + 8 * HEADER_KEYS.findIndex((k) => k.id === 1) + 4);
      return b;
    }, /unsupported arch_type 0xabcd00; glm-dllama reads GLM files/],
    ['an unknown weight type', () => {
      const b = encodeHeader(header);
      b.writeInt32LE(7, 8 + 8 * HEADER_KEYS.findIndex((k) => k.id === 13) + 4);
      return b;
    }, /header field weights_float_type = 7 is outside 0\.\.3/],
  ])('refuses %s', (_name, make, message) => {
    expect(() => decodeHeader(make(), 'x.m')).toThrow(message);
  });
});

describe('layout', () => {
  it('gives GLM-4.5-Air its known parameter count', () => {
    // 106,852,251,264 without the MTP layer (the GLM architecture notes' count from the published shapes)
    const params = modelTensors({ ...header, nLayers: 46 }).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    expect(params).toBe(106_852_251_264);
  });

  it('gives GLM-4-32B-0414 (no attention bias, sandwich norms) its known parameter count', () => {
    const glm4: ModelHeader = { ...header, archType: ArchType.GLM4, ropeStyle: RopeStyle.Interleaved, dim: 6144, hiddenDim: 23040, nLayers: 61, nHeads: 48, nKvHeads: 2, attentionBias: false, nExperts: 0, nActiveExperts: 0, moeHiddenDim: 0, nSharedExperts: 0, firstDenseLayers: 0 };
    const params = modelTensors(glm4).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    expect(params).toBe(32_566_081_536);
  });

  it('places q40 tensors back to back after the header', () => {
    const placed = placeTensors(modelTensors(header), 224);
    expect(placed[0]).toMatchObject({ name: 'token_embd.weight', offset: 224, bytes: 151552 * 4096 * 4 });
    const q = placed.find((t) => t.name === 'blk.0.attn_q.weight')!;
    expect(q.bytes).toBe((12288 * 4096 / 32) * 18);
    for (let i = 1; i < placed.length; i++) expect(placed[i]!.offset).toBe(placed[i - 1]!.offset + placed[i - 1]!.bytes);
  });
});

describe('files', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = await tempDir();
    const model = await fixture(dir, { arch: 'glm4' });
    file = join(dir, 'glm4.q80.m');
    expect(cli('convert', '--model', model, '--out', file, '--weights', 'q80').status).toBe(0);
  });
  afterAll(async () => removeDir(dir));

  it('inspect prints the header and every tensor, and --json the same as one object', async () => {
    const model = await readModelFile(file);
    const text = cli('inspect', file);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/glm4, q80 weights/);
    expect(text.stdout).toMatch(/257 normEpsilon\s+0\.00001\n/);
    for (const t of model.tensors) expect(text.stdout).toContain(t.name);
    const json = cli('inspect', file, '--json');
    const report = JSON.parse(json.stdout);
    expect(report.tensors).toHaveLength(model.tensors.length);
    expect(report.tensors[1]).toEqual({ name: 'blk.0.attn_norm.weight', type: 'f32', shape: [64], offset: model.tensors[1]!.offset, bytes: 256 });
    expect(report.header.archType).toBe(ArchType.GLM4);
    expect(report.fileSize).toBe(model.fileSize);
  });

  it('refuses a truncated file and one with trailing bytes', async () => {
    const bytes = await readFile(file);
    const cut = join(dir, 'cut.m');
    await writeFile(cut, bytes);
    await truncate(cut, bytes.length - 1);
    const a = cli('inspect', cut);
    expect(a.status).toBe(1);
    expect(a.stderr).toMatch(/cut\.m: the header describes \d+ bytes .* but the file has \d+; it is truncated/);
    const long = join(dir, 'long.m');
    await writeFile(long, bytes);
    await appendFile(long, Buffer.alloc(3));
    expect(cli('inspect', long).stderr).toMatch(/long\.m: .* it has trailing bytes/);
    expect(cli('inspect', join(dir, 'nope.m')).stderr).toMatch(/nope\.m: cannot open \(ENOENT\)/);
  });
});
