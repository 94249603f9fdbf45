/** Sampling, perplexity and KL divergence on the engine's outputs. */
import { LoadedModel, Sampler, klDivergence, logSoftmax, logprobs, perplexity, topIds } from '../engine/index.js';
import { f32AndQ40, removeDir, tempDir } from './helpers.js';

let dir: string;
let f32: string;
let q40: string;
const ids = Array.from({ length: 40 }, (_, i) => (i * 53 + 11) % 512);

beforeAll(async () => {
  dir = await tempDir();
  ({ f32, q40 } = await f32AndQ40(dir));
});
afterAll(async () => removeDir(dir));

describe('sampler', () => {
  const logits = Float32Array.from([0.5, 2, -1, 2, 1.5]);

  it('is greedy at temperature 0 and with top-k 1, and reproducible from a seed', () => {
    expect(new Sampler({ temperature: 0 }).sample(logits)).toBe(1);
    expect(new Sampler({ temperature: 1, topK: 1, seed: 3 }).sample(logits)).toBe(1);
    expect(new Sampler({ temperature: 1, topP: 1e-6, seed: 3 }).sample(logits)).toBe(1);
    const draw = (seed: number) => Array.from({ length: 50 }, ((s) => () => s.sample(logits))(new Sampler({ temperature: 1, topK: 0, topP: 1, seed })));
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it('draws in proportion to the softmax at temperature 1', () => {
    const sampler = new Sampler({ temperature: 1, topK: 0, topP: 1, seed: 42 });
    const counts = new Array<number>(logits.length).fill(0);
    const n = 20000;
    for (let i = 0; i < n; i++) counts[sampler.sample(logits)]!++;
    const p = Array.from(logSoftmax(logits), Math.exp);
    counts.forEach((c, i) => expect(Math.abs(c / n - p[i]!)).toBeLessThan(0.015));
  });

  it('keeps exactly the nucleus and the top k', () => {
    const sampler = new Sampler({ temperature: 1, topK: 2, topP: 1, seed: 1 });
    const seen = new Set(Array.from({ length: 500 }, () => sampler.sample(logits)));
    expect([...seen].sort()).toEqual([1, 3]);
    expect(topIds(logits, 3)).toEqual([1, 3, 4]);
  });

  /** The order topIds promises, by a plain sort of the whole vocabulary. */
  const sortedIds = (values: ArrayLike<number>, k: number) =>
    Array.from(values, (_, i) => i)
      .sort((a, b) => values[b]! - values[a]! || a - b)
      .slice(0, k);

  it('topIds equals a plain sort: random logits, many ties, ascending and descending order, any k', () => {
    let state = 12345;
    const random = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const cases: Float32Array[] = [
      Float32Array.from({ length: 1000 }, () => random() * 20 - 10),
      Float32Array.from({ length: 1000 }, () => Math.floor(random() * 5)), // ties everywhere
      Float32Array.from({ length: 300 }, (_, i) => i / 10), // ascending: every id beats the last
      Float32Array.from({ length: 300 }, (_, i) => -i), // descending
      new Float32Array(50), // all equal
    ];
    for (const values of cases) {
      for (const k of [1, 2, 7, 40, 299, 300, 1000, 5000]) expect(topIds(values, k)).toEqual(sortedIds(values, k));
    }
    expect(topIds(cases[0]!, 0)).toEqual([]);
    expect(topIds(new Float32Array(0), 5)).toEqual([]);
  });

  it('topIds reads O(V log k) logits, not O(V·k), when k is the whole vocabulary', () => {
    // A request's top_k reaches topIds on the event loop; counting reads measures the work without a clock.
    const size = 2048;
    const ascending = Float32Array.from({ length: size }, (_, i) => i);
    let reads = 0;
    const counted = new Proxy(ascending, {
      get(target, key) {
        if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
        return Reflect.get(target, key) as unknown;
      },
    });
    expect(topIds(counted, size)).toEqual(sortedIds(ascending, size));
    expect(reads).toBeLessThan(8 * size * Math.log2(size));
  });

  it('a top-k past the vocabulary keeps all of it', () => {
    const sampler = new Sampler({ temperature: 1, topK: Number.MAX_SAFE_INTEGER, topP: 1, seed: 5 });
    const seen = new Set(Array.from({ length: 500 }, () => sampler.sample(logits)));
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(topIds(logits, 2 ** 40)).toEqual([1, 3, 4, 0, 2]);
  });
});

describe('perplexity and KL divergence', () => {
  it('perplexity is exp of the mean NLL of the log-probs, chunk by chunk', () => {
    const model = new LoadedModel(f32, { threads: 2, contextLength: 64 });
    const result = perplexity(model, ids, 16);
    expect(result.chunks.map((c) => c.start)).toEqual([0, 16, 32]);
    let nll = 0;
    let count = 0;
    for (const start of [0, 16, 32]) {
      const chunk = ids.slice(start, start + 16);
      const lp = logprobs(model, chunk).positions;
      for (let t = 0; t + 1 < chunk.length; t++) {
        nll -= lp[t]!.logprobs![chunk[t + 1]!]!;
        count++;
      }
    }
    expect(result.predicted).toBe(count);
    expect(result.perplexity).toBeCloseTo(Math.exp(nll / count), 9);
    expect(() => perplexity(model, [1], 16)).toThrow(/at least 2 tokens/);
  });

  it('a model against itself has zero divergence; q40 against f32 a small one', () => {
    const a = new LoadedModel(f32, { threads: 2, contextLength: 64 });
    const b = new LoadedModel(f32, { threads: 2, contextLength: 64 });
    const same = klDivergence(a, b, ids, 20);
    expect(same.meanKld).toBeCloseTo(0, 12);
    expect(same.top1Agreement).toBe(1);
    const quantized = new LoadedModel(q40, { threads: 2, contextLength: 64 });
    const q = klDivergence(quantized, a, ids, 20);
    expect(q.positions).toBe(38);
    expect(q.meanKld).toBeGreaterThan(1e-5);
    expect(q.meanKld).toBeLessThan(0.1);
    expect(q.maxKld).toBeGreaterThanOrEqual(q.meanKld);
    expect(q.referencePerplexity).toBeCloseTo(perplexity(a, ids, 20).perplexity, 9);
  });
});
