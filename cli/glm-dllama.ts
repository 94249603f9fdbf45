#!/usr/bin/env node
/** The glm-dllama command line: parses arguments, calls the library, prints results. */
import { Command, Option } from 'commander';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { convert, type ConvertProgress } from '../converter/convert.js';
import { convertToGguf } from '../converter/gguf.js';
import { CancelledError } from '../converter/errors.js';
import { WEIGHT_TYPE_NAMES, type WeightTypeName } from '../converter/dtypes.js';
import { FIXTURE_ARCHS, writeFixture, type FixtureArch, type FixtureDtype, type FixtureSize } from '../converter/fixture.js';
import { formatReport, inspectModel } from '../converter/inspect.js';
import { packageVersion } from '../engine/native.js';
import { defaultCacheDir } from '../pipeline/convert-model.js';
import { nonNegativeInt } from './args.js';
import { registerDemoCommand } from './demo-command.js';
import { checkpointDir, registerDownloadCommand } from './download-command.js';
import { registerEngineCommands } from './engine-commands.js';
import { registerPipelineCommands } from './pipeline-commands.js';
import { registerRegistryCommand } from './registry-command.js';
import { registerServeCommand } from './serve-command.js';
import { registerGatewayCommand } from './gateway-command.js';
import { registerPublishCommand } from './publish-command.js';
import { registerTokenizerCommands } from './tokenizer-commands.js';
import { lazyProgress } from './progress.js';

const MiB = 1024 * 1024;

function formatSeconds(seconds: number): string {
  return seconds < 10 ? `${seconds.toFixed(2)} s` : `${seconds.toFixed(1)} s`;
}

/** Ctrl-C cancels the running job cleanly (temporary outputs are removed) instead of killing it mid-write. */
function cancellation(): AbortSignal {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130); // a second Ctrl-C does not wait
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

/** Every command and option; exported for the generated command line reference (scripts/docs-generate.ts). */
export const program = new Command()
  .name('glm-dllama')
  .description('Convert GLM-family checkpoints to distributed-llama model files and run them')
  .version(packageVersion())
  .showHelpAfterError();

program
  .command('fixture')
  .description('write a tiny deterministic GLM checkpoint (config, sharded safetensors, tokenizer)')
  .addOption(new Option('--arch <arch>', 'checkpoint layout').choices(FIXTURE_ARCHS).makeOptionMandatory())
  .requiredOption('--out <dir>', 'output directory')
  .option('--seed <n>', 'random seed; the same seed gives the same bytes', nonNegativeInt, 1)
  .addOption(new Option('--size <size>', 'tiny, small, or bench (~300M parameters)').choices(['tiny', 'small', 'bench']).default('tiny'))
  .addOption(new Option('--dtype <dtype>', 'tensor dtype').choices(['bf16', 'f16', 'f32']).default('bf16'))
  .option('--no-attention-bias', 'omit q/k/v biases (as GLM-4-32B-0414)')
  .option('--qk-norm', 'add per-head q/k norms (glm4moe, as GLM-4.5)', false)
  .action(async (o: { arch: FixtureArch; out: string; seed: number; size: FixtureSize; dtype: FixtureDtype; attentionBias: boolean; qkNorm: boolean }) => {
    const progress = lazyProgress('fixture');
    const result = await progress.around(() =>
      writeFixture({
        arch: o.arch,
        outDir: o.out,
        seed: o.seed,
        size: o.size,
        dtype: o.dtype,
        attentionBias: o.attentionBias,
        qkNorm: o.qkNorm,
        onProgress: (done, total) => progress.update(done, total, ''),
      }),
    );
    console.log(
      `wrote ${o.size} ${o.arch} checkpoint to ${result.outDir}: ${result.tensors} tensors, ${(result.parameters / 1e6).toFixed(2)}M parameters, ${(result.bytes / MiB).toFixed(1)} MiB in ${result.files.length} files`,
    );
  });

program
  .command('convert')
  .description('convert a Hugging Face checkpoint directory to a .m model file (or a llama.cpp GGUF)')
  .requiredOption('--model <dir>', 'checkpoint directory (config.json + *.safetensors), or hf:owner/name[@revision] to download it first (token: HF_TOKEN)')
  .requiredOption('--out <file>', 'output file')
  .addOption(new Option('--weights <type>', 'weight type of the matrices').choices(WEIGHT_TYPE_NAMES).default('q40'))
  .addOption(new Option('--output-type <type>', 'weight type of the output head (default: that of --weights)').choices(WEIGHT_TYPE_NAMES))
  .addOption(new Option('--format <format>', 'm: distributed-llama model file; gguf: llama.cpp (q40/q80 become Q4_0/Q8_0)').choices(['m', 'gguf']).default('m'))
  .option('--threads <n>', 'encoder threads (default: all cores)', nonNegativeInt)
  .option('--imatrix <file>', 'importance matrix (GGUF imatrix or legacy .dat, from `glm-dllama imatrix` or llama.cpp) that weights the 4-bit scale search')
  .option('--tokenizer <file>', 'where to write the tokenizer (.t) (default: beside the model, when the checkpoint has one)')
  .option('--no-tokenizer', 'write no .t')
  .option('--mtp', "keep GLM-4.5's MTP (next-n) layer, the draft model of --draft (glm4moe checkpoints)")
  .option('--cache-dir <dir>', 'where hf: models are downloaded', defaultCacheDir())
  .option('--hub-url <url>', 'hub address for hf: models (default: HF_ENDPOINT, else https://huggingface.co)')
  .action(async (o: { model: string; out: string; weights: WeightTypeName; format: 'm' | 'gguf'; threads?: number; imatrix?: string; outputType?: WeightTypeName; tokenizer?: string | false; mtp?: boolean; cacheDir: string; hubUrl?: string }) => {
    const signal = cancellation();
    const modelDir = await checkpointDir(o.model, 'model', { cacheDir: o.cacheDir, ...(o.hubUrl ? { hubUrl: o.hubUrl } : {}) }, signal);
    const progress = lazyProgress('convert');
    const options = {
      modelDir,
      outFile: o.out,
      weights: o.weights,
      threads: o.threads,
      ...(o.imatrix ? { imatrix: o.imatrix } : {}),
      ...(o.outputType ? { outputType: o.outputType } : {}),
      tokenizerFile: o.tokenizer === false ? null : o.tokenizer,
      mtp: o.mtp ?? false,
      signal,
      onProgress: (p: ConvertProgress) => progress.update(p.bytesDone, p.bytesTotal, `tensor ${p.tensorsDone}/${p.tensorsTotal} ${p.tensor}`),
    };
    const result = await progress.around(() => (o.format === 'gguf' ? convertToGguf(options) : convert(options)));
    const h = result.header;
    console.log(
      [
        `converted ${'sourceArchitecture' in result ? `${result.sourceArchitecture} checkpoint ${o.model} -> GGUF (${result.architecture})` : `${result.architecture} checkpoint ${o.model} ->`} ${result.outFile}`,
        `  weights     ${o.weights}` +
          (h.outputType !== undefined ? `, output head ${o.outputType}` : '') +
          (result.imatrix ? ` weighted by ${result.imatrix.file} (${result.imatrix.datasets.join(', ') || 'no dataset name'}; ${result.imatrix.matched} matrices matched, ${result.imatrix.missing} without an entry)` : ''),
        `  model       dim ${h.dim}, ${h.nLayers} layers, ${h.nHeads} heads x ${h.headDim} (kv ${h.nKvHeads}), vocab ${h.vocabSize}` +
          (h.nExperts > 0 ? `, ${h.nExperts} experts top-${h.nActiveExperts} + ${h.nSharedExperts} shared` : '') +
          (h.mtpLayers > 0 ? ', + MTP layer' : ''),
        `  tensors     ${result.tensors}, ${(result.parameters / 1e6).toFixed(2)}M parameters`,
        `  size        ${(result.sourceBytes / MiB).toFixed(1)} MiB read -> ${(result.bytes / MiB).toFixed(1)} MiB written`,
        `  time        ${formatSeconds(result.seconds)} (${(result.sourceBytes / MiB / result.seconds).toFixed(1)} MiB/s of input)`,
        ...('tokenizer' in result && result.tokenizer
          ? [`  tokenizer   ${result.tokenizer.outFile} (${result.tokenizer.vocabSize} ids, stop ids ${result.tokenizer.stopIds.join(', ')}${result.tokenizer.hasChatTemplate ? ', chat template' : ''})`]
          : []),
      ].join('\n'),
    );
  });

program
  .command('inspect')
  .description('validate a .m file and print its header and tensor table')
  .argument('<file>', '.m model file')
  .option('--json', 'print one JSON object', false)
  .action(async (file: string, o: { json: boolean }) => {
    const report = await inspectModel(file);
    console.log(o.json ? JSON.stringify(report, null, 2) : formatReport(report));
  });

registerDemoCommand(program);
registerTokenizerCommands(program);
registerEngineCommands(program);
registerPipelineCommands(program);
registerServeCommand(program);
registerGatewayCommand(program);
registerPublishCommand(program, cancellation);
registerDownloadCommand(program, cancellation);
registerRegistryCommand(program);

// Parse only when run as the command (also through npm's bin link), not when imported for the reference.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  program.parseAsync().catch((e: unknown) => {
    process.stderr.write(`glm-dllama: ${e instanceof CancelledError ? '' : 'error: '}${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(e instanceof CancelledError ? 130 : 1);
  });
}
