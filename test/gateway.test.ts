/**
 * The gateway without Redis or PostgreSQL (the real stores are in test/external/gateway.test.ts and
 * analytics.test.ts): bad upstream URLs and an unreachable store refused at start with the option named,
 * the trusted client header, the metrics key, and what it hands its usage recorder (tokens read from JSON
 * replies and streams, the usage chunk it asked for taken out of the client's stream).
 */
import { createGateway, createServer, type Gateway, type UsageRecord, type UsageRecorder } from '../server/index.js';
import { FixedGenerator } from './fixed-generator.js';
import { freePort as closedPort } from './helpers.js';

const gateways: Gateway[] = [];
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
});

it('refuses no upstream, a non-URL or non-HTTP upstream, and a store it cannot reach, naming them', async () => {
  await expect(createGateway({ upstreams: [] })).rejects.toThrow('at least one upstream');
  await expect(createGateway({ upstreams: ['10.0.0.5:8080 x'] })).rejects.toThrow('upstream "10.0.0.5:8080 x" is not a URL');
  await expect(createGateway({ upstreams: ['ftp://10.0.0.5/'] })).rejects.toThrow('expected http:// or https://');
  await expect(createGateway({ upstreams: ['http://127.0.0.1:1'], redisUrl: `redis://127.0.0.1:${await closedPort()}` })).rejects.toThrow('cannot reach the rate-limit store (--redis)');
});

it('counts clients by the configured header only; without upstreams answers 503 with Retry-After; /metrics needs its key', async () => {
  const gateway = await createGateway({ upstreams: [`http://127.0.0.1:${await closedPort()}`], rateLimit: { max: 2, windowMs: 60_000 }, clientIpHeader: 'do-connecting-ip', metricsKey: 'm' });
  gateways.push(gateway);
  const url = await gateway.listen(0);
  const post = (headers: Record<string, string>) =>
    fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await post({ 'do-connecting-ip': '2001:db8::1', 'x-forwarded-for': `192.0.2.${i}` })).status);
  // another host of the same IPv6 /64 shares the quota; another address does not
  statuses.push((await post({ 'do-connecting-ip': '2001:db8::2' })).status, (await post({ 'do-connecting-ip': '192.0.2.9' })).status);
  expect(statuses).toEqual([503, 503, 429, 429, 503]);
  const busy = await post({ 'do-connecting-ip': '192.0.2.10' });
  expect(busy.headers.get('retry-after')).toBe('5');
  expect(await busy.json()).toEqual({ error: { message: 'no model server is available; retry later', type: 'server_error', param: null, code: 'server_busy' } });
  expect(await (await fetch(`${url}/health`)).json()).toEqual({ status: 'no_upstream', upstreams: { configured: 1, healthy: 0 } });
  expect((await fetch(`${url}/metrics`)).status).toBe(401);
  const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer m' } })).text();
  expect(metrics).toMatch(/^glm_dllama_gateway_rate_limited_total 2$/m);
});

it('hands each request to its usage recorder, with the tokens of JSON and streamed replies; strips the usage it asked for', async () => {
  const records: UsageRecord[] = [];
  const recorder: UsageRecorder = { record: (r) => void records.push(r), onDrop: () => {}, expire: async () => {} };
  const server = await createServer({ generator: new FixedGenerator('x'), rateLimit: false, processMetrics: false });
  const gateway = await createGateway({ upstreams: [await server.listen(0)], rateLimit: { max: 3, windowMs: 60_000 }, clientIpHeader: 'do-connecting-ip', analytics: recorder });
  gateways.push(gateway);
  const url = await gateway.listen(0);
  const chat = (body: object) =>
    fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'do-connecting-ip': '203.0.113.5' }, body: JSON.stringify({ model: 'm1', messages: [{ role: 'user', content: 'hi' }], ...body }) });
  const json = await (await chat({})).json();
  expect(json.usage.completion_tokens).toBe(3);
  const plain = await (await chat({ stream: true })).text();
  const asked = await (await chat({ stream: true, stream_options: { include_usage: true } })).text();
  expect((await chat({})).status).toBe(429);
  await new Promise((r) => setTimeout(r, 50)); // records are made when each reply's connection closes
  const events = (text: string) => text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
  // the stream that did not ask has no usage field and no usage chunk; it still ends with [DONE]
  expect(events(plain).length).toBeGreaterThanOrEqual(4);
  expect(events(plain).filter((e) => 'usage' in e)).toEqual([]);
  expect(plain.trimEnd().endsWith('data: [DONE]')).toBe(true);
  // the one that asked gets it as the model server wrote it
  expect(events(asked).at(-1)!['usage']).toMatchObject({ prompt_tokens: 5, completion_tokens: 3 });
  expect(events(asked).filter((e) => e['usage'] === null).length).toBeGreaterThan(0);
  expect(records.map((r) => [r.route, r.model, r.status, r.promptTokens, r.completionTokens, r.client])).toEqual([
    ['/v1/chat/completions', 'm1', 200, 5, 3, '203.0.113.5'],
    ['/v1/chat/completions', 'm1', 200, 5, 3, '203.0.113.5'],
    ['/v1/chat/completions', 'm1', 200, 5, 3, '203.0.113.5'],
    ['/v1/chat/completions', null, 429, null, null, '203.0.113.5'],
  ]);
  for (const r of records) expect(r.latencyMs).toBeGreaterThan(0);
  await server.close();
});
