/**
 * Importance-weighted q40 and the imatrix: the weighted search never loses to round-to-nearest on the error
 * it minimises and picks what a brute-force search over the same candidates picks; the engine's collected
 * sums match ones recomputed here from the weights; the GGUF imatrix round-trips, the legacy .dat reads, and
 * damaged or mismatched files are refused naming the tensor; convert and quantize use it end to end.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { WeightType, encodedBytes } from '../converter/dtypes.js';
import { GgmlType, encodeGgufHeader, gguf, placeGgufTensors } from '../converter/gguf-format.js';
import { checkImatrix, imatrixFromStats, imatrixLayout, importanceFor, readImatrix, writeImatrix, type ImportanceMatrix } from '../converter/imatrix.js';
import { readModelFile, readTensor } from '../converter/model-file.js';
import { LoadedModel } from '../engine/index.js';
import { native } from '../engine/native.js';
import { quantizeModel } from '../pipeline/quantize.js';
import { rng } from '../scripts/tokenizer-corpus.js';
import { cli, fixture, removeDir, tempDir } from './helpers.js';

const engine = native();

function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

async function encodeQ40(values: Float32Array, importance?: Float32Array): Promise<Buffer> {
  const out = Buffer.alloc(encodedBytes(WeightType.Q40, values.length));
  await engine.encode(new Uint8Array(values.buffer), 0, out, WeightType.Q40, values.length, 3, importance);
  return out;
}

/** The weights the search minimises with, in float64: importance[j] * sqrt(row mean square + x^2). */
function weightsOf(row: Float32Array, importance: Float32Array): Float64Array {
  let sum = 0;
  for (const x of row) sum += x * x;
  const meanSquare = sum / row.length;
  return Float64Array.from(row, (x, j) => importance[j]! * Math.sqrt(meanSquare + x * x));
}

/** Sum over one block of w (x - decoded)^2. */
function blockError(x: ArrayLike<number>, w: ArrayLike<number>, decoded: ArrayLike<number>, first: number): number {
  let e = 0;
  for (let j = first; j < first + 32; j++) e += w[j]! * (x[j]! - decoded[j]!) ** 2;
  return e;
}

describe('weighted q40 search', () => {
  it('never does worse than round-to-nearest on the weighted error, block by block, and does better overall', async () => {
    const next = rng(7);
    const rows = 48;
    const cols = 256;
    // Heavy-tailed weights (a Gaussian scaled per element) and skewed column importances with a few outliers.
    const values = Float32Array.from({ length: rows * cols }, () => gaussian(next) * Math.exp(0.7 * gaussian(next)) * 0.02);
    const importance = Float32Array.from({ length: cols }, (_, j) => Math.exp(gaussian(next)) * (j % 61 === 0 ? 100 : 1));
    const rtn = engine.decode(await encodeQ40(values), WeightType.Q40, values.length);
    const weighted = engine.decode(await encodeQ40(values, importance), WeightType.Q40, values.length);
    let rtnTotal = 0;
    let weightedTotal = 0;
    let improved = 0;
    for (let r = 0; r < rows; r++) {
      const row = values.subarray(r * cols, (r + 1) * cols);
      const w = weightsOf(row, importance);
      for (let b = 0; b < cols / 32; b++) {
        const before = blockError(row, w, rtn.subarray(r * cols, (r + 1) * cols), b * 32);
        const after = blockError(row, w, weighted.subarray(r * cols, (r + 1) * cols), b * 32);
        // float32 weights in the engine against float64 here: equal up to rounding
        expect(after).toBeLessThanOrEqual(before * (1 + 1e-6));
        if (after < before * (1 - 1e-6)) improved++;
        rtnTotal += before;
        weightedTotal += after;
      }
    }
    expect(improved).toBeGreaterThan((rows * cols) / 32 / 2);
    expect(weightedTotal).toBeLessThan(0.9 * rtnTotal);
  });

  it('chooses, on a hand-made block, the scale a brute-force search over the same candidates chooses', async () => {
    // An outlier that round-to-nearest maps to -8 exactly, leaving the small values coarse; the importance
    // falls on the small values, so a smaller scale wins.
    const x = Float32Array.from([1.6, -0.21, 0.33, 0.05, -0.47, 0.12, 0.28, -0.36, 0.41, -0.09, 0.17, 0.52, -0.26, 0.07, -0.14, 0.38,
      -0.44, 0.23, 0.31, -0.02, 0.49, -0.33, 0.11, 0.26, -0.19, 0.36, -0.51, 0.04, 0.15, -0.29, 0.22, -0.4]);
    const importance = Float32Array.from(x, (_, j) => (j === 0 ? 0.2 : 1 + (j % 5)));
    const w = weightsOf(x, importance);
    const f16 = (v: number) => engine.f16ToF32(engine.f32ToF16(v));
    const level = (v: number) => {
      const floor = Math.floor(v);
      const nearest = v - floor === 0.5 ? (floor % 2 === 0 ? floor : floor + 1) : Math.round(v); // half to even
      return Math.min(7, Math.max(-8, nearest));
    };
    const errorOf = (d: number, levels: number[]) => levels.reduce((e, l, j) => e + w[j]! * (x[j]! - d * l) ** 2, 0);
    // Candidate 0: round-to-nearest as encoded today; then the extreme mapped to -(8 + 0.1 is), is = -9..9,
    // with the least-squares scale of those levels in fp16 and the levels re-rounded to it.
    const rtnBytes = await encodeQ40(x);
    const rtn = engine.decode(rtnBytes, WeightType.Q40, 32);
    const candidates = [{ scale: engine.f16ToF32(rtnBytes.readUInt16LE(0)), error: blockError(x, w, rtn, 0) }];
    for (let is = -9; is <= 9; is++) {
      const inverse = -(8 + 0.1 * is) / 1.6;
      const levels = Array.from(x, (v) => level(v * inverse));
      const sumXl = levels.reduce((s, l, j) => s + w[j]! * x[j]! * l, 0);
      const sumLl = levels.reduce((s, l, j) => s + w[j]! * l * l, 0);
      const d = f16(sumXl / sumLl);
      candidates.push({ scale: d, error: errorOf(d, Array.from(x, (v) => level(v / d))) });
    }
    const best = candidates.reduce((a, b) => (b.error < a.error ? b : a));
    expect(best).not.toBe(candidates[0]); // the case is one where weighting changes the scale
    const chosen = await encodeQ40(x, importance);
    expect(engine.f16ToF32(chosen.readUInt16LE(0))).toBe(best.scale);
    expect(blockError(x, w, engine.decode(chosen, WeightType.Q40, 32), 0)).toBeCloseTo(best.error, 12);
  });

  it('keeps round-to-nearest bytes where the importance is all zero, and refuses bad importance vectors', async () => {
    const next = rng(3);
    const values = Float32Array.from({ length: 128 }, () => gaussian(next));
    expect(await encodeQ40(values, new Float32Array(64))).toEqual(await encodeQ40(values));
    await expect(encodeQ40(values, Float32Array.from({ length: 64 }, (_, j) => (j === 5 ? NaN : 1)))).rejects.toThrow('importance[5] = nan is not a finite value >= 0');
    await expect(encodeQ40(values, new Float32Array(48))).rejects.toThrow('importance length 48 must be a multiple of 32 dividing the element count 128');
    const q80 = Buffer.alloc(encodedBytes(WeightType.Q80, 128));
    expect(() => engine.encode(new Uint8Array(values.buffer), 0, q80, WeightType.Q80, 128, 1, new Float32Array(64))).toThrow('importance weights apply to q40 only');
  });
});

describe('imatrix files and collection', () => {
  let dir: string;
  let checkpoint: string;
  let f32: string;
  beforeAll(async () => {
    dir = await tempDir();
    checkpoint = await fixture(dir, { arch: 'glm4moe' });
    f32 = join(dir, 'm.f32.m');
    await convert({ modelDir: checkpoint, outFile: f32, weights: 'f32' });
  });
  afterAll(async () => removeDir(dir));

  const tokens = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 500);

  it('collects per matrix the sums of squared inputs: layer 0 attention equals the normed embeddings, expert tokens add up', async () => {
    const model = new LoadedModel(f32, { threads: 2, contextLength: 64, device: 'cpu' });
    try {
      model.collectActivations();
      model.evaluate(tokens);
      const stats = new Map(model.activationStats().map((s) => [s.name, s]));
      const file = await readModelFile(f32);
      const h = file.header;
      const embedding = await readTensor(file, 'token_embd.weight');
      const norm = await readTensor(file, 'blk.0.attn_norm.weight');
      const expected = new Float64Array(h.dim);
      for (const t of tokens) {
        const x = embedding.subarray(t * h.dim, (t + 1) * h.dim);
        const rms = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / h.dim + h.normEpsilon);
        for (let j = 0; j < h.dim; j++) expected[j]! += ((x[j]! / rms) * norm[j]!) ** 2;
      }
      for (const name of ['blk.0.attn_q.weight', 'blk.0.attn_k.weight', 'blk.0.attn_v.weight']) {
        const s = stats.get(name)!;
        expect(s.tokens).toBe(tokens.length);
        for (let j = 0; j < h.dim; j++) expect(s.sumSquares[j]!).toBeCloseTo(expected[j]!, 3);
      }
      const moeLayer = h.firstDenseLayers;
      let routed = 0;
      for (let e = 0; e < h.nExperts; e++) routed += stats.get(`blk.${moeLayer}.ffn_gate.${e}.weight`)!.tokens;
      expect(routed).toBe(tokens.length * h.nActiveExperts);
      expect(stats.get(`blk.${moeLayer}.ffn_up_shexp.weight`)!.tokens).toBe(tokens.length);
      expect(stats.get('output.weight')!.tokens).toBe(1); // only the last token's logits were asked for
      expect(stats.has(`blk.${moeLayer}.ffn_gate_inp.weight`)).toBe(false);
    } finally {
      model.close();
    }
  });

  async function collected(): Promise<ImportanceMatrix> {
    const model = new LoadedModel(f32, { threads: 2, contextLength: 64, device: 'cpu' });
    try {
      model.collectActivations();
      model.evaluate(tokens);
      return imatrixFromStats((await readModelFile(f32)).header, model.activationStats(), { datasets: ['calib.txt'], chunkCount: 1, chunkSize: 40 });
    } finally {
      model.close();
    }
  }

  it('round-trips the GGUF imatrix format with llama.cpp names, and the reader accepts what the writer wrote', async () => {
    const m = await collected();
    const header = (await readModelFile(f32)).header;
    const e = header.firstDenseLayers;
    expect(m.entries.get(`blk.${e}.ffn_down_exps.weight`)!.mats).toBe(header.nExperts);
    expect([...m.entries.keys()]).toEqual([...m.entries.keys()].sort());
    const file = join(dir, 'round.imatrix.gguf');
    await writeImatrix(file, m);
    const back = await readImatrix(file);
    expect(back.format).toBe('gguf');
    expect(back.datasets).toEqual(['calib.txt']);
    expect([back.chunkCount, back.chunkSize]).toEqual([1, 40]);
    expect([...back.entries.keys()]).toEqual([...m.entries.keys()]);
    for (const [name, entry] of m.entries) {
      const b = back.entries.get(name)!;
      expect([b.cols, b.mats]).toEqual([entry.cols, entry.mats]);
      expect(b.sumSquares).toEqual(entry.sumSquares);
      expect(b.counts).toEqual(entry.counts);
    }
    expect(checkImatrix(back, header)).toEqual({ matched: imatrixLayout(header).size, missing: [] });
    // An expert that saw no token takes its stack's pooled mean, never zeros.
    const name = `blk.${e}.ffn_gate.0.weight`;
    const entry = back.entries.get(`blk.${e}.ffn_gate_exps.weight`)!;
    const emptied = new Map(back.entries);
    const counts = Float32Array.from(entry.counts, (c, k) => (k === 0 ? 0 : c));
    const sums = Float32Array.from(entry.sumSquares, (v, i) => (i < entry.cols ? 0 : v));
    emptied.set(entry.name, { ...entry, counts, sumSquares: sums });
    const pooled = importanceFor({ ...back, entries: emptied }, header, name, entry.cols)!;
    const total = counts.reduce((a, b) => a + b, 0);
    for (let j = 0; j < entry.cols; j++) {
      let sum = 0;
      for (let k = 1; k < entry.mats; k++) sum += sums[k * entry.cols + j]!;
      expect(pooled[j]).toBeCloseTo(sum / total, 6);
      expect(pooled[j]).toBeGreaterThan(0);
    }
  });

  /** A GGUF imatrix of one entry, written by hand. */
  async function handMade(file: string, name: string, cols: number, mats: number, sums: number[], counts: number[], countsShape = [1, mats]): Promise<void> {
    const tensors = placeGgufTensors([
      { name: `${name}.counts`, ne: countsShape, type: GgmlType.F32 },
      { name: `${name}.in_sum2`, ne: [cols, mats], type: GgmlType.F32 },
    ]);
    const header = encodeGgufHeader(new Map([['general.type', gguf.str('imatrix')]]), tensors);
    const data = Buffer.alloc(tensors[1]!.offset + tensors[1]!.bytes);
    Buffer.from(new Float32Array(counts).buffer).copy(data, tensors[0]!.offset);
    Buffer.from(new Float32Array(sums).buffer).copy(data, tensors[1]!.offset);
    await writeFile(file, Buffer.concat([header, data]));
  }

  it('refuses a NaN, a shape mismatch, a wrong expert count and a missing pair, naming the tensor', async () => {
    const header = (await readModelFile(f32)).header;
    const e = header.firstDenseLayers;
    const file = join(dir, 'bad.imatrix.gguf');
    await handMade(file, 'blk.0.attn_q.weight', 2, 1, [1, NaN], [3]);
    await expect(readImatrix(file)).rejects.toThrow(`${file}: imatrix tensor blk.0.attn_q.weight.in_sum2 holds NaN at index 1`);
    await handMade(file, 'blk.0.attn_q.weight', 32, 1, Array(32).fill(1), [3]);
    await expect(readImatrix(file).then((m) => checkImatrix(m, header))).rejects.toThrow(
      `imatrix entry blk.0.attn_q.weight has shape [32, 1] (columns, matrices); the model's tensor needs [${header.dim}, 1]`,
    );
    const wrongExperts = header.nExperts - 1;
    await handMade(file, `blk.${e}.ffn_up_exps.weight`, header.dim, wrongExperts, Array(header.dim * wrongExperts).fill(1), Array(wrongExperts).fill(2));
    await expect(readImatrix(file).then((m) => checkImatrix(m, header))).rejects.toThrow(
      `imatrix entry blk.${e}.ffn_up_exps.weight has shape [${header.dim}, ${wrongExperts}] (columns, matrices); the model's tensor needs [${header.dim}, ${header.nExperts}]`,
    );
    await handMade(file, 'blk.0.attn_q.weight', 4, 2, Array(8).fill(1), [1, 1], [1, 3]);
    await expect(readImatrix(file)).rejects.toThrow('imatrix entry blk.0.attn_q.weight: in_sum2 has shape [4,2] but counts [1,3]');
    const onlyCounts = placeGgufTensors([{ name: 'blk.0.attn_q.weight.counts', ne: [1, 1], type: GgmlType.F32 }]);
    await writeFile(file, Buffer.concat([encodeGgufHeader(new Map([['general.type', gguf.str('imatrix')]]), onlyCounts), Buffer.alloc(32)]));
    await expect(readImatrix(file)).rejects.toThrow('imatrix tensor blk.0.attn_q.weight.counts has no blk.0.attn_q.weight.in_sum2');
    await writeFile(file, Buffer.concat([encodeGgufHeader(new Map([['general.type', gguf.str('model')]]), []), Buffer.alloc(0)]));
    await expect(readImatrix(file)).rejects.toThrow('general.type is "model", not "imatrix"');
  });


  it("reads llama.cpp's legacy .dat (values are means times ncall) and splits expert stacks by the model's columns", async () => {
    const header = (await readModelFile(f32)).header;
    const e = header.firstDenseLayers;
    const cols = header.dim;
    const name = `blk.${e}.ffn_gate_exps.weight`;
    const means = Float32Array.from({ length: cols * header.nExperts }, (_, i) => 0.5 + (i % 7));
    const ncall = 4;
    const nameBytes = Buffer.from(name);
    const parts = [Buffer.alloc(4), Buffer.alloc(4), nameBytes, Buffer.alloc(8), Buffer.from(Float32Array.from(means, (v) => v * ncall).buffer), Buffer.alloc(8), Buffer.from('kjv.txt')];
    parts[0]!.writeInt32LE(1);
    parts[1]!.writeInt32LE(nameBytes.length);
    parts[3]!.writeInt32LE(ncall, 0);
    parts[3]!.writeInt32LE(means.length, 4);
    parts[5]!.writeInt32LE(10, 0); // chunks
    parts[5]!.writeInt32LE(7, 4);
    const file = join(dir, 'legacy.dat');
    await writeFile(file, Buffer.concat(parts));
    const m = await readImatrix(file);
    expect(m.format).toBe('dat');
    expect(m.datasets).toEqual(['kjv.txt']);
    expect(m.chunkCount).toBe(10);
    const third = importanceFor(m, header, `blk.${e}.ffn_gate.3.weight`, cols)!;
    expect(Array.from(third)).toEqual(Array.from(means.subarray(3 * cols, 4 * cols)));
    await writeFile(file, Buffer.concat(parts).subarray(0, 80));
    await expect(readImatrix(file)).rejects.toThrow(`${file}: legacy imatrix ends inside ${name}'s values`);
  });

  it('imatrix, then convert and quantize --imatrix: same size as round-to-nearest, other bytes, and the imatrix recorded', async () => {
    const calibration = join(dir, 'calibration.txt');
    await writeFile(calibration, 'In the beginning God created the heaven and the earth. And the earth was without form, and void. '.repeat(20));
    const out = join(dir, 'cli.imatrix.gguf');
    const run = cli('imatrix', '--model', f32, '--text', calibration, '--ctx', '32', '--chunks', '3', '--out', out, '--threads', '2');
    expect(run.stderr).toContain('imatrix: 100.0% 96/96 tokens');
    expect(run.stdout).toContain(`wrote ${out}:`);
    expect(run.status).toBe(0);
    const m = await readImatrix(out);
    expect(m.chunkCount).toBe(3);
    expect(m.entries.get('blk.0.attn_q.weight')!.counts[0]).toBe(96);
    const rtn = join(dir, 'rtn.q40.m');
    const weighted = join(dir, 'imatrix.q40.m');
    await convert({ modelDir: checkpoint, outFile: rtn, weights: 'q40', tokenizerFile: null });
    const result = await convert({ modelDir: checkpoint, outFile: weighted, weights: 'q40', imatrix: out, tokenizerFile: null });
    expect(result.imatrix).toMatchObject({ file: 'cli.imatrix.gguf', datasets: ['calibration.txt'], chunks: 3, missing: 0 });
    const [a, b] = [await readFile(rtn), await readFile(weighted)];
    expect(b.length).toBe(a.length);
    expect(b.equals(a)).toBe(false);
    const quantized = await quantizeModel({ input: f32, output: join(dir, 'quantized.q40.m'), weights: 'q40', imatrix: out });
    expect(quantized.imatrix).toMatchObject({ file: 'cli.imatrix.gguf', chunks: 3 });
    expect((await readFile(join(dir, 'quantized.q40.m'))).equals(b)).toBe(true);
    await expect(convert({ modelDir: checkpoint, outFile: join(dir, 'x.q80.m'), weights: 'q80', imatrix: out })).rejects.toThrow('an imatrix weights the q40 scale search');
  });
});
