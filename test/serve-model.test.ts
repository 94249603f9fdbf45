/**
 * The server on the fixture model (GLM-4.5 layout, q40) end to end with the official `openai` client:
 * greedy replies equal to the engine's, streaming equal to non-streaming, max_tokens giving length, stop
 * strings, multi-turn KV cache reuse, /metrics; `glm-dllama serve` itself; and a bounded autocannon load
 * test on loopback.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import { convert } from '../converter/convert.js';
import { GenerationSession, LoadedModel } from '../engine/index.js';
import { createServer, EngineGenerator, type DemoServer } from '../server/index.js';
import { applyChatTemplate, loadTokenizer, StreamDecoder } from '../tokenizer/index.js';
import { loadTest } from '../scripts/load-test-lib.js';
import { rateLimitFor } from '../cli/serve-command.js';
import { fixture, removeDir, tempDir } from './helpers.js';

let dir: string;
let model: string;
let tokenizerFile: string;
let server: DemoServer;
let client: OpenAI;
let url: string;

beforeAll(async () => {
  dir = await tempDir();
  const checkpoint = await fixture(dir, { arch: 'glm4moe' });
  model = join(dir, 'm.q40.m');
  tokenizerFile = join(dir, 'm.q40.t');
  await convert({ modelDir: checkpoint, outFile: model, weights: 'q40' });
  const generator = await EngineGenerator.load({ model, tokenizer: tokenizerFile, threads: 2, contextLength: 256 });
  server = await createServer({ generator, processMetrics: false });
  url = await server.listen(0);
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
});
afterAll(async () => {
  await server?.close();
  await removeDir(dir);
});

/** The reply the engine gives by itself: greedy ids of the rendered chat, decoded. */
async function greedyReply(messages: { role: string; content: string }[], maxTokens: number): Promise<string> {
  const t = await loadTokenizer(tokenizerFile);
  const { ids } = applyChatTemplate(t.tokenizer, t.chatTemplate!, { messages }, t.templateTokens);
  const session = new GenerationSession(new LoadedModel(model, { threads: 2, contextLength: 256 }));
  const stream = new StreamDecoder(t.tokenizer, { skipSpecialTokens: true });
  let text = '';
  for await (const id of session.generate(ids, { temperature: 0, maxTokens, stopIds: t.stopIds, vocabLimit: t.tokenizer.vocabSize })) {
    if (!t.stopIds.includes(id)) text += stream.push(id);
  }
  return (text + stream.flush()).trimStart();
}

it('answers the openai client with the engine\'s greedy reply, streaming and not, with max_tokens giving finish_reason length', async () => {
  const messages = [{ role: 'user' as const, content: 'Tell me about the river town.' }];
  const expected = await greedyReply(messages, 12);
  const r = await client.chat.completions.create({ model: 'm.q40', messages, temperature: 0, max_tokens: 12 });
  expect(r.object).toBe('chat.completion');
  expect(r.model).toBe('m.q40');
  expect(r.choices[0]!.message.content).toBe(expected);
  expect(r.choices[0]!.finish_reason).toBe('length');
  expect(r.usage!.completion_tokens).toBe(12);
  expect(r.usage!.prompt_tokens).toBeGreaterThan(3);

  const stream = await client.chat.completions.create({ model: 'm.q40', messages, temperature: 0, max_completion_tokens: 12, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined | null;
  for await (const chunk of stream) {
    expect(chunk.object).toBe('chat.completion.chunk');
    text += chunk.choices[0]?.delta.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
    usage = chunk.usage ?? usage;
  }
  expect(text).toBe(expected);
  expect(finish).toBe('length');
  expect(usage).toMatchObject({ completion_tokens: 12, prompt_tokens: r.usage!.prompt_tokens });
  // the same prompt again: everything but its last token came from the KV cache
  expect(usage!.prompt_tokens_details!.cached_tokens).toBe(r.usage!.prompt_tokens - 1);

  // a prompt longer than the context: 400 before any generation, streamed or not
  const long = [{ role: 'user' as const, content: 'river town '.repeat(200) }];
  for (const streamed of [false, true]) {
    const e = await client.chat.completions.create({ model: 'm.q40', messages: long, stream: streamed }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect((e as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ code: 'context_length_exceeded', param: 'messages' });
  }

  const models = await client.models.list();
  expect(models.data.map((m) => m.id)).toEqual(['m.q40']);
});

it('cuts the reply at a stop string, and reuses the KV cache for the next turn of a conversation', async () => {
  const messages = [{ role: 'user' as const, content: 'Hello there' }];
  const full = (await client.chat.completions.create({ model: 'm.q40', messages, temperature: 0, max_tokens: 16 })).choices[0]!.message.content!;
  const stop = full.slice(6, 9);
  const cut = await client.chat.completions.create({ model: 'm.q40', messages, temperature: 0, max_tokens: 16, stop: [stop] });
  expect(cut.choices[0]!.message.content).toBe(full.slice(0, full.indexOf(stop)));
  expect(cut.choices[0]!.finish_reason).toBe('stop');
  expect(cut.usage!.completion_tokens).toBeLessThan(16);

  const first = await client.chat.completions.create({ model: 'm.q40', messages, temperature: 0.8, seed: 7, max_tokens: 6 });
  const next = await client.chat.completions.create({
    model: 'm.q40',
    messages: [...messages, { role: 'assistant', content: first.choices[0]!.message.content }, { role: 'user', content: 'Tell me more' }],
    temperature: 0.8,
    seed: 7,
    max_tokens: 6,
  });
  expect(next.usage!.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens);
  expect(next.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThanOrEqual(first.usage!.prompt_tokens);

  const metrics = await (await fetch(`${url}/metrics`)).text();
  expect(metrics).toMatch(/glm_dllama_completion_tokens_total \d+/);
  expect(Number(/glm_dllama_completion_tokens_total (\d+)/.exec(metrics)![1])).toBeGreaterThanOrEqual(12 + 12 + 16 + 6 + 6);
  expect(Number(/glm_dllama_time_to_first_token_seconds_count (\d+)/.exec(metrics)![1])).toBeGreaterThanOrEqual(6);
  expect(metrics).toMatch(/glm_dllama_completions_total\{reason="length"\} \d+/);
  const health = await (await fetch(`${url}/health`)).json();
  expect(health).toMatchObject({ status: 'ok', model: 'm.q40', model_loaded: true, workers: { configured: 0, connected: 0 } });
});

it('a bounded load test: fixed connections for a fixed time, no errors but 429 and 503, memory stable', async () => {
  const generator = await EngineGenerator.load({ model, tokenizer: tokenizerFile, threads: 2, contextLength: 256 });
  const loaded = await createServer({ generator, processMetrics: false, rateLimit: { max: 300, windowMs: 60_000 }, maxQueue: 2 });
  try {
    const r = await loadTest({ url: await loaded.listen(0), connections: 8, durationSeconds: 3, maxTokens: 4 });
    expect(r.errors).toBe(0);
    expect(r.timeouts).toBe(0);
    expect(Object.keys(r.statusCodes).sort()).toEqual(['200', '429', '503']);
    expect(r.statusCodes['200']).toBeGreaterThan(0);
    // the quota of 300 went to answers and 503s; autocannon leaves out the (at most 8) replies in flight at the end
    expect(r.statusCodes['200']! + r.statusCodes['503']!).toBeLessThanOrEqual(300);
    expect(r.statusCodes['200']! + r.statusCodes['503']!).toBeGreaterThanOrEqual(300 - 8);
    const limited = (await loaded.metrics.registry.getSingleMetric('glm_dllama_rate_limited_total')!.get()).values[0]!.value;
    expect(limited - r.statusCodes['429']!).toBeGreaterThanOrEqual(0);
    expect(limited - r.statusCodes['429']!).toBeLessThanOrEqual(8);
    expect(r.rssMiB.after - r.rssMiB.before).toBeLessThan(100);
  } finally {
    await loaded.close();
  }
});

it('glm-dllama serve answers the openai client and exits cleanly on SIGTERM', async () => {
  const child = spawn(process.execPath, [join(process.cwd(), 'dist', 'cli', 'glm-dllama.js'), 'serve', '--model', model, '--port', '0', '--threads', '2', '--rate-limit', '5'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const address = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = / on (http:\/\/\S+)\/v1/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    child.on('exit', () => reject(new Error(`serve exited: ${stderr}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const c = new OpenAI({ baseURL: `${address}/v1`, apiKey: 'none', maxRetries: 0 });
    const r = await c.chat.completions.create({ model: 'm.q40', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3 });
    expect(r.choices[0]!.finish_reason).toMatch(/^(length|stop)$/);
    const s = await c.chat.completions.create({ model: 'm.q40', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, stream: true });
    let chunks = 0;
    for await (const _ of s) chunks++;
    expect(chunks).toBeGreaterThan(1);
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
  expect(stderr).toMatch(/^rate limit: 5 chat requests per client IP per 60 s \(--rate-limit N --rate-window SECONDS to change, --rate-limit 0 for none\)$/m);
  expect(stderr).toMatch(/closing: refusing new requests/);
  // The fixture's KV caches are small: the default is the cap, decoded together.
  expect(stderr).toMatch(/^parallel: 8 generations decoded together, KV cache [\d.]+ MiB each, [\d.]+ MiB in all \(the default within \d+ MiB, a quarter of the free memory; --parallel N to change\)$/m);
});

it("serve's default rate limit: roomy on loopback, the public demo's 10 an hour elsewhere, flags first", () => {
  expect(rateLimitFor('127.0.0.1', {})).toEqual({ max: 60, windowSeconds: 60 });
  expect(rateLimitFor('::1', {})).toEqual({ max: 60, windowSeconds: 60 });
  expect(rateLimitFor('0.0.0.0', {})).toEqual({ max: 10, windowSeconds: 3600 });
  expect(rateLimitFor('10.0.0.5', { rateLimit: 0 })).toEqual({ max: 0, windowSeconds: 3600 });
  expect(rateLimitFor('localhost', { rateLimit: 10, rateWindow: 3600 })).toEqual({ max: 10, windowSeconds: 3600 });
});
