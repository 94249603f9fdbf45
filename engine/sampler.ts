/**
 * Next-token sampling: greedy at temperature 0, else temperature, top-k and top-p (nucleus) over the
 * softmax, drawn from a seeded generator so a seed reproduces a generation.
 */
export interface SamplingOptions {
  /** 0 picks the most likely token. Default 0.8. */
  temperature?: number;
  /** Keep the smallest set of tokens whose probability reaches this mass (1 disables). Default 0.95. */
  topP?: number;
  /** Keep only the k most likely tokens (0 disables; past the vocabulary, all of it). Default 40. */
  topK?: number;
  seed?: number;
  /**
   * Only ids below this are drawn: a model's vocabulary is padded past its tokenizer's (GLM: 151552
   * rows, 151365 tokens), and a padding id has no text.
   */
  vocabLimit?: number;
}

/** xorshift128+ in 32-bit halves: small, fast, and the same on every platform. */
export class Random {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let x = seed >>> 0 || 0x9e3779b9;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next() | 1;
  }

  /** Uniform in [0, 1). */
  next(): number {
    // xoshiro128+
    const result = (this.s0 + this.s3) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result / 4294967296;
  }
}

/** A sampler's distribution over the candidates it keeps: ids with probabilities that sum to 1. */
export interface TokenDistribution {
  readonly ids: readonly number[];
  readonly probs: readonly number[];
}

export class Sampler {
  private readonly random: Random;
  private readonly temperature: number;
  private readonly topP: number;
  private readonly topK: number;
  private readonly vocabLimit: number;

  constructor(options: SamplingOptions = {}) {
    this.vocabLimit = options.vocabLimit ?? Infinity;
    this.temperature = options.temperature ?? 0.8;
    this.topP = options.topP ?? 0.95;
    this.topK = options.topK ?? 40;
    if (!(this.temperature >= 0)) throw new RangeError('temperature must be >= 0');
    if (!(this.topP > 0 && this.topP <= 1)) throw new RangeError('top-p must be in (0, 1]');
    if (!Number.isInteger(this.topK) || this.topK < 0) throw new RangeError('top-k must be a non-negative integer');
    this.random = new Random(options.seed ?? Date.now());
  }

  sample(allLogits: Float32Array): number {
    const kept = this.kept(allLogits);
    if (this.temperature === 0) return kept.ids[0]!;
    let draw = this.random.next() * kept.total;
    for (let i = 0; i < kept.weights.length; i++) {
      draw -= kept.weights[i]!;
      if (draw < 0) return kept.ids[i]!;
    }
    return kept.ids[kept.weights.length - 1]!;
  }

  /** True at temperature 0: every draw is the argmax. */
  get greedy(): boolean {
    return this.temperature === 0;
  }

  /** The distribution sample() draws from: the argmax alone at temperature 0, else the kept candidates. */
  distribution(allLogits: Float32Array): TokenDistribution {
    const { ids, weights, total } = this.kept(allLogits);
    return { ids: ids.slice(0, weights.length), probs: weights.map((w) => w / total) };
  }

  /** Draws an id from a distribution. */
  draw(d: TokenDistribution): number {
    let left = this.random.next();
    for (let i = 0; i < d.ids.length; i++) {
      left -= d.probs[i]!;
      if (left < 0) return d.ids[i]!;
    }
    return d.ids[d.ids.length - 1]!;
  }

  /** Uniform in [0, 1) from the sampler's seeded generator (speculative acceptance draws from it too). */
  uniform(): number {
    return this.random.next();
  }

  /** The candidates sample() keeps, best first, with their unnormalised weights and the weights' sum. */
  private kept(allLogits: Float32Array): { ids: number[]; weights: number[]; total: number } {
    const logits = allLogits.length > this.vocabLimit ? allLogits.subarray(0, this.vocabLimit) : allLogits;
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    if (this.temperature === 0) return { ids: [best], weights: [1], total: 1 };
    // Candidates by descending logit: the top k, or (top-k off) every token within 1e-10 of the best's
    // probability, which leaves the nucleus unchanged and spares sorting the whole vocabulary.
    const ids = this.topK > 0 ? topIds(logits, this.topK) : withinRatio(logits, logits[best]! - this.temperature * Math.log(1e10));
    const max = logits[ids[0]!]!;
    const weights = ids.map((id) => Math.exp((logits[id]! - max) / this.temperature));
    const total = weights.reduce((a, b) => a + b, 0);
    let kept = ids.length;
    let mass = 0;
    for (let i = 0; i < ids.length; i++) {
      mass += weights[i]! / total;
      if (mass >= this.topP) {
        kept = i + 1;
        break;
      }
    }
    const keptWeights = weights.slice(0, kept);
    return { ids, weights: keptWeights, total: keptWeights.reduce((a, b) => a + b, 0) };
  }
}

/**
 * Ids of the k largest logits, largest first (ties: lower id first); a k past the vocabulary keeps it all.
 * A heap of the best k seen so far, its worst at the root, costs O(V log k): k comes from requests, and an
 * insertion sort (O(V·k)) took 14 s per token at GLM's vocabulary with k = V.
 */
export function topIds(logits: ArrayLike<number>, k: number): number[] {
  const n = Math.min(k, logits.length);
  if (!(n > 0)) return [];
  // The heap holds ids and, beside them, their logits, so that a comparison reads no other memory.
  const ids = new Int32Array(n);
  const values = new Float64Array(n);
  /** Moves the entry (id, value) down from `at` to its place: below every entry that is worse. */
  const siftDown = (at: number, id: number, value: number) => {
    for (;;) {
      let child = 2 * at + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && (values[right]! < values[child]! || (values[right] === values[child] && ids[right]! > ids[child]!))) child = right;
      if (!(values[child]! < value || (values[child] === value && ids[child]! > id))) break;
      ids[at] = ids[child]!;
      values[at] = values[child]!;
      at = child;
    }
    ids[at] = id;
    values[at] = value;
  };
  for (let i = 0; i < n; i++) {
    ids[i] = i;
    values[i] = logits[i]!;
  }
  for (let at = (n >> 1) - 1; at >= 0; at--) siftDown(at, ids[at]!, values[at]!);
  for (let i = n; i < logits.length; i++) {
    // A later id ties worse than every id already held, so only a strictly larger logit enters.
    const value = logits[i]!;
    if (value > values[0]!) siftDown(0, i, value);
  }
  return Array.from(ids).sort((a, b) => logits[b]! - logits[a]! || a - b);
}

function withinRatio(logits: Float32Array, floor: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i]! >= floor) ids.push(i);
  return ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
}
