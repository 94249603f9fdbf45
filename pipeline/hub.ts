/**
 * Model downloads from the Hugging Face Hub (or any server speaking its API, set by `hubUrl` /
 * HF_ENDPOINT) through @huggingface/hub: the revision is resolved to a commit first, so the cache
 * holds one immutable folder per commit (`<cacheDir>/<owner>--<name>/<commit>/`). Every file is
 * written to `<file>.incomplete`, checked against the tree listing (size, and the sha256 LFS oid or
 * the git blob sha1) while it streams, and renamed only when it matches; an interrupted transfer
 * resumes from the partial file's length with a Range request, within the run (a few retries) or
 * on the next one. Anything else in the commit's folder is deleted once the files are in place: the
 * cache is shared by the jobs of a persistent runner, and a file an earlier job left there (an index
 * naming other shards, say) would otherwise be read by the conversion.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, statfs, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { HubApiError, downloadFile, listFiles, modelInfo, type ListFileEntry } from '@huggingface/hub';
import { CancelledError, InputError } from '../converter/errors.js';
import { writeFully } from '../converter/io.js';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

export interface HubSource {
  /** `owner/name`. */
  repo: string;
  /** Branch, tag or commit; 'main' when the source names none. */
  revision: string;
}

export type ModelSource = { kind: 'local'; path: string } | ({ kind: 'hub' } & HubSource);

/** The hub's rule for each half of a repo id: letters, digits, '-', '_', '.'; no '--' or '..'; '-' and '.' not at either end. */
const REPO_PART = /^(?![-.])(?!.*(?:--|\.\.))[A-Za-z0-9_.-]{1,96}(?<![-.])$/;
/** Branch, tag (which may contain '/', as refs/pr/1) or commit. */
const REVISION = /^(?!\/)(?!.*(?:\.\.|\/\/))[A-Za-z0-9_./-]{1,255}(?<!\/)$/;
const COMMIT = /^[0-9a-f]{40}$/;

/**
 * `hf:owner/name[@revision]` names a hub model; anything else is a local checkpoint directory.
 * `field` names the input in errors (the action's input or the CLI option).
 */
export function parseModelSource(value: string, field: string): ModelSource {
  if (value.trim() === '') throw new InputError(field, 'is empty; expected a checkpoint directory or hf:owner/name[@revision]');
  if (!value.startsWith('hf:')) return { kind: 'local', path: value };
  const bad = (why: string) => new InputError(field, `"${value}" is not a hub model (${why}); expected hf:owner/name[@revision], e.g. hf:zai-org/GLM-4-9B-0414@main`);
  const spec = value.slice(3);
  const at = spec.indexOf('@');
  const repo = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? 'main' : spec.slice(at + 1);
  const parts = repo.split('/');
  if (parts.length !== 2) throw bad('the repository must be owner/name');
  for (const part of parts) {
    if (!REPO_PART.test(part)) throw bad(`"${part}" is not a valid owner or name: letters, digits, '-', '_', '.' only, at most 96, no '--' or '..', not starting or ending with '-' or '.'`);
  }
  if (!REVISION.test(revision)) throw bad(`"${revision}" is not a valid revision`);
  return { kind: 'hub', repo, revision };
}

export interface DownloadOptions {
  source: HubSource;
  cacheDir: string;
  /** A Hugging Face access token (hf_...), sent as a bearer token and never logged. */
  token?: string;
  /** Default: HF_ENDPOINT, else https://huggingface.co. */
  hubUrl?: string;
  /** Which repository paths to fetch; default {@link isModelFile}. */
  include?: (path: string) => boolean;
  /** Bytes of the wanted files present so far (cached ones count at once), of their total. */
  onProgress?: (done: number, total: number, file: string) => void;
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Times a broken transfer is resumed within this call before giving up (default 3). */
  retries?: number;
  /** Files transferred at once (default 4). */
  concurrency?: number;
}

export interface DownloadedFile {
  path: string;
  size: number;
  sha256?: string;
}

export interface DownloadResult {
  /** The snapshot folder: `<cacheDir>/<owner>--<name>/<commit>`. */
  dir: string;
  commit: string;
  files: DownloadedFile[];
  /** Bytes transferred by this call (0 when everything was cached). */
  downloadedBytes: number;
}

const TOKENIZER_FILES = new Set(['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json']);

/** What a conversion needs: config, weights and their index, tokenizer and chat template; top level only. */
export function isModelFile(path: string): boolean {
  if (path.includes('/')) return false;
  return (
    path === 'config.json' ||
    path === 'generation_config.json' ||
    path.endsWith('.safetensors') ||
    path.endsWith('.safetensors.index.json') ||
    TOKENIZER_FILES.has(path) ||
    path.endsWith('.model') ||
    path.endsWith('.jinja')
  );
}

/** A hub request or transfer that failed; `file` is set when one file was at fault. */
export class HubError extends Error {
  constructor(
    message: string,
    readonly repo: string,
    readonly revision: string,
    readonly status?: number,
    readonly file?: string,
  ) {
    super(message);
    this.name = 'HubError';
  }
}

/** A downloaded file that does not match the hub's tree listing; it has been deleted. */
export class IntegrityError extends HubError {
  constructor(message: string, repo: string, revision: string, file: string) {
    super(message, repo, revision, undefined, file);
    this.name = 'IntegrityError';
  }
}

interface Context {
  repo: string;
  revision: string;
  hubUrl: string;
  accessToken: string | undefined;
  /** X-Error-Code of failed answers, by response URL. */
  errorCodes: Map<string, string>;
  signal: AbortSignal | undefined;
  log: (line: string) => void;
}

/** `repo@revision` for messages, with the commit once known. */
/** An error's message with its cause's (fetch says only "fetch failed"; the cause says why, e.g. ENOTFOUND). */
export function withCause(e: unknown): string {
  return e instanceof Error ? `${e.message}${e.cause instanceof Error ? ` (${e.cause.message})` : ''}` : String(e);
}

function where(ctx: Context, commit?: string): string {
  return `${ctx.repo}@${ctx.revision}${commit && commit !== ctx.revision ? ` (commit ${commit})` : ''}`;
}

/** What a failed hub answer means, from its X-Error-Code (the library keeps only the status) or else its status. */
function hint(ctx: Context, status: number, code: string | undefined): string {
  const tokenHelp = ctx.accessToken ? 'this token cannot see it' : 'it needs a token (set HF_TOKEN / hf-token)';
  switch (code) {
    case 'GatedRepo':
      return `the repository is gated and ${ctx.accessToken ? 'this token has not been granted access' : 'needs a token with access (set HF_TOKEN / hf-token)'}: accept its terms at ${ctx.hubUrl}/${ctx.repo}`;
    case 'RepoNotFound':
      return `no such repository, or it is private or gated and ${tokenHelp}`;
    case 'RevisionNotFound':
      return 'no such revision (branch, tag or commit)';
    case 'EntryNotFound':
      return 'no such file at this revision';
  }
  if (status === 401) return ctx.accessToken ? 'the hub rejected the token: it is wrong or expired (check HF_TOKEN / hf-token)' : `the repository is private or gated and ${tokenHelp}`;
  if (status === 403) return 'access denied: the token lacks read permission, or the repository is gated and the token has not been granted access';
  if (status === 404) return 'no such repository, revision or file';
  return `the hub answered ${status}`;
}

/** Turns the library's errors into messages that say what to do. */
function explain(ctx: Context, e: unknown, what: string, commit?: string, file?: string): Error {
  if (e instanceof HubError || e instanceof CancelledError) return e;
  if (ctx.signal?.aborted) return new CancelledError('download');
  const at = `${where(ctx, commit)}${file ? `: ${file}` : ''}`;
  if (e instanceof HubApiError) {
    const explanation = hint(ctx, e.statusCode, ctx.errorCodes.get(e.url));
    return new HubError(`${at}: ${what} failed: ${explanation} [${e.message}]`, ctx.repo, ctx.revision, e.statusCode, file);
  }
  return new HubError(`${at}: ${what} failed: ${withCause(e)}`, ctx.repo, ctx.revision, undefined, file);
}

/**
 * The fetch the library uses: adds the caller's AbortSignal (the library takes none), keeps the hub's
 * X-Error-Code of failed answers by URL (HubApiError carries the URL but no headers), and refuses a
 * ranged response that does not start where the request asked, so a server that ignores Range cannot
 * make us append a whole file to a partial one. The refusal is also reported to `onRangeIgnored`: the
 * library's Blob stream passes on only an error's message.
 */
function hubFetch(signal: AbortSignal | undefined, errorCodes: Map<string, string>, onRangeIgnored?: (why: string) => void): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, { ...init, ...(signal ? { signal } : {}) });
    const code = response.headers.get('x-error-code');
    if (!response.ok && code) errorCodes.set(response.url, code);
    const range = new Headers(init?.headers).get('range');
    const start = range ? /^bytes=(\d+)-/.exec(range)?.[1] : undefined;
    if (start !== undefined && start !== '0' && response.ok) {
      const served = /^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '')?.[1];
      if (response.status !== 206 || served !== start) {
        await response.body?.cancel();
        const why = `asked for bytes from ${start}, got ${response.status} ${response.headers.get('content-range') ?? 'without Content-Range'}`;
        onRangeIgnored?.(why);
        throw new Error(why);
      }
    }
    return response;
  };
}

/** The tree's checksums for a file: sha256 for LFS files, the git blob sha1 for the rest. */
interface Expected {
  size: number;
  sha256?: string;
  gitSha1?: string;
}

function expectedOf(entry: ListFileEntry): Expected {
  if (entry.lfs) return { size: entry.lfs.size, sha256: entry.lfs.oid.toLowerCase() };
  return { size: entry.size, ...(entry.oid ? { gitSha1: entry.oid.toLowerCase() } : {}) };
}

/** sha256 of the content, and git's blob sha1 (over `blob <size>\0` + content) when the tree gave one. */
class Digest {
  private readonly sha256 = createHash('sha256');
  private readonly gitSha1: Hash | undefined;

  constructor(private readonly expected: Expected) {
    this.gitSha1 = expected.gitSha1 ? createHash('sha1').update(`blob ${expected.size}\0`) : undefined;
  }

  update(chunk: Uint8Array): void {
    this.sha256.update(chunk);
    this.gitSha1?.update(chunk);
  }

  /** The sha256, or a description of the mismatch. */
  finish(size: number): { sha256: string; mismatch?: string } {
    const sha256 = this.sha256.digest('hex');
    const e = this.expected;
    if (size !== e.size) return { sha256, mismatch: `has ${size} bytes, the hub lists ${e.size}` };
    if (e.sha256 && sha256 !== e.sha256) return { sha256, mismatch: `sha256 ${sha256} does not match the hub's LFS oid ${e.sha256}` };
    const sha1 = this.gitSha1?.digest('hex');
    if (e.gitSha1 && sha1 !== e.gitSha1) return { sha256, mismatch: `git blob sha1 ${sha1} does not match the hub's ${e.gitSha1}` };
    return { sha256 };
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Feeds the first `length` bytes of `path` into `digest`. */
async function hashPrefix(path: string, length: number, digest: Digest): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1 })) digest.update(chunk as Buffer);
}

/** sha256 and size of a file, read as a stream. */
export async function sha256File(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Refuses tree paths that would land outside the snapshot folder. */
function checkRelativePath(ctx: Context, path: string): void {
  const segments = path.split('/');
  if (path.startsWith('/') || path.includes('\\') || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new HubError(`${where(ctx)}: the tree lists an unsafe path "${path}"`, ctx.repo, ctx.revision, undefined, path);
  }
}

const RETRY_BASE_MS = 500;

/** Waits `ms`, or less if the signal fires (the caller then sees it aborted). */
async function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  await delay(ms, undefined, signal ? { signal } : {}).catch(() => undefined);
}

interface FileJob {
  entry: ListFileEntry;
  expected: Expected;
  target: string;
  /** Reports bytes of this file present so far. */
  progress: (bytes: number) => void;
}

/**
 * Downloads one file into `<target>.incomplete`, resuming from what is there, verifies it and renames
 * it. Returns its sha256 and the bytes transferred.
 */
async function fetchFile(ctx: Context, commit: string, job: FileJob, retries: number): Promise<{ sha256: string; transferred: number }> {
  const { entry, expected, target } = job;
  const partial = `${target}.incomplete`;
  let transferred = 0;
  let rangeIgnored: string | undefined;
  const fetchFn = hubFetch(ctx.signal, ctx.errorCodes, (why) => {
    rangeIgnored = why;
  });
  for (let attempt = 0; ; attempt++) {
    let have = (await sizeOf(partial)) ?? 0;
    if (have > expected.size) {
      await unlink(partial);
      have = 0;
    }
    const digest = new Digest(expected);
    await hashPrefix(partial, have, digest);
    job.progress(have);
    try {
      if (have < expected.size) {
        if (have > 0) ctx.log(`${entry.path}: resuming at byte ${have} of ${expected.size}`);
        // The library's Blob fetches lazily; slice() makes it ask for the missing range only.
        // xet: false, so that large files come over plain HTTP from the resolve URL, which honours Range.
        const blob = await downloadFile({ repo: ctx.repo, path: entry.path, revision: commit, hubUrl: ctx.hubUrl, accessToken: ctx.accessToken, fetch: fetchFn, xet: false });
        if (!blob) throw new HubError(`${where(ctx, commit)}: ${entry.path} is in the tree but the hub has no such file`, ctx.repo, ctx.revision, 404, entry.path);
        const out = await open(partial, 'a');
        try {
          const body = Readable.fromWeb((have > 0 ? blob.slice(have) : blob).stream() as NodeReadableStream<Uint8Array>);
          for await (const chunk of body) {
            const bytes = chunk as Uint8Array;
            if (have + bytes.length > expected.size) throw new Error(`the server sent more than the ${expected.size} bytes the tree lists`);
            digest.update(bytes);
            await writeFully(out, bytes);
            have += bytes.length;
            transferred += bytes.length;
            job.progress(have);
          }
          await out.sync();
        } finally {
          await out.close();
        }
      }
    } catch (e) {
      if (ctx.signal?.aborted) throw new CancelledError('download');
      // A refusal (bad token, no such file) will not change on retry; a server error or a broken connection may.
      if (e instanceof HubError || (e instanceof HubApiError && e.statusCode < 500 && e.statusCode !== 429)) throw explain(ctx, e, 'download', commit, entry.path);
      if (rangeIgnored) {
        ctx.log(`${entry.path}: the server cannot resume (${rangeIgnored}); starting over`);
        await unlink(partial).catch(() => undefined);
        rangeIgnored = undefined;
      }
      if (attempt >= retries) throw explain(ctx, e, `download (after ${attempt + 1} tries)`, commit, entry.path);
      ctx.log(`${entry.path}: transfer broke at byte ${(await sizeOf(partial)) ?? 0} (${e instanceof Error ? e.message : String(e)}); retrying`);
      await sleep(RETRY_BASE_MS * 2 ** attempt, ctx.signal);
      continue;
    }
    const { sha256, mismatch } = digest.finish(have);
    if (mismatch) {
      await unlink(partial);
      throw new IntegrityError(`${where(ctx, commit)}: ${entry.path} ${mismatch}; the download was deleted`, ctx.repo, ctx.revision, entry.path);
    }
    await rename(partial, target);
    return { sha256, transferred };
  }
}

/** Hashes a file already in the cache: its sha256 when it matches the tree, else undefined (and it is deleted). */
async function verifyCached(ctx: Context, job: FileJob): Promise<string | undefined> {
  const size = await sizeOf(job.target);
  if (size === undefined) return undefined;
  const digest = new Digest(job.expected);
  await hashPrefix(job.target, size, digest);
  const { sha256, mismatch } = digest.finish(size);
  if (!mismatch) return sha256;
  ctx.log(`${job.entry.path}: the cached copy ${mismatch}; downloading it again`);
  await unlink(job.target);
  return undefined;
}

/** Deletes everything under `dir` that is not one of the `listed` regular files (paths relative to `dir`). */
async function removeUnlisted(ctx: Context, dir: string, listed: ReadonlySet<string>, under = ''): Promise<void> {
  for (const entry of await readdir(join(dir, under), { withFileTypes: true })) {
    const path = under ? `${under}/${entry.name}` : entry.name;
    if (entry.isFile() && listed.has(path)) continue;
    if (entry.isDirectory() && [...listed].some((p) => p.startsWith(`${path}/`))) {
      await removeUnlisted(ctx, dir, listed, path);
      continue;
    }
    ctx.log(`${path}: not in the tree of this commit; deleted from the cache`);
    await rm(join(dir, path), { recursive: true, force: true });
  }
}

/** Fails before the first byte when the cache's file system cannot hold what is still missing. */
async function checkFreeSpace(ctx: Context, dir: string, jobs: readonly { expected: Expected; target: string }[]): Promise<void> {
  let needed = 0;
  for (const j of jobs) {
    const complete = await sizeOf(j.target);
    if (complete === j.expected.size) continue;
    needed += j.expected.size - ((await sizeOf(`${j.target}.incomplete`)) ?? 0);
  }
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (needed > free) {
    throw new HubError(`${where(ctx)}: ${dir} needs ${(needed / 2 ** 20).toFixed(1)} MiB more but its file system has ${(free / 2 ** 20).toFixed(1)} MiB free`, ctx.repo, ctx.revision);
  }
}

function resolveHubUrl(value: string | undefined): string {
  const text = value ?? process.env.HF_ENDPOINT ?? DEFAULT_HUB_URL;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InputError('hub-url', `"${text}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new InputError('hub-url', `"${text}" must be an http(s) URL`);
  return text.replace(/\/+$/, '');
}

/** Resolves the revision, lists the repository and brings every wanted file into the per-commit cache folder. */
export async function downloadModel(options: DownloadOptions): Promise<DownloadResult> {
  const { repo, revision } = options.source;
  const token = options.token || undefined;
  if (token !== undefined && !token.startsWith('hf_')) throw new InputError('hf-token', "a Hugging Face token starts with 'hf_'");
  const errorCodes = new Map<string, string>();
  const ctx: Context = {
    repo,
    revision,
    hubUrl: resolveHubUrl(options.hubUrl),
    accessToken: token,
    errorCodes,
    signal: options.signal,
    log: options.log ?? (() => undefined),
  };
  const api = { hubUrl: ctx.hubUrl, accessToken: ctx.accessToken, fetch: hubFetch(options.signal, errorCodes) };
  const include = options.include ?? isModelFile;

  const info = await modelInfo({ name: repo, revision, additionalFields: ['sha'], ...api }).catch((e: unknown) => {
    throw explain(ctx, e, 'resolving the revision');
  });
  const commit = info.sha;
  if (typeof commit !== 'string' || !COMMIT.test(commit)) throw new HubError(`${where(ctx)}: the hub returned no commit id for the revision`, repo, revision);
  ctx.log(`${repo}@${revision}: commit ${commit}`);

  const entries: ListFileEntry[] = [];
  try {
    for await (const entry of listFiles({ repo, revision: commit, recursive: true, ...api })) {
      if (entry.type === 'file' && include(entry.path)) entries.push(entry);
    }
  } catch (e) {
    throw explain(ctx, e, 'listing the files', commit);
  }
  if (entries.length === 0) throw new HubError(`${where(ctx, commit)}: the repository has no files to download (config.json, *.safetensors, tokenizer)`, repo, revision);

  const dir = join(options.cacheDir, repo.replace('/', '--'), commit);
  const jobs = entries.map((entry) => {
    checkRelativePath(ctx, entry.path);
    return { entry, expected: expectedOf(entry), target: join(dir, entry.path) };
  });
  await mkdir(dir, { recursive: true });
  await checkFreeSpace(ctx, dir, jobs);

  const total = jobs.reduce((n, j) => n + j.expected.size, 0);
  const present = new Map<string, number>();
  let done = 0;
  const report = (path: string, bytes: number) => {
    done += bytes - (present.get(path) ?? 0);
    present.set(path, bytes);
    options.onProgress?.(done, total, path);
  };
  // A failed file stops the others (they keep their .incomplete for the next run).
  const stop = new AbortController();
  const jobSignal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const jobCtx: Context = { ...ctx, signal: jobSignal };
  let downloadedBytes = 0;
  const files: DownloadedFile[] = [];
  let next = 0;
  const worker = async () => {
    while (next < jobs.length && !jobSignal.aborted) {
      const index = next++;
      const j = jobs[index]!;
      const job: FileJob = { ...j, progress: (bytes) => report(j.entry.path, bytes) };
      await mkdir(dirname(job.target), { recursive: true });
      let sha256 = await verifyCached(ctx, job);
      if (sha256) {
        ctx.log(`${j.entry.path}: cached`);
      } else {
        const fetched = await fetchFile(jobCtx, commit, job, options.retries ?? 3);
        sha256 = fetched.sha256;
        downloadedBytes += fetched.transferred;
        ctx.log(`${j.entry.path}: ${j.expected.size} bytes, sha256 ${sha256}`);
      }
      report(j.entry.path, j.expected.size);
      files[index] = { path: j.entry.path, size: j.expected.size, sha256 };
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 4, jobs.length)) }, () =>
    worker().catch((e: unknown) => {
      stop.abort();
      throw e;
    }),
  );
  // Every worker has settled (no write still in flight) before the call returns or throws.
  const settled = await Promise.allSettled(workers);
  if (options.signal?.aborted) throw new CancelledError('download');
  const failures = settled.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  const failure = failures.find((e) => !(e instanceof CancelledError)) ?? failures[0];
  if (failure !== undefined) throw failure;
  await removeUnlisted(ctx, dir, new Set(entries.map((e) => e.path)));
  return { dir, commit, files, downloadedBytes };
}
