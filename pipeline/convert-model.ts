/**
 * The convert-glm pipeline step: a local checkpoint folder or a hub model (`hf:owner/name@revision`,
 * downloaded into the cache first) converted to `<outDir>/<name>.<weights>.m`, with the tokenizer's
 * `.t` beside it, and the figures a workflow publishes (sha256, size, parameter count).
 */
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { convert } from '../converter/convert.js';
import { WEIGHT_TYPE_NAMES, type WeightTypeName } from '../converter/dtypes.js';
import { InputError } from '../converter/errors.js';
import { downloadModel, parseModelSource, sha256File } from './hub.js';

export type ConvertModelProgress =
  | { phase: 'download'; done: number; total: number; file: string }
  | { phase: 'convert'; done: number; total: number; tensor: string };

export interface ConvertModelOptions {
  /** A checkpoint directory, or hf:owner/name[@revision]. */
  model: string;
  weights: WeightTypeName;
  outDir: string;
  /** Hugging Face token for private or gated models. */
  token?: string;
  /** Where hub downloads are kept (default ~/.cache/glm-dllama/hub). */
  cacheDir?: string;
  hubUrl?: string;
  /** Encoder threads (default: all cores). */
  threads?: number;
  onProgress?: (progress: ConvertModelProgress) => void;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface ConvertModelResult {
  modelPath: string;
  /** The .t, when the checkpoint has a tokenizer. */
  tokenizerPath?: string;
  /** Of the .m file. */
  sha256: string;
  bytes: number;
  /** Parameters in the converted model's tensors. */
  params: number;
  architecture: string;
  /** The checkpoint folder that was converted (the cache's snapshot folder for a hub model). */
  sourceDir: string;
  sourceRepo?: string;
  sourceRevision?: string;
  /** The commit the revision resolved to. */
  sourceCommit?: string;
}

export function defaultCacheDir(): string {
  return join(homedir(), '.cache', 'glm-dllama', 'hub');
}

export async function convertModel(options: ConvertModelOptions): Promise<ConvertModelResult> {
  if (!(WEIGHT_TYPE_NAMES as readonly string[]).includes(options.weights)) {
    throw new InputError('weights', `"${options.weights}" is not a weight type; expected one of ${WEIGHT_TYPE_NAMES.join(', ')}`);
  }
  const source = parseModelSource(options.model, 'model');
  let sourceDir: string;
  let name: string;
  let hub: Pick<ConvertModelResult, 'sourceRepo' | 'sourceRevision' | 'sourceCommit'> = {};
  if (source.kind === 'local') {
    const info = await stat(source.path).catch(() => undefined);
    if (!info?.isDirectory()) throw new InputError('model', `${source.path} is not a checkpoint directory`);
    sourceDir = source.path;
    name = basename(resolve(source.path));
  } else {
    const download = await downloadModel({
      source,
      cacheDir: options.cacheDir ?? defaultCacheDir(),
      ...(options.token ? { token: options.token } : {}),
      ...(options.hubUrl ? { hubUrl: options.hubUrl } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.log ? { log: options.log } : {}),
      onProgress: (done, total, file) => options.onProgress?.({ phase: 'download', done, total, file }),
    });
    sourceDir = download.dir;
    name = source.repo.split('/')[1]!;
    hub = { sourceRepo: source.repo, sourceRevision: source.revision, sourceCommit: download.commit };
  }
  const result = await convert({
    modelDir: sourceDir,
    outFile: join(options.outDir, `${name}.${options.weights}.m`),
    weights: options.weights,
    ...(options.threads ? { threads: options.threads } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (p) => options.onProgress?.({ phase: 'convert', done: p.bytesDone, total: p.bytesTotal, tensor: p.tensor }),
  });
  const { sha256, bytes } = await sha256File(result.outFile);
  options.log?.(`${result.outFile}: ${bytes} bytes, sha256 ${sha256}`);
  return {
    modelPath: result.outFile,
    ...(result.tokenizer ? { tokenizerPath: result.tokenizer.outFile } : {}),
    sha256,
    bytes,
    params: result.parameters,
    architecture: result.architecture,
    sourceDir,
    ...hub,
  };
}
