/**
 * `npm run load-test`: the server on the tiny GLM-4.5 fixture (q40) under autocannon on loopback, with a
 * rate limit and a queue small enough that both refuse some requests. Prints the figures. With
 * --gateway: two gateways sharing a redis-server (started here on a loopback port; Debian's redis-server)
 * in front of that one server, the connections split between them, the rate limit in the gateways; with
 * --analytics-db URL as well, both record every request there (server/analytics.ts) and the day's rollup
 * is printed.
 *
 *   npm run load-test [-- --connections 16 --duration 10 --max-tokens 8 --rate-limit 60000 --queue 4 --stream --gateway --analytics-db URL]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { convert } from '../converter/convert.js';
import { writeFixture } from '../converter/fixture.js';
import { randomBytes } from 'node:crypto';
import { createGateway, createServer, EngineGenerator, UsageAnalytics, type Gateway } from '../server/index.js';
import { formatLoadTest, loadTest, serverCounters } from './load-test-lib.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '16' },
    duration: { type: 'string', default: '10' },
    'max-tokens': { type: 'string', default: '8' },
    'rate-limit': { type: 'string', default: '60000' },
    queue: { type: 'string', default: '4' },
    threads: { type: 'string', default: '2' },
    stream: { type: 'boolean', default: false },
    gateway: { type: 'boolean', default: false },
    'analytics-db': { type: 'string' },
  },
});

const work = await mkdtemp(join(tmpdir(), 'glm-dllama-load-'));
try {
  const checkpoint = join(work, 'checkpoint');
  await writeFixture({ arch: 'glm4moe', outDir: checkpoint });
  const model = join(work, 'm.q40.m');
  await convert({ modelDir: checkpoint, outFile: model, weights: 'q40' });
  const generator = await EngineGenerator.load({ model, tokenizer: join(work, 'm.q40.t'), threads: Number(values.threads), contextLength: 256 });
  const rateLimit = { max: Number(values['rate-limit']), windowMs: 3_600_000 };
  const server = await createServer({ generator, rateLimit: values.gateway ? false : rateLimit, maxQueue: Number(values.queue) });
  const url = await server.listen(0);
  const run = { connections: Number(values.connections), durationSeconds: Number(values.duration), maxTokens: Number(values['max-tokens']), stream: values.stream, warmupSeconds: 1 };
  console.log(`load-test: tiny glm4moe fixture (q40), ${values.threads} threads, max_tokens ${values['max-tokens']}, rate limit ${values['rate-limit']}/hour, queue ${values.queue}${values.stream ? ', streaming' : ''}${values.gateway ? ', through two gateways sharing one redis-server' : ''}`);
  if (!values.gateway) {
    console.log(await formatLoadTest(await loadTest({ url, ...run }), server));
  } else {
    if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error('--gateway needs redis-server (Debian package redis-server)');
    const port = await new Promise<number>((done) => {
      const probe = createNetServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => done(port));
      });
    });
    const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const gateways: Gateway[] = [];
    const analyticsDb = values['analytics-db'];
    const analytics = analyticsDb ? await UsageAnalytics.open({ url: analyticsDb, salt: randomBytes(16).toString('hex') }) : undefined;
    try {
      for (let tries = 0; gateways.length < 2; tries++) {
        const gateway = await createGateway({ upstreams: [url], redisUrl: `redis://127.0.0.1:${port}`, rateLimit, analytics }).catch((e: unknown) => {
          if (tries > 50) throw e;
          return new Promise<undefined>((done) => setTimeout(done, 100));
        });
        if (gateway) gateways.push(gateway);
      }
      const urls = await Promise.all(gateways.map((g) => g.listen(0)));
      const results = await Promise.all(urls.map((u) => loadTest({ url: u, ...run, connections: Math.max(1, Math.floor(run.connections / 2)) })));
      for (const [i, r] of results.entries()) console.log(`gateway ${i + 1}: ${await formatLoadTest(r)}`);
      const total = results.reduce((a, r) => a + r.requests, 0);
      console.log(`both: ${total} requests (${(total / run.durationSeconds).toFixed(1)}/s), ${results.reduce((a, r) => a + r.errors + r.timeouts, 0)} errors and timeouts`);
      console.log(await serverCounters(server));
      if (analytics) {
        await analytics.flush();
        const today = (await analytics.rollup(1)).at(-1);
        console.log(`analytics rollup of today (warm-up included): ${JSON.stringify(today)}`);
      }
    } finally {
      await Promise.all(gateways.map((g) => g.close()));
      await analytics?.close();
      redis.kill();
    }
  }
  await server.close();
} finally {
  await rm(work, { recursive: true, force: true });
}
