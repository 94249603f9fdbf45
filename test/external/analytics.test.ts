/**
 * Usage analytics against a real PostgreSQL (a private cluster from Debian's postgresql): two gateways
 * and a third with no live upstream record to one database (their migrations racing at start), every
 * request a row, no client address anywhere in a dump of the database, the rollup equal to the test's own
 * count of what it sent and got, the usage chunk a stream got only because the gateway asked for it
 * taken out again, retention expiring raw rows but keeping the day's rollup, `usage-export` writing that
 * rollup, the database stopped: replies unaffected, the lost records counted; and TLS verified against the
 * database's own CA (as DigitalOcean's managed PostgreSQL gives it).
 * @needs postgresql, openssl
 */
import OpenAI from 'openai';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createGateway, createServer, UsageAnalytics, type DemoServer, type Gateway, type UsageExport } from '../../server/index.js';
import { FixedGenerator } from '../fixed-generator.js';
import { cli, freePort, removeDir, tempDir } from '../helpers.js';
import { startPostgres, type Postgres } from '../postgres.js';
import { makeCertificates } from '../tls.js';

const SALT = 'test-salt-0123456789abcdef';
let db: Postgres;
const models: DemoServer[] = [];
const gateways: Gateway[] = [];
const analytics: UsageAnalytics[] = [];
const urls: string[] = [];

beforeAll(async () => {
  db = await startPostgres();
  const upstreams: string[] = [];
  for (const name of ['one', 'two']) {
    const server = await createServer({ generator: new FixedGenerator(name), rateLimit: false, processMetrics: false });
    models.push(server);
    upstreams.push(await server.listen(0));
  }
  // Three gateways open the database at once: the migrations take turns under their lock.
  analytics.push(...(await Promise.all([0, 1, 2].map(() => UsageAnalytics.open({ url: db.url, salt: SALT, retentionDays: 30 })))));
  const dead = `http://127.0.0.1:${await freePort()}`;
  for (let i = 0; i < 3; i++) {
    const gateway = await createGateway({
      upstreams: i < 2 ? upstreams : [dead],
      clientIpHeader: 'do-connecting-ip',
      rateLimit: { max: 4, windowMs: 3_600_000 },
      analytics: analytics[i],
      metricsKey: 'm',
    });
    gateways.push(gateway);
    urls.push(await gateway.listen(0));
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await Promise.all(analytics.map((a) => a.close()));
  await Promise.all(models.map((m) => m.close()));
  await db?.remove();
});

/** What the test sent and got, to check the database against. */
interface Sent {
  route: string;
  status: number;
  client: string;
  model: string | null;
  tokens: boolean;
  elapsedMs: number;
}
const sent: Sent[] = [];

async function post(gateway: number, client: string, body: Record<string, unknown>): Promise<Response> {
  const started = performance.now();
  const res = await fetch(`${urls[gateway]}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'do-connecting-ip': client }, body: JSON.stringify(body) });
  const text = await res.text();
  const answered = res.status === 200;
  // a refused request's body is never read (the limit comes first), so its model is unknown
  const model = typeof body['model'] === 'string' && res.status !== 429 ? body['model'] : null;
  sent.push({ route: '/v1/chat/completions', status: res.status, client, model, tokens: answered, elapsedMs: performance.now() - started });
  return new Response(text, { status: res.status, headers: res.headers });
}

const query = (sql: string) => db.run('psql', ['-d', 'postgres', '-At', '-F', '\t', '-c', sql]).trim();

it('records every request, no client address, and a rollup equal to the requests sent', async () => {
  const clients = ['203.0.113.7', '203.0.113.8', '2001:db8:1:2::5', '198.51.100.23'];
  const chat = { model: 'fixed', messages: [{ role: 'user', content: 'hi' }] };
  // 5 from the first client over both gateways: 4 answers, then 429
  for (let i = 0; i < 5; i++) await post(0, clients[0]!, chat); // one gateway counts alone (no Redis here)
  for (let i = 0; i < 2; i++) await post(1, clients[1]!, chat);
  // a stream that did not ask for its usage: the gateway asked, records it, and the client sees none of it
  const plain = await post(1, clients[2]!, { ...chat, stream: true });
  const events = (await plain.text()).split('\n\n').filter((e) => e.startsWith('data: {'));
  expect(events.length).toBeGreaterThanOrEqual(4);
  for (const e of events) expect(JSON.parse(e.slice(6))).not.toHaveProperty('usage');
  // one that asked gets it as the model server sent it
  const asked = await post(0, clients[2]!, { ...chat, stream: true, stream_options: { include_usage: true } });
  const last = (await asked.text()).split('\n\n').filter((e) => e.startsWith('data: {')).at(-1)!;
  expect(JSON.parse(last.slice(6)).usage).toEqual({ prompt_tokens: 5, completion_tokens: 3, total_tokens: 8, prompt_tokens_details: { cached_tokens: 0 } });
  // a request the model server refuses (400) and two the dead gateway cannot place (503)
  expect((await post(0, clients[3]!, { model: 'fixed', messages: [] })).status).toBe(400);
  for (let i = 0; i < 2; i++) expect((await post(2, clients[3]!, chat)).status).toBe(503);
  // through the openai client too; its model listing is recorded without a model
  const openai = new OpenAI({ baseURL: `${urls[1]}/v1`, apiKey: 'none', maxRetries: 0, defaultHeaders: { 'do-connecting-ip': clients[1]! } });
  let started = performance.now();
  await openai.chat.completions.create({ model: 'fixed', messages: [{ role: 'user', content: 'hi' }] });
  sent.push({ route: '/v1/chat/completions', status: 200, client: clients[1]!, model: 'fixed', tokens: true, elapsedMs: performance.now() - started });
  started = performance.now();
  await openai.models.list();
  sent.push({ route: '/v1/models', status: 200, client: clients[1]!, model: null, tokens: false, elapsedMs: performance.now() - started });
  expect(sent.map((s) => s.status)).toEqual([200, 200, 200, 200, 429, 200, 200, 200, 200, 400, 503, 503, 200, 200]);
  await Promise.all(analytics.map((a) => a.flush()));

  // one row per request, with what the test saw
  const rows = query('SELECT route, coalesce(model, \'-\'), status, coalesce(prompt_tokens, -1), coalesce(completion_tokens, -1), latency_ms FROM usage_requests ORDER BY at, id')
    .split('\n')
    .map((line) => line.split('\t'));
  expect(rows).toHaveLength(sent.length);
  const summary = (r: { route: string; model: string; status: number; tokens: string }) => `${r.route} ${r.model} ${r.status} ${r.tokens}`;
  expect(rows.map(([route, model, status, p, c]) => summary({ route: route!, model: model!, status: Number(status), tokens: `${p}/${c}` })).sort()).toEqual(
    sent.map((s) => summary({ route: s.route, model: s.model ?? '-', status: s.status, tokens: s.tokens ? '5/3' : '-1/-1' })).sort(),
  );
  // each latency the gateway measured is within what the client waited
  const latencies = rows.map((r) => Number(r[5]));
  expect(Math.max(...latencies)).toBeLessThanOrEqual(Math.max(...sent.map((s) => s.elapsedMs)));
  expect(Math.min(...latencies)).toBeGreaterThan(0);

  // no address, in any form, anywhere in the database
  const dump = db.run('pg_dump', ['-d', 'postgres']);
  expect(dump).toContain('usage_requests');
  for (const needle of [...clients, '2001:db8:1:2::/64', '2001:db8:1:2::', SALT]) expect(dump).not.toContain(needle);

  // the rollup against the test's own count
  const [day] = await analytics[0]!.rollup(1);
  const sorted = [...latencies].sort((a, b) => a - b);
  const percentile = (p: number) => {
    const at = p * (sorted.length - 1);
    return sorted[Math.floor(at)]! + (sorted[Math.ceil(at)]! - sorted[Math.floor(at)]!) * (at - Math.floor(at));
  };
  expect(day).toEqual({
    day: new Date().toISOString().slice(0, 10),
    requests: sent.length,
    promptTokens: 5 * sent.filter((s) => s.tokens).length,
    completionTokens: 3 * sent.filter((s) => s.tokens).length,
    clients: new Set(sent.map((s) => s.client)).size,
    p50Ms: Math.round(percentile(0.5) * 10) / 10,
    p95Ms: Math.round(percentile(0.95) * 10) / 10,
    errorRate: Math.round((sent.filter((s) => s.status >= 500).length / sent.length) * 10_000) / 10_000,
    rateLimited: sent.filter((s) => s.status === 429).length,
  });

  // usage-export writes that rollup
  const dir = await tempDir();
  try {
    const out = join(dir, 'usage.json');
    const r = cli('usage-export', '--analytics-db', db.url, '--days', '1', '--out', out);
    expect(r.stderr).toContain('1 days');
    const exported = JSON.parse(await readFile(out, 'utf8')) as UsageExport;
    expect(exported.days).toEqual([day]);
  } finally {
    await removeDir(dir);
  }
}, 60_000);

it('expires raw rows past the retention and keeps their day in the rollup', async () => {
  const old = new Date(Date.now() - 40 * 86_400_000);
  analytics[0]!.record({ at: old, route: '/v1/chat/completions', model: 'fixed', status: 200, promptTokens: 7, completionTokens: 2, latencyMs: 12, client: '192.0.2.1' });
  await analytics[0]!.flush();
  const before = Number(query('SELECT count(*) FROM usage_requests'));
  await analytics[0]!.expire();
  expect(Number(query('SELECT count(*) FROM usage_requests'))).toBe(before - 1);
  const days = await analytics[0]!.rollup(60);
  expect(days[0]).toMatchObject({ day: old.toISOString().slice(0, 10), requests: 1, promptTokens: 7, completionTokens: 2, clients: 1, p50Ms: 12 });
});

it('the database stopped: replies go on, the lost records counted; back: recording resumes', async () => {
  db.stop();
  try {
    for (let i = 0; i < 2; i++) expect((await post(1, '203.0.113.99', { model: 'fixed', messages: [{ role: 'user', content: 'hi' }] })).status).toBe(200);
    await analytics[1]!.flush();
    const metrics = await (await fetch(`${urls[1]}/metrics`, { headers: { authorization: 'Bearer m' } })).text();
    expect(metrics).toMatch(/^glm_dllama_gateway_analytics_dropped_total 2$/m);
  } finally {
    db.start();
  }
  const before = Number(query('SELECT count(*) FROM usage_requests'));
  expect((await post(1, '203.0.113.99', { model: 'fixed', messages: [{ role: 'user', content: 'hi' }] })).status).toBe(200);
  await analytics[1]!.flush();
  expect(Number(query('SELECT count(*) FROM usage_requests'))).toBe(before + 1);
}, 60_000);

it("TLS with the database's own CA: verified with --analytics-ca, refused without it", async () => {
  const dir = await tempDir();
  let tlsDb: Postgres | undefined;
  try {
    const { ca, cert, key } = await makeCertificates(dir);
    tlsDb = await startPostgres({ cert, key });
    const url = `${tlsDb.url}?sslmode=require`;
    const analytics = await UsageAnalytics.open({ url, ca: await readFile(ca, 'utf8'), salt: SALT });
    try {
      analytics.record({ at: new Date(), route: '/v1/models', model: null, status: 200, promptTokens: null, completionTokens: null, latencyMs: 3, client: '192.0.2.7' });
      await analytics.flush();
      expect((await analytics.rollup(1))[0]).toMatchObject({ requests: 1, clients: 1 });
      // the pool's idle session really is encrypted (psql itself connects without TLS here)
      expect(Number(tlsDb.run('psql', ['-d', 'dbname=postgres sslmode=disable', '-At', '-c', 'SELECT count(*) FROM pg_stat_ssl WHERE ssl']))).toBeGreaterThanOrEqual(1);
    } finally {
      await analytics.close();
    }
    // without the CA the server's certificate is not trusted (node-postgres verifies under sslmode=require)
    await expect(UsageAnalytics.open({ url, salt: SALT })).rejects.toThrow(/cannot prepare the database \(--analytics-db\): .*(self-signed|certificate)/);
    // and with a wrong CA (the server certificate itself is no CA) neither
    await expect(UsageAnalytics.open({ url, ca: await readFile(cert, 'utf8'), salt: SALT })).rejects.toThrow('cannot prepare the database');
  } finally {
    await tlsDb?.remove();
    await removeDir(dir);
  }
}, 60_000);
