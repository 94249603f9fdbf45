/**
 * The README.md published beside each model and quant: what the files are, where they came from, how
 * good and fast they measured, and how to download, check and run them.
 */
import type { FileEntry, ModelFacts } from './manifest.js';
import { CHECKSUMS_NAME } from './manifest.js';

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

export interface ModelCardInput {
  facts: ModelFacts;
  /** The data files (model.m, tokenizer.t, ...), not the generated ones. */
  files: readonly FileEntry[];
  /** Public URL of the directory the files are published in, ending in '/'. */
  baseUrl: string;
}

export function modelCard({ facts, files, baseUrl }: ModelCardInput): string {
  const rows: [string, string | undefined][] = [
    ['Model', facts.model],
    ['Quantization', facts.quant],
    ['Architecture', facts.architecture],
    ['Parameters', facts.params === undefined ? undefined : `${(facts.params / 1e9).toFixed(2)} B`],
    ['Source', facts.sourceRepo && `https://huggingface.co/${facts.sourceRepo}`],
    ['Source revision', facts.sourceRevision],
    ['Converter', `glm-dllama ${facts.converterVersion}`],
    ['Importance matrix', facts.imatrix && `${facts.imatrix}${facts.calibration?.length ? ` (calibration text: ${facts.calibration.join(', ')})` : ''}`],
    ['Perplexity', facts.perplexity?.toFixed(4)],
    ['KL divergence vs. reference', facts.kld?.toExponential(3)],
    ['Prefill', facts.prefillTps === undefined ? undefined : `${facts.prefillTps.toFixed(1)} tokens/s`],
    ['Decode', facts.decodeTps === undefined ? undefined : `${facts.decodeTps.toFixed(1)} tokens/s`],
  ];
  const model = files.find((f) => f.name.endsWith('.m'))?.name ?? 'model.m';
  const tokenizer = files.find((f) => f.name.endsWith('.t'))?.name;
  const downloads = [...files.map((f) => f.name), CHECKSUMS_NAME];
  return [
    `# ${facts.model} (${facts.quant})`,
    '',
    `distributed-llama model files converted by glm-dllama ${facts.converterVersion}.`,
    '',
    '| | |',
    '|---|---|',
    ...rows.filter((r): r is [string, string] => r[1] !== undefined).map(([k, v]) => `| ${k} | ${v} |`),
    '',
    '## Files',
    '',
    '| File | Size | sha256 |',
    '|---|---:|---|',
    ...files.map((f) => `| ${f.name} | ${formatBytes(f.size)} | \`${f.sha256}\` |`),
    '',
    '## Download and check',
    '',
    'From a public bucket (from a private one, fetch the same keys with any S3 client and a key for the bucket):',
    '',
    '```sh',
    ...downloads.map((name) => `curl -fLO ${baseUrl}${name}`),
    // checksums.txt also lists this card and manifest.json, which a download may leave out.
    `sha256sum -c --ignore-missing ${CHECKSUMS_NAME}`,
    '```',
    '',
    '## Run',
    '',
    '```sh',
    `npx glm-dllama generate --model ${model}${tokenizer ? ` --tokenizer ${tokenizer}` : ''} --prompt "Hello"`,
    `npx glm-dllama serve --model ${model}${tokenizer ? ` --tokenizer ${tokenizer}` : ''}`,
    '```',
    '',
  ].join('\n');
}
