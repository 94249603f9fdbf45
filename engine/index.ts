/**
 * glm-dllama's inference library over the native engine (engine/src): load a .m model, evaluate token
 * ids, and the measurements built on that (log-probs, perplexity, KL divergence, speed). Text stays in
 * the tokenizer; everything here works on token ids.
 */
import { availableParallelism } from 'node:os';
import { native } from './native.js';
import { topIds } from './sampler.js';

/** The native session: one model and its KV cache. */
interface NativeSession {
  evaluate(tokens: Int32Array, allLogits: boolean): Float32Array;
  evaluateAsync(tokens: Int32Array, allLogits: boolean): Promise<Float32Array>;
  perplexity(ids: Int32Array, contextLength: number): { start: number; tokens: number; nll: number }[];
  reset(): void;
  rewind(position: number): void;
  readonly position: number;
  readonly contextLength: number;
  readonly threads: number;
  readonly header: { vocabSize: number; maxSeqLen: number; nLayers: number; dim: number };
}

interface NativeInference {
  Engine: new (path: string, threads: number, contextLength: number, kvF16: boolean) => NativeSession;
  bench(path: string, options: { promptTokens: number; genTokens: number; threads: number; repeat: number; kvCache: KvCacheType }): {
    prefillTps: number[];
    decodeTps: number[];
    peakRssBytes: number;
    threads: number;
  };
  kernelPath(): string;
}

const inference = (): NativeInference => native() as unknown as NativeInference;

export interface LoadOptions {
  /** Worker threads (default: all cores). */
  threads?: number;
  /** KV cache length in tokens (default: the model's, at most 4096). */
  contextLength?: number;
  /** f32 (default, exact) or f16 keys and values: half the memory and the attention traffic. */
  kvCache?: KvCacheType;
}

export type KvCacheType = 'f32' | 'f16';

/** A loaded model with its KV cache. Errors in the native code arrive as exceptions naming the file. */
export class LoadedModel {
  private readonly session: NativeSession;

  constructor(
    readonly path: string,
    options: LoadOptions = {},
  ) {
    this.session = new (inference().Engine)(path, options.threads ?? availableParallelism(), options.contextLength ?? 0, options.kvCache === 'f16');
  }

  get vocabSize(): number {
    return this.session.header.vocabSize;
  }
  get contextLength(): number {
    return this.session.contextLength;
  }
  get position(): number {
    return this.session.position;
  }
  get threads(): number {
    return this.session.threads;
  }

  /** Evaluates tokens after those already in the cache; returns the logits of each (n x vocab) or of the last. */
  evaluate(tokens: readonly number[] | Int32Array, allLogits = false): Float32Array {
    return this.session.evaluate(tokens instanceof Int32Array ? tokens : Int32Array.from(tokens), allLogits);
  }

  /** The same as evaluate on a worker thread, leaving the event loop free (one evaluation at a time). */
  evaluateAsync(tokens: readonly number[] | Int32Array, allLogits = false): Promise<Float32Array> {
    return this.session.evaluateAsync(tokens instanceof Int32Array ? tokens : Int32Array.from(tokens), allLogits);
  }

  reset(): void {
    this.session.reset();
  }

  /** Mean NLL of each chunk of `contextLength` ids, each evaluated from an empty cache (see metrics.ts). */
  chunkNll(ids: readonly number[], contextLength: number): { start: number; tokens: number; nll: number }[] {
    return this.session.perplexity(Int32Array.from(ids), contextLength);
  }

  /** Keeps the first `position` tokens of the cache (a shared prefix) and drops the rest. */
  rewind(position: number): void {
    this.session.rewind(position);
  }
}

/** Natural-log softmax of one row of logits, accumulated in float64. */
export function logSoftmax(logits: Float32Array | number[]): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const logZ = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - logZ);
}

export interface PositionLogprobs {
  token: number;
  /** log p(next token = i) for every vocabulary id i, unless `top` was asked for. */
  logprobs?: number[];
  /** The `top` most likely next tokens, most likely first. */
  top?: { id: number; logprob: number }[];
}

/** For each input position, the distribution of the next token. */
export function logprobs(model: LoadedModel, tokens: readonly number[], top?: number): { positions: PositionLogprobs[] } {
  model.reset();
  const logits = model.evaluate(tokens, true);
  const vocab = model.vocabSize;
  const positions = tokens.map((token, t) => {
    const lp = logSoftmax(logits.subarray(t * vocab, (t + 1) * vocab));
    if (!top) return { token, logprobs: Array.from(lp) };
    const ids = topIds(lp, top);
    return { token, top: ids.map((id) => ({ id, logprob: lp[id]! })) };
  });
  return { positions };
}

export interface BenchOptions {
  promptTokens?: number;
  genTokens?: number;
  threads?: number;
  repeat?: number;
  kvCache?: KvCacheType;
}

export interface BenchResult {
  prefill_tps: number;
  decode_tps: number;
  prefill_tps_all: number[];
  decode_tps_all: number[];
  peak_rss_bytes: number;
  threads: number;
  prompt_tokens: number;
  gen_tokens: number;
  kv_cache: KvCacheType;
  kernels: string;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Prefill and decode speed: one prefill of promptTokens then genTokens greedy decodes, `repeat` times. */
export function bench(modelPath: string, options: BenchOptions = {}): BenchResult {
  const o = { promptTokens: 512, genTokens: 128, threads: availableParallelism(), repeat: 3, kvCache: 'f32' as KvCacheType, ...options };
  const r = inference().bench(modelPath, o);
  return {
    prefill_tps: median(r.prefillTps),
    decode_tps: median(r.decodeTps),
    prefill_tps_all: r.prefillTps,
    decode_tps_all: r.decodeTps,
    peak_rss_bytes: r.peakRssBytes,
    threads: r.threads,
    prompt_tokens: o.promptTokens,
    gen_tokens: o.genTokens,
    kv_cache: o.kvCache,
    kernels: inference().kernelPath(),
  };
}

export { perplexity, klDivergence, type PerplexityResult, type KldResult, type ChunkNll } from './metrics.js';
export { Sampler, Random, topIds, type SamplingOptions } from './sampler.js';
export { GenerationSession, type GenerateOptions, type GenerationStats, type FinishReason } from './generate.js';
