/**
 * `npm run load-test`: the server on the tiny GLM-4.5 fixture (q40) under autocannon on loopback, with a
 * rate limit and a queue small enough that both refuse some requests. Prints the figures.
 *
 *   npm run load-test [-- --connections 16 --duration 10 --max-tokens 8 --rate-limit 60000 --queue 4 --stream]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { convert } from '../converter/convert.js';
import { writeFixture } from '../converter/fixture.js';
import { createServer, EngineGenerator } from '../server/index.js';
import { formatLoadTest, loadTest } from './load-test-lib.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '16' },
    duration: { type: 'string', default: '10' },
    'max-tokens': { type: 'string', default: '8' },
    'rate-limit': { type: 'string', default: '60000' },
    queue: { type: 'string', default: '4' },
    threads: { type: 'string', default: '2' },
    stream: { type: 'boolean', default: false },
  },
});

const work = await mkdtemp(join(tmpdir(), 'glm-dllama-load-'));
try {
  const checkpoint = join(work, 'checkpoint');
  await writeFixture({ arch: 'glm4moe', outDir: checkpoint });
  const model = join(work, 'm.q40.m');
  await convert({ modelDir: checkpoint, outFile: model, weights: 'q40' });
  const generator = await EngineGenerator.load({ model, tokenizer: join(work, 'm.q40.t'), threads: Number(values.threads), contextLength: 256 });
  const server = await createServer({ generator, rateLimit: { max: Number(values['rate-limit']), windowMs: 3_600_000 }, maxQueue: Number(values.queue) });
  const url = await server.listen(0);
  const result = await loadTest({ url, connections: Number(values.connections), durationSeconds: Number(values.duration), maxTokens: Number(values['max-tokens']), stream: values.stream, warmupSeconds: 1 });
  console.log(`load-test: tiny glm4moe fixture (q40), ${values.threads} threads, max_tokens ${values['max-tokens']}, rate limit ${values['rate-limit']}/hour, queue ${values.queue}${values.stream ? ', streaming' : ''}`);
  console.log(await formatLoadTest(result, server));
  await server.close();
} finally {
  await rm(work, { recursive: true, force: true });
}
