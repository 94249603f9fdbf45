/**
 * Publishing to Spaces against a real S3 server (s3rver on 127.0.0.1) with real files: multipart
 * uploads, metadata sha256, checksums.txt and manifest.json recomputed here, skipping unchanged files,
 * ACLs on the wire, and the failure paths (wrong credentials, missing bucket, corrupted read-back,
 * the server stopping mid-upload, a server without UploadPartCopy).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile, spawnSync } from 'node:child_process';
import { inspect, promisify } from 'node:util';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { baselineKey } from '../pipeline/baseline.js';
import { cdnUrl, describeS3Error, maskSecrets, objectUrl, readObjectText, spacesClient, writeObjectText, type SpacesTarget } from '../pipeline/spaces.js';
import { copyRanges, MAX_PARTS, parseAcl, partSizeFor, publishModel, type PublishOptions } from '../pipeline/publish.js';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startProxy, startS3rver, targetFor, type Proxy, type S3Server } from './s3-server.js';
import { removeDir, tempDir } from './helpers.js';

const MiB = 1024 * 1024;
const BUCKET = 'glm-models';
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

let dir: string;
let s3: S3Server;
let proxy: Proxy;
let target: SpacesTarget;
let client: S3Client;
let model: string;
let tokenizer: string;
let license: string;

beforeAll(async () => {
  dir = await tempDir('glm-spaces-');
  s3 = await startS3rver(join(dir, 's3'), BUCKET);
  proxy = await startProxy(s3.port);
  target = targetFor(proxy.endpoint, BUCKET);
  client = spacesClient(target);
  // 11 MiB: three parts at the 5 MiB minimum part size, so the multipart path runs.
  model = join(dir, 'glm-4-9b-q40.m');
  await writeFile(model, randomBytes(11 * MiB + 123));
  tokenizer = join(dir, 'glm-4-9b.t');
  await writeFile(tokenizer, randomBytes(3000));
  license = join(dir, 'LICENSE');
  await writeFile(license, 'MIT License\n');
});

afterAll(async () => {
  client.destroy();
  await proxy.stop();
  await s3.close();
  await removeDir(dir);
});

async function keysUnder(prefix: string, s3Target = target): Promise<string[]> {
  const c = spacesClient(s3Target);
  try {
    const page = await c.send(new ListObjectsV2Command({ Bucket: s3Target.bucket, Prefix: prefix }));
    return (page.Contents ?? []).map((o) => o.Key as string).sort();
  } finally {
    c.destroy();
  }
}

async function objectBytes(key: string): Promise<Buffer> {
  const response = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await (response.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

function options(prefix: string, overrides: Partial<PublishOptions> = {}): PublishOptions {
  return {
    target,
    files: [model, tokenizer, license],
    facts: { model: 'GLM-4-9B', quant: 'q40', sourceRepo: 'zai-org/glm-4-9b', sourceRevision: 'abc123', converterVersion: '0.1.0', perplexity: 7.25, decodeTps: 12.5 },
    prefix,
    partSize: 5 * MiB,
    ...overrides,
  };
}

/** Requests the proxy saw during `work`. */
async function requestsDuring<T>(work: () => Promise<T>) {
  const start = proxy.requests.length;
  const result = await work();
  return { result, requests: proxy.requests.slice(start) };
}

describe('configuration', () => {
  test('parseAcl accepts the two canned ACLs Spaces supports and names the field otherwise', () => {
    expect(parseAcl('private', 'acl')).toBe('private');
    expect(parseAcl('public-read', 'acl')).toBe('public-read');
    expect(() => parseAcl('authenticated-read', 'acl')).toThrow(/^acl: "authenticated-read" is not a supported ACL/);
  });

  test('the default part size fits 200 GB in 10,000 parts and is at least 64 MiB', () => {
    expect(partSizeFor(1000)).toBe(64 * MiB);
    const size = 200e9;
    const part = partSizeFor(size);
    expect(part % MiB).toBe(0);
    expect(Math.ceil(size / part)).toBeLessThanOrEqual(MAX_PARTS);
    const huge = 2e12; // 2 TB needs more than 64 MiB parts
    expect(Math.ceil(huge / partSizeFor(huge))).toBeLessThanOrEqual(MAX_PARTS);
    expect(partSizeFor(huge)).toBeGreaterThan(64 * MiB);
    expect(() => partSizeFor(10 * MiB, 1 * MiB)).toThrow(/partSize: .* part size limits/);
    expect(() => partSizeFor(200e9, 5 * MiB)).toThrow(/more than 10000 parts/);
  });

  test('copy ranges cover the object exactly, inclusive, the last one shorter', () => {
    expect(copyRanges(10, 4)).toEqual([
      { first: 0, last: 3 },
      { first: 4, last: 7 },
      { first: 8, last: 9 },
    ]);
    expect(copyRanges(8, 4)).toEqual([
      { first: 0, last: 3 },
      { first: 4, last: 7 },
    ]);
  });

  test('Spaces regions give virtual-host origin and CDN URLs; custom endpoints path-style and no CDN', async () => {
    const spaces: SpacesTarget = { bucket: 'my-models', region: 'nyc3', accessKeyId: 'k', secretAccessKey: 's' };
    expect(objectUrl(spaces, 'models/GLM-4-9B/q40/model.m')).toBe('https://my-models.nyc3.digitaloceanspaces.com/models/GLM-4-9B/q40/model.m');
    expect(cdnUrl(spaces, 'models/a b/x')).toBe('https://my-models.nyc3.cdn.digitaloceanspaces.com/models/a%20b/x');
    expect(objectUrl(target, 'a/b')).toBe(`${proxy.endpoint}/${BUCKET}/a/b`);
    expect(cdnUrl(target, 'a/b')).toBeUndefined();
    expect(cdnUrl({ ...spaces, region: undefined, endpoint: 'https://fra1.digitaloceanspaces.com' }, 'k')).toBe('https://my-models.fra1.cdn.digitaloceanspaces.com/k');
    const c = spacesClient(spaces);
    try {
      // Spaces has rejected the SDK's default CRC32 checksums; the client only sends them where an API requires one.
      expect(await c.config.requestChecksumCalculation()).toBe('WHEN_REQUIRED');
      expect(await c.config.responseChecksumValidation()).toBe('WHEN_REQUIRED');
      expect(c.config.forcePathStyle).toBe(false);
      expect(String((await c.config.endpoint?.())?.hostname)).toBe('nyc3.digitaloceanspaces.com');
    } finally {
      c.destroy();
    }
    expect(() => spacesClient({ ...spaces, region: undefined })).toThrow(/region \/ endpoint: one of them is required/);
    expect(() => spacesClient({ ...spaces, region: 'New York' })).toThrow(/region: "New York" is not a Spaces region slug/);
    expect(() => spacesClient({ ...spaces, bucket: 'Bad_Bucket' })).toThrow(/bucket: "Bad_Bucket" is not a valid bucket name/);
  });

  test('S3 error codes become messages that say what to fix', () => {
    const s3Error = (name: string, status: number) => new S3ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: status }, message: 'from the server' });
    expect(describeS3Error(target, 'upload', s3Error('SignatureDoesNotMatch', 403), 'a/b').message).toBe(
      `upload s3://${BUCKET}/a/b failed: wrong credentials for bucket ${BUCKET} at endpoint ${proxy.endpoint} (SignatureDoesNotMatch (HTTP 403): from the server)`,
    );
    expect(describeS3Error(target, 'list', s3Error('AccessDenied', 403)).message).toMatch(/^list bucket glm-models failed: access denied to bucket glm-models at endpoint .*: the key lacks permission/);
    expect(describeS3Error(target, 'list', s3Error('SlowDown', 503)).code).toBe('SlowDown');
  });

  test('credentials are masked in text; values too short to be real keys are left alone', () => {
    expect(maskSecrets(target, `key ${ACCESS_KEY_ID} secret ${SECRET_ACCESS_KEY}.`)).toBe('key *** secret ***.');
    expect(maskSecrets({ ...target, accessKeyId: 'a', secretAccessKey: 'b' }, 'a bucket')).toBe('a bucket');
  });

  test('bad inputs are refused before any request, naming the field or file', async () => {
    const before = proxy.requests.length;
    await expect(publishModel(options('bad', { facts: { model: 'zai-org/GLM', quant: 'q40', converterVersion: '0' } }))).rejects.toThrow(/^model-name: "zai-org\/GLM"/);
    await expect(publishModel(options('bad', { files: [join(dir, 'missing.m')] }))).rejects.toThrow(/^files: cannot read .*missing\.m/);
    await expect(publishModel(options('bad', { files: [model, model] }))).rejects.toThrow(/would both be published as model\.m/);
    await expect(publishModel(options('bad', { acl: 'public' as 'private' }))).rejects.toThrow(/^acl: "public"/);
    expect(proxy.requests.length).toBe(before);
  });
});

describe('publish', () => {
  test('stages, verifies and promotes: multipart upload, sha256 metadata, checksums.txt, manifest.json, model card', async () => {
    const lines: string[] = [];
    const progress: [number, number][] = [];
    const { result, requests } = await requestsDuring(() =>
      publishModel(options('release', { acl: 'public-read', log: (l) => lines.push(l), onProgress: (d, t) => progress.push([d, t]) })),
    );
    const dirKey = 'release/GLM-4-9B/q40';
    const names = ['README.md', 'checksums.txt', 'LICENSE', 'manifest.json', 'model.m', 'tokenizer.t'];
    expect(await keysUnder('release/')).toEqual(names.map((n) => `${dirKey}/${n}`).sort());
    expect(result.uploaded.sort()).toEqual([...names].sort());
    expect(result.skipped).toEqual([]);
    expect(result.promoted.sort()).toEqual([...names].sort());
    expect(result.manifestUrl).toBe(`${proxy.endpoint}/${BUCKET}/${dirKey}/manifest.json`);
    expect(result.urls).toContain(`${proxy.endpoint}/${BUCKET}/${dirKey}/model.m`);
    expect(result.cdnUrls).toEqual([]);
    // Staging objects are gone after promotion.
    expect(await keysUnder(`${result.stagingPrefix}/`)).toEqual([]);

    // The model went up in three parts (11 MiB at 5 MiB parts) to the staging key.
    const parts = requests.filter((r) => r.method === 'PUT' && r.path.includes(`${result.stagingPrefix}/GLM-4-9B/q40/model.m?`) && r.path.includes('partNumber='));
    expect(parts.map((r) => new URLSearchParams(r.path.split('?')[1]).get('partNumber')).sort()).toEqual(['1', '2', '3']);
    // Promotion is a server-side copy carrying the requested ACL; staging uploads carry none (private by default).
    const copies = requests.filter((r) => r.method === 'PUT' && r.path.startsWith(`/${BUCKET}/${dirKey}/`));
    expect(copies).toHaveLength(6);
    expect(copies.every((r) => r.acl === 'public-read')).toBe(true);
    expect(requests.filter((r) => r.path.includes(result.stagingPrefix)).every((r) => r.acl === undefined)).toBe(true);

    // Progress counts bytes up to the total of what was uploaded.
    const last = progress[progress.length - 1];
    expect(last?.[0]).toBe(last?.[1]);
    expect(last?.[1]).toBeGreaterThan(11 * MiB);

    // Stored bytes and metadata sha256 are the local files' (hashed again here with node:crypto).
    const local = { 'model.m': await readFile(model), 'tokenizer.t': await readFile(tokenizer), LICENSE: await readFile(license) };
    for (const [name, bytes] of Object.entries(local)) {
      const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${dirKey}/${name}` }));
      expect(head.Metadata?.sha256).toBe(sha256(bytes));
      expect(head.ContentLength).toBe(bytes.length);
      expect((await objectBytes(`${dirKey}/${name}`)).equals(bytes)).toBe(true);
    }

    // checksums.txt: sha256sum format over every file except itself, each line checked against the stored object.
    const checksums = (await objectBytes(`${dirKey}/checksums.txt`)).toString('utf8');
    const lineRe = /^([0-9a-f]{64}) {2}(\S+)$/;
    const listed = checksums.trimEnd().split('\n').map((l) => lineRe.exec(l));
    expect(listed.every((m) => m !== null)).toBe(true);
    expect(listed.map((m) => m?.[2]).sort()).toEqual(['LICENSE', 'README.md', 'manifest.json', 'model.m', 'tokenizer.t']);
    for (const m of listed) expect(m?.[1]).toBe(sha256(await objectBytes(`${dirKey}/${m?.[2]}`)));
    // coreutils itself accepts it on a full download.
    const download = join(dir, 'download');
    await mkdir(download);
    for (const name of names) await writeFile(join(download, name), await objectBytes(`${dirKey}/${name}`));
    const check = spawnSync('sha256sum', ['-c', 'checksums.txt'], { cwd: download, encoding: 'utf8' });
    expect(check.stdout.trim().split('\n').sort()).toEqual(names.filter((n) => n !== 'checksums.txt').map((n) => `${n}: OK`).sort());
    expect(check.status).toBe(0);

    // manifest.json: facts and every file's size and sha256.
    const manifest = JSON.parse((await objectBytes(`${dirKey}/manifest.json`)).toString('utf8'));
    expect(manifest).toMatchObject({ model: 'GLM-4-9B', quant: 'q40', sourceRepo: 'zai-org/glm-4-9b', sourceRevision: 'abc123', converterVersion: '0.1.0', perplexity: 7.25, decodeTps: 12.5 });
    expect(manifest.files.map((f: { name: string }) => f.name)).toEqual(['model.m', 'tokenizer.t', 'LICENSE', 'README.md']);
    for (const f of manifest.files as { name: string; size: number; sha256: string }[]) {
      const bytes = await objectBytes(`${dirKey}/${f.name}`);
      expect(f).toEqual({ name: f.name, size: bytes.length, sha256: sha256(bytes) });
    }
    expect(manifest.totalSize).toBe(manifest.files.reduce((s: number, f: { size: number }) => s + f.size, 0));

    // The model card names the model, its sizes and hashes, and how to fetch and run it.
    const card = (await objectBytes(`${dirKey}/README.md`)).toString('utf8');
    expect(card).toContain('# GLM-4-9B (q40)');
    expect(card).toContain(sha256(local['model.m']));
    expect(card).toContain('https://huggingface.co/zai-org/glm-4-9b');
    expect(card).toContain('7.2500');
    expect(card).toContain(`curl -fLO ${proxy.endpoint}/${BUCKET}/${dirKey}/model.m`);
    expect(card).toContain('sha256sum -c --ignore-missing checksums.txt');
    expect(card).toContain('glm-dllama generate --model model.m --tokenizer tokenizer.t');

    expect(lines.some((l) => l.startsWith('verified ') && l.includes('model.m'))).toBe(true);
  });

  test('a second publish skips unchanged files and re-uploads a changed one', async () => {
    await publishModel(options('again'));
    const unchanged = await requestsDuring(() => publishModel(options('again')));
    expect(unchanged.result.uploaded).toEqual([]);
    expect(unchanged.result.skipped.sort()).toEqual(['LICENSE', 'README.md', 'checksums.txt', 'manifest.json', 'model.m', 'tokenizer.t']);
    expect(unchanged.requests.filter((r) => r.method === 'PUT' || r.method === 'POST')).toEqual([]);

    const changedTokenizer = join(dir, 'changed.t');
    const bytes = randomBytes(3000);
    await writeFile(changedTokenizer, bytes);
    const changed = await requestsDuring(() => publishModel(options('again', { files: [model, changedTokenizer, license] })));
    // The tokenizer and what describes it (card, manifest, checksums) change; the 11 MiB model is not sent again.
    expect(changed.result.uploaded.sort()).toEqual(['README.md', 'checksums.txt', 'manifest.json', 'tokenizer.t']);
    expect(changed.result.skipped.sort()).toEqual(['LICENSE', 'model.m']);
    expect(changed.requests.some((r) => r.path.includes('model.m') && r.method === 'PUT')).toBe(false);
    expect((await objectBytes('again/GLM-4-9B/q40/tokenizer.t')).equals(bytes)).toBe(true);
    const checksums = (await objectBytes('again/GLM-4-9B/q40/checksums.txt')).toString('utf8');
    expect(checksums).toContain(`${sha256(bytes)}  tokenizer.t\n`);
  });

  test('private is the default ACL of promoted objects', async () => {
    const { requests } = await requestsDuring(() => publishModel(options('private', { files: [tokenizer] })));
    const copies = requests.filter((r) => r.method === 'PUT' && r.path.startsWith(`/${BUCKET}/private/`));
    expect(copies.length).toBe(4);
    expect(copies.every((r) => r.acl === 'private')).toBe(true);
  });

  test('promote: false stops after staging and verifying; the release prefix stays empty', async () => {
    const result = await publishModel(options('held', { files: [tokenizer], promote: false, stagingPrefix: 'staging/held-run' }));
    expect(result.promoted).toEqual([]);
    expect(await keysUnder('held/')).toEqual([]);
    expect(await keysUnder('staging/held-run/')).toHaveLength(4);
    expect(result.manifestUrl).toBe(`${proxy.endpoint}/${BUCKET}/staging/held-run/GLM-4-9B/q40/manifest.json`);
  });

  test('readObjectText / writeObjectText round trip a baseline; a missing key reads as undefined', async () => {
    const key = baselineKey({ kind: 'benchmark', branch: 'main', model: 'GLM-4-9B.q40.m', runnerLabel: 'gpu-h100' });
    expect(key).toBe('baselines/main/gpu-h100/GLM-4-9B.q40.m/benchmark.json');
    expect(baselineKey({ kind: 'perplexity', branch: 'release/1.x', model: 'GLM-4-9B.q40.m', runnerLabel: 'self-hosted/gpu' })).toBe('baselines/release_1.x/self-hosted_gpu/GLM-4-9B.q40.m/perplexity.json');
    expect(await readObjectText(target, key)).toBeUndefined();
    const text = JSON.stringify({ decodeTps: 41.5, perplexity: 6.9, note: 'zażółć' });
    await writeObjectText(target, key, text, 'application/json');
    expect(await readObjectText(target, key)).toBe(text);
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    expect(head.ContentType).toBe('application/json');
  });
});

describe('glm-dllama publish', () => {
  /** The built CLI, run without blocking this process (the S3 server lives in it). */
  async function publishCli(args: string[], env: Record<string, string>) {
    return promisify(execFile)(process.execPath, [join(process.cwd(), 'dist', 'cli', 'glm-dllama.js'), 'publish', ...args], {
      env: { PATH: process.env.PATH, CI: 'true', ...env },
    }).then(
      (r) => ({ status: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ status: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  }
  const common = () => ['--files', `${tokenizer},${license}`, '--model-name', 'GLM-4-9B', '--quant', 'q80', '--bucket', BUCKET, '--endpoint', proxy.endpoint, '--prefix', 'cli'];

  test('publishes with keys from the environment and prints the URLs; keys never printed', async () => {
    const facts = ['--perplexity', '8.5'];
    const run = await publishCli([...common(), ...facts, '--acl', 'public-read', '--json'], { SPACES_ACCESS_KEY_ID: ACCESS_KEY_ID, SPACES_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY });
    expect(run.stderr).not.toContain(SECRET_ACCESS_KEY);
    expect(run.status).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.manifestUrl).toBe(`${proxy.endpoint}/${BUCKET}/cli/GLM-4-9B/q80/manifest.json`);
    expect(result.uploaded.sort()).toEqual(['LICENSE', 'README.md', 'checksums.txt', 'manifest.json', 'tokenizer.t']);
    const manifest = JSON.parse((await objectBytes('cli/GLM-4-9B/q80/manifest.json')).toString('utf8'));
    expect(manifest.perplexity).toBe(8.5);
    expect(manifest.converterVersion).toBe(JSON.parse(await readFile('package.json', 'utf8')).version);
    // AWS_* names work too; an unchanged second run uploads nothing. It asks for the default ACL: s3rver's
    // GetObjectAcl always answers "private" and it has no PutObjectAcl, so public-read would try to set it.
    const again = await publishCli([...common(), ...facts], { AWS_ACCESS_KEY_ID: ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY });
    expect(again.status).toBe(0);
    expect(again.stdout).toContain('0 uploaded, 5 unchanged');
    expect(again.stdout).toContain(`manifest ${proxy.endpoint}/${BUCKET}/cli/GLM-4-9B/q80/manifest.json`);
  });

  test('missing keys, a bad ACL and wrong keys exit 1 with a clear message', async () => {
    const noKeys = await publishCli(common(), {});
    expect(noKeys.status).toBe(1);
    expect(noKeys.stderr).toContain('credentials: set SPACES_ACCESS_KEY_ID and SPACES_SECRET_ACCESS_KEY');
    const badAcl = await publishCli([...common(), '--acl', 'public-read-write'], { SPACES_ACCESS_KEY_ID: ACCESS_KEY_ID, SPACES_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY });
    expect(badAcl.status).toBe(1);
    expect(badAcl.stderr).toContain('--acl: "public-read-write" is not a supported ACL');
    const wrong = await publishCli(common(), { SPACES_ACCESS_KEY_ID: 'NOSUCHKEY', SPACES_SECRET_ACCESS_KEY: 'not-the-secret-123' });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain(`wrong credentials for bucket ${BUCKET} at endpoint ${proxy.endpoint}`);
    expect(wrong.stderr + wrong.stdout).not.toMatch(/NOSUCHKEY|not-the-secret-123/);
  });
});

describe('failures', () => {
  function expectNoSecrets(error: unknown, lines: string[]) {
    const everything = [inspect(error, { depth: 10 }), (error as Error).message, ...lines].join('\n');
    expect(everything).not.toContain(SECRET_ACCESS_KEY);
    expect(everything).not.toContain(ACCESS_KEY_ID);
  }

  test('wrong credentials: a clear error naming bucket and endpoint, no secret anywhere, nothing written', async () => {
    const lines: string[] = [];
    const wrongSecret = 'wrong-secret-0d9f8e7c6b5a4';
    const wrong = targetFor(proxy.endpoint, BUCKET, { accessKeyId: 'UNKNOWNKEYID12345', secretAccessKey: wrongSecret });
    const error = await publishModel(options('denied', { target: wrong, log: (l) => lines.push(l) })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(new RegExp(`wrong credentials for bucket ${BUCKET} at endpoint ${proxy.endpoint} \\(InvalidAccessKeyId`));
    const everything = [inspect(error, { depth: 10 }), ...lines].join('\n');
    expect(everything).not.toContain('UNKNOWNKEYID12345');
    expect(everything).not.toContain(wrongSecret);
    expect(await keysUnder('denied/')).toEqual([]);
    await expect(readObjectText(wrong, 'x')).rejects.toThrow(/wrong credentials for bucket/);
  });

  test('missing bucket: "bucket X does not exist at Y"', async () => {
    const missing = targetFor(proxy.endpoint, 'no-such-bucket');
    const error = await publishModel(options('x', { target: missing })).catch((e: unknown) => e);
    expect((error as Error).message).toContain(`bucket no-such-bucket does not exist at ${proxy.endpoint}`);
    expectNoSecrets(error, []);
    await expect(writeObjectText(missing, 'k', 'v')).rejects.toThrow(`bucket no-such-bucket does not exist at ${proxy.endpoint}`);
  });

  test('a staged object that reads back different bytes is refused and nothing is promoted', async () => {
    const lines: string[] = [];
    proxy.corrupt = (path) => /\/staging\/.*\/tokenizer\.t(\?|$)/.test(path);
    try {
      const error = await publishModel(options('corrupt', { log: (l) => lines.push(l) })).catch((e: unknown) => e);
      expect((error as Error).message).toMatch(/^verify s3:\/\/glm-models\/staging\/.*\/tokenizer\.t failed: its content hashes to sha256 [0-9a-f]{64}, not [0-9a-f]{64} of tokenizer\.t/);
      expectNoSecrets(error, lines);
    } finally {
      proxy.corrupt = undefined;
    }
    expect(await keysUnder('corrupt/')).toEqual([]);
    // The staged objects were removed as well.
    expect((await keysUnder('staging/')).filter((k) => k.includes('/GLM-4-9B/q40/') && !k.startsWith('staging/held-run/'))).toEqual([]);
  });

  test('s3rver lacks UploadPartCopy: promotion above the threshold fails clearly and leaves the release prefix empty', async () => {
    const lines: string[] = [];
    const error = await publishModel(options('partcopy', { files: [tokenizer], copyPartThreshold: 1000, log: (l) => lines.push(l) })).catch((e: unknown) => e);
    // The model card and the tokenizer are over 1000 bytes, so the first promotion is a multipart copy.
    expect((error as Error).message).toMatch(/^promote \(part copy 1\/1\) s3:\/\/glm-models\/partcopy\/GLM-4-9B\/q40\/tokenizer\.t failed: NotImplemented \(HTTP 501\)/);
    expect((error as Error).message).toMatch(/its multipart upload [0-9a-f]+ could not be aborted/); // s3rver has no AbortMultipartUpload either
    expect(lines.some((l) => l.includes('multipart copy to partcopy/GLM-4-9B/q40/tokenizer.t in 1 parts'))).toBe(true);
    expect(await keysUnder('partcopy/')).toEqual([]);
  });

  test('the server stopping mid multipart upload: a clear error, and nothing at the release prefix after a restart', async () => {
    const own = await startS3rver(join(dir, 's3-stop'), BUCKET);
    const ownTarget = targetFor(own.endpoint, BUCKET, { maxAttempts: 2 });
    const lines: string[] = [];
    let stopping: Promise<void> | undefined;
    const error = await publishModel({
      ...options('release', { target: ownTarget, log: (l) => lines.push(l) }),
      onProgress: (done) => {
        if (done >= 5 * MiB) stopping ??= own.close(); // after the first 5 MiB part
      },
    }).catch((e: unknown) => e);
    expect(stopping).toBeDefined();
    await stopping;
    const message = (error as Error).message;
    expect(message).toMatch(/^upload s3:\/\/glm-models\/staging\/[^ ]+\/GLM-4-9B\/q40\/model\.m failed: cannot reach endpoint http:\/\/127\.0\.0\.1:\d+/);
    expect(message).toMatch(/its multipart upload [0-9a-f]+ could not be aborted/);
    expectNoSecrets(error, lines);

    const restarted = await startS3rver(own.directory, BUCKET, own.port);
    try {
      expect(await keysUnder('release/', ownTarget)).toEqual([]);
      // The run can be repeated once the server is back, and then completes.
      const result = await publishModel(options('release', { target: ownTarget }));
      expect(result.promoted).toHaveLength(6);
      expect((await keysUnder('release/', ownTarget)).length).toBe(6);
    } finally {
      await restarted.close();
    }
  });
});
