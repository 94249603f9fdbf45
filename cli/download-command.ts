/** `download`, and the hub half of `convert --model hf:owner/name[@revision]`. */
import type { Command } from 'commander';
import { defaultCacheDir } from '../pipeline/convert-model.js';
import { downloadModel, parseModelSource, type DownloadResult, type HubSource } from '../pipeline/hub.js';
import { lazyProgress } from './progress.js';

const MiB = 1024 * 1024;

export interface HubCliOptions {
  cacheDir: string;
  hubUrl?: string;
  verbose?: boolean;
}

/** Downloads with a progress display; the token comes from HF_TOKEN. */
async function download(source: HubSource, o: HubCliOptions, signal: AbortSignal): Promise<DownloadResult> {
  const progress = lazyProgress('download');
  return progress.around(() =>
    downloadModel({
      source,
      cacheDir: o.cacheDir,
      ...(process.env.HF_TOKEN ? { token: process.env.HF_TOKEN } : {}),
      ...(o.hubUrl ? { hubUrl: o.hubUrl } : {}),
      signal,
      ...(o.verbose ? { log: (line: string) => process.stderr.write(`${line}\n`) } : {}),
      onProgress: (done, total, file) => progress.update(done, total, file),
    }),
  );
}

/** The checkpoint folder `model` names: itself when local, the cache's snapshot folder (downloaded first) when hf:. */
export async function checkpointDir(model: string, field: string, o: HubCliOptions, signal: AbortSignal): Promise<string> {
  const source = parseModelSource(model, field);
  return source.kind === 'local' ? source.path : (await download(source, o, signal)).dir;
}

/** Registers `download`; `cancellation` gives the command's Ctrl-C signal. */
/** Where the bytes came from: the network, the cache, or both. */
function provenance(downloaded: number, total: number): string {
  if (downloaded >= total) return 'all downloaded';
  if (downloaded === 0) return 'all from the cache';
  return `${(downloaded / MiB).toFixed(1)} MiB downloaded, ${((total - downloaded) / MiB).toFixed(1)} MiB from the cache`;
}

export function registerDownloadCommand(program: Command, cancellation: () => AbortSignal): void {
  program
    .command('download')
    .description('download a Hugging Face model (config, safetensors, tokenizer) into <cache-dir>/<owner>--<name>/<commit>/, verifying every file; an interrupted download resumes. Token: HF_TOKEN')
    .argument('<model>', 'hf:owner/name[@revision]')
    .option('--cache-dir <dir>', 'cache folder', defaultCacheDir())
    .option('--hub-url <url>', 'hub address (default: HF_ENDPOINT, else https://huggingface.co)')
    .option('--verbose', 'log each file (cached, resumed, verified)', false)
    .action(async (model: string, o: HubCliOptions) => {
      const source = parseModelSource(model, 'model');
      if (source.kind === 'local') throw new Error(`model: "${model}" is not a hub model; expected hf:owner/name[@revision]`);
      const result = await download(source, o, cancellation());
      const bytes = result.files.reduce((n, f) => n + f.size, 0);
      console.log(
        [
          `hf:${source.repo}@${source.revision} (commit ${result.commit}) -> ${result.dir}`,
          `  ${result.files.length} files, ${(bytes / MiB).toFixed(1)} MiB (${provenance(result.downloadedBytes, bytes)})`,
          ...result.files.map((f) => `  ${f.sha256}  ${f.path} (${f.size} bytes)`),
        ].join('\n'),
      );
    });
}
