/**
 * Speculative decoding with GLM-4.5's MTP layer (engine/generate.ts, engine/speculative.ts, engine/src/mtp.cpp):
 *  - on the trained reference model, greedy output with 1..4 drafts is token for token that of no drafting,
 *    on one node and on a root plus a worker;
 *  - after speculative steps (rejected drafts rolled back), the cache gives the log-probs of a run that never
 *    drafted, and the MTP layer's own cache those of a fresh one;
 *  - the MTP layer's log-probs match a float64 forward written from the architecture (test/reference-forward.ts);
 *  - with temperature, next-token frequencies with and without drafting agree by a chi-square test on a
 *    small-vocabulary fixture, and deliberately wrong acceptance rules fail that test.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { acceptDraft, DEFAULT_DRAFT, GenerationSession, LoadedModel, logSoftmax, type AcceptanceRule, type GenerateOptions } from '../engine/index.js';
import { startWorker, stopWorker, type WorkerProcess } from '../engine/worker-process.js';
import { createServer, EngineGenerator } from '../server/index.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { chiSquareHomogeneity } from './chi-square.js';
import { referenceMtpLogprobs } from './reference-forward.js';
import { cli, fixture, removeDir, tempDir } from './helpers.js';

const TRAINED = join('models', 'reference', 'glm45-kjv-tiny');
let dir: string;
let q80: string;
let f32: string;
let prompt: number[];

beforeAll(async () => {
  dir = await tempDir();
  q80 = join(dir, 'kjv.q80.m');
  f32 = join(dir, 'kjv.f32.m');
  await convert({ modelDir: TRAINED, outFile: q80, weights: 'q80', mtp: true });
  await convert({ modelDir: TRAINED, outFile: f32, weights: 'f32', mtp: true, tokenizerFile: null });
  const { tokenizer } = await loadTokenizer(join(dir, 'kjv.q80.t'));
  const text = await readFile(join(TRAINED, 'heldout-excerpt.txt'), 'utf8');
  prompt = tokenizer.encodeIds(text.slice(0, 400));
}, 60_000);
afterAll(async () => removeDir(dir));

async function generate(session: GenerationSession, ids: readonly number[], options: GenerateOptions) {
  const out: number[] = [];
  const run = session.generate(ids, options);
  let step = await run.next();
  for (; !step.done; step = await run.next()) out.push(step.value);
  return { ids: out, stats: step.value };
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

it('convert --mtp keeps the MTP section only when asked, and refuses a checkpoint without the layer', async () => {
  const plain = new LoadedModel(join(TRAINED, 'glm45-kjv-tiny.q80.m'), { threads: 1 });
  expect(plain.draft).toBe(0);
  expect(() => new LoadedModel(join(TRAINED, 'glm45-kjv-tiny.q80.m'), { threads: 1, draft: 2 })).toThrow(/has no MTP layer \(convert the checkpoint with --mtp/);
  // One node drafts only when asked (it measured slower on this model); the cluster default is DEFAULT_DRAFT.
  expect(new LoadedModel(q80, { threads: 1 }).draft).toBe(0);
  expect(new LoadedModel(q80, { threads: 1 }).hasMtp).toBe(false);
  const dense = await fixture(dir, { arch: 'glm4' });
  await expect(convert({ modelDir: dense, outFile: join(dir, 'dense.m'), weights: 'f32', mtp: true })).rejects.toThrow(/num_nextn_predict_layers.*no MTP layer for --mtp/);
});

it('greedy decoding with 1..4 drafts gives exactly the tokens of decoding without drafting, on one node', async () => {
  const model = new LoadedModel(q80, { threads: 2, contextLength: 512, draft: 4 });
  const plain = await generate(new GenerationSession(model), prompt, { temperature: 0, maxTokens: 60, draft: 0 });
  expect(plain.stats.decodePasses).toBe(59);
  for (const draft of [1, 2, 3, 4]) {
    const r = await generate(new GenerationSession(model), prompt, { temperature: 0, maxTokens: 60, draft });
    expect(r.ids).toEqual(plain.ids);
    // Drafting happened and saved passes: the trained MTP layer's guesses are mostly right.
    expect(r.stats.draftedTokens).toBeGreaterThan(0);
    expect(r.stats.acceptedTokens / r.stats.draftedTokens).toBeGreaterThan(0.3);
    expect(r.stats.decodePasses).toBeLessThan(59);
    expect(r.stats.draftedAt.length).toBe(draft);
  }
  model.close();
}, 60_000);

it('the server replies as without drafting and counts drafted and accepted tokens in /metrics', async () => {
  const tokenizer = await loadTokenizer(join(dir, 'kjv.q80.t'));
  const ask = async (draft: number) => {
    const server = await createServer({ generator: new EngineGenerator(new LoadedModel(q80, { threads: 2, contextLength: 256, draft }), tokenizer), processMetrics: false });
    const url = await server.listen(0);
    const body = { messages: [{ role: 'user', content: 'And God said, Let there be light' }], temperature: 0, max_tokens: 30 };
    const r = (await (await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as {
      choices: { message: { content: string } }[];
    };
    const metrics = await (await fetch(`${url}/metrics`)).text();
    await server.close();
    const counter = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1]);
    return { text: r.choices[0]!.message.content, drafted: counter('glm_dllama_draft_tokens_total'), accepted: counter('glm_dllama_draft_accepted_tokens_total') };
  };
  const plain = await ask(0);
  const drafted = await ask(3);
  expect(drafted.text).toBe(plain.text);
  expect(plain.drafted).toBe(0);
  expect(drafted.drafted).toBeGreaterThan(0);
  expect(drafted.accepted).toBeGreaterThan(0);
  expect(drafted.accepted).toBeLessThanOrEqual(drafted.drafted);
}, 60_000);

it('the CLI: generate reports drafts, bench --draft prints acceptance and tokens per pass, a file without the layer is refused', () => {
  const g = cli('generate', '--model', q80, '--prompt', 'And God said', '--temperature', '0', '--max-tokens', '20', '--draft', '2', '--threads', '1');
  expect(g.status).toBe(0);
  expect(g.stderr).toMatch(/20 generated at [\d.]+ tok\/s, \d+\/\d+ drafts accepted, [\d.]+ tokens per pass, finish: length/);
  const b = cli('bench', '--model', q80, '--threads', '1', '--draft', '2', '--prompt-tokens', '32', '--gen-tokens', '16', '--repeat', '1');
  expect(b.status).toBe(0);
  expect(b.stdout).toMatch(/speculative --draft 2: decode [\d.]+ tok\/s vs [\d.]+ without drafting \([\d.]+x, greedy, median of 1\)/);
  expect(b.stdout).toMatch(/acceptance [\d.]+% \(by draft position: \d+%, \d+%\), [\d.]+ tokens per pass/);
  const plain = join(TRAINED, 'glm45-kjv-tiny.q80.m');
  const refused = cli('generate', '--model', plain, '--prompt', 'x', '--draft', '2', '--threads', '1');
  expect(refused.status).not.toBe(0);
  expect(refused.stderr).toMatch(/glm45-kjv-tiny\.q80\.m: has no MTP layer \(convert the checkpoint with --mtp/);
}, 60_000);

describe('on a root and a worker', () => {
  let worker: WorkerProcess;
  beforeAll(async () => {
    worker = await startWorker();
  });
  afterAll(() => stopWorker(worker));

  it('greedy decoding with 1..4 drafts gives exactly the tokens of one node without drafting', async () => {
    const local = new LoadedModel(q80, { threads: 2, contextLength: 512 });
    const expected = await generate(new GenerationSession(local), prompt, { temperature: 0, maxTokens: 40, draft: 0 });
    local.close();
    const defaults = new LoadedModel(q80, { threads: 2, contextLength: 512, workers: [worker.address] });
    expect(defaults.draft).toBe(DEFAULT_DRAFT);
    defaults.close();
    const model = new LoadedModel(q80, { threads: 2, contextLength: 512, draft: 4, workers: [worker.address] });
    for (const draft of [0, 1, 2, 3, 4]) {
      const r = await generate(new GenerationSession(model), prompt, { temperature: 0, maxTokens: 40, draft });
      expect(r.ids).toEqual(expected.ids);
      if (draft > 0) expect(r.stats.acceptedTokens).toBeGreaterThan(0);
    }
    model.close();
  }, 60_000);
});

it('after drafts are rolled back, later log-probs (main and MTP) equal those of a run that never drafted', async () => {
  const model = new LoadedModel(f32, { threads: 2, contextLength: 512, draft: 4 });
  const session = new GenerationSession(model);
  // Sampled, so that drafts are rejected often and the cache is rolled back mid-pass.
  const r = await generate(session, prompt, { temperature: 1, topK: 50, topP: 1, seed: 7, maxTokens: 40, draft: 4 });
  expect(r.stats.acceptedTokens).toBeLessThan(r.stats.draftedTokens);
  const cached = [...prompt, ...r.ids].slice(0, model.position);
  const extra = [17, 300, 1200, 9];
  const after = model.evaluate(extra, true);
  const fresh = new LoadedModel(f32, { threads: 2, contextLength: 512, draft: 1 });
  const all = fresh.evaluate([...cached, ...extra], true);
  const vocab = model.vocabSize;
  expect(maxAbsDiff(after, all.subarray((all.length / vocab - extra.length) * vocab))).toBeLessThan(1e-4);
  // The MTP layer's cache: its next draft after the extra tokens equals that of the fresh session.
  const history = [...cached, ...extra];
  const drafted = await model.draftAsync([...history.slice(model.mtpPosition + 1), 42]);
  const freshDrafted = await fresh.draftAsync([...history.slice(1), 42]);
  expect(maxAbsDiff(drafted, freshDrafted)).toBeLessThan(1e-4);
  model.close();
  fresh.close();
}, 60_000);

it("the MTP layer's log-probs match a float64 forward of the MTP definition", async () => {
  const tokens = prompt.slice(0, 16);
  const reference = await referenceMtpLogprobs(f32, tokens);
  const model = new LoadedModel(f32, { threads: 2, contextLength: 64, draft: 1 });
  model.evaluate(tokens);
  let worst = 0;
  let top1 = 0;
  for (let i = 0; i + 1 < tokens.length; i++) {
    const lp = logSoftmax(await model.draftAsync([tokens[i + 1]!]));
    worst = Math.max(worst, maxAbsDiff(lp, reference[i]!));
    const best = (row: ArrayLike<number>) => Array.prototype.indexOf.call(row, Math.max(...Array.from(row)));
    if (best(lp) === best(reference[i]!)) top1++;
  }
  expect(worst).toBeLessThan(1e-4);
  expect(top1).toBe(tokens.length - 1);
  model.close();
}, 60_000);

describe.each([
  ['the small-vocabulary fixture (random weights, a poorly agreeing MTP layer)', 'small'],
  ['the trained model (an MTP layer that mostly agrees)', 'trained'],
])('with temperature the output distribution is unchanged, on %s', (_name, which) => {
  const SAMPLES = 2500;
  const ALPHA = 1e-3;
  let path: string;
  let start: number[];
  beforeAll(async () => {
    if (which === 'small') {
      // The glm4moe fixture: 576 ids, random weights.
      path = join(dir, 'small.f32.m');
      await convert({ modelDir: await fixture(dir, { arch: 'glm4moe', dtype: 'f32' }), outFile: path, weights: 'f32', mtp: true, tokenizerFile: null });
      start = [514, 516, 72, 299];
    } else {
      path = q80;
      start = prompt.slice(0, 12);
    }
  });

  /** Counts of the 2nd and 3rd generated ids over SAMPLES seeded generations (top-6 at temperature 1.5). */
  async function frequencies(draft: number, acceptance: AcceptanceRule = acceptDraft): Promise<Map<number, number>[]> {
    const model = new LoadedModel(path, { threads: 1, contextLength: 64, draft: 2 });
    const session = new GenerationSession(model);
    const counts = [new Map<number, number>(), new Map<number, number>()];
    for (let seed = 1; seed <= SAMPLES; seed++) {
      const { ids } = await generate(session, start, { temperature: 1.5, topK: 6, topP: 1, seed, maxTokens: 4, draft, acceptance });
      for (const at of [1, 2]) counts[at - 1]!.set(ids[at]!, (counts[at - 1]!.get(ids[at]!) ?? 0) + 1);
    }
    model.close();
    return counts;
  }

  let plain: Map<number, number>[];
  beforeAll(async () => {
    plain = await frequencies(0);
  }, 120_000);

  it('the chi-square helper gives textbook p-values', () => {
    // A 2 x 2 table with 60/40 against 40/60: statistic 8, one degree of freedom, p = erfc(2).
    const twoByTwo = chiSquareHomogeneity(new Map([[0, 60], [1, 40]]), new Map([[0, 40], [1, 60]]));
    expect(twoByTwo.statistic).toBeCloseTo(8, 6);
    expect(twoByTwo.degreesOfFreedom).toBe(1);
    expect(twoByTwo.pValue).toBeCloseTo(0.004678, 5);
    const same = chiSquareHomogeneity(new Map(Array.from({ length: 11 }, (_, k) => [k, 100])), new Map(Array.from({ length: 11 }, (_, k) => [k, 100])));
    expect(same.pValue).toBeCloseTo(1, 9);
  });

  it('speculative sampling agrees with plain sampling', async () => {
    const drafted = await frequencies(2);
    for (const at of [0, 1]) expect(chiSquareHomogeneity(plain[at]!, drafted[at]!).pValue).toBeGreaterThan(ALPHA);
  }, 120_000);

  const wrongRules: [string, AcceptanceRule][] = [['keeping every draft', () => ({ accepted: true })]];
  // On the fixture p and q share little mass, so max(0, p - q) is nearly p and this rule nearly the right one.
  if (which === 'trained') {
    wrongRules.push(['replacing a rejected draft from p instead of max(0, p - q)', (p, q, token, uniform) => {
      const verdict = acceptDraft(p, q, token, uniform);
      if (verdict.accepted) return verdict;
      let left = uniform();
      for (let i = 0; i < p.ids.length; i++) if ((left -= p.probs[i]!) < 0) return { accepted: false, token: p.ids[i]! };
      return { accepted: false, token: p.ids[p.ids.length - 1]! };
    }]);
  }
  it.each(wrongRules)('a wrong acceptance rule (%s) fails the test', async (_rule, rule) => {
    const drafted = await frequencies(2, rule);
    const worst = Math.min(...[0, 1].map((at) => chiSquareHomogeneity(plain[at]!, drafted[at]!).pValue));
    expect(worst).toBeLessThan(ALPHA);
  }, 120_000);
});
