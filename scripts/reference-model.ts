/**
 * The quality reference figures of the committed trained model (models/reference/glm45-kjv-tiny): converts
 * its checkpoint to .m at f32, f16, q80 and q40 and to llama.cpp GGUFs at F32, Q8_0 and Q4_0, measures each
 * over the held-out excerpt (perplexity; mean/max KL divergence and top-1 agreement against the engine at f32),
 * refreshes the committed q80/q40 model files and writes engine-metrics.json beside the checkpoint.
 *
 *   npm run build && node dist/scripts/reference-model.js [--dir DIR] [--threads N] [--no-llama-cpp | --llama-cpp-tokens N]
 *
 * test/reference-model.test.ts checks the committed files and figures against a fresh conversion.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { convert } from '../converter/convert.js';
import { convertToGguf } from '../converter/gguf.js';
import { LoadedModel, klDivergence, logSumExp, perplexity } from '../engine/index.js';
import { REFERENCE_MODEL_DIR, REFERENCE_NAME, referenceExcerptIds } from '../pipeline/reference-model.js';
import { llamaCppLogprobs } from '../test/llama-cpp.js';

export const ENGINE_METRICS_FILE = 'engine-metrics.json';
/** The committed quantized files, `${REFERENCE_NAME}.${type}.m` with their `.t` beside them. */
export const COMMITTED_TYPES = ['q80', 'q40'] as const;

export interface Agreement {
  perplexity: number;
  meanKld: number;
  maxKld: number;
  top1Agreement: number;
}

export interface EngineMetrics {
  text: string;
  ctx: number;
  tokens: number;
  engine: { f32: { perplexity: number } } & Record<'f16' | 'q80' | 'q40', Agreement>;
  /** llama.cpp (node-llama-cpp) on GGUFs converted from the same checkpoint, against the engine at f32, over the first `tokens`. */
  llamaCpp?: { tokens: number } & Record<'F32' | 'Q8_0' | 'Q4_0', Agreement>;
}

/** The chunks the engine's perplexity uses: non-overlapping windows of ctx tokens, each from an empty cache. */
function chunks(ids: readonly number[], ctx: number): number[][] {
  const out: number[][] = [];
  for (let start = 0; start + 1 < ids.length; start += ctx) out.push(ids.slice(start, start + ctx));
  return out;
}

/** llama.cpp's figures against the engine's f32 logits over the same chunks. */
export async function llamaCppAgreement(gguf: string, reference: LoadedModel, ids: readonly number[], ctx: number): Promise<Agreement> {
  const vocab = reference.vocabSize;
  let nll = 0;
  let sumKld = 0;
  let maxKld = 0;
  let agree = 0;
  let positions = 0;
  for (const chunk of chunks(ids, ctx)) {
    reference.reset();
    const logits = reference.evaluate(chunk, true);
    const theirs = await llamaCppLogprobs(gguf, chunk, { timeoutMs: 600_000 });
    for (let t = 0; t + 1 < chunk.length; t++) {
      const row = logits.subarray(t * vocab, (t + 1) * vocab);
      const z = logSumExp(row);
      const q = theirs[t]!;
      let kld = 0;
      let argP = 0;
      let argQ = 0;
      for (let i = 0; i < vocab; i++) {
        const logP = row[i]! - z;
        // p > 0 where llama.cpp's float32 q underflowed would make the KL infinite; those terms are below 1e-30.
        if (Number.isFinite(q[i]!)) kld += Math.exp(logP) * (logP - q[i]!);
        if (row[i]! > row[argP]!) argP = i;
        if (q[i]! > q[argQ]!) argQ = i;
      }
      nll -= q[chunk[t + 1]!]!;
      sumKld += kld;
      maxKld = Math.max(maxKld, kld);
      if (argP === argQ) agree++;
      positions++;
    }
  }
  return { perplexity: Math.exp(nll / positions), meanKld: sumKld / positions, maxKld, top1Agreement: agree / positions };
}

export async function measureReferenceModel(dir: string, options: { llamaCpp: boolean; llamaCppTokens?: number; threads?: number; log?: (line: string) => void }): Promise<EngineMetrics> {
  const log = options.log ?? (() => {});
  const work = await mkdtemp(join(tmpdir(), 'glm-dllama-reference-'));
  try {
    const ids = await referenceExcerptIds(dir);
    const files: Record<string, string> = {};
    for (const weights of ['f32', 'f16', 'q80', 'q40'] as const) {
      files[weights] = join(work, `${REFERENCE_NAME}.${weights}.m`);
      await convert({ modelDir: dir, outFile: files[weights]!, weights, threads: options.threads });
    }
    const f32 = new LoadedModel(files.f32!, { threads: options.threads });
    const ctx = f32.contextLength;
    const engine = { f32: { perplexity: perplexity(f32, ids, ctx).perplexity } } as EngineMetrics['engine'];
    log(`f32: perplexity ${engine.f32.perplexity.toFixed(4)} over ${ids.length} tokens (ctx ${ctx})`);
    for (const weights of ['f16', 'q80', 'q40'] as const) {
      const r = klDivergence(new LoadedModel(files[weights]!, { threads: options.threads }), f32, ids, ctx);
      engine[weights] = { perplexity: r.perplexity, meanKld: r.meanKld, maxKld: r.maxKld, top1Agreement: r.top1Agreement };
      log(`${weights}: perplexity ${r.perplexity.toFixed(4)}, mean KL ${r.meanKld.toExponential(3)}, top-1 ${(100 * r.top1Agreement).toFixed(2)}%`);
    }
    const metrics: EngineMetrics = { text: 'heldout-excerpt.txt', ctx, tokens: ids.length, engine };
    if (options.llamaCpp) {
      // One llama.cpp process per chunk, so a prefix of the excerpt keeps this to minutes on a busy machine.
      const llamaIds = ids.slice(0, options.llamaCppTokens ?? ids.length);
      const llama = { tokens: llamaIds.length } as NonNullable<EngineMetrics['llamaCpp']>;
      for (const [ggml, weights] of [['F32', 'f32'], ['Q8_0', 'q80'], ['Q4_0', 'q40']] as const) {
        const gguf = join(work, `${REFERENCE_NAME}.${weights}.gguf`);
        await convertToGguf({ modelDir: dir, outFile: gguf, weights, threads: options.threads });
        llama[ggml] = await llamaCppAgreement(gguf, f32, llamaIds, ctx);
        log(`llama.cpp ${ggml}: perplexity ${llama[ggml].perplexity.toFixed(4)}, mean KL ${llama[ggml].meanKld.toExponential(3)}, top-1 ${(100 * llama[ggml].top1Agreement).toFixed(2)}%`);
      }
      metrics.llamaCpp = llama;
    }
    for (const weights of COMMITTED_TYPES) {
      await copyFile(files[weights]!, join(dir, `${REFERENCE_NAME}.${weights}.m`));
      await copyFile(files[weights]!.replace(/\.m$/, '.t'), join(dir, `${REFERENCE_NAME}.${weights}.t`));
    }
    await writeFile(join(dir, ENGINE_METRICS_FILE), `${JSON.stringify(metrics, null, 2)}\n`);
    return metrics;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, 'no-llama-cpp': { type: 'boolean' }, 'llama-cpp-tokens': { type: 'string' }, threads: { type: 'string' } } });
  const dir = values.dir ?? REFERENCE_MODEL_DIR;
  await measureReferenceModel(dir, {
    llamaCpp: !values['no-llama-cpp'],
    llamaCppTokens: values['llama-cpp-tokens'] ? Number(values['llama-cpp-tokens']) : undefined,
    threads: values.threads ? Number(values.threads) : undefined,
    log: (line) => console.log(line),
  });
  console.log(`wrote ${join(dir, ENGINE_METRICS_FILE)}`);
}

// Run as a program (node dist/scripts/reference-model.js); imported by the test for its constants and helpers.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
