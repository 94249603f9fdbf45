/**
 * glm-dllama's inference library over the native engine (engine/src): load a .m model, evaluate token
 * ids, and the measurements built on that (log-probs, perplexity, KL divergence, speed). Text stays in
 * the tokenizer; everything here works on token ids.
 */
import { availableParallelism } from 'node:os';
import { native } from './native.js';
import { topIds } from './sampler.js';
import { GenerationSession } from './generate.js';

/** The native session: one model and its KV cache. */
interface NativeSession {
  evaluate(tokens: Int32Array, allLogits: boolean): Float32Array;
  evaluateAsync(tokens: Int32Array, allLogits: boolean): Promise<Float32Array>;
  perplexity(ids: Int32Array, contextLength: number): { start: number; tokens: number; nll: number }[];
  reset(): void;
  rewind(position: number): void;
  draftAsync(tokens: Int32Array): Promise<Float32Array>;
  draftGreedyAsync(tokens: Int32Array, k: number, vocabLimit: number): Promise<Int32Array>;
  readonly mtpPosition: number;
  readonly hasMtp: boolean;
  evaluateSlotsAsync(entries: { slot: number; tokens: Int32Array; allLogits: boolean }[]): Promise<Float32Array>;
  slotPosition(slot: number): number;
  rewindSlot(slot: number, position: number): void;
  readonly slots: number;
  readonly position: number;
  readonly contextLength: number;
  readonly threads: number;
  readonly header: { vocabSize: number; maxSeqLen: number; nLayers: number; dim: number; nKvHeads: number; headDim: number };
  readonly traffic: NodeTraffic[];
  close(): void;
  collectActivations(): void;
  activationStats(): ActivationStats[];
}

/** One weight matrix's collected input statistics (engine/src/activation-stats.h). */
export interface ActivationStats {
  /** The .m tensor name (docs/model-format.md). */
  name: string;
  /** Sum of x^2 of each input column over every token that went through the matrix. */
  sumSquares: Float64Array;
  tokens: number;
}

/** What the native side takes for a distributed run (see DistributedOptions). */
interface NativeDistributed {
  workers: string[];
  sync: SyncType;
  secret: string;
  experts: ExpertSplit;
  timeoutMs: number;
}

interface NativeInference {
  Engine: new (
    path: string,
    threads: number,
    contextLength: number,
    kvF16: boolean,
    distributed?: NativeDistributed,
    device?: string,
    cpuExperts?: string,
    mtp?: boolean | 'auto',
    slots?: number,
  ) => NativeSession;
  bench(
    path: string,
    options: { promptTokens?: number; genTokens?: number; threads: number; repeat: number; kvCache: KvCacheType; distributed?: NativeDistributed; device?: string; cpuExperts?: string },
  ): {
    prefillTps: number[];
    decodeTps: number[];
    peakRssBytes: number;
    threads: number;
    promptTokens: number;
    genTokens: number;
    contextLength: number;
    fittedToContext: boolean;
    prefillTraffic: NodeTraffic[];
    decodeTraffic: NodeTraffic[];
  };
  kernelPath(): string;
}

const inference = (): NativeInference => native() as unknown as NativeInference;

/** How partial sums travel between nodes: q80 blocks (default, dim/32 x 34 bytes a row) or exact f32. */
export type SyncType = 'q80' | 'f32';
/** MoE split: every expert sliced over all nodes (default), or whole experts placed on nodes. */
export type ExpertSplit = 'slice' | 'place';

/** Bytes a node has sent and received (totals, or per token in bench results). */
export interface NodeTraffic {
  sent: number;
  received: number;
}

/** Tensor parallelism over `glm-engine worker` processes (docs/distributed.md); this process is node 0. */
export interface DistributedOptions {
  /** host:port of each worker, in node order; none runs on this machine alone. */
  workers?: readonly string[];
  sync?: SyncType;
  /** Shared secret the workers were started with (default: GLM_ENGINE_SECRET, else none). */
  secret?: string;
  experts?: ExpertSplit;
  /** Longest wait for a worker's answer before the run fails (default 30000). */
  timeoutMs?: number;
}

const WORKER_ADDRESS = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/;

/** The options checked once, for the native side; undefined on one node. */
function nativeDistributed(o: DistributedOptions): NativeDistributed | undefined {
  if (!o.workers || o.workers.length === 0) return undefined;
  for (const w of o.workers) {
    const port = Number(WORKER_ADDRESS.exec(w)?.[2]);
    if (!(port >= 1 && port <= 65535)) throw new Error(`workers: "${w}" is not host:port`);
  }
  if (o.timeoutMs !== undefined && !(Number.isSafeInteger(o.timeoutMs) && o.timeoutMs > 0)) throw new Error('timeoutMs must be a positive integer');
  return {
    workers: [...o.workers],
    sync: o.sync ?? 'q80',
    secret: o.secret ?? process.env.GLM_ENGINE_SECRET ?? '',
    experts: o.experts ?? 'slice',
    timeoutMs: o.timeoutMs ?? 30000,
  };
}

export interface LoadOptions extends DistributedOptions {
  /** Worker threads (default: all cores). */
  threads?: number;
  /** KV cache length in tokens (default: the model's, at most 4096). */
  contextLength?: number;
  /** f32 (default, exact) or f16 keys and values: half the memory and the attention traffic. */
  kvCache?: KvCacheType;
  /** Where the forward pass runs: cpu, vulkan, vulkan:N or auto (default: the first GPU, else the CPU); docs/gpu.md. */
  device?: string;
  /** On a GPU: the routed experts of all (or the first N) MoE layers stay in system memory and run on the CPU. */
  cpuExperts?: 'all' | number;
  /**
   * Speculative decoding: tokens the model's MTP layer drafts per verification pass (0 disables). Unset:
   * DEFAULT_DRAFT with workers when the file has the MTP section (`convert --mtp`), else 0. Greater than
   * 0 on a file without it is an error.
   */
  draft?: number;
  /** KV slots: sequences whose caches are kept at once for batched decoding (default 1; evaluateSlots). */
  slots?: number;
}

/**
 * Drafts per pass with workers when a file has an MTP layer and none is asked for. Measured
 * (docs/performance.md): 3 gave the most tokens/s from 0.5 ms of link delay up; on one node the trained
 * tiny model decoded faster without drafting, so one node drafts only when asked.
 */
export const DEFAULT_DRAFT = 3;

export type KvCacheType = 'f32' | 'f16';

/** One sequence's part of a batched step: `tokens` appended to KV slot `slot`. */
export interface SlotTokens {
  slot: number;
  tokens: readonly number[] | Int32Array;
  /** The logits of every token (n x vocab) rather than of the last (vocab). */
  allLogits?: boolean;
}

/** Bytes the KV cache of one sequence takes: layers x context x KV width x 2 (keys and values) x 4 or 2. */
export function kvSlotBytes(header: { nLayers: number; nKvHeads: number; headDim: number }, contextLength: number, kvCache: KvCacheType = 'f32'): number {
  return header.nLayers * contextLength * header.nKvHeads * header.headDim * 2 * (kvCache === 'f16' ? 2 : 4);
}

/** A loaded model with its KV cache. Errors in the native code arrive as exceptions naming the file. */
export class LoadedModel {
  /** The context when none is given and the model's is longer (the native Session::kDefaultContext). */
  static readonly DEFAULT_CONTEXT = 4096;
  private readonly session: NativeSession;
  /** Drafts per verification pass that generation uses (0: no speculative decoding). */
  readonly draft: number;

  constructor(
    readonly path: string,
    options: LoadOptions = {},
  ) {
    if (options.draft !== undefined && !(Number.isInteger(options.draft) && options.draft >= 0)) throw new RangeError('draft must be a non-negative integer');
    this.session = new (inference().Engine)(
      path,
      options.threads ?? availableParallelism(),
      options.contextLength ?? 0,
      options.kvCache === 'f16',
      nativeDistributed(options),
      options.device,
      options.cpuExperts === undefined ? undefined : String(options.cpuExperts),
      options.draft !== undefined ? options.draft > 0 : options.workers?.length ? 'auto' : false,
      options.slots ?? 1,
    );
    this.draft = options.draft ?? (this.session.hasMtp ? DEFAULT_DRAFT : 0);
  }

  /** KV slots this model keeps (LoadOptions.slots); slot 0 is the one evaluate() works on. */
  get slots(): number {
    return this.session.slots;
  }

  /** Tokens slot `slot`'s cache holds. */
  slotPosition(slot: number): number {
    return this.session.slotPosition(slot);
  }

  /** Keeps the first `position` tokens of a slot's cache (0 empties it). */
  rewindSlot(slot: number, position: number): void {
    this.session.rewindSlot(slot, position);
  }

  /**
   * One evaluation step over several sequences (each slot at most once), off the event loop: every weight
   * matrix is read once for all their tokens. Returns each entry's logits (n x vocab for allLogits, else the
   * last token's); a sequence gets bit for bit the logits it gets evaluated alone.
   */
  async evaluateSlots(entries: readonly SlotTokens[]): Promise<Float32Array[]> {
    const all = await this.session.evaluateSlotsAsync(
      entries.map((e) => ({ slot: e.slot, tokens: e.tokens instanceof Int32Array ? e.tokens : Int32Array.from(e.tokens), allLogits: e.allLogits ?? false })),
    );
    const vocab = this.vocabSize;
    let at = 0;
    return entries.map((e) => {
      const rows = e.allLogits ? e.tokens.length : 1;
      const out = all.subarray(at * vocab, (at + rows) * vocab);
      at += rows;
      return out;
    });
  }

  /** The model's shape, for sizing caches (kvSlotBytes). */
  get header(): NativeSession['header'] {
    return this.session.header;
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
  /** Bytes each node has sent and received since loading (node 0 is this process; [] on one node). */
  get traffic(): NodeTraffic[] {
    return this.session.traffic;
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

  /** From now on, every evaluation adds its matmul inputs to fresh statistics (CPU, one node). */
  collectActivations(): void {
    this.session.collectActivations();
  }

  /** The statistics gathered since collectActivations(), per weight matrix in file order. */
  activationStats(): ActivationStats[] {
    return this.session.activationStats();
  }

  /** Frees the model and KV cache now; on a cluster, ends the session so the workers serve the next root. */
  close(): void {
    this.session.close();
  }

  /** Mean NLL of each chunk of `contextLength` ids, each evaluated from an empty cache (see metrics.ts). */
  chunkNll(ids: readonly number[], contextLength: number): { start: number; tokens: number; nll: number }[] {
    return this.session.perplexity(Int32Array.from(ids), contextLength);
  }

  /**
   * Feeds the MTP layer (speculative decoding; the model must be loaded with draft > 0): row j pairs the
   * token `tokens[j]` with the hidden state at MTP position mtpPosition + j, the main model's below
   * `position`, else (one token) the previous draft's. Resolves to the logits of the token after the last.
   */
  draftAsync(tokens: readonly number[]): Promise<Float32Array> {
    return this.session.draftAsync(Int32Array.from(tokens));
  }

  /** draftAsync(tokens), then k - 1 chained drafts of the argmax below vocabLimit, in one native call; resolves to the k ids. */
  draftGreedyAsync(tokens: readonly number[], k: number, vocabLimit = this.vocabSize): Promise<Int32Array> {
    return this.session.draftGreedyAsync(Int32Array.from(tokens), k, Math.min(vocabLimit, this.vocabSize));
  }

  /** Whether the MTP layer is loaded (draft > 0 asked for, or the default with workers on a file that has it). */
  get hasMtp(): boolean {
    return this.session.hasMtp;
  }

  /** How many positions the MTP layer's cache holds (each pairs a position's hidden state with the next token). */
  get mtpPosition(): number {
    return this.session.mtpPosition;
  }

  /** Keeps the first `position` tokens of the cache (a shared prefix) and drops the rest. */
  rewind(position: number): void {
    this.session.rewind(position);
  }
}

/** Natural-log softmax of one row of logits, accumulated in float64. */
/** log(sum(exp(x))), computed stably in float64 (indexed loops: iterators cost several times more here). */
export function logSumExp(x: Float32Array | readonly number[]): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i]! > max) max = x[i]!;
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i]! - max);
  return max + Math.log(sum);
}

export function logSoftmax(logits: Float32Array | number[]): Float64Array {
  const logZ = logSumExp(logits);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - logZ;
  return out;
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

export interface BenchOptions extends DistributedOptions {
  /** Prompt and generated lengths; unset, 512 and 128, or where the model's context is shorter a quarter of it generated and the rest prompt. */
  promptTokens?: number;
  genTokens?: number;
  threads?: number;
  repeat?: number;
  kvCache?: KvCacheType;
  /** As LoadOptions.device and LoadOptions.cpuExperts. */
  device?: string;
  cpuExperts?: 'all' | number;
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
  /** The model's context, and whether a default length was shortened to fit it. */
  context_length: number;
  fitted_to_context: boolean;
  kv_cache: KvCacheType;
  kernels: string;
  nodes: number;
  sync: SyncType;
  experts: ExpertSplit;
  /** Bytes per token each node sent and received (node 0 is the root); [] on one node. */
  prefill_bytes_per_token: NodeTraffic[];
  decode_bytes_per_token: NodeTraffic[];
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Prefill and decode speed: one prefill of promptTokens then genTokens greedy decodes, `repeat` times. */
export function bench(modelPath: string, options: BenchOptions = {}): BenchResult {
  const o = { threads: availableParallelism(), repeat: 3, kvCache: 'f32' as KvCacheType, ...options };
  const distributed = nativeDistributed(o);
  const r = inference().bench(modelPath, {
    promptTokens: o.promptTokens,
    genTokens: o.genTokens,
    threads: o.threads,
    repeat: o.repeat,
    kvCache: o.kvCache,
    distributed,
    device: o.device,
    ...(o.cpuExperts === undefined ? {} : { cpuExperts: String(o.cpuExperts) }),
  });
  return {
    prefill_tps: median(r.prefillTps),
    decode_tps: median(r.decodeTps),
    prefill_tps_all: r.prefillTps,
    decode_tps_all: r.decodeTps,
    peak_rss_bytes: r.peakRssBytes,
    threads: r.threads,
    prompt_tokens: r.promptTokens,
    gen_tokens: r.genTokens,
    context_length: r.contextLength,
    fitted_to_context: r.fittedToContext,
    kv_cache: o.kvCache,
    kernels: inference().kernelPath(),
    nodes: (distributed?.workers.length ?? 0) + 1,
    sync: distributed?.sync ?? 'q80',
    experts: distributed?.experts ?? 'slice',
    prefill_bytes_per_token: r.prefillTraffic,
    decode_bytes_per_token: r.decodeTraffic,
  };
}

export interface DraftBenchRun {
  draft: number;
  /** Median greedy decode tokens/s over the repeats, and each repeat's. */
  decode_tps: number;
  decode_tps_all: number[];
  /** Generated tokens per main-model pass (1 without drafting). */
  tokens_per_pass: number;
  /** Kept drafts / drafted tokens, overall and per draft position (0-based). */
  acceptance_rate: number;
  acceptance_at: number[];
}

/**
 * Greedy decode speed and acceptance of speculative decoding: for each draft count, `repeat` generations
 * of genTokens after `prompt` from an empty cache, through GenerationSession (what generate, chat and
 * serve run). The model must be loaded with draft > 0 for counts above 0.
 */
export async function benchDrafts(model: LoadedModel, prompt: readonly number[], genTokens: number, drafts: readonly number[], repeat = 3): Promise<DraftBenchRun[]> {
  const out: DraftBenchRun[] = [];
  for (const draft of drafts) {
    const tps: number[] = [];
    let generated = 0;
    let passes = 0;
    const draftedAt = new Array<number>(draft).fill(0);
    const acceptedAt = new Array<number>(draft).fill(0);
    for (let r = 0; r < repeat; r++) {
      const run = new GenerationSession(model).generate(prompt, { temperature: 0, maxTokens: genTokens, draft });
      let step = await run.next();
      while (!step.done) step = await run.next();
      const s = step.value;
      tps.push((s.generatedTokens - 1) / s.decodeSeconds);
      generated += s.generatedTokens - 1; // the first token comes from the prompt's pass
      passes += s.decodePasses;
      s.draftedAt.forEach((n, i) => (draftedAt[i]! += n));
      s.acceptedAt.forEach((n, i) => (acceptedAt[i]! += n));
    }
    const drafted = draftedAt.reduce((a, b) => a + b, 0);
    out.push({
      draft,
      decode_tps: median(tps),
      decode_tps_all: tps,
      tokens_per_pass: passes === 0 ? 0 : generated / passes,
      acceptance_rate: drafted === 0 ? 0 : acceptedAt.reduce((a, b) => a + b, 0) / drafted,
      acceptance_at: acceptedAt.map((a, i) => (draftedAt[i]! === 0 ? 0 : a / draftedAt[i]!)),
    });
  }
  return out;
}

export { perplexity, klDivergence, type PerplexityResult, type KldResult, type ChunkNll } from './metrics.js';
export { Sampler, Random, topIds, type SamplingOptions, type TokenDistribution } from './sampler.js';
export { GenerationSession, type GenerateOptions, type GenerationStats, type FinishReason } from './generate.js';
export { acceptDraft, type AcceptanceRule, type DraftVerdict } from './speculative.js';
export {
  BatchScheduler,
  benchConcurrency,
  MAX_DEFAULT_PARALLEL,
  planParallel,
  type BatchSchedulerOptions,
  type BatchStep,
  type ConcurrencyLevel,
  type ConcurrencyOptions,
  type ConcurrencyResult,
  type ParallelPlan,
} from './batch.js';
export { decodeTraffic, dllamaDecodeTraffic, syncRowBytes, type TrafficShape } from './distributed.js';
