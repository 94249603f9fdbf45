/**
 * `serve --parallel`: concurrent requests through the official `openai` client are decoded together
 * (continuous batching) and get exactly the replies they get one at a time, greedy or seeded, with stop
 * strings, a client leaving mid-batch and more requests than slots (they queue, never fail).
 */
import { join } from 'node:path';
import OpenAI from 'openai';
import { convert } from '../converter/convert.js';
import { planParallel } from '../engine/index.js';
import { createServer, EngineGenerator, type DemoServer } from '../server/index.js';
import { fixture, removeDir, tempDir } from './helpers.js';

let dir: string;
let model: string;
let tokenizer: string;

beforeAll(async () => {
  dir = await tempDir();
  const checkpoint = await fixture(dir, { arch: 'glm4moe' });
  model = join(dir, 'm.q40.m');
  tokenizer = join(dir, 'm.q40.t');
  await convert({ modelDir: checkpoint, outFile: model, weights: 'q40' });
});
afterAll(async () => removeDir(dir));

async function serverWith(parallel: number): Promise<{ server: DemoServer; client: OpenAI; url: string }> {
  const generator = await EngineGenerator.load({ model, tokenizer, threads: 2, contextLength: 256, parallel });
  const server = await createServer({ generator, processMetrics: false, rateLimit: false, maxQueue: 8 });
  const url = await server.listen(0);
  return { server, url, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 }) };
}

const topics = ['the river town', 'a lighthouse', 'winter bread', 'the old mill', 'a long road', 'copper bells', 'the night market', 'seven hills'];
type Ask = OpenAI.ChatCompletionCreateParamsNonStreaming;
const requests: Ask[] = topics.map((topic, i) => ({
  model: 'm',
  messages: [{ role: 'user', content: `Tell me about ${topic}.` }],
  max_tokens: 10 + (i % 3) * 3,
  ...(i % 2 ? { temperature: 0.9, top_p: 0.8, seed: 100 + i } : { temperature: 0 }),
}));

async function reply(client: OpenAI, r: Ask, streamed: boolean): Promise<string> {
  if (!streamed) return (await client.chat.completions.create(r)).choices[0]!.message.content!;
  let text = '';
  for await (const chunk of await client.chat.completions.create({ ...r, stream: true })) text += chunk.choices[0]?.delta.content ?? '';
  return text;
}

it('8 concurrent requests on 4 slots get the replies they get one at a time; a client leaving mid-batch changes none', async () => {
  const one = await serverWith(1);
  const alone: string[] = [];
  try {
    for (const r of requests) alone.push(await reply(one.client, r, false));
    // A stop string cut from a reply, for the batched run to hit too.
    requests.push({ ...requests[0]!, stop: [alone[0]!.slice(4, 7)] });
    alone.push(alone[0]!.slice(0, alone[0]!.indexOf(alone[0]!.slice(4, 7))));
  } finally {
    await one.server.close();
  }
  const many = await serverWith(4);
  try {
    const health = (await (await fetch(`${many.url}/health`)).json()) as { queue: { parallel: number } };
    expect(health.queue.parallel).toBe(4);
    // A streaming client that leaves after its first chunks, while the others run.
    const leaving = (async () => {
      const controller = new AbortController();
      const stream = await many.client.chat.completions.create({ ...requests[1]!, max_tokens: 40, stream: true }, { signal: controller.signal });
      let chunks = 0;
      try {
        for await (const _chunk of stream) if (++chunks === 3) controller.abort();
      } catch {
        // the abort
      }
      return chunks;
    })();
    const got = await Promise.all(requests.map((r, i) => reply(many.client, r, i % 3 === 0)));
    expect(await leaving).toBe(3);
    expect(got).toEqual(alone);
    const metrics = await (await fetch(`${many.url}/metrics`)).text();
    expect(metrics).toMatch(/^glm_dllama_slots 4$/m);
    const batches = Number(/^glm_dllama_batch_sequences_count (\d+)$/m.exec(metrics)![1]);
    const single = Number(/^glm_dllama_batch_sequences_bucket\{le="1"\} (\d+)$/m.exec(metrics)![1]);
    expect(batches - single).toBeGreaterThan(0); // some steps decoded several sequences together
    expect(Number(/^glm_dllama_decode_tokens_total (\d+)$/m.exec(metrics)![1])).toBeGreaterThan(0);
    expect(Number(/^glm_dllama_client_disconnects_total (\d+)$/m.exec(metrics)![1])).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(/^glm_dllama_slots_busy 0$/m);
  } finally {
    await many.server.close();
  }
});

it('chooses --parallel from the KV cache and the free memory, and refuses what does not fit', () => {
  const header = { nLayers: 46, nKvHeads: 8, headDim: 128 }; // GLM-4.5-Air
  const slot = 46 * 4096 * 8 * 128 * 2 * 2; // f16 keys and values at a context of 4096: 736 MiB
  expect(planParallel(header, 4096, 'f16', { freeBytes: 16 * slot, workers: 0 })).toEqual({ parallel: 4, slotBytes: slot, budgetBytes: 4 * slot, chosen: true });
  expect(planParallel(header, 4096, 'f16', { freeBytes: 1000 * slot, workers: 0 }).parallel).toBe(8);
  expect(planParallel(header, 4096, 'f16', { freeBytes: 2 * slot, workers: 0 }).parallel).toBe(1);
  expect(planParallel(header, 4096, 'f16', { freeBytes: 1000 * slot, workers: 1 }).parallel).toBe(1);
  expect(planParallel(header, 4096, 'f16', { requested: 3, freeBytes: 3 * slot, workers: 0 })).toMatchObject({ parallel: 3, chosen: false });
  expect(() => planParallel(header, 4096, 'f16', { requested: 4, freeBytes: 3 * slot, workers: 0 })).toThrow(
    /--parallel 4: 4 KV caches of 736 MiB \(context 4096, f16\) exceed the \d+ MiB of free memory/,
  );
  expect(() => planParallel(header, 4096, 'f16', { requested: 2, freeBytes: 1000 * slot, workers: 1 })).toThrow(/does not run with --workers yet/);
  // speculative decoding runs one generation at a time: the default is 1 and more are refused
  expect(planParallel(header, 4096, 'f16', { freeBytes: 1000 * slot, workers: 0, draft: 3 }).parallel).toBe(1);
  expect(() => planParallel(header, 4096, 'f16', { requested: 2, freeBytes: 1000 * slot, workers: 0, draft: 3 })).toThrow(/--draft\) runs one generation at a time/);
});
