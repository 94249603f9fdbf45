/**
 * Text generation on token ids: evaluate the prompt (reusing whatever prefix the cache already holds),
 * then sample one token at a time until a stop id, the token budget or the context ends. With a model
 * loaded with draft > 0, each step is speculative: the MTP layer drafts up to k tokens, one batched
 * pass of the main model verifies them (speculative.ts decides which stay) and the cache is rolled back
 * past the rejected ones, so one pass yields between 1 and k + 1 tokens.
 */
import type { LoadedModel } from './index.js';
import { Sampler, type SamplingOptions, type TokenDistribution } from './sampler.js';
import { acceptDraft, type AcceptanceRule } from './speculative.js';

export interface GenerateOptions extends SamplingOptions {
  maxTokens?: number;
  /** Generation ends after any of these ids (the id is yielded, so callers can see why it ended). */
  stopIds?: readonly number[];
  /** Drafts per verification pass (default: the model's `draft`; 0 decodes one token per pass). */
  draft?: number;
  /** The acceptance rule of speculative decoding (default acceptDraft; the tests swap in wrong ones). */
  acceptance?: AcceptanceRule;
}

export type FinishReason = 'stop' | 'length';

export interface GenerationStats {
  promptTokens: number;
  /** Prompt tokens found in the cache from the previous call and not evaluated again. */
  reusedTokens: number;
  generatedTokens: number;
  finishReason: FinishReason;
  prefillSeconds: number;
  decodeSeconds: number;
  /** Main-model passes after the prompt's (one per generated token without drafting). */
  decodePasses: number;
  /** Tokens the MTP layer drafted, and how many of them verification kept. */
  draftedTokens: number;
  acceptedTokens: number;
  /** Per draft position i (0-based): drafts made there, and drafts kept there. */
  draftedAt: number[];
  acceptedAt: number[];
}

/**
 * The model's cache keeps what it evaluated; `history` is the id sequence it holds. A new prompt that
 * extends it (a chat's next turn) only evaluates the new part.
 */
export class GenerationSession {
  private history: number[] = [];

  constructor(readonly model: LoadedModel) {}

  /** Yields generated ids as they come (the evaluations run off the event loop); returns the stats. */
  async *generate(promptIds: readonly number[], options: GenerateOptions = {}): AsyncGenerator<number, GenerationStats> {
    if (promptIds.length === 0) throw new RangeError('the prompt is empty');
    const sampler = new Sampler(options);
    const stop = new Set(options.stopIds ?? []);
    const maxTokens = options.maxTokens ?? 256;
    const draft = options.draft ?? this.model.draft;
    if (!(Number.isInteger(draft) && draft >= 0)) throw new RangeError('draft must be a non-negative integer');
    if (draft > 0 && !this.model.hasMtp) throw new RangeError(`${this.model.path}: drafting needs the model loaded with draft > 0 (and its MTP layer)`);
    const accept = options.acceptance ?? acceptDraft;
    // Keep the longest common prefix; at least the last prompt token is evaluated to get its logits.
    let shared = 0;
    const limit = Math.min(this.history.length, promptIds.length - 1);
    while (shared < limit && this.history[shared] === promptIds[shared]) shared++;
    this.model.rewind(Math.min(shared, this.model.position));
    this.history = this.history.slice(0, shared);
    const started = performance.now();
    let logits = await this.model.evaluateAsync(promptIds.slice(shared));
    this.history.push(...promptIds.slice(shared));
    const prefillSeconds = (performance.now() - started) / 1000;
    const decodeStarted = performance.now();
    const stats = { decodePasses: 0, draftedTokens: 0, acceptedTokens: 0, draftedAt: new Array<number>(draft).fill(0), acceptedAt: new Array<number>(draft).fill(0) };
    let generated = 0;
    let finishReason: FinishReason = 'length';
    let next = sampler.sample(logits);
    generation: for (;;) {
      generated++;
      yield next;
      if (stop.has(next)) {
        finishReason = 'stop';
        break;
      }
      if (generated === maxTokens || this.model.position >= this.model.contextLength) break;
      // Drafts that fit both the budget (each round yields at most k + 1 ids) and the context.
      const k = Math.min(draft, maxTokens - generated - 1, this.model.contextLength - this.model.position - 1);
      stats.decodePasses++;
      if (k <= 0) {
        logits = await this.model.evaluateAsync([next]);
        this.history.push(next);
        next = sampler.sample(logits);
        continue;
      }
      // Draft: the MTP rows the cache lacks (hidden states up to the last position, paired with the
      // tokens after them, `next` last), then k - 1 chained single drafts.
      const feed = [...this.history.slice(this.model.mtpPosition + 1), next];
      const drafts: number[] = [];
      const proposals: TokenDistribution[] = [];
      if (sampler.greedy) {
        // Greedy drafts need no distribution here: the k steps run in one native call.
        for (const d of await this.model.draftGreedyAsync(feed, k, options.vocabLimit)) {
          drafts.push(d);
          proposals.push({ ids: [d], probs: [1] });
        }
      } else {
        let draftLogits = await this.model.draftAsync(feed);
        for (let i = 0; i < k; i++) {
          const q = sampler.distribution(draftLogits);
          const d = sampler.draw(q);
          drafts.push(d);
          proposals.push(q);
          if (i + 1 < k) draftLogits = await this.model.draftAsync([d]);
        }
      }
      // Verify: next and the drafts in one pass; row i holds the distribution of the token after them.
      const base = this.model.position;
      const rows = await this.model.evaluateAsync([next, ...drafts], true);
      const vocab = this.model.vocabSize;
      const row = (i: number) => rows.subarray(i * vocab, (i + 1) * vocab);
      this.history.push(next);
      let kept = 0;
      let replacement: number | undefined;
      for (; kept < k; kept++) {
        const verdict = accept(sampler.distribution(row(kept)), proposals[kept]!, drafts[kept]!, () => sampler.uniform());
        if (!verdict.accepted) {
          replacement = verdict.token;
          break;
        }
      }
      for (let i = 0; i < k; i++) stats.draftedAt[i]! += 1;
      for (let i = 0; i < kept; i++) stats.acceptedAt[i]! += 1;
      stats.draftedTokens += k;
      stats.acceptedTokens += kept;
      // The cache keeps next and the accepted drafts; the bonus token (all kept) or the replacement is the new next.
      this.model.rewind(base + 1 + kept);
      next = replacement ?? sampler.sample(row(k));
      for (let i = 0; i < kept; i++) {
        const id = drafts[i]!;
        this.history.push(id);
        generated++;
        yield id;
        if (stop.has(id)) {
          finishReason = 'stop';
          this.model.rewind(this.history.length);
          break generation;
        }
      }
    }
    return {
      promptTokens: promptIds.length,
      reusedTokens: shared,
      generatedTokens: generated,
      finishReason,
      prefillSeconds,
      decodeSeconds: (performance.now() - decodeStarted) / 1000,
      ...stats,
    };
  }
}
