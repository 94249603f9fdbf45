/**
 * verify-perplexity and the results JSON: perplexity, KL divergence and top-1 agreement against a
 * reference model or a baseline JSON, the gates that fail when a threshold is crossed, and the
 * validation of results files.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { LoadedModel, perplexity } from '../engine/index.js';
import { parseResults, parseResultsOf, type PerplexityResults } from '../pipeline/results.js';
import { DEFAULT_EVAL_TEXT, verifyPerplexity } from '../pipeline/verify.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { cli, f32AndQ40, removeDir, tempDir } from './helpers.js';

let dir: string;
let f32: string;
let q40: string;
let text: string;
const ctx = 32;

beforeAll(async () => {
  dir = await tempDir();
  ({ f32, q40 } = await f32AndQ40(dir));
  text = join(dir, 'text.txt');
  await writeFile(text, 'The tide rose by a hand in sixty years. 潮水在六十年里上涨了一掌。\nconst median = sorted[mid];\n'.repeat(3));
});
afterAll(async () => removeDir(dir));

async function textIds(file: string): Promise<number[]> {
  return (await loadTokenizer(join(dir, 'm.q40.t'))).tokenizer.encodeIds(await readFile(file, 'utf8'), { addSpecialTokens: false });
}

describe('against a reference model', () => {
  let r: PerplexityResults;
  beforeAll(async () => {
    r = await verifyPerplexity({ model: q40, reference: f32, text, ctx, threads: 2, maxPplIncrease: 50, maxKld: 1 });
  });

  it('measures perplexity as the engine does, and the reference on the same ids', async () => {
    const ids = await textIds(text);
    expect(r.tokens).toBe(ids.length);
    expect(r.ctx).toBe(ctx);
    expect(r.perplexity).toBeCloseTo(perplexity(new LoadedModel(q40, { threads: 2, contextLength: ctx }), ids, ctx).perplexity, 9);
    expect(r.referencePerplexity).toBeCloseTo(perplexity(new LoadedModel(f32, { threads: 2, contextLength: ctx }), ids, ctx).perplexity, 9);
    expect(r.kld).toBeGreaterThan(1e-5);
    expect(r.maxKld).toBeGreaterThanOrEqual(r.kld!);
    expect(r.top1Agreement).toBeGreaterThan(0.5);
    expect(r.top1Agreement).toBeLessThanOrEqual(1);
    expect(parseResults(JSON.stringify(r), 'r.json')).toEqual(r);
  });

  it('passes gates with room to spare and fails each one crossed', async () => {
    expect(r.passed).toBe(true);
    const [ppl, kld] = r.gates;
    expect(ppl).toMatchObject({ name: 'perplexity-increase', passed: true, limit: 50, unit: '%' });
    expect(ppl!.actual).toBeCloseTo(100 * (r.perplexity / r.referencePerplexity! - 1), 12);
    expect(kld).toMatchObject({ name: 'kld', passed: true, actual: r.kld, limit: 1, unit: 'nats' });

    const tight = await verifyPerplexity({ model: q40, reference: f32, text, ctx, threads: 2, maxPplIncrease: 50, maxKld: r.kld! / 2 });
    expect(tight.passed).toBe(false);
    expect(tight.gates.map((g) => g.passed)).toEqual([true, false]);
    expect(tight.gates[1]!.detail).toMatch(/mean KL divergence from .*m\.f32\.m over \d+ tokens \(largest at one position .*, top-1 agreement [\d.]+%\)/);
  });

  it('a model against itself: no divergence, full agreement, no increase', async () => {
    const same = await verifyPerplexity({ model: f32, reference: f32, text, ctx, threads: 2, maxPplIncrease: 0, maxKld: 0 });
    expect(same.kld).toBeCloseTo(0, 12);
    expect(same.top1Agreement).toBe(1);
    expect(same.gates.map((g) => g.actual)).toEqual([0, same.kld]);
    expect(same.passed).toBe(true);
  });
});

describe('against a baseline results JSON', () => {
  let baseline: string;
  beforeAll(async () => {
    baseline = join(dir, 'base.json');
    await writeFile(baseline, JSON.stringify(await verifyPerplexity({ model: f32, text, ctx, threads: 2 })));
  });

  it('compares perplexity only, and says why KL divergence was not measured', async () => {
    const base = parseResultsOf(await readFile(baseline, 'utf8'), baseline, 'perplexity');
    const r = await verifyPerplexity({ model: q40, reference: baseline, text, ctx, threads: 2, maxPplIncrease: 50, maxKld: 0.001 });
    expect(r.referencePerplexity).toBe(base.perplexity);
    expect(r.kld).toBeUndefined();
    expect(r.gates[0]).toMatchObject({ name: 'perplexity-increase', passed: true });
    expect(r.gates[1]).toMatchObject({ name: 'kld', passed: true, skipped: true });
    expect(r.gates[1]!.detail).toMatch(/not measured: the reference .*base\.json is a results JSON, which has no logits/);
    const increase = 100 * (r.perplexity / base.perplexity - 1);
    expect(increase).not.toBe(0);
    const crossed = await verifyPerplexity({ model: q40, reference: baseline, text, ctx, threads: 2, maxPplIncrease: increase / 2 });
    expect(increase).toBeGreaterThan(0); // q40 predicts this text a little worse than f32
    expect(crossed.passed).toBe(false);
    expect(crossed.gates[0]!.actual).toBeCloseTo(increase, 12);
  });

  it('refuses a baseline measured on another text or chunking, or that is malformed', async () => {
    const other = join(dir, 'other.txt');
    await writeFile(other, 'Another text entirely, measured another day.');
    await expect(verifyPerplexity({ model: q40, reference: baseline, text: other, ctx, threads: 2 })).rejects.toThrow(/base\.json: field textSha256 differs from this run's text/);
    await expect(verifyPerplexity({ model: q40, reference: baseline, text, ctx: 16, threads: 2 })).rejects.toThrow(/base\.json: field ctx is 32 but this run uses 16/);
    const broken = join(dir, 'broken.json');
    await writeFile(broken, JSON.stringify({ ...JSON.parse(await readFile(baseline, 'utf8')), perplexity: 'high' }));
    await expect(verifyPerplexity({ model: q40, reference: broken, text, ctx })).rejects.toThrow(/broken\.json: field perplexity must be number/);
    await expect(verifyPerplexity({ model: q40, reference: join(dir, 'none.json'), text, ctx })).rejects.toThrow(/none\.json: cannot read the perplexity results \(ENOENT\)/);
  });
});

it('without a reference: perplexity only, thresholds reported as not measured', async () => {
  const r = await verifyPerplexity({ model: q40, text, ctx, threads: 2, maxPplIncrease: 1, maxKld: 0.01 });
  expect(r.reference).toBeUndefined();
  expect(r.gates.map((g) => [g.name, g.skipped, g.detail])).toEqual([
    ['perplexity-increase', true, 'not measured: no reference given'],
    ['kld', true, 'not measured: no reference given'],
  ]);
  expect(r.passed).toBe(true);
});

it('refuses bad options and inputs by name', async () => {
  await expect(verifyPerplexity({ model: q40, text, maxKld: -1 })).rejects.toThrow(/max-kld must be a finite number >= 0, got -1/);
  await expect(verifyPerplexity({ model: q40, text: join(dir, 'none.txt') })).rejects.toThrow(/none\.txt: cannot read the evaluation text \(ENOENT\)/);
  await expect(verifyPerplexity({ model: join(dir, 'bare.m'), text })).rejects.toThrow(/bare\.m: no tokenizer beside it .*bare\.t/);
  await expect(verifyPerplexity({ model: q40, text, ctx: 100000 })).rejects.toThrow(/ctx 100000 is longer than .*m\.q40\.m's context of \d+ tokens/);
});

it('ships a bilingual evaluation text with code, used by default', async () => {
  const bytes = statSync(DEFAULT_EVAL_TEXT).size;
  expect(bytes).toBeGreaterThan(4000);
  expect(bytes).toBeLessThan(8192);
  const body = await readFile(DEFAULT_EVAL_TEXT, 'utf8');
  expect(body).toMatch(/[\u4e00-\u9fff]{20}/);
  expect(body).toMatch(/```ts\n[\s\S]+```/);
  const r = await verifyPerplexity({ model: q40, ctx: 128, threads: 2 });
  expect(r.text).toBe(DEFAULT_EVAL_TEXT);
  expect(r.tokens).toBe((await textIds(DEFAULT_EVAL_TEXT)).length);
});

describe('results JSON validation', () => {
  const gate = { name: 'kld', passed: true, actual: 0.01, limit: 0.05, unit: 'nats', detail: '' };
  const valid = { kind: 'perplexity', model: 'm', text: 't', tokens: 10, perplexity: 3.5, gates: [gate], passed: true };

  it('names the file and the field at fault', () => {
    expect(parseResults(JSON.stringify(valid), 'a.json')).toEqual(valid);
    expect(() => parseResults('{', 'a.json')).toThrow(/^a\.json: not valid JSON/);
    expect(() => parseResults('[]', 'a.json')).toThrow(/a\.json: expected a JSON object/);
    expect(() => parseResults(JSON.stringify({ ...valid, kind: 'speed' }), 'a.json')).toThrow(/a\.json: field kind is "speed"; expected one of quantize, perplexity, benchmark/);
    const { tokens: _, ...noTokens } = valid;
    expect(() => parseResults(JSON.stringify(noTokens), 'a.json')).toThrow(/a\.json: field tokens is missing/);
    expect(() => parseResults(JSON.stringify({ ...valid, gates: [{ ...gate, passed: 'yes' }] }), 'a.json')).toThrow(/a\.json: field gates\[0\]\.passed must be boolean/);
    expect(() => parseResults(JSON.stringify({ ...valid, gates: [{ ...gate, unit: undefined }] }), 'a.json')).toThrow(/field gates\[0\]\.unit is missing/);
    expect(() => parseResults(JSON.stringify({ ...valid, perplexity: 0.5 }), 'a.json')).toThrow(/field perplexity must be >= 1/);
    expect(() => parseResultsOf(JSON.stringify(valid), 'a.json', 'benchmark')).toThrow(/a\.json: field kind is "perplexity"; expected "benchmark" results here/);
  });

  it('keeps fields it does not know, for newer writers', () => {
    expect(parseResults(JSON.stringify({ ...valid, runner: 'ubuntu-24.04' }), 'a.json')).toMatchObject({ runner: 'ubuntu-24.04' });
  });
});

it('glm-dllama verify exits 1 when a gate fails', () => {
  const args = ['verify', '--model', q40, '--reference', f32, '--text', text, '--ctx', String(ctx), '--threads', '2'];
  const pass = cli(...args, '--max-kld', '1');
  expect(pass.status).toBe(0);
  expect(pass.stdout).toMatch(/^ {2}PASS {2}kld: .* nats \(limit 1 nats\)/m);
  expect(pass.stdout).toMatch(/passed$/m);
  const fail = cli(...args, '--max-kld', '0', '--json');
  expect(fail.status).toBe(1);
  expect(parseResults(fail.stdout, 'stdout')).toMatchObject({ passed: false, gates: [{ name: 'kld', passed: false }] });
});
