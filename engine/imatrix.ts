/**
 * Importance-matrix collection: runs the model over calibration text in chunks of `ctx` tokens, each from
 * an empty cache, while the engine sums each weight matrix's squared inputs (engine/src/activation-stats.h).
 */
import type { ActivationStats, LoadedModel } from './index.js';
import { CancelledError } from '../converter/errors.js';

export interface ImatrixRunOptions {
  /** Tokens per chunk. */
  ctx: number;
  /** Chunks to run at most (default: every whole chunk of the text). */
  chunks?: number;
  onProgress?: (tokensDone: number, tokensTotal: number) => void;
  signal?: AbortSignal;
}

export interface ImatrixRun {
  stats: ActivationStats[];
  chunks: number;
  tokens: number;
}

export async function collectImatrix(model: LoadedModel, ids: readonly number[], o: ImatrixRunOptions): Promise<ImatrixRun> {
  if (o.ctx > model.contextLength) throw new RangeError(`--ctx ${o.ctx} is longer than the model's context of ${model.contextLength} tokens`);
  const whole = Math.floor(ids.length / o.ctx);
  const chunks = Math.min(whole, o.chunks ?? whole);
  if (chunks < 1) throw new RangeError(`the calibration text has ${ids.length} tokens, fewer than one chunk of ${o.ctx}; pass a longer text or a smaller --ctx`);
  model.collectActivations();
  const total = chunks * o.ctx;
  for (let c = 0; c < chunks; c++) {
    if (o.signal?.aborted) throw new CancelledError('imatrix');
    model.reset();
    await model.evaluateAsync(ids.slice(c * o.ctx, (c + 1) * o.ctx));
    o.onProgress?.((c + 1) * o.ctx, total);
  }
  return { stats: model.activationStats(), chunks, tokens: total };
}
