/**
 * Publishing a converted model to Spaces: hash the files, skip what the release prefix already holds,
 * upload the rest to a private staging prefix, read every staged object back (size, metadata sha256 and
 * a full re-hash), and only then promote to `<prefix>/<model>/<quant>/` by server-side copy, manifest last,
 * so that a manifest at the release prefix always describes files that are there.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectAclCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { CancelledError } from '../converter/errors.js';
import {
  buildManifest,
  checksumsText,
  CHECKSUMS_NAME,
  MANIFEST_NAME,
  manifestText,
  MODEL_CARD_NAME,
  sha256File,
  sha256Stream,
  sha256Text,
  type FileEntry,
  type ModelFacts,
} from './manifest.js';
import { modelCard } from './model-card.js';
import { cdnUrl, describeS3Error, encodeKey, keyPath, keySegment, maskSecrets, objectUrl, s3Call, spacesClient, SpacesError, type SpacesTarget } from './spaces.js';

export type { ModelFacts } from './manifest.js';

export type Acl = 'private' | 'public-read';

export interface PublishOptions {
  target: SpacesTarget;
  /** Local paths; .m -> model.m, .t -> tokenizer.t, others keep their basename. */
  files: string[];
  facts: ModelFacts;
  /** Release root, default 'models'. */
  prefix?: string;
  /** Canned ACL of the released objects (Spaces supports only these two); default private. */
  acl?: Acl;
  /** false: stop after staging + verify (the staged objects stay for inspection). Default true. */
  promote?: boolean;
  /** Default 'staging/<unique id>'. */
  stagingPrefix?: string;
  /** Default: max(64 MiB, ceil(size / 10000) rounded up to 1 MiB). */
  partSize?: number;
  /** Default 5 GiB: above it promote by multipart UploadPartCopy. */
  copyPartThreshold?: number;
  log?: (line: string) => void;
  /** Bytes uploaded so far out of the bytes that need uploading (unchanged files excluded). */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface PublishResult {
  /** Origin URL of every file of the model directory: release keys, or staging keys when not promoted. */
  urls: string[];
  /** CDN URLs of the same files (Spaces regions only; empty for other endpoints). */
  cdnUrls: string[];
  manifestUrl: string;
  /** Names (model.m, README.md, ...) uploaded to staging in this run. */
  uploaded: string[];
  /** Names whose release object already had the same size and sha256. */
  skipped: string[];
  /** Names copied to the release prefix in this run. */
  promoted: string[];
  stagingPrefix: string;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** S3 and Spaces multipart limits. */
export const MAX_PARTS = 10_000;
export const MIN_PART_SIZE = 5 * MiB;
export const MAX_PART_SIZE = 5 * GiB;
const DEFAULT_MIN_PART_SIZE = 64 * MiB;
const DEFAULT_COPY_THRESHOLD = 5 * GiB;
/** Parts in flight per object: Spaces allows 10 concurrent PUT/COPY to one object; memory is queue x part size. */
const QUEUE_SIZE = 4;
const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';
/** Names publish writes itself; a local file may not take them. */
const GENERATED = new Set([MODEL_CARD_NAME, CHECKSUMS_NAME, MANIFEST_NAME]);

export function parseAcl(value: string, field: string): Acl {
  if (value === 'private' || value === 'public-read') return value;
  throw new Error(`${field}: "${value}" is not a supported ACL; Spaces accepts only "private" or "public-read"`);
}

/** The part size for an object of `size` bytes, so that it fits in 10,000 parts within S3's 5 MiB..5 GiB per part. */
export function partSizeFor(size: number, requested?: number): number {
  if (requested !== undefined) {
    if (!Number.isSafeInteger(requested) || requested < MIN_PART_SIZE || requested > MAX_PART_SIZE) {
      throw new Error(`partSize: ${requested} is outside S3's part size limits (${MIN_PART_SIZE}..${MAX_PART_SIZE} bytes)`);
    }
    if (Math.ceil(size / requested) > MAX_PARTS) {
      throw new Error(`partSize: ${requested} bytes would split ${size} bytes into more than ${MAX_PARTS} parts`);
    }
    return requested;
  }
  return Math.max(DEFAULT_MIN_PART_SIZE, Math.ceil(size / MAX_PARTS / MiB) * MiB);
}

/** Inclusive byte ranges of `partSize` (the last one shorter) covering `size` bytes, for UploadPartCopy. */
export function copyRanges(size: number, partSize: number): { first: number; last: number }[] {
  const ranges: { first: number; last: number }[] = [];
  for (let first = 0; first < size; first += partSize) ranges.push({ first, last: Math.min(first + partSize, size) - 1 });
  return ranges;
}

/** The name a local file takes in the model directory. */
export function publishedName(path: string): string {
  const ext = extname(path);
  return ext === '.m' ? 'model.m' : ext === '.t' ? 'tokenizer.t' : basename(path);
}

function contentType(name: string): string {
  if (name.endsWith('.md')) return 'text/markdown; charset=utf-8';
  if (name.endsWith('.json')) return 'application/json';
  if (name.endsWith('.txt')) return 'text/plain; charset=utf-8';
  return 'application/octet-stream';
}

/** One file of the model directory: a local file, or text publish generated. */
interface Item extends FileEntry {
  path?: string;
  text?: string;
}

async function localItems(files: readonly string[]): Promise<Item[]> {
  if (files.length === 0) throw new Error('files: at least one file is required');
  const items: Item[] = [];
  for (const path of files) {
    const name = publishedName(path);
    if (GENERATED.has(name)) throw new Error(`files: ${path} would be published as ${name}, which publish generates`);
    const twin = items.find((i) => i.name === name);
    if (twin) throw new Error(`files: ${path} and ${twin.path} would both be published as ${name}`);
    let info;
    try {
      info = await stat(path);
    } catch (e) {
      throw new Error(`files: cannot read ${path} (${(e as Error).message})`);
    }
    if (!info.isFile()) throw new Error(`files: ${path} is not a file`);
    items.push({ name, path, size: info.size, sha256: await sha256File(path) });
  }
  return items;
}

function textItem(name: string, text: string): Item {
  return { name, text, size: Buffer.byteLength(text), sha256: sha256Text(text) };
}

function entry(item: Item): FileEntry {
  return { name: item.name, size: item.size, sha256: item.sha256 };
}

/** Runs `work` over `items` with at most `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** One publish run: the client, the keys and the logging every step shares. */
class Run {
  readonly client: S3Client;
  readonly bucket: string;

  constructor(
    readonly options: PublishOptions,
    readonly releaseDir: string,
    readonly stagingDir: string,
  ) {
    this.client = spacesClient(options.target);
    this.bucket = options.target.bucket;
  }

  log(line: string): void {
    this.options.log?.(maskSecrets(this.options.target, line));
  }

  checkCancelled(): void {
    if (this.options.signal?.aborted) throw new CancelledError('publish');
  }

  /** One S3 request; a failure becomes a SpacesError naming the key and endpoint, or a CancelledError. */
  async call<T>(what: string, key: string | undefined, send: (abortSignal?: AbortSignal) => Promise<T>): Promise<T> {
    this.checkCancelled();
    try {
      return await s3Call(this.options.target, what, key, () => send(this.options.signal));
    } catch (e) {
      this.checkCancelled();
      throw e;
    }
  }

  /** Release objects that already hold the same bytes (same size, and metadata sha256 read by HEAD). */
  async unchanged(items: readonly Item[]): Promise<Set<string>> {
    const sizes = new Map<string, number>();
    let token: string | undefined;
    do {
      // Also the first request of the run: wrong credentials or a missing bucket fail here, before any upload.
      const page = await this.call('list', `${this.releaseDir}/`, (abortSignal) =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.releaseDir}/`, ContinuationToken: token }), { abortSignal }),
      );
      for (const o of page.Contents ?? []) if (o.Key !== undefined) sizes.set(o.Key, o.Size ?? -1);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const same = new Set<string>();
    for (const item of items) {
      const key = `${this.releaseDir}/${item.name}`;
      if (sizes.get(key) !== item.size) continue;
      const head = await this.call('head', key, (abortSignal) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }));
      if (head.ContentLength === item.size && head.Metadata?.sha256 === item.sha256) same.add(item.name);
    }
    return same;
  }

  /** An unchanged release object keeps its bytes but takes the ACL asked for now (HEAD does not show ACLs). */
  async applyAcl(name: string): Promise<void> {
    const key = `${this.releaseDir}/${name}`;
    const acl = this.options.acl ?? 'private';
    const policy = await this.call('read ACL of', key, (abortSignal) => this.client.send(new GetObjectAclCommand({ Bucket: this.bucket, Key: key }), { abortSignal }));
    const isPublic = (policy.Grants ?? []).some((g) => g.Grantee?.URI === ALL_USERS && (g.Permission === 'READ' || g.Permission === 'FULL_CONTROL'));
    if (isPublic === (acl === 'public-read')) return;
    this.log(`set ACL of ${name} to ${acl} (content unchanged)`);
    await this.call('set ACL of', key, (abortSignal) => this.client.send(new PutObjectAclCommand({ Bucket: this.bucket, Key: key, ACL: acl }), { abortSignal }));
  }

  async stage(item: Item, onBytes: (loaded: number) => void): Promise<void> {
    const key = `${this.stagingDir}/${item.name}`;
    const partSize = partSizeFor(item.size, this.options.partSize);
    const parts = Math.max(1, Math.ceil(item.size / partSize));
    this.log(`upload ${item.name} -> s3://${this.bucket}/${key} (${item.size} bytes, ${parts} part${parts > 1 ? 's' : ''})`);
    const abortController = new AbortController();
    const onAbort = () => abortController.abort();
    this.options.signal?.addEventListener('abort', onAbort);
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: item.text !== undefined ? Buffer.from(item.text) : createReadStream(item.path as string),
        ContentLength: item.size,
        ContentType: contentType(item.name),
        Metadata: { sha256: item.sha256 },
      },
      partSize,
      queueSize: QUEUE_SIZE,
      // Aborting is done here, so that a failed abort is reported beside the error that caused it.
      leavePartsOnError: true,
      abortController,
    });
    upload.on('httpUploadProgress', (p) => onBytes(p.loaded ?? 0));
    try {
      await upload.done();
    } catch (e) {
      const error = this.options.signal?.aborted ? new CancelledError('publish') : describeS3Error(this.options.target, 'upload', e, key);
      if (upload.uploadId) {
        const aborted = await this.abortMultipart(key, upload.uploadId);
        if (!(error instanceof CancelledError)) error.message += `; ${aborted}`;
      }
      throw error;
    } finally {
      this.options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Aborts a multipart upload so that no parts are left behind; says what happened (it may fail when the server is gone). */
  async abortMultipart(key: string, uploadId: string): Promise<string> {
    try {
      await s3Call(this.options.target, 'abort multipart upload of', key, () =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })),
      );
      this.log(`aborted multipart upload ${uploadId} of ${key}`);
      return `its multipart upload ${uploadId} was aborted`;
    } catch (e) {
      const note = `its multipart upload ${uploadId} could not be aborted (${(e as Error).message}); a bucket lifecycle rule or Spaces' expiry of incomplete uploads removes the parts`;
      this.log(note);
      return note;
    }
  }

  /** HEAD (size and metadata sha256), then a streamed GET re-hash: what was stored is what was hashed here. */
  async verify(item: Item, key: string, fullRead: boolean): Promise<void> {
    const where = `s3://${this.bucket}/${key}`;
    const head = await this.call('verify', key, (abortSignal) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal }));
    if (head.ContentLength !== item.size) throw new SpacesError(`verify ${where} failed: size ${head.ContentLength} instead of ${item.size} bytes of ${item.name}`, 'VerifyMismatch');
    if (head.Metadata?.sha256 !== item.sha256) {
      throw new SpacesError(`verify ${where} failed: metadata sha256 ${head.Metadata?.sha256 ?? '(none)'} instead of ${item.sha256} of ${item.name}`, 'VerifyMismatch');
    }
    if (!fullRead) return;
    const got = await this.call('verify', key, async (abortSignal) => {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal });
      return sha256Stream(response.Body as Readable);
    });
    if (got !== item.sha256) throw new SpacesError(`verify ${where} failed: its content hashes to sha256 ${got}, not ${item.sha256} of ${item.name}`, 'VerifyMismatch');
    this.log(`verified ${where} (${item.size} bytes, sha256 ${item.sha256})`);
  }

  async promote(item: Item): Promise<void> {
    const { acl = 'private', copyPartThreshold = DEFAULT_COPY_THRESHOLD } = this.options;
    const from = `${this.stagingDir}/${item.name}`;
    const to = `${this.releaseDir}/${item.name}`;
    const copySource = `${this.bucket}/${encodeKey(from)}`;
    if (item.size <= copyPartThreshold) {
      this.log(`promote ${item.name}: copy s3://${this.bucket}/${from} -> ${to} (${acl})`);
      await this.call('promote', to, (abortSignal) =>
        this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: copySource, MetadataDirective: 'COPY', ACL: acl }), { abortSignal }),
      );
    } else {
      await this.copyInParts(item, copySource, to, acl);
    }
    await this.verify(item, to, false);
  }

  /** Server-side copy of an object above the single-copy limit: one UploadPartCopy per byte range. */
  async copyInParts(item: Item, copySource: string, to: string, acl: Acl): Promise<void> {
    const ranges = copyRanges(item.size, partSizeFor(item.size, this.options.partSize));
    this.log(`promote ${item.name}: multipart copy to ${to} in ${ranges.length} parts (${acl})`);
    const created = await this.call('promote', to, (abortSignal) =>
      this.client.send(
        new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: to, ContentType: contentType(item.name), Metadata: { sha256: item.sha256 }, ACL: acl }),
        { abortSignal },
      ),
    );
    const uploadId = created.UploadId as string;
    const parts: { PartNumber: number; ETag?: string }[] = [];
    try {
      await eachLimited(
        ranges.map((range, i) => ({ ...range, number: i + 1 })),
        QUEUE_SIZE,
        async ({ first, last, number }) => {
          const part = await this.call(`promote (part copy ${number}/${ranges.length})`, to, (abortSignal) =>
            this.client.send(
              new UploadPartCopyCommand({ Bucket: this.bucket, Key: to, UploadId: uploadId, PartNumber: number, CopySource: copySource, CopySourceRange: `bytes=${first}-${last}` }),
              { abortSignal },
            ),
          );
          parts.push({ PartNumber: number, ETag: part.CopyPartResult?.ETag });
        },
      );
      parts.sort((a, b) => a.PartNumber - b.PartNumber);
      await this.call('promote (complete multipart copy)', to, (abortSignal) =>
        this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: to, UploadId: uploadId, MultipartUpload: { Parts: parts } }), { abortSignal }),
      );
    } catch (e) {
      const aborted = await this.abortMultipart(to, uploadId);
      if (e instanceof SpacesError) e.message += `; ${aborted}`;
      throw e;
    }
  }

  /** Deletes staging objects one by one: Spaces has refused DeleteObjects requests without Content-MD5. */
  async removeStaged(names: readonly string[]): Promise<void> {
    for (const name of names) {
      const key = `${this.stagingDir}/${name}`;
      try {
        await s3Call(this.options.target, 'delete', key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
      } catch (e) {
        this.log(`could not remove staging object: ${(e as Error).message}`);
      }
    }
  }
}

export async function publishModel(options: PublishOptions): Promise<PublishResult> {
  const { target, facts } = options;
  const model = keySegment(facts.model, 'model-name');
  const quant = keySegment(facts.quant, 'quant');
  const releaseDir = `${keyPath(options.prefix ?? 'models', 'prefix')}/${model}/${quant}`;
  const stagingPrefix = keyPath(options.stagingPrefix ?? `staging/${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`, 'stagingPrefix');
  if (options.acl !== undefined) parseAcl(options.acl, 'acl');
  const promote = options.promote ?? true;

  const data = await localItems(options.files);
  for (const item of data) partSizeFor(item.size, options.partSize); // a bad part size fails before any request
  const run = new Run(options, releaseDir, `${stagingPrefix}/${model}/${quant}`);
  const card = textItem(
    MODEL_CARD_NAME,
    modelCard({ facts, files: data.map(entry), baseUrl: objectUrl(target, `${releaseDir}/`) }),
  );
  const manifest = textItem(MANIFEST_NAME, manifestText(buildManifest(facts, [...data, card].map(entry))));
  const checksums = textItem(CHECKSUMS_NAME, checksumsText([...data, card, manifest].map(entry)));
  // Promotion order: data first, the manifest last, so that its presence means the rest is in place.
  const items = [...data, card, checksums, manifest];

  const staged: string[] = [];
  const promoted: string[] = [];
  try {
    const same = await run.unchanged(items);
    const changed = items.filter((i) => !same.has(i.name));
    for (const name of same) run.log(`skip ${name}: s3://${target.bucket}/${releaseDir}/${name} already has this size and sha256`);

    const total = changed.reduce((sum, i) => sum + i.size, 0);
    let before = 0;
    for (const item of changed) {
      await run.stage(item, (loaded) => options.onProgress?.(before + loaded, total));
      staged.push(item.name);
      before += item.size;
      options.onProgress?.(before, total);
    }
    for (const item of changed) await run.verify(item, `${run.stagingDir}/${item.name}`, true);

    if (promote) {
      for (const item of changed) {
        await run.promote(item);
        promoted.push(item.name);
      }
      for (const name of same) await run.applyAcl(name);
      await run.removeStaged(staged);
    } else if (staged.length > 0) {
      run.log(`not promoted: the verified files stay under s3://${target.bucket}/${run.stagingDir}/`);
    }
  } catch (e) {
    // Nothing unverified may linger: staged objects go; the release prefix was only written if promotion began.
    if (staged.length > 0) await run.removeStaged(staged);
    if (promoted.length > 0) run.log(`promotion stopped after ${promoted.join(', ')}; ${MANIFEST_NAME} at the release prefix still describes the previous release`);
    throw e instanceof Error ? Object.assign(e, { message: maskSecrets(target, e.message) }) : e;
  } finally {
    run.client.destroy();
  }

  const keyOf = (name: string) => (!promote && staged.includes(name) ? `${run.stagingDir}/${name}` : `${releaseDir}/${name}`);
  const keys = items.map((i) => keyOf(i.name));
  return {
    urls: keys.map((k) => objectUrl(target, k)),
    cdnUrls: keys.map((k) => cdnUrl(target, k)).filter((u): u is string => u !== undefined),
    manifestUrl: objectUrl(target, keyOf(MANIFEST_NAME)),
    uploaded: staged,
    skipped: items.filter((i) => !staged.includes(i.name)).map((i) => i.name),
    promoted,
    stagingPrefix,
  };
}
