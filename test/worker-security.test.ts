/**
 * A real `glm-engine worker` against a hostile root (test/fake-root.ts): every trigger of the security
 * review (docs/distributed.md, "Security") ends in a clear error to the root while the worker keeps
 * listening, never in a signal; and the worker refuses to listen off loopback without a secret.
 */
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { ENGINE, startWorker, stopWorker, waitForLog, type WorkerProcess } from '../engine/worker-process.js';
import { LoadedModel } from '../engine/index.js';
import { FakeRoot, Msg, frameHeader } from './fake-root.js';
import { fixture, removeDir, tempDir } from './helpers.js';

const SECRET = 'a test secret of 32 characters!!';
let dir: string;
let model: string;
let pairs: Buffer;
let dim: number;
let maxSeqLen: number;
let own: WorkerProcess; // with its own copy of the model
let bare: WorkerProcess; // receives its slices

/** The header pairs with key `key` set to `value`. */
function patched(key: number, value: number): Buffer {
  const out = Buffer.from(pairs);
  for (let at = 0; at < out.length; at += 8) if (out.readInt32LE(at) === key) out.writeInt32LE(value | 0, at + 4);
  return out;
}
const keyOf = (key: number) => {
  for (let at = 0; at < pairs.length; at += 8) if (pairs.readInt32LE(at) === key) return pairs.readInt32LE(at + 4);
  throw new Error(`no key ${key}`);
};
const port = (w: WorkerProcess) => Number(w.address.split(':')[1]);

beforeAll(async () => {
  dir = await tempDir();
  model = join(dir, 'glm4.f32.m');
  await convert({ modelDir: await fixture(dir, { arch: 'glm4' }), outFile: model, weights: 'f32' });
  const bytes = await readFile(model);
  pairs = bytes.subarray(8, bytes.readInt32LE(4));
  dim = keyOf(2);
  maxSeqLen = keyOf(10);
  const env = { GLM_ENGINE_SECRET: SECRET };
  [own, bare] = await Promise.all([startWorker(['--model', model, '--idle-timeout', '3'], env), startWorker(['--idle-timeout', '3'], env)]);
});
afterAll(async () => {
  [own, bare].forEach((w) => w && stopWorker(w));
  await removeDir(dir);
});

/** A session with the model-holding worker, ready for passes. */
async function session(context = 64): Promise<FakeRoot> {
  const root = await FakeRoot.connect(port(own));
  expect(await root.handshake(SECRET, { headerPairs: pairs, context })).toBeNull();
  await root.ready();
  return root;
}

afterEach(async () => {
  // Whatever the test did, both workers are alive (no signal) and serve a real root.
  for (const w of [own, bare]) {
    expect(w.child.exitCode).toBeNull();
    expect(w.child.signalCode).toBeNull();
  }
  const real = new LoadedModel(model, { threads: 1, contextLength: 16, workers: [own.address], secret: SECRET, sync: 'f32' });
  expect(real.evaluate([1, 2, 3]).length).toBe(real.vocabSize);
  real.close();
});

it.each([
  ['pos 0x7fffffff', [0x7fffffff, 1, 0, 1, 1]],
  ['pos + n wrapping', [0xffffffff, 2, 0, 1, 2]],
  ['first 0x7fffffff', [0, 1, 0x7fffffff, 1, 1]],
  ['count 0x7fffffff', [0, 1, 1, 0x7fffffff, 1]],
  ['n beyond the context', [0, 65, 0, 1, 65]],
])('a Forward with %s ends in an error, not a signal', async (_name, [pos, n, first, count, rows]) => {
  const root = await session();
  root.forward(pos!, n!, first!, count!, rows!, dim);
  expect(await root.errorMessage()).toMatch(/a pass of \d+ tokens at position \d+ .* does not fit the context of 64/);
  await root.closed();
});

it("a Forward whose rows do not match n is refused", async () => {
  const root = await session();
  root.forward(0, 0x40000000, 0, 1, 1, dim);
  await root.closed();
  await waitForLog(own, /a Forward of \d+ bytes does not hold 1073741824 rows; listening again/);
});

it("the root's context is clamped to the model's max_seq_len", async () => {
  const root = await session(0x7fffffff);
  root.forward(maxSeqLen, 1, 0, 1, 1, dim);
  expect(await root.errorMessage()).toMatch(new RegExp(`does not fit the context of ${maxSeqLen}$`));
  root.close();
});

it('a worker with its own model refuses a root whose header differs, even with the identity echoed', async () => {
  const root = await FakeRoot.connect(port(own));
  expect(await root.handshake(SECRET, { headerPairs: patched(9, 1 << 24) })).toMatch(/the root's model header differs from this worker's .*glm4\.f32\.m/);
  root.close();
});

it("a worker without a model refuses a root's header out of bounds", async () => {
  const root = await FakeRoot.connect(port(bare));
  expect(await root.handshake(SECRET, { headerPairs: patched(5, 268435460), sendWeights: true })).toMatch(/the root's model: header field n_heads = 268435460 is outside 1\.\.4096/);
  root.close();
});

it('the handshake covers every RootHello field: a relay that changes one fails authentication', async () => {
  const root = await FakeRoot.connect(port(own));
  // Byte 84 is the low byte of the context field (after the mac, the nonce and five u32 fields).
  expect(await root.handshake(SECRET, { headerPairs: pairs, tamper: (hello) => (hello[84]! ^= 1) })).toMatch(/authentication failed/);
  root.close();
});

it('after the handshake a frame with a bad tag, or a replayed one, ends the session', async () => {
  let root = await session();
  root.send(Msg.Ping, Buffer.alloc(0), Buffer.alloc(16));
  await root.closed();
  await waitForLog(own, /a frame failed authentication/);

  root = await session();
  const head = frameHeader(Msg.Ping, 0);
  const ping = Buffer.concat([head, root.tagOf(head, Buffer.alloc(0))]);
  root.socket.write(ping);
  root.socket.write(ping); // the same bytes again: the sequence number no longer matches
  await root.closed();
  const failures = () => own.log.filter((l) => /a frame failed authentication/.test(l)).length;
  for (let waited = 0; failures() < 2 && waited < 5_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  expect(failures()).toBe(2);
});

describe('before authentication', () => {
  it.each([
    ['a RootHello of 1 GiB', Msg.RootHello, 1 << 30, /a RootHello of 1073741824 bytes \(at most \d+\)/],
    ['an Error message of 1 MiB', Msg.Error, 1 << 20, /an Error message of 1048576 bytes \(at most 4096\)/],
    ['a Ping', Msg.Ping, 0, /a Ping before the handshake ended/],
  ])('%s is refused before anything is allocated', async (_name, type, length, message) => {
    const root = await FakeRoot.connect(port(own));
    expect((await root.frame())!.type).toBe(Msg.WorkerHello);
    root.socket.write(frameHeader(type, length));
    await root.closed();
    await waitForLog(own, message);
  });

  it('a root that trickles its hello is dropped at the handshake deadline', async () => {
    const root = await FakeRoot.connect(port(own));
    await root.frame();
    root.socket.write(frameHeader(Msg.RootHello, 200));
    // One byte a second: each read progresses within the idle limit (3 s), but the handshake has 10 s.
    const drip = setInterval(() => root.socket.write(Buffer.alloc(1)), 1_000);
    try {
      await root.closed();
    } finally {
      clearInterval(drip);
    }
    await waitForLog(own, /the handshake did not finish in time while waiting for the root's hello; listening again/);
  }, 30_000);
});

describe('listening', () => {
  const listen = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(ENGINE, ['worker', '--port', '0', '--threads', '1', ...args], { encoding: 'utf8', timeout: 3_000, env: { ...process.env, GLM_ENGINE_SECRET: '', ...env } });

  it('refuses a non-loopback address without a secret, and says what to do', () => {
    const r = listen(['--host', '0.0.0.0']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 without a shared secret: .*GLM_ENGINE_SECRET or --secret-file .* --insecure/);
  });

  it('listens there with --insecure (and a warning), or with a secret from a file', async () => {
    const insecure = listen(['--host', '0.0.0.0', '--insecure']);
    expect(insecure.stderr).toMatch(/warning: --insecure: any root that reaches 0\.0\.0\.0 may use this worker\n.*listening on 0\.0\.0\.0:\d+/);
    const file = join(dir, 'secret');
    await writeFile(file, `${SECRET}\n`);
    const withFile = await startWorker(['--secret-file', file]);
    try {
      const real = new LoadedModel(model, { threads: 1, contextLength: 16, workers: [withFile.address], secret: SECRET, sync: 'f32' });
      real.close();
      expect(() => new LoadedModel(model, { threads: 1, workers: [withFile.address], secret: 'another' })).toThrow(/authentication failed/);
    } finally {
      stopWorker(withFile);
    }
  });
});
