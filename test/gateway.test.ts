/**
 * The gateway without Redis (the shared-store cases are in test/external/gateway.test.ts): bad upstream
 * URLs and an unreachable store refused at start with the option named, the trusted client header, the
 * metrics key.
 */
import { createGateway, type Gateway } from '../server/index.js';
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
