/**
 * The HTTP server with a scripted generator (the text a model would write) through the official `openai`
 * client and raw fetch: tool calls and reasoning, stop strings, limits (rate, queue, body, keys), errors
 * in OpenAI's shape, client disconnects, CORS, graceful close, and /metrics counting all of it.
 */
import OpenAI from 'openai';
import { clientKey, createServer, type DemoServer, type GenerationRequest, type GenerationUsage, type ServerOptions, type TextGeneration, type TextGenerator } from '../server/index.js';

interface Script {
  pieces: string[];
  /** Wait this long before each piece. */
  delayMs?: number;
  /** Keep producing pieces until stopped. */
  endless?: boolean;
  /** Wait for this before the first piece. */
  gate?: Promise<void>;
  finishReason?: 'stop' | 'length';
}

/** A generator that writes what the test says, and records what it was asked and whether each run ended. */
class ScriptedGenerator implements TextGenerator {
  readonly modelId = 'scripted';
  readonly requests: GenerationRequest[] = [];
  ended = 0;
  script: (request: GenerationRequest) => Script = () => ({ pieces: ['Hello', ' world'] });

  health() {
    return { modelLoaded: true, workersConfigured: 0, workersConnected: 0 };
  }

  async *generate(request: GenerationRequest): TextGeneration {
    this.requests.push(request);
    const s = this.script(request);
    let n = 0;
    try {
      await s.gate;
      for (let i = 0; s.endless || i < s.pieces.length; i++) {
        if (s.delayMs) await new Promise((r) => setTimeout(r, s.delayMs));
        n++;
        yield s.pieces[i % s.pieces.length]!;
      }
    } finally {
      this.ended++;
    }
    const usage: GenerationUsage = { promptTokens: 11, completionTokens: n, cachedTokens: 0, finishReason: s.finishReason ?? 'stop' };
    return usage;
  }
}

const servers: DemoServer[] = [];
async function start(options: Partial<ServerOptions> = {}): Promise<{ server: DemoServer; url: string; gen: ScriptedGenerator; client: OpenAI }> {
  const gen = (options.generator as ScriptedGenerator | undefined) ?? new ScriptedGenerator();
  const server = await createServer({ processMetrics: false, rateLimit: { max: 1000, windowMs: 60_000 }, ...options, generator: gen });
  servers.push(server);
  const url = await server.listen(0);
  return { server, url, gen, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 }) };
}
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

const user = (content: string) => ({ role: 'user' as const, content });
const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(name.includes('{') ? name : `${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

const TOOL_TEXT = '<think>Need the weather.</think><tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>';
const TOOLS = [
  {
    type: 'function' as const,
    function: { name: 'get_weather', description: 'the forecast', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } } },
  },
];

it('a tool call round trip: reasoning_content and tool_calls out, the tool result back in, streaming and not', async () => {
  const { client, gen } = await start();
  gen.script = (r) => (r.messages.some((m) => m.role === 'tool') ? { pieces: ['It is ', 'sunny.'] } : { pieces: TOOL_TEXT.match(/[\s\S]{1,5}/g)! });
  const first = await client.chat.completions.create({ model: 'scripted', messages: [user('Weather in Paris?')], tools: TOOLS, tool_choice: 'auto', temperature: 0.3, top_p: 0.9, seed: 42 });
  const choice = first.choices[0]!;
  expect(choice.finish_reason).toBe('tool_calls');
  expect((choice.message as unknown as { reasoning_content: string }).reasoning_content).toBe('Need the weather.');
  expect(choice.message.content).toBeNull();
  const call = choice.message.tool_calls![0]!;
  expect(call.type === 'function' && call.function).toEqual({ name: 'get_weather', arguments: '{"city":"Paris","days":2}' });
  expect(gen.requests[0]).toMatchObject({ temperature: 0.3, topP: 0.9, seed: 42, tools: TOOLS });

  const second = await client.chat.completions.create({
    model: 'scripted',
    messages: [user('Weather in Paris?'), choice.message, { role: 'tool', tool_call_id: call.id, content: '{"sky":"clear"}' }],
    tools: TOOLS,
  });
  expect(second.choices[0]!.message.content).toBe('It is sunny.');
  expect(second.choices[0]!.finish_reason).toBe('stop');
  expect(gen.requests[1]!.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool']);
  expect(gen.requests[1]!.messages[1]!['tool_calls']).toEqual(choice.message.tool_calls);

  // streaming: the same call arrives as one tool_calls delta
  const stream = await client.chat.completions.create({ model: 'scripted', messages: [user('Weather in Paris?')], tools: TOOLS, stream: true });
  const deltas: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
  for await (const chunk of stream) deltas.push(chunk);
  expect(deltas.every((d) => d.object === 'chat.completion.chunk')).toBe(true);
  const calls = deltas.flatMap((d) => d.choices[0]?.delta.tool_calls ?? []);
  expect(calls).toHaveLength(1);
  expect(calls[0]!.function).toEqual({ name: 'get_weather', arguments: '{"city":"Paris","days":2}' });
  const reasoning = deltas.map((d) => (d.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? '').join('');
  expect(reasoning).toBe('Need the weather.');
  expect(deltas[deltas.length - 1]!.choices[0]!.finish_reason).toBe('tool_calls');

  // tool_choice none hides the tools from the template
  await client.chat.completions.create({ model: 'scripted', messages: [user('hi')], tools: TOOLS, tool_choice: 'none' });
  expect(gen.requests[gen.requests.length - 1]!.tools).toBeUndefined();
});

it('stop strings cut the reply (streamed or not) and end the generation; max_tokens and the finish reasons pass through', async () => {
  const { client, gen } = await start();
  gen.script = () => ({ pieces: ['one ', 'two ', 'thr', 'ee ', 'four'] });
  const r = await client.chat.completions.create({ model: 'scripted', messages: [user('count')], stop: ['three', 'nope'], max_tokens: 50 });
  expect(r.choices[0]!.message.content).toBe('one two ');
  expect(r.choices[0]!.finish_reason).toBe('stop');
  expect(gen.requests[0]!.maxTokens).toBe(50);
  const s = await client.chat.completions.create({ model: 'scripted', messages: [user('count')], stop: 'ee f', stream: true });
  let text = '';
  for await (const c of s) text += c.choices[0]?.delta.content ?? '';
  expect(text).toBe('one two thr');
  expect(gen.ended).toBe(2);
  gen.script = () => ({ pieces: ['a', 'b'], finishReason: 'length' });
  const long = await client.chat.completions.create({ model: 'scripted', messages: [user('x')], max_completion_tokens: 2 });
  expect(long.choices[0]!.finish_reason).toBe('length');
  expect(long.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 2, total_tokens: 13 });
});

it('the 11th request in a window from one IP gets 429 with Retry-After; X-Forwarded-For counts only from a trusted proxy', async () => {
  const { url, client, server } = await start({ rateLimit: { max: 10, windowMs: 60_000 } });
  for (let i = 0; i < 10; i++) await client.chat.completions.create({ model: 'scripted', messages: [user(`hi ${i}`)] });
  const refused = await client.chat.completions.create({ model: 'scripted', messages: [user('one more')] }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
  const e = refused as InstanceType<typeof OpenAI.RateLimitError>;
  expect(e.status).toBe(429);
  expect(Number(e.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(e.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
  // not behind a trusted proxy: a forged X-Forwarded-For does not give a fresh quota
  expect((await post(url, { messages: [user('x')] }, { 'x-forwarded-for': '203.0.113.9' })).status).toBe(429);
  // health and metrics are not rate-limited
  expect((await fetch(`${url}/health`)).status).toBe(200);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  expect(metric(metrics, 'glm_dllama_rate_limited_total')).toBe(2);
  expect(metric(metrics, 'glm_dllama_http_requests_total{method="POST",route="/v1/chat/completions",status="429"}')).toBe(2);
  expect(metric(metrics, 'glm_dllama_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}')).toBe(10);
  void server;

  const proxied = await start({ rateLimit: { max: 2, windowMs: 60_000 }, trustedProxies: ['127.0.0.1', '::1'] });
  const as = (ip: string) => post(proxied.url, { messages: [user('x')] }, { 'x-forwarded-for': ip }).then((r) => r.status);
  expect([await as('198.51.100.1'), await as('198.51.100.1'), await as('198.51.100.1')]).toEqual([200, 200, 429]);
  expect(await as('198.51.100.2')).toBe(200);
});

it('answers bad requests in OpenAI error shape: malformed JSON 400, oversized body 413, bad fields 400, unknown route 404, missing key 401', async () => {
  const { url } = await start({ bodyLimit: 2048, apiKeys: ['sekret'] });
  const auth = { authorization: 'Bearer sekret' };
  const malformed = await post(url, '{"messages": [', auth);
  expect(malformed.status).toBe(400);
  expect(await malformed.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_json' } });
  const big = await post(url, { messages: [user('x'.repeat(4096))] }, auth);
  expect(big.status).toBe(413);
  expect(await big.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'body_too_large' } });
  const field = await post(url, { messages: [user('x')], temperature: 'hot' }, auth);
  expect(field.status).toBe(400);
  expect(await field.json()).toMatchObject({ error: { param: 'temperature' } });
  const missing = await fetch(`${url}/v1/nothing`, { headers: auth });
  expect(missing.status).toBe(404);
  expect(await missing.json()).toMatchObject({ error: { code: 'not_found' } });
  const noKey = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await expect(noKey.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  const withKey = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sekret', maxRetries: 0 });
  expect((await withKey.models.list()).data.map((m) => m.id)).toEqual(['scripted']);
});

it('top_k above 1000 or above the vocabulary is refused with 400 naming it; within both it reaches the generator', async () => {
  const { url, gen } = await start();
  const tooMany = await post(url, { messages: [user('x')], top_k: 1_000_000 });
  expect(tooMany.status).toBe(400);
  expect(await tooMany.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_value', param: 'top_k' } });
  expect((await post(url, { messages: [user('x')], top_k: 1001 })).status).toBe(400);
  expect((await post(url, { messages: [user('x')], top_k: 1000 })).status).toBe(200);
  expect(gen.requests.at(-1)!.topK).toBe(1000);

  const small = new (class extends ScriptedGenerator {
    readonly vocabSize = 100;
  })();
  const { url: smallUrl } = await start({ generator: small });
  const past = await post(smallUrl, { messages: [user('x')], top_k: 101 });
  expect(past.status).toBe(400);
  expect((await past.json()).error.message).toMatch(/0 \(off\) to 100, the vocabulary/);
  expect((await post(smallUrl, { messages: [user('x')], top_k: 100 })).status).toBe(200);
  expect(small.requests.map((r) => r.topK)).toEqual([100]);
});

it('wrong API keys are limited: they use the chat quota, and after 10 in a window every route answers 429; /metrics needs the key', async () => {
  const { url } = await start({ apiKeys: ['sekret'], rateLimit: { max: 2, windowMs: 60_000 } });
  const wrong = { authorization: 'Bearer guess' };
  const right = { authorization: 'Bearer sekret' };
  // the chat limiter counts before the key is checked
  expect([(await post(url, { messages: [user('x')] }, wrong)).status, (await post(url, { messages: [user('x')] }, wrong)).status]).toEqual([401, 401]);
  expect((await post(url, { messages: [user('x')] }, right)).status).toBe(429);

  const { url: keyed } = await start({ apiKeys: ['sekret'] });
  const metricsWithout = await fetch(`${keyed}/metrics`);
  expect(metricsWithout.status).toBe(401);
  expect(await metricsWithout.json()).toMatchObject({ error: { type: 'authentication_error', code: 'invalid_api_key' } });
  expect((await fetch(`${keyed}/metrics`, { headers: right })).status).toBe(200);
  const statuses: number[] = [];
  for (let i = 0; i < 10; i++) statuses.push((await fetch(`${keyed}/v1/models`, { headers: wrong })).status);
  expect(statuses).toEqual(new Array(9).fill(401).concat(429)); // the 401 on /metrics was the first failure
  const locked = await fetch(`${keyed}/v1/models`, { headers: right });
  expect(locked.status).toBe(429);
  expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(await locked.json()).toMatchObject({ error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' } });
  expect((await fetch(`${keyed}/health`)).status).toBe(200);
});

it('IPv6 clients are limited per /64, not per address', async () => {
  const { url } = await start({ rateLimit: { max: 2, windowMs: 60_000 }, trustedProxies: ['127.0.0.1', '::1'] });
  const as = (ip: string) => post(url, { messages: [user('x')] }, { 'x-forwarded-for': ip }).then((r) => r.status);
  expect([await as('2001:db8:1:2::1'), await as('2001:db8:1:2:ffff::5'), await as('2001:db8:1:2:aaaa:bbbb:cccc:dddd')]).toEqual([200, 200, 429]);
  expect(await as('2001:db8:1:3::1')).toBe(200);
  expect(clientKey('2001:DB8:0:02:1::1')).toBe('2001:db8:0:2::/64');
  expect(clientKey('2001:db8:0:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:0:2::/64');
  expect(clientKey('::1')).toBe('::/64');
  expect(clientKey('fe80::1%eth0')).toBe('fe80::/64');
  expect(clientKey('::ffff:198.51.100.7')).toBe('198.51.100.7');
  expect(clientKey('198.51.100.7')).toBe('198.51.100.7');
});

it('one generation at a time: a full queue answers 503 with Retry-After, and waiting requests are served in turn', async () => {
  const { client, gen, url, server } = await start({ maxQueue: 1 });
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  gen.script = () => ({ pieces: ['done'], gate });
  const running = client.chat.completions.create({ model: 'scripted', messages: [user('first')] });
  await new Promise((r) => setTimeout(r, 50));
  const waiting = client.chat.completions.create({ model: 'scripted', messages: [user('second')] });
  await new Promise((r) => setTimeout(r, 50));
  expect(server.queue.depth).toBe(1);
  expect((await (await fetch(`${url}/health`)).json()).queue).toEqual({ running: 1, waiting: 1, max_waiting: 1, parallel: 1 });
  expect(metric(await (await fetch(`${url}/metrics`)).text(), 'glm_dllama_queue_depth')).toBe(1);
  const overflow = await client.chat.completions.create({ model: 'scripted', messages: [user('third')] }).catch((e: unknown) => e);
  expect(overflow).toBeInstanceOf(OpenAI.InternalServerError);
  expect((overflow as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
  expect((overflow as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after')).toBe('5');
  expect((overflow as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'server_busy' });
  open();
  expect((await running).choices[0]!.message.content).toBe('done');
  expect((await waiting).choices[0]!.message.content).toBe('done');
  expect(server.queue.depth).toBe(0);
});

it('a client that disconnects mid-stream ends its generation at once and frees the model for the next request', async () => {
  const { client, gen, url } = await start();
  gen.script = () => ({ pieces: ['tick '], delayMs: 5, endless: true });
  const controller = new AbortController();
  const stream = await client.chat.completions.create({ model: 'scripted', messages: [user('go on forever')], stream: true }, { signal: controller.signal });
  let chunks = 0;
  try {
    for await (const _ of stream) if (++chunks === 5) controller.abort();
  } catch {
    // the client reports the abort as an error or as the end of the stream
  }
  expect(chunks).toBe(5);
  const deadline = Date.now() + 2000;
  while (gen.ended < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  expect(gen.ended).toBe(1);
  gen.script = () => ({ pieces: ['next'] });
  const started = Date.now();
  expect((await client.chat.completions.create({ model: 'scripted', messages: [user('hi')] })).choices[0]!.message.content).toBe('next');
  expect(Date.now() - started).toBeLessThan(1000);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  expect(metric(metrics, 'glm_dllama_client_disconnects_total')).toBe(1);
  expect(metric(metrics, 'glm_dllama_generations_running')).toBe(0);
});

it('a request that runs past the timeout is ended with 504 and frees the model', async () => {
  const { client, gen } = await start({ requestTimeoutMs: 150 });
  gen.script = () => ({ pieces: ['slow '], delayMs: 10, endless: true });
  const e = await client.chat.completions.create({ model: 'scripted', messages: [user('x')] }).catch((err: unknown) => err);
  expect((e as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
  expect(gen.ended).toBe(1);
});

it('CORS headers for allowed origins only, including preflight', async () => {
  const { url } = await start({ corsOrigins: ['https://try.example'] });
  const pre = await fetch(`${url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'https://try.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' } });
  expect(pre.status).toBe(204);
  expect(pre.headers.get('access-control-allow-origin')).toBe('https://try.example');
  const ok = await post(url, { messages: [user('x')], stream: true }, { origin: 'https://try.example' });
  expect(ok.headers.get('access-control-allow-origin')).toBe('https://try.example');
  await ok.text();
  const other = await post(url, { messages: [user('x')] }, { origin: 'https://evil.example' });
  expect(other.headers.get('access-control-allow-origin')).toBeNull();
});

it('closes gracefully: the request in flight finishes, new ones are refused', async () => {
  const { client, gen, server, url } = await start();
  gen.script = () => ({ pieces: ['a', 'b', 'c', 'd'], delayMs: 40 });
  const inFlight = client.chat.completions.create({ model: 'scripted', messages: [user('x')], stream: true });
  await new Promise((r) => setTimeout(r, 30));
  const closed = server.close();
  await new Promise((r) => setTimeout(r, 10));
  const refused = await post(url, { messages: [user('late')] }).then(
    (r) => r.status,
    () => 'refused',
  );
  expect([503, 'refused']).toContain(refused);
  let text = '';
  for await (const c of await inFlight) text += c.choices[0]?.delta.content ?? '';
  expect(text).toBe('abcd');
  await closed;
  expect(gen.ended).toBe(1);
});
