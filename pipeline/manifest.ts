/**
 * What a published model directory says about itself: sha256 of each file (streamed, so multi-GB models
 * never sit in memory), `checksums.txt` in coreutils sha256sum format, and `manifest.json`.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';

export const MANIFEST_NAME = 'manifest.json';
export const CHECKSUMS_NAME = 'checksums.txt';
export const MODEL_CARD_NAME = 'README.md';
export const MANIFEST_VERSION = 1;

/** What goes into manifest.json and the model card (all optional except model, quant and converterVersion). */
export interface ModelFacts {
  model: string;
  quant: string;
  sourceRepo?: string;
  sourceRevision?: string;
  converterVersion: string;
  perplexity?: number;
  kld?: number;
  prefillTps?: number;
  decodeTps?: number;
  architecture?: string;
  params?: number;
  /** The importance matrix that weighted a q40 quantization, and its calibration text(s). */
  imatrix?: string;
  calibration?: string[];
}

export interface FileEntry {
  /** Name inside the model directory (model.m, tokenizer.t, README.md, ...). */
  name: string;
  size: number;
  sha256: string;
}

export interface Manifest extends ModelFacts {
  manifestVersion: number;
  totalSize: number;
  files: FileEntry[];
}

export async function sha256Stream(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(stream, hash);
  return hash.digest('hex');
}

export function sha256File(path: string): Promise<string> {
  return sha256Stream(createReadStream(path));
}

export function sha256Text(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** `<hex>  <name>` per line, as `sha256sum` writes and `sha256sum -c` reads. */
export function checksumsText(files: readonly FileEntry[]): string {
  return files.map((f) => `${f.sha256}  ${f.name}\n`).join('');
}

/**
 * The manifest. It has no timestamp on purpose: publishing the same files twice gives the same bytes,
 * so an unchanged manifest is skipped like any unchanged file (the object's Last-Modified dates it).
 */
export function buildManifest(facts: ModelFacts, files: readonly FileEntry[]): Manifest {
  return {
    manifestVersion: MANIFEST_VERSION,
    model: facts.model,
    quant: facts.quant,
    sourceRepo: facts.sourceRepo,
    sourceRevision: facts.sourceRevision,
    converterVersion: facts.converterVersion,
    architecture: facts.architecture,
    params: facts.params,
    perplexity: facts.perplexity,
    kld: facts.kld,
    prefillTps: facts.prefillTps,
    decodeTps: facts.decodeTps,
    imatrix: facts.imatrix,
    calibration: facts.calibration,
    totalSize: files.reduce((sum, f) => sum + f.size, 0),
    files: [...files],
  };
}

export function manifestText(manifest: Manifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}
