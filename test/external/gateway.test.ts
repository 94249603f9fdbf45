/**
 * The gateway against a real Redis: two gateways and two model servers (createServer with a scripted
 * generator) on loopback, through the `openai` client. Shared limit across gateways, the trusted client
 * header, Redis down (fail closed, no internal text) and back, a model server gone, both gone, streams
 * passed through and a stream cut mid-way, a model server SIGKILLed under traffic with no request lost, and a
 * rediss:// (TLS) store verified against its own CA.
 * @needs redis-server, openssl
 */
import OpenAI from 'openai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createGateway, createServer, type DemoServer, type Gateway, type GenerationRequest, type TextGeneration } from '../../server/index.js';
import { FixedGenerator } from '../fixed-generator.js';
import { freePort, removeDir, tempDir } from '../helpers.js';
import { makeCertificates } from '../tls.js';
import { readFile } from 'node:fs/promises';

let redisPort: number;
let redis: ChildProcess | undefined;
async function startRedis(): Promise<void> {
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    if (spawnSync('redis-cli', ['-p', String(redisPort), 'ping']).stdout?.toString().trim() === 'PONG') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('redis-server did not start');
}
async function stopRedis(): Promise<void> {
  const r = redis!;
  redis = undefined;
  const exited = new Promise((done) => r.once('exit', done));
  r.kill('SIGKILL');
  await exited;
}

const KEY = 'upstream-secret';
const generators = [new FixedGenerator('one'), new FixedGenerator('two')];
const models: DemoServer[] = [];
const gateways: Gateway[] = [];
const urls: string[] = [];

beforeAll(async () => {
  if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error('redis-server (Debian redis-server) is required for this test');
  redisPort = await freePort();
  await startRedis();
  const upstreams: string[] = [];
  for (const generator of generators) {
    const server = await createServer({ generator, rateLimit: false, apiKeys: [KEY], processMetrics: false });
    models.push(server);
    upstreams.push(await server.listen(0));
  }
  for (let i = 0; i < 2; i++) {
    const gateway = await createGateway({
      upstreams,
      upstreamKey: KEY,
      redisUrl: `redis://127.0.0.1:${redisPort}`,
      clientIpHeader: 'do-connecting-ip',
      rateLimit: { max: 10, windowMs: 3_600_000 },
      healthIntervalMs: 100,
    });
    gateways.push(gateway);
    urls.push(await gateway.listen(0));
  }
}, 30_000);

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await Promise.all(models.map((m) => m.close()));
  if (redis) await stopRedis();
});

const clientFor = (gateway: number, ip: string, extra: Record<string, string> = {}) =>
  new OpenAI({ baseURL: `${urls[gateway]}/v1`, apiKey: 'none', maxRetries: 0, defaultHeaders: { 'do-connecting-ip': ip, ...extra } });
const ask = (gateway: number, ip: string, extra: Record<string, string> = {}) =>
  clientFor(gateway, ip, extra).chat.completions.create({ model: 'fixed', messages: [{ role: 'user', content: 'hi' }] });

it('alternating gateways give one address exactly 10 answers, then 429 with Retry-After; another address and a forged X-Forwarded-For change nothing', async () => {
  for (let i = 0; i < 10; i++) {
    const r = await ask(i % 2, '203.0.113.7');
    expect(r.choices[0]!.message.content).toMatch(/^(one|two) /);
  }
  for (let i = 0; i < 2; i++) {
    const refused = await ask(i, '203.0.113.7', { 'x-forwarded-for': `198.51.100.${i + 1}` }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    const e = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect(Number(e.headers?.get('retry-after'))).toBeGreaterThan(3500);
    expect(e.code).toBe('rate_limit_exceeded');
  }
  // a different client address, and the spoofed header alone, are counted apart
  expect((await ask(1, '203.0.113.8', { 'x-forwarded-for': '203.0.113.7' })).choices[0]!.message.content).toMatch(/ $/);
  // both model servers took part
  expect(generators[0]!.served).toBeGreaterThan(0);
  expect(generators[1]!.served).toBeGreaterThan(0);
});

it('a stream is passed through event by event', async () => {
  const stream = await clientFor(0, '203.0.113.20').chat.completions.create({ model: 'fixed', messages: [{ role: 'user', content: 'hi' }], stream: true });
  let text = '';
  let chunks = 0;
  for await (const c of stream) {
    chunks++;
    text += c.choices[0]?.delta.content ?? '';
  }
  expect(text).toMatch(/^(one |two ){3}$/);
  expect(chunks).toBeGreaterThanOrEqual(4);
});

it('Redis stopped: 503 with Retry-After and no internal text (fail closed); Redis back: limits resume', async () => {
  await stopRedis();
  for (let i = 0; i < 2; i++) {
    const res = await fetch(`${urls[i]}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'do-connecting-ip': '203.0.113.30' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    const body = await res.text();
    expect(JSON.parse(body)).toEqual({ error: { message: 'the service is briefly unavailable; retry later', type: 'server_error', param: null, code: 'service_unavailable' } });
    expect(body).not.toMatch(/redis|stream|ECONN|writeable|127\.0\.0\.1/i);
  }
  await startRedis();
  let answered = 0;
  for (let i = 0; i < 100 && answered === 0; i++) {
    answered += await ask(0, '203.0.113.31').then(() => 1, () => 0);
    if (answered === 0) await new Promise((r) => setTimeout(r, 100));
  }
  expect(answered).toBe(1);
  for (let i = 1; i < 10; i++) await ask(i % 2, '203.0.113.31');
  await expect(ask(1, '203.0.113.31')).rejects.toBeInstanceOf(OpenAI.RateLimitError);
}, 30_000);

it('an upstream dying mid-stream ends the stream with an error event', async () => {
  for (const g of generators) g.endless = true;
  const res = await fetch(`${urls[0]}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'do-connecting-ip': '203.0.113.40' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], stream: true }),
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  expect(first).toContain('chat.completion.chunk');
  for (const m of models) m.app.server.closeAllConnections();
  let rest = '';
  for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
  expect(rest).toContain('"code":"upstream_failed"');
  expect(rest).not.toContain('[DONE]');
  for (const g of generators) g.endless = false;
});

it("an upstream's 503 (queue full) is retried on the next one before the client sees it", async () => {
  let open!: () => void;
  const gate = new Promise<void>((done) => (open = done));
  const busyGenerator = new (class extends FixedGenerator {
    override async *generate(request: GenerationRequest): TextGeneration {
      await gate;
      return yield* super.generate(request);
    }
  })('busy');
  const busy = await createServer({ generator: busyGenerator, rateLimit: false, maxQueue: 0, processMetrics: false });
  const busyUrl = await busy.listen(0);
  const free = new FixedGenerator('free');
  const freeServer = await createServer({ generator: free, rateLimit: false, processMetrics: false });
  const gateway = await createGateway({ upstreams: [busyUrl, await freeServer.listen(0)], rateLimit: false, metricsKey: 'm' });
  const url = await gateway.listen(0);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
  const holding = client.chat.completions.create({ model: 'fixed', messages: [{ role: 'user', content: 'first' }] });
  while (!busy.queue.running) await new Promise((r) => setTimeout(r, 5));
  for (let i = 0; i < 4; i++) expect((await client.chat.completions.create({ model: 'fixed', messages: [{ role: 'user', content: 'hi' }] })).choices[0]!.message.content).toBe('free free free ');
  open();
  expect((await holding).choices[0]!.message.content).toMatch(/^(busy|free) /);
  // each 503 the busy server gave is counted (the alert on servers turning requests away reads it)
  const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer m' } })).text();
  expect(Number(/^glm_dllama_gateway_upstream_busy_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
  await gateway.close();
  await Promise.all([busy.close(), freeServer.close()]);
});

/** A model server in a process of its own (dist/server), answering `<name> ` three times, so that it can be killed. */
async function modelServerProcess(name: string): Promise<{ url: string; child: ChildProcess }> {
  const script = `
    import { createServer } from './dist/server/index.js';
    const generator = {
      modelId: 'fixed',
      health: () => ({ modelLoaded: true, workersConfigured: 0, workersConnected: 0 }),
      async *generate() {
        for (let i = 0; i < 3; i++) { await new Promise((r) => setTimeout(r, 2)); yield '${name} '; }
        return { promptTokens: 5, completionTokens: 3, cachedTokens: 0, finishReason: 'stop' };
      },
    };
    const server = await createServer({ generator, rateLimit: false, processMetrics: false });
    process.stdout.write(await server.listen(0) + '\\n');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((done, fail) => {
    child.stdout!.once('data', (d: Buffer) => done(d.toString().trim()));
    child.once('exit', (code) => fail(new Error(`model server ${name} exited with ${code}`)));
  });
  return { url, child };
}

it('a model server killed (SIGKILL) under traffic: no request is lost, the rest go to the other', async () => {
  const [a, b] = await Promise.all([modelServerProcess('alpha'), modelServerProcess('beta')]);
  const gateway = await createGateway({ upstreams: [a.url, b.url], rateLimit: false, healthIntervalMs: 1000 });
  try {
    const client = new OpenAI({ baseURL: `${await gateway.listen(0)}/v1`, apiKey: 'none', maxRetries: 0 });
    const replies: string[] = [];
    let killedAt = -1;
    // four clients at a time, 60 requests; the first server is killed after the 12th answer
    const worker = async () => {
      while (replies.length < 60) {
        const i = replies.length;
        replies.push('');
        replies[i] = (await client.chat.completions.create({ model: 'fixed', messages: [{ role: 'user', content: 'hi' }] })).choices[0]!.message.content ?? '';
        if (killedAt < 0 && replies.filter((r) => r !== '').length >= 12) {
          killedAt = replies.length;
          a.child.kill('SIGKILL');
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    expect(replies).toHaveLength(60);
    for (const r of replies) expect(r).toMatch(/^(alpha |beta ){3}$/);
    expect(replies.slice(0, 12)).toContain('alpha alpha alpha ');
    // once the kill is seen, beta answers everything
    expect(replies.slice(killedAt + 4).every((r) => r === 'beta beta beta ')).toBe(true);
  } finally {
    await gateway.close();
    for (const p of [a, b]) p.child.kill('SIGKILL');
  }
}, 60_000);

it('one model server gone: every request goes to the other; both gone: 503 with Retry-After', async () => {
  await models[0]!.close();
  const before = generators[1]!.served;
  for (let i = 0; i < 8; i++) expect((await ask(i % 2, `203.0.113.${50 + i}`)).choices[0]!.message.content).toBe('two two two ');
  expect(generators[1]!.served - before).toBe(8);
  await models[1]!.close();
  for (let i = 0; i < 2; i++) {
    const e = await ask(i, `203.0.113.${60 + i}`).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.InternalServerError);
    expect((e as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((e as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after')).toBe('5');
  }
}, 30_000);

it('a rediss:// store: TLS with the CA given, refused at start without it', async () => {
  const dir = await tempDir();
  const tlsRedis: ChildProcess[] = [];
  try {
    const { ca, cert, key } = await makeCertificates(dir);
    const port = await freePort();
    tlsRedis.push(spawn('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', ca, '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }));
    const url = `rediss://127.0.0.1:${port}`;
    const upstream = `http://127.0.0.1:${await freePort()}`;
    let gateway: Gateway | undefined;
    for (let i = 0; i < 50 && !gateway; i++) {
      gateway = await createGateway({ upstreams: [upstream], redisUrl: url, redisCa: await readFile(ca, 'utf8'), rateLimit: { max: 1, windowMs: 60_000 } }).catch(async () => {
        await new Promise((r) => setTimeout(r, 100));
        return undefined;
      });
    }
    expect(gateway).toBeDefined();
    gateways.push(gateway!);
    const base = await gateway!.listen(0);
    const statuses = [];
    for (let i = 0; i < 2; i++) statuses.push((await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status);
    expect(statuses).toEqual([503, 429]); // the first counted (no upstream), the second refused by the store's count
    await expect(createGateway({ upstreams: [upstream], redisUrl: url })).rejects.toThrow('cannot reach the rate-limit store');
  } finally {
    for (const r of tlsRedis) r.kill('SIGKILL');
    await removeDir(dir);
  }
}, 30_000);
