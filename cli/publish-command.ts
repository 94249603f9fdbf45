/** `glm-dllama publish`: a converted model to DigitalOcean Spaces (pipeline/publish.ts). Thin: parse, publish, print. */
import { Command, Option } from 'commander';
import { parseAcl, publishModel, type Acl, type ModelFacts } from '../pipeline/publish.js';
import type { SpacesTarget } from '../pipeline/spaces.js';
import { nonNegative, repeatableList } from './args.js';
import { lazyProgress } from './progress.js';

/** The facts flags carry ModelFacts' names; model, quant and the converter version come from elsewhere. */
type PublishFlags = Omit<ModelFacts, 'model' | 'quant' | 'converterVersion'> & {
  files: string[];
  modelName: string;
  quant: string;
  bucket: string;
  region?: string;
  endpoint?: string;
  prefix: string;
  acl: Acl;
  promote: boolean;
  stagingPrefix?: string;
  partSizeMib?: number;
  json: boolean;
};

/** Keys come from the environment only, so that they never show in a process list or shell history. */
function credentials(env: NodeJS.ProcessEnv): Pick<SpacesTarget, 'accessKeyId' | 'secretAccessKey'> {
  const accessKeyId = env.SPACES_ACCESS_KEY_ID ?? env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.SPACES_SECRET_ACCESS_KEY ?? env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new Error('credentials: set SPACES_ACCESS_KEY_ID and SPACES_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)');
  }
  return { accessKeyId, secretAccessKey };
}

export function registerPublishCommand(program: Command, signal: () => AbortSignal): void {
  program
    .command('publish')
    .description('upload model files to DigitalOcean Spaces (or any S3 endpoint): staging, sha256 verification, then promotion to <prefix>/<model>/<quant>/')
    .requiredOption('--files <paths>', 'comma-separated files (.m -> model.m, .t -> tokenizer.t, others keep their name)', repeatableList)
    .requiredOption('--model-name <name>', 'model directory name, e.g. GLM-4-9B')
    .requiredOption('--quant <name>', 'quantization directory name, e.g. q40')
    .requiredOption('--bucket <name>', 'Spaces bucket')
    .addOption(new Option('--region <slug>', 'Spaces region, e.g. nyc3').conflicts('endpoint'))
    .option('--endpoint <url>', 'any S3 endpoint instead of a Spaces region')
    .option('--prefix <path>', 'release root', 'models')
    .option('--acl <acl>', 'private or public-read', (v: string) => parseAcl(v, '--acl'), 'private' as Acl)
    .option('--no-promote', 'stop after staging and verification')
    .option('--staging-prefix <path>', 'staging root (default: staging/<unique id>)')
    .option('--part-size-mib <n>', 'multipart part size (default: 64 MiB, more for objects over 625 GiB)', nonNegative)
    .option('--source-repo <repo>', 'Hugging Face repository the model was converted from')
    .option('--source-revision <rev>', 'its commit')
    .option('--architecture <name>', 'model architecture')
    .option('--params <n>', 'parameter count', nonNegative)
    .option('--perplexity <x>', 'measured perplexity', nonNegative)
    .option('--kld <x>', 'KL divergence against the reference', nonNegative)
    .option('--prefill-tps <x>', 'measured prefill tokens/s', nonNegative)
    .option('--decode-tps <x>', 'measured decode tokens/s', nonNegative)
    .option('--json', 'print the result as one JSON object', false)
    .action(async (o: PublishFlags) => {
      if (!o.region && !o.endpoint) throw new Error('--region or --endpoint is required');
      const progress = lazyProgress('publish');
      const result = await progress.around(() =>
        publishModel({
          target: { bucket: o.bucket, region: o.region, endpoint: o.endpoint, ...credentials(process.env) },
          files: o.files,
          facts: {
            model: o.modelName,
            quant: o.quant,
            sourceRepo: o.sourceRepo,
            sourceRevision: o.sourceRevision,
            converterVersion: program.version() ?? 'unknown',
            architecture: o.architecture,
            params: o.params,
            perplexity: o.perplexity,
            kld: o.kld,
            prefillTps: o.prefillTps,
            decodeTps: o.decodeTps,
          },
          prefix: o.prefix,
          acl: o.acl,
          promote: o.promote,
          stagingPrefix: o.stagingPrefix,
          partSize: o.partSizeMib === undefined ? undefined : Math.round(o.partSizeMib * 1024 * 1024),
          log: (line) => process.stderr.write(`${line}\n`),
          onProgress: (done, total) => progress.update(done, total, ''),
          signal: signal(),
        }),
      );
      if (o.json) {
        console.log(JSON.stringify(result, null, 2));
        return;
      }
      console.log(
        [
          `${o.promote ? 'published' : 'staged (not promoted)'} ${o.modelName}/${o.quant}: ${result.uploaded.length} uploaded, ${result.skipped.length} unchanged`,
          `manifest ${result.manifestUrl}`,
          ...result.urls.map((u) => `  ${u}`),
          ...(result.cdnUrls.length > 0 ? ['CDN:', ...result.cdnUrls.map((u) => `  ${u}`)] : []),
        ].join('\n'),
      );
    });
}
