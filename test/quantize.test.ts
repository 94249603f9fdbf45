/**
 * quantize: re-encoding a .m file gives the bytes a direct conversion gives, its error figures match
 * ones recomputed here from decode(), dequantizing is exact, and lossy or malformed inputs are refused
 * without leaving files behind.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { WeightType } from '../converter/dtypes.js';
import { encodeHeader } from '../converter/model-header.js';
import { readModelFile, readTensor } from '../converter/model-file.js';
import { modelTensors, placeTensors } from '../converter/model-layout.js';
import { quantizeModel } from '../pipeline/quantize.js';
import { parseResults, type QuantizeResults } from '../pipeline/results.js';
import { cli, filesIn, fixture, removeDir, tempDir } from './helpers.js';

let dir: string;
const m = (name: string) => join(dir, name);

beforeAll(async () => {
  dir = await tempDir();
  const checkpoint = await fixture(dir, { arch: 'glm4moe' });
  for (const weights of ['f32', 'f16', 'q40', 'q80'] as const) {
    // Only the f32 file gets its tokenizer beside it, for quantize to carry over.
    await convert({ modelDir: checkpoint, outFile: m(`direct.${weights}.m`), weights, ...(weights === 'f32' ? {} : { tokenizerFile: null }) });
  }
});
afterAll(async () => removeDir(dir));

/** The matrices of the fixture by kind, named independently of the code under test. */
function expectedKind(name: string): string | undefined {
  const kinds: [RegExp, string][] = [
    [/^blk\.\d+\.(attn_q|attn_k|attn_v|attn_output)\.weight$/, '$1'],
    [/^blk\.\d+\.(ffn_gate|ffn_up|ffn_down)\.weight$/, '$1'],
    [/^blk\.\d+\.(ffn_gate|ffn_up|ffn_down)\.\d+\.weight$/, '$1_exps'],
    [/^blk\.\d+\.(ffn_gate_shexp|ffn_up_shexp|ffn_down_shexp)\.weight$/, '$1'],
    [/^output\.weight$/, 'output'],
  ];
  for (const [pattern, kind] of kinds) if (pattern.test(name)) return name.replace(pattern, kind);
  return undefined;
}

async function recomputedErrors(input: string, output: string): Promise<Map<string, { tensors: number; rmse: number; maxAbs: number }>> {
  const a = await readModelFile(input);
  const b = await readModelFile(output);
  const sums = new Map<string, { tensors: number; squares: number; n: number; maxAbs: number }>();
  for (const t of a.tensors) {
    const kind = expectedKind(t.name);
    const x = await readTensor(a, t.name);
    const y = await readTensor(b, t.name);
    if (!kind) {
      expect(Buffer.from(y.buffer, y.byteOffset, y.byteLength).equals(Buffer.from(x.buffer, x.byteOffset, x.byteLength))).toBe(true); // kept f32, bit for bit
      continue;
    }
    const s = sums.get(kind) ?? { tensors: 0, squares: 0, n: 0, maxAbs: 0 };
    s.tensors++;
    x.forEach((v, i) => {
      const e = y[i]! - v;
      s.squares += e * e;
      s.maxAbs = Math.max(s.maxAbs, Math.abs(e));
    });
    s.n += x.length;
    sums.set(kind, s);
  }
  return new Map([...sums].map(([k, s]) => [k, { tensors: s.tensors, rmse: Math.sqrt(s.squares / s.n), maxAbs: s.maxAbs }]));
}

function expectErrorsMatch(results: QuantizeResults, expected: Map<string, { tensors: number; rmse: number; maxAbs: number }>): void {
  expect(results.errors.map((e) => e.kind).sort()).toEqual([...expected.keys()].sort());
  for (const e of results.errors) {
    const x = expected.get(e.kind)!;
    expect(e.tensors).toBe(x.tensors);
    expect(e.rmse).toBeCloseTo(x.rmse, 12);
    expect(e.maxAbs).toBe(x.maxAbs);
  }
}

describe.each(['q40', 'q80'] as const)('f32 -> %s', (weights) => {
  let results: QuantizeResults;
  beforeAll(async () => {
    results = await quantizeModel({ input: m('direct.f32.m'), output: m(`re.${weights}.m`), weights, threads: 2, chunkBytes: 4096 });
  });

  it('writes the bytes a direct conversion of the checkpoint writes, and says which', async () => {
    const written = await readFile(m(`re.${weights}.m`));
    expect(written.equals(await readFile(m(`direct.${weights}.m`)))).toBe(true);
    expect(results.bytes).toBe(written.length);
    expect(results.sha256).toBe(createHash('sha256').update(written).digest('hex'));
    expect(results).toMatchObject({ kind: 'quantize', model: m('direct.f32.m'), output: m(`re.${weights}.m`), weights, inputWeights: 'f32' });
    expect(parseResults(JSON.stringify(results), 'results.json')).toEqual(results);
  });

  it('carries the tokenizer over beside the new model', async () => {
    expect(results.tokenizer).toBe(m(`re.${weights}.t`));
    expect((await readFile(m(`re.${weights}.t`))).equals(await readFile(m('direct.f32.t')))).toBe(true);
  });

  it('reports per-kind RMSE and max |error| as recomputed from decode()', async () => {
    const expected = await recomputedErrors(m('direct.f32.m'), m(`re.${weights}.m`));
    expect(expected.get('ffn_gate_exps')!.tensors).toBe(2 * 8); // 2 MoE layers of 8 experts in the tiny fixture
    expectErrorsMatch(results, expected);
  });
});

it('q40 loses more than q80, and both lose something on every kind', async () => {
  const q40 = await quantizeModel({ input: m('direct.f32.m'), output: m('cmp.q40.m'), weights: 'q40', threads: 1 });
  const q80 = await quantizeModel({ input: m('direct.f32.m'), output: m('cmp.q80.m'), weights: 'q80', threads: 1 });
  for (const [i, e40] of q40.errors.entries()) {
    const e80 = q80.errors[i]!;
    expect(e80.kind).toBe(e40.kind);
    expect(e80.rmse).toBeGreaterThan(0);
    expect(e40.rmse).toBeGreaterThan(4 * e80.rmse);
    expect(e40.maxAbs).toBeGreaterThan(e80.maxAbs);
  }
});

it('quantizes an f16 model against its f16 values', async () => {
  const r = await quantizeModel({ input: m('direct.f16.m'), output: m('from16.q40.m'), weights: 'q40', threads: 2 });
  expect(r.inputWeights).toBe('f16');
  expectErrorsMatch(r, await recomputedErrors(m('direct.f16.m'), m('from16.q40.m')));
});

it('dequantizes q40 to f32 exactly', async () => {
  const r = await quantizeModel({ input: m('direct.q40.m'), output: m('deq.f32.m'), weights: 'f32' });
  expect(r.errors.length).toBe(14);
  expect(r.tokenizer).toBeUndefined(); // none beside the input
  expect(r.errors.every((e) => e.rmse === 0 && e.maxAbs === 0)).toBe(true);
  const q = await readModelFile(m('direct.q40.m'));
  const f = await readModelFile(m('deq.f32.m'));
  expect(f.header).toEqual({ ...q.header, weightType: WeightType.F32 });
  for (const name of ['blk.2.ffn_down.7.weight', 'output.weight', 'blk.0.attn_norm.weight']) {
    expect(Array.from(await readTensor(f, name))).toEqual(Array.from(await readTensor(q, name)));
  }
});

describe('refuses what it cannot do well, leaving no file behind', () => {
  const refuse = async (input: string, weights: 'f32' | 'f16' | 'q40' | 'q80', message: RegExp) => {
    const before = await filesIn(dir);
    await expect(quantizeModel({ input, output: m('refused.m'), weights })).rejects.toThrow(message);
    expect(await filesIn(dir)).toEqual(before);
  };

  it('re-quantizing a lossy file, or re-encoding to the same type', async () => {
    await refuse(m('direct.q40.m'), 'q80', /direct\.q40\.m: weights are q40, which is already quantized; re-encoding it as q80 would compound the error/);
    await refuse(m('direct.q80.m'), 'f16', /already quantized; re-encoding it as f16/);
    await refuse(m('direct.f32.m'), 'f32', /direct\.f32\.m: weights are already f32; nothing to do/);
  });

  it('files that are not models, and missing files', async () => {
    await writeFile(m('junk.m'), 'not a model');
    await refuse(m('junk.m'), 'q40', /junk\.m: .*bad magic/);
    await refuse(m('missing.m'), 'q40', /missing\.m: cannot open \(ENOENT\)/);
  });

  it('rows that q40 blocks cannot split', async () => {
    const { header } = await readModelFile(m('direct.f32.m'));
    const odd = { ...header, dim: 48 };
    const head = encodeHeader(odd);
    const tensors = placeTensors(modelTensors(odd), head.length);
    const last = tensors[tensors.length - 1]!;
    await writeFile(m('odd.f32.m'), Buffer.concat([head, Buffer.alloc(last.offset + last.bytes - head.length)]));
    await refuse(m('odd.f32.m'), 'q40', /odd\.f32\.m: tensor blk\.0\.attn_q\.weight: row length 48 is not a multiple of 32, which q40 blocks need/);
    expect((await quantizeModel({ input: m('odd.f32.m'), output: m('odd.f16.m'), weights: 'f16' })).weights).toBe('f16');
  });

  it('NaN weights, found by the encoder while streaming', async () => {
    await copyFile(m('direct.f32.m'), m('nan.f32.m'));
    const model = await readModelFile(m('nan.f32.m'));
    const target = model.tensors.find((t) => t.name === 'blk.1.ffn_up.3.weight')!;
    const handle = await open(m('nan.f32.m'), 'r+');
    await handle.write(new Uint8Array(new Float32Array([NaN]).buffer), 0, 4, target.offset + 8);
    await handle.close();
    await refuse(m('nan.f32.m'), 'q40', /nan\.f32\.m: tensor blk\.1\.ffn_up\.3\.weight holds 1 NaN or infinite values/);
  });
});

it('glm-dllama quantize prints the error table or the results JSON', () => {
  const text = cli('quantize', '--model', m('direct.f32.m'), '--out', m('cli.q80.m'), '--weights', 'q80');
  expect(text.status).toBe(0);
  expect(text.stdout).toMatch(/direct\.f32\.m \(f32\) -> .*cli\.q80\.m \(q80\): \d+ bytes, sha256 [0-9a-f]{64}/);
  expect(text.stdout).toMatch(/^ {2}ffn_down_exps +16 +\d\.\d{3}e-\d/m);
  const json = cli('quantize', '--model', m('direct.f32.m'), '--out', m('cli.q40.m'), '--weights', 'q40', '--json');
  expect(json.status).toBe(0);
  expect(parseResults(json.stdout, 'stdout')).toMatchObject({ kind: 'quantize', weights: 'q40' });
  const refused = cli('quantize', '--model', m('direct.q40.m'), '--out', m('cli.q80b.m'), '--weights', 'q80');
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(/already quantized/);
  expect(existsSync(m('cli.q80b.m'))).toBe(false);
});
