/**
 * What the imatrix and the output head's type buy on the committed trained model
 * (models/reference/glm45-kjv-tiny): collects an imatrix over its calibration text (training chapters only),
 * converts q40 round-to-nearest and q40 with the imatrix at each --output-type, and measures each over the
 * held-out excerpt against the engine at f32 (mean KL, top-1 agreement, perplexity, file size). llama.cpp
 * (node-llama-cpp) runs GGUFs of the same weights over a prefix of the excerpt, for reference. Prints a
 * markdown table (docs/conversion-guide.md) and writes imatrix-metrics.json beside the checkpoint.
 *
 *   npm run build && node dist/scripts/imatrix-quality.js [--threads N] [--llama-cpp-tokens N | --no-llama-cpp]
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { convert } from '../converter/convert.js';
import type { WeightTypeName } from '../converter/dtypes.js';
import { convertToGguf } from '../converter/gguf.js';
import { imatrixFromStats, writeImatrix } from '../converter/imatrix.js';
import { readModelFile } from '../converter/model-file.js';
import { LoadedModel, klDivergence } from '../engine/index.js';
import { collectImatrix } from '../engine/imatrix.js';
import { REFERENCE_MODEL_DIR, REFERENCE_NAME, referenceExcerptIds } from '../pipeline/reference-model.js';
import { loadTokenizer } from '../tokenizer/load.js';
import { llamaCppAgreement, type Agreement } from './reference-model.js';

export const CALIBRATION_FILE = 'calibration-excerpt.txt';
export const IMATRIX_METRICS_FILE = 'imatrix-metrics.json';

export interface Row extends Agreement {
  name: string;
  bytes: number;
}

/** imatrix-metrics.json: the rows the script prints. */
export interface ImatrixMetrics {
  text: string;
  calibration: string;
  calibrationTokens: number;
  ctx: number;
  tokens: number;
  engine: Row[];
  llamaCpp: { tokens: number; rows: Row[] };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { threads: { type: 'string' }, 'llama-cpp-tokens': { type: 'string', default: '2560' }, 'no-llama-cpp': { type: 'boolean' } } });
  const threads = values.threads ? Number(values.threads) : undefined;
  const dir = REFERENCE_MODEL_DIR;
  const work = await mkdtemp(join(tmpdir(), 'glm-dllama-imatrix-'));
  try {
    const ids = await referenceExcerptIds(dir);
    const f32 = join(work, 'f32.m');
    await convert({ modelDir: dir, outFile: f32, weights: 'f32', threads, tokenizerFile: null });
    const reference = new LoadedModel(f32, { threads, device: 'cpu' });
    const ctx = reference.contextLength;

    const { tokenizer } = await loadTokenizer(dir);
    const calibration = tokenizer.encodeIds(await readFile(join(dir, CALIBRATION_FILE), 'utf8'), { addSpecialTokens: false });
    const collector = new LoadedModel(f32, { threads, device: 'cpu' });
    const run = await collectImatrix(collector, calibration, { ctx });
    collector.close();
    const imatrix = join(work, `${REFERENCE_NAME}.imatrix.gguf`);
    await writeImatrix(imatrix, imatrixFromStats((await readModelFile(f32)).header, run.stats, { datasets: [CALIBRATION_FILE], chunkCount: run.chunks, chunkSize: ctx }));
    console.log(`imatrix: ${run.chunks} chunks of ${ctx} tokens (${run.tokens} tokens of ${CALIBRATION_FILE}); evaluation: ${ids.length} tokens of heldout-excerpt.txt`);

    const rows: Row[] = [];
    const measure = (name: string, file: string, bytes: number, over: readonly number[]): Row => {
      const model = new LoadedModel(file, { threads, device: 'cpu' });
      const r = klDivergence(model, reference, over, ctx);
      model.close();
      const row = { name, bytes, perplexity: r.perplexity, meanKld: r.meanKld, maxKld: r.maxKld, top1Agreement: r.top1Agreement };
      console.log(`${name}: ${bytes} bytes, mean KL ${r.meanKld.toExponential(3)}, top-1 ${(100 * r.top1Agreement).toFixed(2)}%, perplexity ${r.perplexity.toFixed(4)}`);
      return row;
    };
    const files = new Map<string, string>();
    for (const outputType of ['q40', 'q80', 'f16'] as const satisfies readonly WeightTypeName[]) {
      for (const weighted of [false, true]) {
        const name = `q40${weighted ? ' + imatrix' : ''}, output ${outputType}`;
        const file = join(work, `${outputType}${weighted ? '-imatrix' : ''}.m`);
        await convert({ modelDir: dir, outFile: file, weights: 'q40', outputType, ...(weighted ? { imatrix } : {}), threads, tokenizerFile: null });
        files.set(name, file);
        rows.push(measure(name, file, (await stat(file)).size, ids));
      }
    }

    const llamaCpp: Row[] = [];
    const prefix = ids.slice(0, Number(values['llama-cpp-tokens']));
    if (!values['no-llama-cpp']) {
      // The same files read by llama.cpp over a prefix, beside the engine's figures over that prefix.
      for (const [name, outputType, weighted] of [
        ['Q4_0, output Q4_0 (ggml reference rounding)', 'q40', false],
        ['Q4_0, output Q8_0', 'q80', false],
        ['Q4_0 + imatrix, output Q4_0', 'q40', true],
        ['Q4_0 + imatrix, output Q8_0', 'q80', true],
      ] as const) {
        const gguf = join(work, `${outputType}${weighted ? '-imatrix' : ''}.gguf`);
        await convertToGguf({ modelDir: dir, outFile: gguf, weights: 'q40', outputType, ...(weighted ? { imatrix } : {}), threads });
        const a = await llamaCppAgreement(gguf, reference, prefix, ctx);
        llamaCpp.push({ name: `llama.cpp ${name}`, bytes: (await stat(gguf)).size, ...a });
        console.log(`llama.cpp ${name}: mean KL ${a.meanKld.toExponential(3)}, top-1 ${(100 * a.top1Agreement).toFixed(2)}% over ${prefix.length} tokens`);
        const engineName = `q40${weighted ? ' + imatrix' : ''}, output ${outputType}`;
        llamaCpp.push(measure(`engine ${engineName} (same ${prefix.length} tokens)`, files.get(engineName)!, (await stat(files.get(engineName)!)).size, prefix));
      }
    }
    reference.close();

    const table = (list: Row[]) => [
      '| file | size (bytes) | mean KL vs f32 | top-1 agreement | perplexity |',
      '|---|---:|---:|---:|---:|',
      ...list.map((r) => `| ${r.name} | ${r.bytes.toLocaleString('en-US')} | ${r.meanKld.toExponential(3)} | ${(100 * r.top1Agreement).toFixed(2)}% | ${r.perplexity.toFixed(3)} |`),
    ];
    console.log(['', ...table(rows), '', ...(llamaCpp.length ? table(llamaCpp) : [])].join('\n'));
    const metrics: ImatrixMetrics = { text: 'heldout-excerpt.txt', calibration: CALIBRATION_FILE, calibrationTokens: run.tokens, ctx, tokens: ids.length, engine: rows, llamaCpp: { tokens: prefix.length, rows: llamaCpp } };
    await writeFile(join(dir, IMATRIX_METRICS_FILE), `${JSON.stringify(metrics, null, 2)}\n`);
    console.log(`wrote ${join(dir, IMATRIX_METRICS_FILE)}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// Run as a program; imported by test/reference-model.test.ts for its constants.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
