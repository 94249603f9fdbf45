/** The pipeline steps as commands: quantize, verify and benchmark. Thin: parse, call pipeline/, print; a failed gate exits 1. */
import { Command, Option } from 'commander';
import { WEIGHT_TYPE_NAMES, type WeightTypeName } from '../converter/dtypes.js';
import { DEFAULT_MAX_REGRESSION, DEFAULT_REPEAT, runBenchmark } from '../pipeline/benchmark.js';
import { quantizeModel } from '../pipeline/quantize.js';
import { readResultsFile, type Gate } from '../pipeline/results.js';
import { DEFAULT_EVAL_TEXT, verifyPerplexity } from '../pipeline/verify.js';
import { distributedOptions, fittedNote, withDistributed, type DistributedFlags } from './engine-commands.js';
import { engineThreads, nonNegative, positiveInt, positiveIntList } from './args.js';
import { lazyProgress } from './progress.js';

function formatGates(gates: readonly Gate[]): string[] {
  return gates.map(
    (g) => `  ${g.skipped ? 'SKIP' : g.passed ? 'PASS' : 'FAIL'}  ${g.name}: ${g.skipped ? '' : `${g.actual.toPrecision(4)} ${g.unit} (limit ${g.limit} ${g.unit}); `}${g.detail}`,
  );
}

/** Prints the results as JSON or as text, and makes the process exit 1 when a gate failed. */
function report(results: { passed: boolean; gates: Gate[] }, json: boolean, lines: string[]): void {
  console.log(json ? JSON.stringify(results, null, 2) : [...lines, ...formatGates(results.gates), results.passed ? 'passed' : 'FAILED'].join('\n'));
  if (!results.passed) process.exitCode = 1;
}

export function registerPipelineCommands(program: Command): void {
  program
    .command('quantize')
    .description('re-encode a .m model (f32/f16 to q40/q80/f16, or to f32 to dequantize) and report the error per tensor kind')
    .requiredOption('--model <file>', 'input .m model (f32 or f16; a q40/q80 model can only be dequantized to f32)')
    .requiredOption('--out <file>', 'output .m file')
    .addOption(new Option('--weights <type>', 'weight type of the matrices').choices(WEIGHT_TYPE_NAMES).makeOptionMandatory())
    .option('--threads <n>', 'encoder threads (default: all cores)', positiveInt)
    .option('--imatrix <file>', 'importance matrix (GGUF imatrix or legacy .dat) that weights the 4-bit scale search')
    .addOption(new Option('--output-type <type>', 'weight type of the output head (default: that of --weights)').choices(WEIGHT_TYPE_NAMES))
    .option('--json', 'print the results JSON', false)
    .action(async (o: { model: string; out: string; weights: WeightTypeName; threads?: number; imatrix?: string; outputType?: WeightTypeName; json: boolean }) => {
      const progress = lazyProgress('quantize');
      const r = await progress.around(() =>
        quantizeModel({ input: o.model, output: o.out, weights: o.weights, threads: o.threads, ...(o.imatrix ? { imatrix: o.imatrix } : {}), ...(o.outputType ? { outputType: o.outputType } : {}), onProgress: (done, total) => progress.update(done, total, '') }),
      );
      if (o.json) {
        console.log(JSON.stringify(r, null, 2));
        return;
      }
      const width = Math.max(...r.errors.map((e) => e.kind.length));
      console.log(
        [
          `quantized ${r.model} (${r.inputWeights}) -> ${r.output} (${r.weights}): ${r.bytes} bytes, sha256 ${r.sha256}`,
          ...(r.imatrix ? [`  imatrix ${r.imatrix.file} (${r.imatrix.datasets.join(', ') || 'no dataset name'}, ${r.imatrix.chunks} chunks): ${r.imatrix.matched} matrices matched, ${r.imatrix.missing} without an entry`] : []),
          `  ${'kind'.padEnd(width)}  tensors  RMSE        max |error|`,
          ...r.errors.map((e) => `  ${e.kind.padEnd(width)}  ${String(e.tensors).padStart(7)}  ${e.rmse.toExponential(3).padEnd(10)}  ${e.maxAbs.toExponential(3)}`),
        ].join('\n'),
      );
    });

  program
    .command('verify')
    .description('perplexity over an evaluation text, and quality gates against a reference model or a baseline results JSON')
    .requiredOption('--model <file>', '.m model file')
    .option('--tokenizer <file>', '.t or tokenizer.json (default: the .t beside the model)')
    .option('--text <file>', 'UTF-8 evaluation text', DEFAULT_EVAL_TEXT)
    .option('--reference <file>', 'reference .m model (KL divergence, top-1 agreement, perplexity) or a verify results .json (perplexity only)')
    .option('--max-ppl-increase <pct>', 'fail when perplexity rises more than this many percent over the reference', nonNegative)
    .option('--max-kld <nats>', 'fail when the mean KL divergence from the reference model exceeds this', nonNegative)
    .option('--ctx <n>', 'tokens per chunk', positiveInt)
    .option('--threads <n>', 'threads (default: all cores)', engineThreads)
    .option('--json', 'print the results JSON', false)
    .action(async (o: { model: string; tokenizer?: string; text: string; reference?: string; maxPplIncrease?: number; maxKld?: number; ctx?: number; threads?: number; json: boolean }) => {
      const r = await verifyPerplexity(o);
      const lines = [`perplexity ${r.perplexity.toFixed(4)} over ${r.tokens} tokens of ${r.text} (${r.ctx} per chunk)`];
      if (r.referencePerplexity !== undefined) lines.push(`reference  ${r.referencePerplexity.toFixed(4)} (${r.reference})`);
      if (r.kld !== undefined) lines.push(`KL divergence mean ${r.kld.toExponential(4)}, max ${r.maxKld!.toExponential(4)} nats; top-1 agreement ${(100 * r.top1Agreement!).toFixed(2)}%`);
      report(r, o.json, lines);
    });

  withDistributed(
    program
      .command('benchmark')
      .description('prefill and decode speed over repeated runs, cost per million tokens, and a noise-aware regression gate against a baseline')
      .requiredOption('--model <file>', '.m model file')
      .option('--prompt-tokens <n>', "prompt length (default: the baseline's, else 512 shortened to fit the model's context)", positiveInt)
      .option('--gen-tokens <n>', "generated tokens (default: the baseline's, else 128 shortened to fit the model's context)", positiveInt)
      .option('--threads <n>', 'threads (default: all cores)', engineThreads)
      .option('--repeat <k>', 'runs (at least 3 to compare with a baseline)', positiveInt, DEFAULT_REPEAT)
      .option('--baseline <file>', 'benchmark results JSON of the base branch, from the same kind of machine')
      .option('--max-regression <pct>', 'largest allowed slowdown of the median, in percent', nonNegative, DEFAULT_MAX_REGRESSION)
      .option('--cost-per-hour <usd>', "the machine's price in USD per hour, for the cost per million generated tokens", nonNegative)
      .option('--concurrency <levels>', 'also decode that many generations together at each level (e.g. 1,2,4,8): aggregate tokens/s and cost at the best', positiveIntList)
      .option('--json', 'print the results JSON', false),
  ).action(
    async (o: DistributedFlags & { model: string; promptTokens?: number; genTokens?: number; threads?: number; repeat: number; baseline?: string; maxRegression: number; costPerHour?: number; concurrency?: number[]; json: boolean }) => {
      const baseline = o.baseline ? await readResultsFile(o.baseline, 'benchmark') : undefined;
      const r = await runBenchmark({ ...o, baseline, distributed: distributedOptions(o) });
      if (r.fittedToContext) process.stderr.write(fittedNote(r.promptTokens, r.genTokens, r.contextLength!));
      const spread = (all: number[]) => `${Math.min(...all).toFixed(1)}-${Math.max(...all).toFixed(1)}`;
      report(r, o.json, [
        `prefill ${r.promptTokens} tokens: ${r.prefillTps.toFixed(1)} tok/s (median of ${r.prefillTpsAll.length}, range ${spread(r.prefillTpsAll)})`,
        `decode  ${r.genTokens} tokens: ${r.decodeTps.toFixed(1)} tok/s (range ${spread(r.decodeTpsAll)})`,
        `threads ${r.threads}, kernels ${r.kernels}, ${r.cpu}, peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
        ...(r.usdPerMillionTokens !== undefined ? [`cost    $${r.usdPerMillionTokens.toFixed(4)} per million generated tokens at $${r.costPerHour}/hour`] : []),
        ...(r.concurrency ?? []).map(
          (c) =>
            `batched ${c.concurrency}: aggregate ${c.aggregateDecodeTps.toFixed(1)} tok/s, per stream ${c.perStreamDecodeTps.toFixed(1)}, first token ${(1000 * c.ttftMeanSeconds).toFixed(0)} ms` +
            (c.usdPerMillionTokens !== undefined ? `, $${c.usdPerMillionTokens.toFixed(4)} per million` : ''),
        ),
        ...(r.best ? [`best    ${r.best.concurrency} streams at once: ${r.best.aggregateDecodeTps.toFixed(1)} tok/s` + (r.best.usdPerMillionTokens !== undefined ? `, $${r.best.usdPerMillionTokens.toFixed(4)} per million generated tokens` : '')] : []),
      ]);
    },
  );
}
