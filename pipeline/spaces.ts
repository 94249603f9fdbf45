/**
 * DigitalOcean Spaces (or any S3 endpoint) access: a client configured the way Spaces accepts it,
 * origin and CDN URLs, small text objects (baselines, manifests), downloads (an imatrix), and errors that say which bucket,
 * key and endpoint failed and why, with the credentials masked.
 */
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';

export interface SpacesTarget {
  bucket: string;
  /** A Spaces region slug such as nyc3; gives the endpoint https://nyc3.digitaloceanspaces.com. */
  region?: string;
  /** Any S3 endpoint (tests: s3rver on 127.0.0.1); one of region/endpoint is required. */
  endpoint?: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Default: true for a custom endpoint, false for Spaces regions (Spaces documents virtual-host style). */
  forcePathStyle?: boolean;
  /** Attempts per request, retries included (SDK standard retry mode: backoff, 503 SlowDown). Default 5. */
  maxAttempts?: number;
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const REGION_SLUG = /^[a-z]+[0-9]+$/;
const SPACES_HOST = /^([a-z]+[0-9]+)\.digitaloceanspaces\.com$/;

/** The parsed target: one endpoint URL, whether it is a Spaces region, and the addressing style. */
interface ResolvedTarget {
  endpoint: URL;
  spacesRegion?: string;
  pathStyle: boolean;
}

function resolve(target: SpacesTarget): ResolvedTarget {
  if (!BUCKET_NAME.test(target.bucket) || target.bucket.includes('..')) {
    throw new Error(`bucket: "${target.bucket}" is not a valid bucket name (3-63 lowercase letters, digits, dots and hyphens)`);
  }
  if (!target.accessKeyId || !target.secretAccessKey) {
    throw new Error(`access-key-id / secret-access-key: both are required for bucket ${target.bucket}`);
  }
  if (target.maxAttempts !== undefined && !(Number.isSafeInteger(target.maxAttempts) && target.maxAttempts >= 1)) {
    throw new Error(`maxAttempts: expected a positive integer, got ${target.maxAttempts}`);
  }
  let endpoint: URL;
  if (target.endpoint) {
    try {
      endpoint = new URL(target.endpoint);
    } catch {
      throw new Error(`endpoint: "${target.endpoint}" is not a URL`);
    }
    if (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') throw new Error(`endpoint: "${target.endpoint}" must be an http(s) URL`);
  } else if (target.region) {
    if (!REGION_SLUG.test(target.region)) throw new Error(`region: "${target.region}" is not a Spaces region slug (such as nyc3, ams3, fra1)`);
    endpoint = new URL(`https://${target.region}.digitaloceanspaces.com`);
  } else {
    throw new Error(`region / endpoint: one of them is required for bucket ${target.bucket}`);
  }
  const spacesRegion = SPACES_HOST.exec(endpoint.hostname)?.[1];
  return { endpoint, spacesRegion, pathStyle: target.forcePathStyle ?? spacesRegion === undefined };
}

/** The endpoint as it appears in messages (origin only: never a path, query or credentials). */
export function endpointLabel(target: SpacesTarget): string {
  return resolve(target).endpoint.origin;
}

let nodeNoticeGiven = false;

/**
 * On Node 20 the AWS SDK prints an 8-line warning with every client's first use; the same news is said
 * here once per process in one line (docs/getting-started.md lists the supported Node versions).
 */
function noticeOldNode(): void {
  if (nodeNoticeGiven || Number(process.versions.node.split('.')[0]) >= 22) return;
  nodeNoticeGiven = true;
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  process.stderr.write(`note: Node ${process.version} works, but AWS SDK releases from January 2027 (used to publish) need Node 22 or later; Node 22 or 24 is recommended\n`);
}

export function spacesClient(target: SpacesTarget): S3Client {
  const { endpoint, pathStyle } = resolve(target);
  noticeOldNode();
  return new S3Client({
    endpoint: endpoint.origin,
    // The SDK needs a region to sign with; Spaces ignores it (DO documents us-east-1). A custom endpoint
    // given together with a region (another S3 provider) signs with that region.
    region: target.endpoint && target.region ? target.region : 'us-east-1',
    forcePathStyle: pathStyle,
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
    // SDKs from 2025-01 on add CRC32 checksums to every upload by default, which Spaces and other
    // S3-compatible stores have rejected; integrity is checked with our own sha256 instead.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    retryMode: 'standard',
    maxAttempts: target.maxAttempts ?? 5,
  });
}

export function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/** The origin URL of an object (virtual-host style on Spaces, path style on a custom endpoint unless told otherwise). */
export function objectUrl(target: SpacesTarget, key: string): string {
  const { endpoint, pathStyle } = resolve(target);
  return pathStyle
    ? `${endpoint.origin}/${target.bucket}/${encodeKey(key)}`
    : `${endpoint.protocol}//${target.bucket}.${endpoint.host}/${encodeKey(key)}`;
}

/** The Spaces CDN URL of an object; undefined for endpoints that are not a Spaces region. */
export function cdnUrl(target: SpacesTarget, key: string): string | undefined {
  const { spacesRegion } = resolve(target);
  return spacesRegion === undefined ? undefined : `https://${target.bucket}.${spacesRegion}.cdn.digitaloceanspaces.com/${encodeKey(key)}`;
}

/** Shorter values (test dummies such as "a") would mask ordinary words; real Spaces keys are 20 and 43 characters. */
const MIN_MASKED_LENGTH = 8;

/** Replaces the target's credentials in `text` so that no log line or error can carry them. */
export function maskSecrets(target: SpacesTarget, text: string): string {
  let masked = text;
  for (const secret of [target.secretAccessKey, target.accessKeyId]) {
    if (secret.length >= MIN_MASKED_LENGTH) masked = masked.split(secret).join('***');
  }
  return masked;
}

/**
 * An S3 operation that failed. The message names the operation, bucket, key and endpoint and the cause;
 * `code` is the S3 error code (or the network error code). The SDK error is not kept: its fields can
 * include the access key id.
 */
export class SpacesError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'SpacesError';
  }
}

const NETWORK_ERROR = /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EPIPE|EHOSTUNREACH|ENETUNREACH)\b|socket hang up/;
const CREDENTIAL_CODES = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'AuthorizationHeaderMalformed']);

/** Turns any error from an S3 call into a SpacesError that says what was attempted where and why it failed. */
export function describeS3Error(target: SpacesTarget, what: string, error: unknown, key?: string): SpacesError {
  if (error instanceof SpacesError) return error;
  const at = endpointLabel(target);
  const where = key === undefined ? `bucket ${target.bucket}` : `s3://${target.bucket}/${key}`;
  let code = 'Unknown';
  let status: number | undefined;
  let cause: string;
  if (error instanceof S3ServiceException) {
    code = error.name;
    status = error.$metadata.httpStatusCode;
    const detail = `${error.name}${status ? ` (HTTP ${status})` : ''}: ${error.message}`;
    if (CREDENTIAL_CODES.has(code) || (status === 403 && code === 'Forbidden')) cause = `wrong credentials for bucket ${target.bucket} at endpoint ${at} (${detail})`;
    else if (code === 'AccessDenied') cause = `access denied to bucket ${target.bucket} at endpoint ${at}: the key lacks permission for this (${detail})`;
    else if (code === 'NoSuchBucket') cause = `bucket ${target.bucket} does not exist at ${at}`;
    else cause = `${detail} at endpoint ${at}`;
  } else if (typeof error === 'object' && error !== null && 'message' in error) {
    // Node's socket errors carry an errno code; the SDK's retry layer can hand them on wrapped in a
    // plain Error whose message is all that is left of them.
    const message = String(error.message).replace(/^AWS SDK error wrapper for (Error: )?/, '');
    const errno = (error as NodeJS.ErrnoException).code;
    const network = NETWORK_ERROR.exec(errno ?? '') ?? NETWORK_ERROR.exec(message);
    code = network ? (network[1] ?? 'ECONNRESET') : (errno ?? (error as Error).name);
    cause = network ? `cannot reach endpoint ${at} (${message})` : `${(error as Error).name}: ${message} (endpoint ${at})`;
  } else {
    cause = `${String(error)} (endpoint ${at})`;
  }
  return new SpacesError(maskSecrets(target, `${what} ${where} failed: ${cause}`), code, status);
}

/** Runs one S3 call, turning its failure into a SpacesError. */
export async function s3Call<T>(target: SpacesTarget, what: string, key: string | undefined, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw describeS3Error(target, what, e, key);
  }
}

async function withClient<T>(target: SpacesTarget, work: (client: S3Client) => Promise<T>): Promise<T> {
  const client = spacesClient(target);
  try {
    return await work(client);
  } finally {
    client.destroy();
  }
}

/** The object's text, or undefined when there is no object at `key` (a missing bucket is still an error). */
export async function readObjectText(target: SpacesTarget, key: string): Promise<string | undefined> {
  return withClient(target, async (client) => {
    try {
      const response = await client.send(new GetObjectCommand({ Bucket: target.bucket, Key: key }));
      return await response.Body?.transformToString('utf-8');
    } catch (e) {
      if (e instanceof NoSuchKey) return undefined;
      throw describeS3Error(target, 'read', e, key);
    }
  });
}

/** Streams the object at `key` into `file` (through a temporary name); a missing object is an error naming the key. */
export async function downloadObject(target: SpacesTarget, key: string, file: string): Promise<void> {
  await withClient(target, async (client) => {
    const response = await s3Call(target, 'read', key, () => client.send(new GetObjectCommand({ Bucket: target.bucket, Key: key })));
    const body = response.Body;
    if (!(body instanceof Readable)) throw new SpacesError(`${endpointLabel(target)}: reading ${key} gave no byte stream`, 'NoBody');
    const partial = `${file}.${process.pid}.partial`;
    try {
      await streamPipeline(body, createWriteStream(partial));
      await rename(partial, file);
    } catch (e) {
      await rm(partial, { force: true });
      throw e;
    }
  });
}

export async function writeObjectText(target: SpacesTarget, key: string, text: string, contentType = 'text/plain; charset=utf-8'): Promise<void> {
  await withClient(target, (client) =>
    s3Call(target, 'write', key, () => client.send(new PutObjectCommand({ Bucket: target.bucket, Key: key, Body: text, ContentType: contentType }))),
  );
}

const KEY_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** One path segment of a key (a model, quant or runner name): no '/', no leading '.' or '-'. */
export function keySegment(value: string, field: string): string {
  if (!KEY_SEGMENT.test(value)) throw new Error(`${field}: "${value}" must be letters, digits, '.', '_' and '-' (no '/', not starting with '.' or '-')`);
  return value;
}

/** A key prefix of one or more such segments; leading, trailing and doubled slashes are dropped. */
export function keyPath(value: string, field: string): string {
  const segments = value.split('/').filter((s) => s !== '');
  if (segments.length === 0 || !segments.every((s) => KEY_SEGMENT.test(s))) {
    throw new Error(`${field}: "${value}" must be one or more path segments of letters, digits, '.', '_' and '-' (not starting with '.' or '-')`);
  }
  return segments.join('/');
}
