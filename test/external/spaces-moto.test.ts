/**
 * Publishing against moto's S3 server, which implements what s3rver lacks: UploadPartCopy (the
 * promotion path for objects above 5 GiB, here forced with a small threshold), AbortMultipartUpload
 * and ListMultipartUploads (so a failed upload can be shown to leave no parts), and object ACLs.
 * Needs `moto_server` (Python moto) on PATH.
 * @needs moto_server
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectAclCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { publishModel, type PublishOptions } from '../../pipeline/publish.js';
import { spacesClient, type SpacesTarget } from '../../pipeline/spaces.js';
import { startProxy, targetFor, type Proxy } from '../s3-server.js';
import { freePort, removeDir, tempDir } from '../helpers.js';

const MiB = 1024 * 1024;
const BUCKET = 'glm-moto';
const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';

let moto: ChildProcess;
let proxy: Proxy;
let target: SpacesTarget;
let client: S3Client;
let dir: string;
let model: string;
let tokenizer: string;

beforeAll(async () => {
  if (spawnSync('moto_server', ['--help']).status !== 0) throw new Error('moto_server (Python moto) is required for this test');
  const port = await freePort();
  moto = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  proxy = await startProxy(port);
  target = targetFor(proxy.endpoint, BUCKET, { maxAttempts: 1 });
  client = spacesClient(target);
  for (let i = 0; ; i++) {
    try {
      await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
      break;
    } catch (e) {
      if (i === 100) throw e;
      await new Promise((done) => setTimeout(done, 100)); // moto takes a moment to start listening
    }
  }
  dir = await tempDir('glm-moto-');
  model = join(dir, 'model.m');
  await writeFile(model, randomBytes(11 * MiB + 5));
  tokenizer = join(dir, 'tok.t');
  await writeFile(tokenizer, randomBytes(2000));
});

afterAll(async () => {
  client?.destroy();
  await proxy?.stop();
  moto?.kill();
  if (dir) await removeDir(dir);
});

function options(prefix: string, overrides: Partial<PublishOptions> = {}): PublishOptions {
  return { target, files: [model, tokenizer], facts: { model: 'GLM-4.5-Air', quant: 'q40', converterVersion: '0.1.0' }, prefix, partSize: 5 * MiB, ...overrides };
}

async function keysUnder(prefix: string): Promise<string[]> {
  return ((await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }))).Contents ?? []).map((o) => o.Key as string);
}

async function pendingUploads(): Promise<string[]> {
  return ((await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? []).map((u) => u.Key as string);
}

test('promotion above the threshold is a multipart UploadPartCopy; sha256 metadata and bytes survive it', async () => {
  const start = proxy.requests.length;
  // 6 MiB threshold: the 11 MiB model is copied in three 5 MiB ranges, the rest by CopyObject.
  await publishModel(options('partcopy', { copyPartThreshold: 6 * MiB, acl: 'public-read' }));
  const partCopies = proxy.requests.slice(start).filter((r) => r.method === 'PUT' && r.path.startsWith(`/${BUCKET}/partcopy/`) && r.path.includes('partNumber='));
  expect(partCopies).toHaveLength(3);
  const key = 'partcopy/GLM-4.5-Air/q40/model.m';
  const bytes = await readFile(model);
  const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
  expect(head.Metadata?.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
  const stored = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray());
  expect(stored.equals(bytes)).toBe(true);
  expect(await pendingUploads()).toEqual([]);
});

test('public-read grants AllUsers READ on every released object; private grants nobody else', async () => {
  await publishModel(options('acl-public', { acl: 'public-read', files: [tokenizer] }));
  await publishModel(options('acl-private', { files: [tokenizer] }));
  const readers = async (key: string) =>
    ((await client.send(new GetObjectAclCommand({ Bucket: BUCKET, Key: key }))).Grants ?? []).filter((g) => g.Grantee?.URI === ALL_USERS).map((g) => g.Permission);
  for (const name of ['tokenizer.t', 'README.md', 'checksums.txt', 'manifest.json']) {
    expect(await readers(`acl-public/GLM-4.5-Air/q40/${name}`)).toEqual(['READ']);
    expect(await readers(`acl-private/GLM-4.5-Air/q40/${name}`)).toEqual([]);
  }
});

test('republishing unchanged files with another ACL changes the ACL without uploading', async () => {
  const readers = async () =>
    ((await client.send(new GetObjectAclCommand({ Bucket: BUCKET, Key: 'acl-switch/GLM-4.5-Air/q40/tokenizer.t' }))).Grants ?? []).filter((g) => g.Grantee?.URI === ALL_USERS).length;
  await publishModel(options('acl-switch', { files: [tokenizer] }));
  expect(await readers()).toBe(0);
  const toPublic = await publishModel(options('acl-switch', { files: [tokenizer], acl: 'public-read' }));
  expect(toPublic.uploaded).toEqual([]);
  expect(await readers()).toBe(1);
  await publishModel(options('acl-switch', { files: [tokenizer], acl: 'private' }));
  expect(await readers()).toBe(0);
});

test('a connection lost mid multipart upload: the upload is aborted, no parts and nothing at the release prefix remain', async () => {
  proxy.drop = (method, path) => method === 'PUT' && path.includes('partNumber=2');
  const start = proxy.requests.length;
  let error: unknown;
  try {
    error = await publishModel(options('dropped')).catch((e: unknown) => e);
  } finally {
    proxy.drop = undefined;
  }
  expect((error as Error).message).toMatch(/^upload s3:\/\/glm-moto\/staging\/\S+\/model\.m failed: cannot reach endpoint .*; its multipart upload \S+ was aborted$/);
  // A multipart upload was started and then aborted (moto lists pending uploads; none is left).
  const seen = proxy.requests.slice(start);
  expect(seen.some((r) => r.method === 'POST' && r.path.includes('/model.m?uploads'))).toBe(true);
  expect(seen.some((r) => r.method === 'DELETE' && r.path.includes('/model.m?uploadId='))).toBe(true);
  expect(await pendingUploads()).toEqual([]);
  expect(await keysUnder('dropped/')).toEqual([]);
  expect(await keysUnder('staging/')).toEqual([]);
});

test('cancelling mid upload aborts the multipart upload and leaves nothing behind', async () => {
  const controller = new AbortController();
  const error = await publishModel(options('cancelled', { signal: controller.signal, onProgress: (done) => done >= 5 * MiB && controller.abort() })).catch((e: unknown) => e);
  expect((error as Error).name).toBe('CancelledError');
  expect(await pendingUploads()).toEqual([]);
  expect(await keysUnder('cancelled/')).toEqual([]);
});
