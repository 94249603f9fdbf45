/**
 * The verify-perplexity step: perplexity of a model over an evaluation text and, against a reference,
 * the quality gates. A reference .m (the f32 or previous model) gives the mean KL divergence, top-1
 * agreement and its own perplexity on the same ids; a reference results JSON (the base branch's run of
 * this step) gives only its perplexity, so the KL gate is reported as not measured.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { InputError } from '../converter/errors.js';
import { LoadedModel, klDivergence, perplexity } from '../engine/index.js';
import { packageRoot } from '../engine/native.js';
import { loadTokenizer, tokenizerPathFor } from '../tokenizer/index.js';
import { allPassed, checkGate, readResultsFile, skippedGate, threshold, type Gate, type PerplexityResults } from './results.js';

/** The evaluation text shipped with the package: English prose, some Chinese, and code, as GLM is bilingual and codes. */
export const DEFAULT_EVAL_TEXT: string = join(packageRoot(), 'pipeline', 'data', 'eval.txt');

/** Tokens per chunk unless told otherwise (each chunk is evaluated from an empty cache). */
const DEFAULT_CTX = 512;

export interface VerifyOptions {
  model: string;
  /** .t or tokenizer.json; default: the .t beside the model. */
  tokenizer?: string;
  /** UTF-8 text file; default DEFAULT_EVAL_TEXT. */
  text?: string;
  /** A .m model to compare with, or a PerplexityResults JSON (a file ending in .json). */
  reference?: string;
  /** Largest allowed perplexity increase over the reference, in percent. */
  maxPplIncrease?: number;
  /** Largest allowed mean KL divergence from the reference, in nats. */
  maxKld?: number;
  /** Tokens per chunk (default 512, at most the model's context). */
  ctx?: number;
  threads?: number;
  /** Where the forward pass runs (LoadOptions.device). */
  device?: string;
}

interface Measured {
  perplexity: number;
  referencePerplexity?: number;
  kld?: number;
  maxKld?: number;
  top1Agreement?: number;
}

const PPL_GATE = 'perplexity-increase';
const KLD_GATE = 'kld';

/** A reference results JSON is only comparable when it measured the same text, tokens and chunking. */
function checkComparable(reference: PerplexityResults, file: string, measured: { textSha256: string; tokens: number; ctx: number }): void {
  if (reference.textSha256 !== undefined && reference.textSha256 !== measured.textSha256) {
    throw new InputError(file, `field textSha256 differs from this run's text (${reference.text} then, another text now); rerun the baseline on the same text`);
  }
  if (reference.tokens !== measured.tokens) {
    throw new InputError(file, `field tokens is ${reference.tokens} but the text is ${measured.tokens} tokens now (another text or tokenizer); rerun the baseline`);
  }
  if (reference.ctx !== undefined && reference.ctx !== measured.ctx) {
    throw new InputError(file, `field ctx is ${reference.ctx} but this run uses ${measured.ctx} tokens per chunk; use the same --ctx`);
  }
}

export async function verifyPerplexity(o: VerifyOptions): Promise<PerplexityResults> {
  const maxPplIncrease = threshold('max-ppl-increase', o.maxPplIncrease);
  const maxKld = threshold('max-kld', o.maxKld);
  const textFile = o.text ?? DEFAULT_EVAL_TEXT;
  const bytes = await readFile(textFile).catch((e: NodeJS.ErrnoException) => {
    throw new InputError(textFile, `cannot read the evaluation text (${e.code ?? e.message})`);
  });
  const tokenizerFile = o.tokenizer ?? tokenizerPathFor(o.model);
  if (!o.tokenizer && !existsSync(tokenizerFile)) throw new InputError(o.model, `no tokenizer beside it (${tokenizerFile}); pass a tokenizer`);
  const ids = (await loadTokenizer(tokenizerFile)).tokenizer.encodeIds(bytes.toString('utf8'), { addSpecialTokens: false });
  if (ids.length < 2) throw new InputError(textFile, `the text is ${ids.length} tokens; at least 2 are needed to measure a prediction`);
  const textSha256 = createHash('sha256').update(bytes).digest('hex');

  const load = (path: string) => new LoadedModel(path, { threads: o.threads, contextLength: o.ctx ?? DEFAULT_CTX, ...(o.device ? { device: o.device } : {}) });
  const model = load(o.model);
  const ctx = model.contextLength;
  if (o.ctx !== undefined && o.ctx > ctx) throw new RangeError(`ctx ${o.ctx} is longer than ${o.model}'s context of ${ctx} tokens`);

  // A baseline JSON is read and checked before the evaluation, which is the slow part.
  const baseline = o.reference?.toLowerCase().endsWith('.json') ? await readResultsFile(o.reference, 'perplexity') : undefined;
  if (baseline) checkComparable(baseline, o.reference!, { textSha256, tokens: ids.length, ctx });
  let measured: Measured;
  if (o.reference && !baseline) {
    const r = klDivergence(model, load(o.reference), ids, ctx);
    measured = { perplexity: r.perplexity, referencePerplexity: r.referencePerplexity, kld: r.meanKld, maxKld: r.maxKld, top1Agreement: r.top1Agreement };
  } else {
    measured = { perplexity: perplexity(model, ids, ctx).perplexity, ...(baseline ? { referencePerplexity: baseline.perplexity } : {}) };
  }

  const gates: Gate[] = [];
  if (maxPplIncrease !== undefined) {
    const ref = measured.referencePerplexity;
    gates.push(
      ref === undefined
        ? skippedGate(PPL_GATE, maxPplIncrease, '%', 'not measured: no reference given')
        : checkGate(PPL_GATE, 100 * (measured.perplexity / ref - 1), maxPplIncrease, '%', `perplexity ${measured.perplexity.toFixed(4)} against ${ref.toFixed(4)} for ${basename(o.reference as string)}`),
    );
  }
  if (maxKld !== undefined) {
    gates.push(
      measured.kld !== undefined
        ? checkGate(KLD_GATE, measured.kld, maxKld, 'nats', `mean KL divergence from ${basename(o.reference as string)} over ${ids.length} tokens (largest at one position ${measured.maxKld!.toExponential(3)}, top-1 agreement ${(100 * measured.top1Agreement!).toFixed(2)}%)`)
        : skippedGate(
            KLD_GATE,
            maxKld,
            'nats',
            o.reference
              ? `not measured: the reference ${basename(o.reference as string)} is a results JSON, which has no logits to compare with; only perplexity was compared`
              : 'not measured: no reference given',
          ),
    );
  }
  return {
    kind: 'perplexity',
    model: o.model,
    text: textFile,
    textSha256,
    tokens: ids.length,
    ctx,
    ...measured,
    ...(o.reference ? { reference: o.reference } : {}),
    gates,
    passed: allPassed(gates),
  };
}
