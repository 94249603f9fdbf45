/**
 * Text generation on token ids: evaluate the prompt (reusing whatever prefix the cache already holds),
 * then sample one token at a time until a stop id, the token budget or the context ends.
 */
import type { LoadedModel } from './index.js';
import { Sampler, type SamplingOptions } from './sampler.js';

export interface GenerateOptions extends SamplingOptions {
  maxTokens?: number;
  /** Generation ends after any of these ids (the id is yielded, so callers can see why it ended). */
  stopIds?: readonly number[];
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
    let generated = 0;
    let finishReason: FinishReason = 'length';
    while (generated < maxTokens) {
      const id = sampler.sample(logits);
      generated++;
      yield id;
      if (stop.has(id)) {
        finishReason = 'stop';
        break;
      }
      if (generated === maxTokens || this.model.position >= this.model.contextLength) break;
      logits = await this.model.evaluateAsync([id]);
      this.history.push(id);
    }
    return {
      promptTokens: promptIds.length,
      reusedTokens: shared,
      generatedTokens: generated,
      finishReason,
      prefillSeconds,
      decodeSeconds: (performance.now() - decodeStarted) / 1000,
    };
  }
}
