/**
 * Tensor parallelism on loopback with real `glm-engine worker` processes: 2, 3 and 4 nodes reproduce
 * one node, the bytes moved per token match the documented formula, and every failure the protocol
 * promises to report (a killed or stalled worker, a wrong secret, another protocol version, another
 * model, a node count the model cannot be split over) ends the run with a clear error in bounded time.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { readModelFile } from '../converter/model-file.js';
import { native } from '../engine/native.js';
import { bench, decodeTraffic, LoadedModel, logSoftmax, type DistributedOptions } from '../engine/index.js';
import { cli, fixture, removeDir, tempDir } from './helpers.js';
import { ENGINE, startWorker, stopWorker, waitForLog, type WorkerProcess } from '../engine/worker-process.js';

let dir: string;
const models = new Map<string, string>();
let workers: WorkerProcess[] = [];
const tokens = Array.from({ length: 12 }, (_, i) => (i * 37 + 5) % 500);

beforeAll(async () => {
  dir = await tempDir();
  for (const arch of ['glm4moe', 'glm4'] as const) {
    const checkpoint = await fixture(dir, { arch });
    for (const weights of ['f32', 'q40'] as const) {
      const out = join(dir, `${arch}.${weights}.m`);
      await convert({ modelDir: checkpoint, outFile: out, weights });
      models.set(`${arch}.${weights}`, out);
    }
  }
  workers = await Promise.all([startWorker(), startWorker(), startWorker()]);
});
afterAll(async () => {
  workers.forEach(stopWorker);
  await removeDir(dir);
});

function load(name: string, options: DistributedOptions = {}): LoadedModel {
  return new LoadedModel(models.get(name)!, { threads: 1, contextLength: 64, ...options });
}

/** Log-probs of every position, and 8 greedy tokens after them. */
function run(model: LoadedModel): { logprobs: Float64Array[]; greedy: number[] } {
  const vocab = model.vocabSize;
  const all = model.evaluate(tokens, true);
  const logprobs = tokens.map((_, t) => logSoftmax(all.subarray(t * vocab, (t + 1) * vocab)));
  const greedy: number[] = [];
  let last = logprobs.at(-1)!;
  for (let g = 0; g < 8; g++) {
    const next = last.indexOf(Math.max(...last));
    greedy.push(next);
    last = logSoftmax(model.evaluate([next]));
  }
  model.close();
  return { logprobs, greedy };
}

function worstDifference(a: Float64Array[], b: Float64Array[]): number {
  let worst = 0;
  a.forEach((row, t) => row.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b[t]![i]!)))));
  return worst;
}

const addresses = (n: number) => workers.slice(0, n).map((w) => w.address);

describe.each([
  ['glm4moe.f32', 'slice'],
  ['glm4moe.f32', 'place'],
  ['glm4.f32', 'slice'],
  ['glm4.q40', 'slice'],
] as const)('%s, experts %s', (name, experts) => {
  const nodeCounts = name === 'glm4.q40' ? [2] : [2, 3, 4]; // q40 rows of 16-wide heads cut into whole blocks on 2 nodes only
  it.each(nodeCounts)('%i nodes with f32 sync give one node\'s greedy tokens and log-probs within 1e-4', (nodes) => {
    const one = run(load(name));
    const many = run(load(name, { workers: addresses(nodes - 1), sync: 'f32', experts }));
    expect(many.greedy).toEqual(one.greedy);
    expect(worstDifference(many.logprobs, one.logprobs)).toBeLessThan(1e-4);
  });
});

it('8 nodes (the small glm4moe: 8 heads, each of its 2 KV heads replicated on 4 nodes) give one node\'s tokens', async () => {
  const small = join(dir, 'glm4moe-small.f32.m');
  await convert({ modelDir: await fixture(dir, { arch: 'glm4moe', size: 'small' }), outFile: small, weights: 'f32' });
  models.set('small', small);
  const more = await Promise.all(Array.from({ length: 4 }, () => startWorker()));
  try {
    const one = run(load('small'));
    const eight = run(load('small', { workers: [...addresses(3), ...more.map((w) => w.address)], sync: 'f32' }));
    expect(eight.greedy).toEqual(one.greedy);
    expect(worstDifference(eight.logprobs, one.logprobs)).toBeLessThan(1e-4);
  } finally {
    more.forEach(stopWorker);
  }
});

it.each(['glm4moe.f32', 'glm4.q40'])('%s: q80 sync stays within the documented 0.1 of one node', (name) => {
  const one = run(load(name));
  const q80 = run(load(name, { workers: addresses(1), sync: 'q80' }));
  const worst = worstDifference(q80.logprobs, one.logprobs);
  expect(worst).toBeGreaterThan(1e-4); // the partial sums really travelled as q80
  expect(worst).toBeLessThan(0.1);
});

it('moves exactly the documented bytes per decoded token on every node', async () => {
  const model = models.get('glm4moe.f32')!;
  const { header } = await readModelFile(model);
  for (const [nodes, sync] of [[2, 'q80'], [4, 'f32']] as const) {
    const r = bench(model, { threads: 1, promptTokens: 8, genTokens: 4, repeat: 1, workers: addresses(nodes - 1), sync });
    expect(r.nodes).toBe(nodes);
    expect(r.decode_bytes_per_token).toEqual(decodeTraffic(header, nodes, sync));
  }
});

it('a worker with its own copy of the model is sent no weights, and one with another model is refused', async () => {
  const own = await startWorker(['--model', models.get('glm4moe.f32')!]);
  const other = await startWorker(['--model', models.get('glm4.f32')!]);
  try {
    const streamed = load('glm4moe.f32', { workers: [workers[0]!.address], sync: 'f32' });
    const local = load('glm4moe.f32', { workers: [own.address], sync: 'f32' });
    expect(local.traffic[0]!.sent).toBeLessThan(streamed.traffic[0]!.sent / 10);
    expect(Array.from(local.evaluate(tokens, true))).toEqual(Array.from(streamed.evaluate(tokens, true)));
    streamed.close();
    local.close();
    await waitForLog(own, /slices cut from .*glm4moe\.f32\.m/);
    expect(() => load('glm4moe.f32', { workers: [other.address] })).toThrow(/its model file differs from the root's .*glm4moe\.f32\.m/);
  } finally {
    stopWorker(own);
    stopWorker(other);
  }
});

it('a worker killed mid-generation stops the root with a clear error at once, and the others serve again', async () => {
  const victim = await startWorker();
  const model = load('glm4moe.f32', { workers: [workers[0]!.address, victim.address], timeoutMs: 20_000 });
  model.evaluate(tokens);
  for (let i = 0; i < 3; i++) model.evaluate([i + 1]);
  victim.child.kill('SIGKILL');
  await new Promise((resolve) => victim.child.once('exit', resolve));
  const start = Date.now();
  expect(() => model.evaluate([4])).toThrow(new RegExp(`worker ${victim.address}: (the peer closed the connection|connection lost)`));
  expect(Date.now() - start).toBeLessThan(5_000); // a dead peer is an immediate error, not the 20 s timeout
  expect(() => model.evaluate([5])).toThrow(/the cluster stopped after an error and must be reloaded/);
  model.close();
  expect(run(load('glm4moe.f32', { workers: [workers[0]!.address], sync: 'f32' })).greedy).toEqual(run(load('glm4moe.f32')).greedy);
});

it('a stalled worker (as with a pulled cable) stops the root after the timeout', async () => {
  const stalled = await startWorker();
  try {
    const model = load('glm4moe.f32', { workers: [stalled.address], timeoutMs: 1_500 });
    model.evaluate(tokens);
    stalled.child.kill('SIGSTOP');
    const start = Date.now();
    expect(() => model.evaluate([1])).toThrow(new RegExp(`worker ${stalled.address}: no progress within 1.5 s`));
    expect(Date.now() - start).toBeLessThan(4_000);
    model.close();
  } finally {
    stalled.child.kill('SIGCONT');
    stopWorker(stalled);
  }
});

it('heartbeats keep an idle session alive past the worker\'s idle limit', async () => {
  const worker = await startWorker(['--idle-timeout', '2']);
  try {
    const model = load('glm4moe.f32', { workers: [worker.address], sync: 'f32' });
    const before = model.evaluate(tokens);
    await new Promise((r) => setTimeout(r, 3_500)); // idle longer than the worker waits for a silent root
    model.reset();
    expect(Array.from(model.evaluate(tokens))).toEqual(Array.from(before));
    model.close();
    expect(worker.log.some((l) => /heartbeats stopped/.test(l))).toBe(false);
  } finally {
    stopWorker(worker);
  }
});

it('a worker drops a root that stops answering and serves the next one', async () => {
  const worker = await startWorker(['--idle-timeout', '2']);
  const args = ['bench', '--model', models.get('glm4moe.f32')!, '--prompt-tokens', '8', '--gen-tokens', '40', '--repeat', '100000', '--threads', '1'];
  const root = spawn(ENGINE, [...args, '--workers', worker.address, '--net-timeout', '2'], { stdio: 'ignore' });
  try {
    await waitForLog(worker, /node 1 of 2/);
    root.kill('SIGSTOP'); // neither closed nor reset: only the deadlines can tell
    const stoppedAt = Date.now();
    await waitForLog(worker, /no progress within 2 s while waiting for the root's .*; listening again/, 6_000);
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    const next = load('glm4moe.f32', { workers: [worker.address], sync: 'f32' });
    expect(next.evaluate(tokens).length).toBe(next.vocabSize);
    next.close();
  } finally {
    root.kill('SIGKILL');
    stopWorker(worker);
  }
});

it('a worker with a shared secret refuses a root with another secret or none', async () => {
  const guarded = await startWorker([], { GLM_ENGINE_SECRET: 'correct horse' });
  try {
    expect(() => load('glm4moe.f32', { workers: [guarded.address], secret: 'battery staple' })).toThrow(/authentication failed: the root's shared secret does not match/);
    expect(() => load('glm4moe.f32', { workers: [guarded.address], secret: '' })).toThrow(/authentication failed/);
    await waitForLog(guarded, /authentication failed.*listening again/);
    const ok = load('glm4moe.f32', { workers: [guarded.address], secret: 'correct horse', sync: 'f32' });
    expect(ok.evaluate(tokens).length).toBe(ok.vocabSize);
    ok.close();
  } finally {
    stopWorker(guarded);
  }
});

it('a root speaking another protocol version is refused with both versions named', () => {
  const r = spawnSync(ENGINE, ['generate', '--model', models.get('glm4moe.f32')!, '--tokens', '1,2,3', '--workers', workers[0]!.address, '--threads', '1'], {
    encoding: 'utf8',
    env: { ...process.env, GLM_ENGINE_PROTOCOL_VERSION: '9' },
  });
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(new RegExp(`worker ${workers[0]!.address} speaks protocol version 2 but this process speaks version 9`));
});

it('a busy worker refuses a second root', () => {
  const first = load('glm4moe.f32', { workers: [workers[0]!.address] });
  try {
    expect(() => load('glm4moe.f32', { workers: [workers[0]!.address] })).toThrow(/this worker is busy serving another root/);
  } finally {
    first.close();
  }
});

it('names the dimension a node count cannot split, before connecting to anyone', () => {
  const nowhere = (n: number) => Array.from({ length: n }, () => '127.0.0.1:1');
  expect(() => load('glm4moe.f32', { workers: nowhere(7) })).toThrow(/n_heads \(4\) cannot give each of 8 nodes a share/);
  expect(() => load('glm4moe.q40', { workers: nowhere(1) })).toThrow(/moe_hidden_dim \(32\) cannot give each of 2 nodes a share of whole 32-value blocks/);
  expect(() => load('glm4.q40', { workers: nowhere(3) })).toThrow(/columns of the attention output must be whole 32-value blocks, but 4 nodes give node 0 16/);
  expect(() => load('glm4moe.f32', { workers: ['nowhere'] })).toThrow(/workers: "nowhere" is not host:port/);
});

it('glm-engine and the CLI take --workers: a root and two workers reproduce a single-node generation', () => {
  const model = models.get('glm4moe.f32')!;
  const generate = (...extra: string[]) =>
    spawnSync(ENGINE, ['generate', '--model', model, '--tokens', tokens.join(','), '--max-tokens', '10', '--threads', '1', ...extra], { encoding: 'utf8' });
  const single = generate();
  expect(single.status).toBe(0);
  const cluster = generate('--workers', addresses(2).join(','), '--sync', 'f32');
  expect(cluster.stderr).toBe('');
  expect(cluster.stdout).toBe(single.stdout);
  const viaCli = cli('logprobs', '--model', model, '--tokens', '1,2,3', '--top', '3', '--threads', '1', '--workers', addresses(1).join(','), '--sync', 'f32');
  const local = cli('logprobs', '--model', model, '--tokens', '1,2,3', '--top', '3', '--threads', '1');
  expect(viaCli.status).toBe(0);
  const ids = (out: string) => (JSON.parse(out) as { positions: { top: { id: number }[] }[] }).positions.map((p) => p.top.map((t) => t.id));
  expect(ids(viaCli.stdout)).toEqual(ids(local.stdout));
});

it("the handshake's HMAC-SHA-256 equals Node's on every padding boundary and key length", () => {
  const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 17) & 255);
  for (const keyLength of [0, 1, 32, 64, 65, 200]) {
    for (const length of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000]) {
      const key = bytes(keyLength, 1);
      const data = bytes(length, 2);
      expect(Buffer.from(native().hmacSha256(key, data)).toString('hex')).toBe(createHmac('sha256', key).update(data).digest('hex'));
    }
  }
});
