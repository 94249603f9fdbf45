/**
 * Continuous batching over a model's KV slots: up to `model.slots` generations run at once, each in its
 * own slot, and every step evaluates one token of each decoding sequence plus a chunk of a new prompt
 * in one pass (LoadedModel.evaluateSlots), so the weights are read once per step for all of them. A
 * request that arrives joins at the next step; one that ends or is abandoned frees its slot at the step's
 * end. A sequence's tokens are those it would get alone: the engine's logits do not depend on the batch
 * and each sequence samples with its own Sampler.
 */
import { kvSlotBytes, type KvCacheType, type LoadedModel } from './index.js';
import { Sampler } from './sampler.js';
import type { FinishReason, GenerateOptions, GenerationStats } from './generate.js';

export interface BatchSchedulerOptions {
  /** Prompt tokens evaluated per step across new requests, so that running streams keep flowing (default 64). */
  prefillChunk?: number;
  /** Called after every step (for metrics). */
  onStep?: (step: BatchStep) => void;
}

export interface BatchStep {
  /** Sequences in the step, tokens evaluated, and those that were generated tokens (not prompt). */
  sequences: number;
  tokens: number;
  decodeTokens: number;
  seconds: number;
}

interface Slot {
  readonly index: number;
  /** The ids the slot's cache holds, in order. */
  history: number[];
  lastUsed: number;
  /** Given to a request (set at once, before its sequence is set up, so that no other request takes it). */
  taken: boolean;
  sequence?: Sequence;
}

interface Sequence {
  readonly slot: Slot;
  /** Cached ids the sequence starts from; the slot is rewound to them before its first step (the model is idle then). */
  keep?: number;
  /** Ids still to evaluate: the rest of the prompt, then the last sampled id. */
  pending: number[];
  prefilling: boolean;
  readonly sampler: Sampler;
  readonly stop: ReadonlySet<number>;
  readonly maxTokens: number;
  generated: number;
  /** Sampled ids not yet taken by the consumer; `end` once the sequence finished or failed. */
  readonly out: number[];
  end?: { finishReason: FinishReason } | { error: unknown };
  abandoned: boolean;
  /** In the step being evaluated: its slot is freed when the step ends. */
  inFlight: boolean;
  wake?: () => void;
  readonly started: number;
  firstToken?: number;
}

export class BatchScheduler {
  private readonly slots: Slot[];
  private readonly waiting: (() => void)[] = [];
  private readonly prefillChunk: number;
  private running = false;
  private clock = 0;

  constructor(
    readonly model: LoadedModel,
    private readonly options: BatchSchedulerOptions = {},
  ) {
    this.slots = Array.from({ length: model.slots }, (_, index) => ({ index, history: [], lastUsed: 0, taken: false }));
    this.prefillChunk = Math.max(1, options.prefillChunk ?? 64);
  }

  /** Slots holding a running generation (one whose caller left is not counted: its slot frees at the step's end). */
  get busy(): number {
    return this.slots.filter((s) => s.sequence && !s.sequence.abandoned).length;
  }
  get capacity(): number {
    return this.slots.length;
  }

  /**
   * Yields generated ids as they come; returns the stats. Waits for a free slot when all are busy (it
   * never fails for lack of one). A caller that stops iterating frees the slot. `onStart` learns how many
   * prompt ids the slot it got already holds, once it has one.
   */
  async *generate(promptIds: readonly number[], options: GenerateOptions = {}, onStart?: (reusedTokens: number) => void): AsyncGenerator<number, GenerationStats> {
    if (promptIds.length === 0) throw new RangeError('the prompt is empty');
    if (promptIds.length > this.model.contextLength) {
      throw new RangeError(`the prompt has ${promptIds.length} tokens; the context is ${this.model.contextLength}`);
    }
    const slot = await this.takeSlot(promptIds);
    // Keep the longest common prefix with what the slot holds; at least the last prompt id is evaluated.
    let shared = 0;
    const limit = Math.min(slot.history.length, promptIds.length - 1);
    while (shared < limit && slot.history[shared] === promptIds[shared]) shared++;
    slot.history = slot.history.slice(0, shared);
    onStart?.(shared);
    const seq: Sequence = {
      keep: shared,
      slot,
      pending: promptIds.slice(shared),
      prefilling: true,
      sampler: new Sampler(options),
      stop: new Set(options.stopIds ?? []),
      maxTokens: options.maxTokens ?? 256,
      generated: 0,
      out: [],
      abandoned: false,
      inFlight: false,
      started: performance.now(),
    };
    slot.sequence = seq;
    this.kick();
    try {
      for (;;) {
        if (seq.out.length > 0) {
          yield seq.out.shift()!;
          continue;
        }
        if (seq.end) break;
        await new Promise<void>((resolve) => (seq.wake = resolve));
        seq.wake = undefined;
      }
      if ('error' in seq.end) throw seq.end.error;
      const now = performance.now();
      return {
        promptTokens: promptIds.length,
        reusedTokens: shared,
        generatedTokens: seq.generated,
        finishReason: seq.end.finishReason,
        prefillSeconds: ((seq.firstToken ?? now) - seq.started) / 1000,
        decodeSeconds: (now - (seq.firstToken ?? now)) / 1000,
        // one pass per generated token after the first (which comes with the prompt's); no drafting here
        decodePasses: Math.max(0, seq.generated - 1),
        draftedTokens: 0,
        acceptedTokens: 0,
        draftedAt: [],
        acceptedAt: [],
      };
    } finally {
      seq.abandoned = true;
      if (!seq.inFlight) this.release(seq);
    }
  }

  /** The free slot sharing the longest prefix with the prompt, else the least recently used free one. */
  private async takeSlot(prompt: readonly number[]): Promise<Slot> {
    for (;;) {
      let best: Slot | undefined;
      let bestShared = -1;
      for (const s of this.slots) {
        if (s.taken) continue;
        let shared = 0;
        while (shared < s.history.length && shared < prompt.length && s.history[shared] === prompt[shared]) shared++;
        if (shared > bestShared || (shared === bestShared && best && s.lastUsed < best.lastUsed)) {
          best = s;
          bestShared = shared;
        }
      }
      if (best) {
        best.taken = true;
        best.lastUsed = ++this.clock;
        return best;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  /** Gives a slot back (its cache stays, for a conversation's next turn) and wakes the first waiting request. */
  private release(seq: Sequence): void {
    if (seq.slot.sequence !== seq) return;
    seq.slot.sequence = undefined;
    seq.slot.taken = false;
    this.waiting.shift()?.();
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    void this.loop().catch((error: unknown) => {
      // A bug, not a model error (those end only their step's sequences): end every generation with it.
      this.running = false;
      for (const s of this.slots) if (s.sequence) this.end(s.sequence, { error });
    });
  }

  private async loop(): Promise<void> {
    for (;;) {
      const active = this.slots.map((s) => s.sequence).filter((q): q is Sequence => q !== undefined && !q.end && !q.abandoned);
      if (active.length === 0) {
        this.running = false; // in the same turn as the check, so a request that comes later starts a new loop
        return;
      }
      // Every decoding sequence gives one token; new prompts share the prefill budget in slot order.
      let budget = this.prefillChunk;
      const step: { seq: Sequence; tokens: number[] }[] = [];
      for (const seq of active) {
        if (seq.keep !== undefined) {
          this.model.rewindSlot(seq.slot.index, seq.keep);
          seq.keep = undefined;
        }
        if (!seq.prefilling) {
          step.push({ seq, tokens: seq.pending.splice(0, 1) });
        } else if (budget > 0) {
          const tokens = seq.pending.splice(0, budget);
          budget -= tokens.length;
          step.push({ seq, tokens });
        }
      }
      const started = performance.now();
      for (const e of step) e.seq.inFlight = true;
      let logits: Float32Array[] | undefined;
      let failure: unknown;
      try {
        logits = await this.model.evaluateSlots(step.map((e) => ({ slot: e.seq.slot.index, tokens: e.tokens })));
      } catch (error) {
        failure = error;
      }
      if (!logits) {
        // The slots' caches are unknown now: start them clean.
        for (const e of step) {
          e.seq.slot.history = [];
          this.model.rewindSlot(e.seq.slot.index, 0);
          this.end(e.seq, { error: failure });
        }
      }
      for (const e of step) {
        e.seq.inFlight = false;
        if (e.seq.abandoned) this.release(e.seq);
      }
      if (!logits) continue;
      let decodeTokens = 0;
      step.forEach((e, i) => {
        const seq = e.seq;
        seq.slot.history.push(...e.tokens);
        if (!seq.prefilling) decodeTokens++;
        if (seq.pending.length > 0 || seq.abandoned || seq.end) return; // more prompt to go, or nobody listening
        seq.prefilling = false;
        const id = seq.sampler.sample(logits[i]!);
        seq.firstToken ??= performance.now();
        seq.generated++;
        seq.out.push(id);
        if (seq.stop.has(id)) this.end(seq, { finishReason: 'stop' });
        else if (seq.generated >= seq.maxTokens || this.model.slotPosition(seq.slot.index) >= this.model.contextLength) this.end(seq, { finishReason: 'length' });
        else seq.pending.push(id);
        seq.wake?.();
      });
      this.options.onStep?.({ sequences: step.length, tokens: step.reduce((n, e) => n + e.tokens.length, 0), decodeTokens, seconds: (performance.now() - started) / 1000 });
    }
  }

  private end(seq: Sequence, end: NonNullable<Sequence['end']>): void {
    seq.end ??= end;
    seq.wake?.();
  }
}

/** How many generations `serve` decodes together, and what their KV caches take. */
export interface ParallelPlan {
  parallel: number;
  /** Bytes of one slot's KV cache, and the budget the default was chosen within. */
  slotBytes: number;
  budgetBytes: number;
  /** Whether `parallel` is the default (else as asked). */
  chosen: boolean;
}

/** The default keeps at most this many slots: beyond it a step's attention outweighs what batching saves on small machines. */
export const MAX_DEFAULT_PARALLEL = 8;

/**
 * The slots for a model: as asked (refused when their caches exceed the free memory), else as many as
 * fit a quarter of the free memory, at most MAX_DEFAULT_PARALLEL; one with workers or with MTP drafts (batched
 * decoding does not run over tensor parallelism or speculative decoding yet).
 */
export function planParallel(
  header: { nLayers: number; nKvHeads: number; headDim: number },
  contextLength: number,
  kvCache: KvCacheType,
  o: { requested?: number; freeBytes: number; workers: number; draft?: number },
): ParallelPlan {
  const slotBytes = kvSlotBytes(header, contextLength, kvCache);
  const budgetBytes = Math.floor(o.freeBytes / 4);
  const drafting = (o.draft ?? 0) > 0;
  if (o.requested !== undefined) {
    if (o.requested > 1 && o.workers > 0) throw new Error(`--parallel ${o.requested}: batched decoding does not run with --workers yet; use --parallel 1`);
    if (o.requested > 1 && drafting) throw new Error(`--parallel ${o.requested}: speculative decoding (--draft) runs one generation at a time yet; use --parallel 1 or --draft 0`);
    if (o.requested * slotBytes > o.freeBytes) {
      throw new Error(
        `--parallel ${o.requested}: ${o.requested} KV caches of ${mib(slotBytes)} MiB (context ${contextLength}, ${kvCache}) exceed the ${mib(o.freeBytes)} MiB of free memory; use fewer, a shorter --ctx or --kv-cache f16`,
      );
    }
    return { parallel: o.requested, slotBytes, budgetBytes, chosen: false };
  }
  const fit = o.workers > 0 || drafting ? 1 : Math.floor(budgetBytes / Math.max(slotBytes, 1));
  return { parallel: Math.max(1, Math.min(MAX_DEFAULT_PARALLEL, fit)), slotBytes, budgetBytes, chosen: true };
}

const mib = (bytes: number) => Math.ceil(bytes / 2 ** 20);

export interface ConcurrencyOptions {
  /** Concurrent sequences at each level, e.g. [1, 2, 4, 8, 16]. */
  levels: readonly number[];
  promptTokens?: number;
  genTokens?: number;
  threads?: number;
  kvCache?: KvCacheType;
  /** Prompt tokens evaluated per step while the others decode (BatchSchedulerOptions.prefillChunk). */
  prefillChunk?: number;
}

export interface ConcurrencyLevel {
  concurrency: number;
  /** Generated tokens per second of all streams together, from the last stream's first token to the end of all. */
  aggregate_decode_tps: number;
  per_stream_decode_tps: number;
  /** From the moment all requests arrive to each one's first token: mean and worst, seconds. */
  ttft_mean_s: number;
  ttft_max_s: number;
}

export interface ConcurrencyResult {
  prompt_tokens: number;
  gen_tokens: number;
  threads: number;
  kv_cache: KvCacheType;
  levels: ConcurrencyLevel[];
}

/**
 * Throughput next to latency: at each level, that many greedy generations of deterministic prompts start
 * at once on one model (as many KV slots as the highest level) and run through the BatchScheduler.
 */
export async function benchConcurrency(modelPath: string, o: ConcurrencyOptions): Promise<ConcurrencyResult> {
  const { LoadedModel } = await import('./index.js');
  const promptTokens = o.promptTokens ?? 128;
  const genTokens = o.genTokens ?? 64;
  const most = Math.max(...o.levels);
  const kvCache = o.kvCache ?? 'f32';
  const model = new LoadedModel(modelPath, { threads: o.threads, contextLength: promptTokens + genTokens + 1, kvCache, slots: most });
  try {
    const levels: ConcurrencyLevel[] = [];
    let state = 12345;
    const prompt = () =>
      Array.from({ length: promptTokens }, () => {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        return (state >>> 8) % model.vocabSize;
      });
    for (const concurrency of o.levels) {
      const scheduler = new BatchScheduler(model, { prefillChunk: o.prefillChunk });
      const started = performance.now();
      // Fresh prompts, so that no slot reuses another level's cache.
      const streams = await Promise.all(
        Array.from({ length: concurrency }, async () => {
          const times: number[] = [];
          for await (const _id of scheduler.generate(prompt(), { temperature: 0, maxTokens: genTokens })) times.push(performance.now());
          return times;
        }),
      );
      levels.push(concurrencyLevel(started, streams));
    }
    return { prompt_tokens: promptTokens, gen_tokens: genTokens, threads: model.threads, kv_cache: kvCache, levels };
  } finally {
    model.close();
  }
}

/**
 * One level's figures from when each stream's tokens arrived (ms, performance.now()), all requests
 * sent at `started`: the decode window runs from the last first token to the last token, so that
 * prefill stays out of it. Also used for llama.cpp's streams in scripts/bench-throughput.ts.
 */
export function concurrencyLevel(started: number, streams: readonly (readonly number[])[]): ConcurrencyLevel {
  const from = Math.max(...streams.map((t) => t[0]!));
  const to = Math.max(...streams.map((t) => t.at(-1)!));
  const tokens = streams.reduce((n, t) => n + t.filter((x) => x > from).length, 0);
  const aggregate = to > from ? tokens / ((to - from) / 1000) : 0;
  const ttft = streams.map((t) => (t[0]! - started) / 1000);
  return {
    concurrency: streams.length,
    aggregate_decode_tps: aggregate,
    per_stream_decode_tps: aggregate / streams.length,
    ttft_mean_s: ttft.reduce((a, b) => a + b, 0) / ttft.length,
    ttft_max_s: Math.max(...ttft),
  };
}
