/**
 * Quality measurements on token ids: perplexity of a model over a text, and the KL divergence and
 * top-1 agreement of a model against a reference model (a quantized file against its f32 source).
 * The ids are cut into chunks of `contextLength` tokens, each evaluated from an empty cache; every
 * position after a chunk's first predicts the next id.
 */
import { type LoadedModel, logSumExp } from './index.js';

export interface ChunkNll {
  /** Index of the chunk's first token in the id sequence. */
  start: number;
  tokens: number;
  /** Mean negative log-likelihood (nats) of the chunk's predicted tokens. */
  nll: number;
}

export interface PerplexityResult {
  perplexity: number;
  /** Mean NLL over every predicted token. */
  nll: number;
  predicted: number;
  chunks: ChunkNll[];
}

function chunksOf(ids: readonly number[], contextLength: number): { start: number; ids: readonly number[] }[] {
  if (!Number.isInteger(contextLength) || contextLength < 2) throw new RangeError('context length must be at least 2 tokens');
  const chunks = [];
  for (let start = 0; start + 1 < ids.length; start += contextLength) chunks.push({ start, ids: ids.slice(start, start + contextLength) });
  if (chunks.length === 0) throw new RangeError('at least 2 tokens are needed to measure a prediction');
  return chunks;
}

export function perplexity(model: LoadedModel, ids: readonly number[], contextLength = Math.min(512, model.contextLength)): PerplexityResult {
  const chunks = model.chunkNll(ids, contextLength);
  let total = 0;
  let predicted = 0;
  for (const c of chunks) {
    total += c.nll * (c.tokens - 1);
    predicted += c.tokens - 1;
  }
  return { perplexity: Math.exp(total / predicted), nll: total / predicted, predicted, chunks };
}

export interface KldResult {
  /** Mean over positions of KL(reference || model), in nats. */
  meanKld: number;
  maxKld: number;
  /** Fraction of positions where both models' most likely next token is the same. */
  top1Agreement: number;
  positions: number;
  perplexity: number;
  referencePerplexity: number;
}

export function klDivergence(model: LoadedModel, reference: LoadedModel, ids: readonly number[], contextLength = Math.min(512, model.contextLength, reference.contextLength)): KldResult {
  if (model.vocabSize !== reference.vocabSize) {
    throw new Error(`${model.path} has ${model.vocabSize} vocabulary entries but ${reference.path} has ${reference.vocabSize}`);
  }
  const vocab = model.vocabSize;
  let sumKld = 0;
  let maxKld = 0;
  let agree = 0;
  let positions = 0;
  let nll = 0;
  let referenceNll = 0;
  for (const chunk of chunksOf(ids, contextLength)) {
    model.reset();
    reference.reset();
    const q = model.evaluate(chunk.ids, true);
    const p = reference.evaluate(chunk.ids, true);
    for (let t = 0; t + 1 < chunk.ids.length; t++) {
      // One pass over the logits with the two normalisers, rather than materialising both
      // log-softmaxes: at a 151,552-entry vocabulary this loop would otherwise outweigh the forward pass.
      const lq = q.subarray(t * vocab, (t + 1) * vocab);
      const lp = p.subarray(t * vocab, (t + 1) * vocab);
      const zq = logSumExp(lq);
      const zp = logSumExp(lp);
      let kld = 0;
      let argQ = 0;
      let argP = 0;
      for (let i = 0; i < vocab; i++) {
        const logP = lp[i]! - zp;
        kld += Math.exp(logP) * (logP - (lq[i]! - zq));
        if (lq[i]! > lq[argQ]!) argQ = i;
        if (lp[i]! > lp[argP]!) argP = i;
      }
      sumKld += kld;
      maxKld = Math.max(maxKld, kld);
      if (argQ === argP) agree++;
      positions++;
      nll -= lq[chunk.ids[t + 1]!]! - zq;
      referenceNll -= lp[chunk.ids[t + 1]!]! - zp;
    }
  }
  return {
    meanKld: sumKld / positions,
    maxKld,
    top1Agreement: agree / positions,
    positions,
    perplexity: Math.exp(nll / positions),
    referencePerplexity: Math.exp(referenceNll / positions),
  };
}
