/**
 * The OpenAI-compatible HTTP server (Fastify): /v1/chat/completions (JSON or server-sent events),
 * /v1/models, /health and /metrics, with up to the generator's `parallel` generations at a time (decoded
 * together in one batch) behind a bounded queue, a per-IP rate
 * limit, optional API keys, body and token limits, a request timeout, CORS and a graceful close.
 */
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { AuthFailures, clientKey } from './clients.js';
import { answerErrorsInOpenAIShape, errorBody } from './errors.js';
import type { GenerationUsage, TextGeneration, TextGenerator } from './generator.js';
import { PromptError } from './generator.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { ReplyParser, StopMatcher, type ReplyEvent, type ToolCall } from './parse.js';
import { GenerationQueue, QueueFullError } from './queue.js';
import { ApiError, parseChatCompletion, type ChatCompletionRequest } from './request.js';
import { packageVersion } from '../engine/native.js';
import { CHAT_COMPLETIONS_SCHEMA, HEALTH_SCHEMA, METRICS_SCHEMA, MODELS_SCHEMA } from './schemas.js';

export { EngineGenerator, PromptError, templateMessages, type EngineGeneratorOptions, type GenerationRequest, type GenerationUsage, type TextGeneration, type TextGenerator } from './generator.js';
export { ReplyParser, StopMatcher, parseToolCall, type ReplyEvent, type ToolCall } from './parse.js';
export { GenerationQueue, QueueFullError } from './queue.js';
export { ApiError, MAX_TOP_K, parseChatCompletion } from './request.js';
export { clientKey } from './clients.js';

export interface ServerOptions {
  readonly generator: TextGenerator;
  /**
   * Requests per window per client (an IPv4 address, an IPv6 /64) on /v1/chat/completions, counted
   * before the API key is checked; false disables. Default 10 per hour.
   */
  readonly rateLimit?: { readonly max: number; readonly windowMs: number } | false;
  /**
   * Addresses (IPs or CIDRs) of reverse proxies whose X-Forwarded-For is believed. Default none: the
   * client IP is the socket's peer.
   */
  readonly trustedProxies?: readonly string[];
  /**
   * When set, /v1/* and /metrics require `Authorization: Bearer <one of these>`, and a client that sent
   * AUTH_FAILURES.max wrong keys within AUTH_FAILURES.windowMs gets 429 until that window ends.
   */
  readonly apiKeys?: readonly string[];
  /** Requests that may wait while the generator's `parallel` generate (beyond it: 503). Default 8. */
  readonly maxQueue?: number;
  /** Largest request body in bytes (beyond it: 413). Default 1 MiB. */
  readonly bodyLimit?: number;
  /** Largest max_tokens accepted, and the default budget. Default 1024. */
  readonly maxTokens?: number;
  /** A request (queue wait and generation) is ended after this long. Default 300 000 ms. */
  readonly requestTimeoutMs?: number;
  /** Allowed CORS origins: true (any), a list, or false (no CORS headers). Default false. */
  readonly corsOrigins?: boolean | readonly string[];
  /** Sampling defaults when a request gives none. */
  readonly temperature?: number;
  readonly topP?: number;
  /** Retry-After seconds sent with 503 when the queue is full. Default 5. */
  readonly retryAfterSeconds?: number;
  /** Fastify's logger option. Default false. */
  readonly logger?: boolean | object;
  /** Node's default process metrics (memory, CPU, event loop) in /metrics. Default true. */
  readonly processMetrics?: boolean;
}

export interface DemoServer {
  readonly app: FastifyInstance;
  readonly metrics: ServerMetrics;
  readonly queue: GenerationQueue;
  /** Listens; resolves with the address (`http://host:port`). */
  listen(port: number, host?: string): Promise<string>;
  /** Refuses new requests (503), lets those in flight finish, then closes. */
  close(): Promise<void>;
}

class ClientGone extends Error {}

/** Wrong API keys a client may send per window before it is refused: no guessing at request speed. */
export const AUTH_FAILURES = { max: 10, windowMs: 15 * 60_000 } as const;

function sameKey(given: string, keys: readonly Buffer[]): boolean {
  const b = Buffer.from(given);
  let ok = false;
  for (const k of keys) if (k.length === b.length && timingSafeEqual(k, b)) ok = true;
  return ok;
}

interface Outcome {
  usage: GenerationUsage;
  toolCalls: ToolCall[];
  stoppedByString: boolean;
  ttftSeconds: number | null;
  decodeSeconds: number;
}

export async function createServer(options: ServerOptions): Promise<DemoServer> {
  const generator = options.generator;
  const metrics = createMetrics(options.processMetrics ?? true);
  metrics.queueCapacity.set(options.maxQueue ?? 8);
  const parallel = generator.parallel ?? 1;
  metrics.slots.set(parallel);
  generator.watchSteps?.((step) => {
    metrics.batchSize.observe(step.sequences);
    metrics.batchTokens.inc(step.decodeTokens);
    if (step.seconds > 0) metrics.decodeTokensPerSecond.set(step.decodeTokens / step.seconds);
  });
  const queue = new GenerationQueue(
    options.maxQueue ?? 8,
    (waiting, running) => {
      metrics.queueDepth.set(waiting);
      metrics.generationsRunning.set(running);
      metrics.slotsBusy.set(running); // the queue gives at most `parallel` places, one slot each
    },
    parallel,
  );
  const limits = { maxTokens: options.maxTokens ?? 1024, temperature: options.temperature ?? 0.8, topP: options.topP ?? 0.95, vocabSize: generator.vocabSize };
  const timeoutMs = options.requestTimeoutMs ?? 300_000;
  const retryAfter = String(options.retryAfterSeconds ?? 5);
  const keys = (options.apiKeys ?? []).map((k) => Buffer.from(k));
  const created = Math.floor(Date.now() / 1000);
  let closing = false;
  const inFlight = new Set<Promise<unknown>>();

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    trustProxy: options.trustedProxies && options.trustedProxies.length > 0 ? [...options.trustedProxies] : false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestTimeout: 60_000, // receiving a request's headers and body
  });

  // The route schemas document the API (app.swagger() gives the OpenAPI document); they neither validate
  // (parseChatCompletion does, naming the parameter in OpenAI's error shape) nor reshape the replies.
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  await app.register(swagger, {
    openapi: {
      info: { title: 'glm-dllama demo API', description: 'The OpenAI-compatible server of `glm-dllama serve`.', version: packageVersion() },
      tags: [
        { name: 'openai', description: "OpenAI's chat completions and models endpoints." },
        { name: 'operations', description: 'Health and monitoring.' },
      ],
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'Only when the server was started with API keys.' } } },
    },
  });

  answerErrorsInOpenAIShape(app);

  // Every response, streamed or not, counted when its connection is done with it.
  app.addHook('onRequest', async (request, reply) => {
    reply.raw.once('close', () => {
      metrics.requests.inc({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.raw.statusCode) });
    });
  });

  if (options.corsOrigins) {
    await app.register(cors, {
      origin: options.corsOrigins === true ? true : [...options.corsOrigins],
      methods: ['GET', 'POST', 'OPTIONS'],
      allowedHeaders: ['Authorization', 'Content-Type'],
      exposedHeaders: ['Retry-After', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset'],
    });
  }

  await app.register(rateLimit, {
    global: false,
    max: options.rateLimit ? options.rateLimit.max : 1,
    timeWindow: options.rateLimit ? options.rateLimit.windowMs : 1,
    keyGenerator: (request) => clientKey(request.ip),
    onExceeded: () => metrics.rateLimited.inc(),
    errorResponseBuilder: (_request, context) =>
      new ApiError(429, `rate limit reached: ${context.max} requests per ${options.rateLimit ? Math.round(options.rateLimit.windowMs / 1000) : 0} s; retry in ${context.after}`, 'rate_limit_error', 'rate_limit_exceeded'),
  });

  const authFailures = new AuthFailures(AUTH_FAILURES.max, AUTH_FAILURES.windowMs);
  const authenticate = async (request: FastifyRequest) => {
    if (keys.length === 0) return;
    const client = clientKey(request.ip);
    const wait = authFailures.retryAfter(client);
    if (wait > 0) {
      metrics.rateLimited.inc();
      throw new ApiError(429, `too many wrong API keys from this address; retry in ${wait} s`, 'rate_limit_error', 'rate_limit_exceeded', null, { 'Retry-After': String(wait) });
    }
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match || !sameKey(match[1]!.trim(), keys)) {
      authFailures.record(client);
      throw new ApiError(401, 'missing or invalid API key (Authorization: Bearer KEY)', 'authentication_error', 'invalid_api_key');
    }
  };
  const refuseWhenClosing = async () => {
    if (closing) throw new ApiError(503, 'the server is shutting down', 'server_error', 'shutting_down', null, { 'Retry-After': retryAfter });
  };
  // The limiter runs first, so that requests with wrong keys use up the client's quota too.
  const chatHooks = options.rateLimit === false ? [refuseWhenClosing, authenticate] : [refuseWhenClosing, app.rateLimit(), authenticate];

  app.get('/health', { schema: HEALTH_SCHEMA }, async () => {
    const h = generator.health();
    return {
      status: closing ? 'shutting_down' : h.modelLoaded ? 'ok' : 'loading',
      model: generator.modelId,
      model_loaded: h.modelLoaded,
      workers: { configured: h.workersConfigured, connected: h.workersConnected },
      queue: { running: queue.running, waiting: queue.depth, max_waiting: queue.maxWaiting, parallel: queue.capacity },
    };
  });

  app.get('/metrics', { schema: METRICS_SCHEMA, onRequest: [authenticate] }, async (_request, reply) => {
    void reply.header('Content-Type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  app.get('/v1/models', { schema: { ...MODELS_SCHEMA, security: [{ apiKey: [] }] }, onRequest: [authenticate] }, async () => ({
    object: 'list',
    data: [{ id: generator.modelId, object: 'model', created, owned_by: 'glm-dllama' }],
  }));

  /** Runs one generation, passing parsed events on; ends early on a stop string or an abort. */
  async function generate(
    run: TextGeneration,
    chat: ChatCompletionRequest,
    signal: AbortSignal,
    onEvents: (events: ReplyEvent[]) => void,
    started = performance.now(),
  ): Promise<Outcome> {
    let firstAt: number | null = null;
    const stopper = new StopMatcher(chat.stop);
    const parser = new ReplyParser();
    const toolCalls: ToolCall[] = [];
    const pass = (events: ReplyEvent[]) => {
      for (const e of events) if (e.kind === 'tool_call') toolCalls.push(e.call);
      if (events.length > 0) onEvents(events);
    };
    let usage: GenerationUsage | undefined;
    for (let step = await run.next(); ; step = await run.next()) {
      if (step.done) {
        usage = step.value;
        break;
      }
      firstAt ??= performance.now();
      pass(parser.push(stopper.push(step.value)));
      if (stopper.stopped || signal.aborted) {
        const r = await run.return(undefined as never);
        usage = typeof r.value === 'object' ? r.value : undefined;
        break;
      }
    }
    pass(parser.push(stopper.end()));
    pass(parser.end());
    const end = performance.now();
    const fallback: GenerationUsage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0, finishReason: 'stop' };
    return {
      usage: usage ?? fallback,
      toolCalls,
      stoppedByString: stopper.stopped,
      ttftSeconds: firstAt === null ? null : (firstAt - started) / 1000,
      decodeSeconds: firstAt === null ? 0 : (end - firstAt) / 1000,
    };
  }

  function finishReason(o: Outcome): 'stop' | 'length' | 'tool_calls' {
    if (o.toolCalls.length > 0) return 'tool_calls';
    if (o.stoppedByString) return 'stop';
    return o.usage.finishReason;
  }

  function usageBody(u: GenerationUsage) {
    return {
      prompt_tokens: u.promptTokens,
      completion_tokens: u.completionTokens,
      total_tokens: u.promptTokens + u.completionTokens,
      prompt_tokens_details: { cached_tokens: u.cachedTokens },
    };
  }

  function record(o: Outcome): void {
    metrics.promptTokens.inc(o.usage.promptTokens);
    metrics.cachedPromptTokens.inc(o.usage.cachedTokens);
    metrics.completionTokens.inc(o.usage.completionTokens);
    metrics.draftedTokens.inc(o.usage.draftedTokens ?? 0);
    metrics.acceptedDraftTokens.inc(o.usage.acceptedDraftTokens ?? 0);
    if (o.ttftSeconds !== null) metrics.timeToFirstToken.observe(o.ttftSeconds);
    if (o.usage.completionTokens > 1) metrics.timePerOutputToken.observe(o.decodeSeconds / (o.usage.completionTokens - 1));
  }

  async function chatCompletion(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const chat = parseChatCompletion(request.body, limits);
    const abort = new AbortController();
    const raw: ServerResponse = reply.raw;
    const onClose = () => {
      if (!raw.writableFinished) abort.abort(new ClientGone('the client went away'));
    };
    raw.on('close', onClose);
    const timer = setTimeout(() => abort.abort(new ApiError(504, `the request took longer than ${timeoutMs} ms`, 'server_error', 'timeout')), timeoutMs);
    let release: (() => void) | undefined;
    try {
      try {
        release = await queue.acquire(abort.signal);
      } catch (e) {
        if (e instanceof QueueFullError) throw new ApiError(503, e.message, 'server_error', 'server_busy', null, { 'Retry-After': retryAfter });
        throw e;
      }
      const run = generator.generate(chat.generation);
      const id = `chatcmpl-${randomUUID()}`;
      const now = Math.floor(Date.now() / 1000);
      if (!chat.stream) {
        let content = '';
        let reasoning = '';
        let outcome: Outcome;
        try {
          outcome = await generate(run, chat, abort.signal, (events) => {
            for (const e of events) {
              if (e.kind === 'content') content += e.text;
              else if (e.kind === 'reasoning') reasoning += e.text;
            }
          });
        } catch (e) {
          if (e instanceof PromptError) throw new ApiError(400, e.message, 'invalid_request_error', e.code, e.param ?? null);
          throw e;
        }
        record(outcome);
        if (abort.signal.aborted) throw abort.signal.reason;
        const reason = finishReason(outcome);
        metrics.finishReasons.inc({ reason });
        return {
          id,
          object: 'chat.completion',
          created: now,
          model: generator.modelId,
          choices: [
            {
              index: 0,
              message: {
                role: 'assistant',
                content: outcome.toolCalls.length > 0 && content.trim() === '' ? null : content,
                ...(reasoning ? { reasoning_content: reasoning } : {}),
                ...(outcome.toolCalls.length > 0 ? { tool_calls: outcome.toolCalls } : {}),
              },
              logprobs: null,
              finish_reason: reason,
            },
          ],
          usage: usageBody(outcome.usage),
        };
      }
      // Streaming: the first step runs before the headers go out, so a bad prompt still gets a 400.
      const started = performance.now();
      const first = await run.next().catch((e: unknown) => {
        if (e instanceof PromptError) throw new ApiError(400, e.message, 'invalid_request_error', e.code, e.param ?? null);
        throw e;
      });
      const replay: TextGeneration = (async function* () {
        if (first.done) return first.value;
        let forwarded = false;
        try {
          yield first.value;
          forwarded = true;
          return yield* run;
        } finally {
          if (!forwarded) {
            // stopped right after the first piece: end the generation, keeping its usage
            const r = await run.return(undefined as never);
            // eslint-disable-next-line no-unsafe-finally
            if (typeof r.value === 'object') return r.value;
          }
        }
      })();
      reply.hijack();
      raw.writeHead(200, {
        ...(reply.getHeaders() as Record<string, string>),
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache',
        'X-Accel-Buffering': 'no',
        ...(closing ? { Connection: 'close' } : {}),
      });
      const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) => {
        if (raw.writableEnded || raw.destroyed) return;
        raw.write(
          `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: now, model: generator.modelId, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(chat.includeUsage ? { usage: null } : {}), ...extra })}\n\n`,
        );
      };
      chunk({ role: 'assistant', content: '' }, null);
      let toolIndex = 0;
      let outcome: Outcome;
      try {
        outcome = await generate(replay, chat, abort.signal, (events) => {
          for (const e of events) {
            if (e.kind === 'content') chunk({ content: e.text }, null);
            else if (e.kind === 'reasoning') chunk({ reasoning_content: e.text }, null);
            else chunk({ tool_calls: [{ index: toolIndex++, id: e.call.id, type: 'function', function: e.call.function }] }, null);
          }
        }, started);
      } catch (e) {
        request.log.error(e);
        if (!raw.destroyed) raw.end(`data: ${JSON.stringify(errorBody(500, 'the generation failed', 'server_error', null))}\n\n`);
        return reply;
      }
      record(outcome);
      if (abort.signal.reason instanceof ClientGone) {
        metrics.disconnects.inc();
        return reply;
      }
      if (abort.signal.reason instanceof ApiError) {
        raw.end(`data: ${JSON.stringify(abort.signal.reason.body())}\n\ndata: [DONE]\n\n`);
        return reply;
      }
      const reason = finishReason(outcome);
      metrics.finishReasons.inc({ reason });
      chunk({}, reason);
      if (chat.includeUsage) {
        raw.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: now, model: generator.modelId, choices: [], usage: usageBody(outcome.usage) })}\n\n`);
      }
      raw.end('data: [DONE]\n\n');
      return reply;
    } catch (e) {
      if (e instanceof ClientGone || abort.signal.reason instanceof ClientGone) {
        metrics.disconnects.inc();
        if (!reply.sent) reply.hijack();
        return reply;
      }
      throw e;
    } finally {
      clearTimeout(timer);
      raw.off('close', onClose);
      release?.();
    }
  }

  app.post('/v1/chat/completions', { schema: { ...CHAT_COMPLETIONS_SCHEMA, security: [{ apiKey: [] }] }, onRequest: chatHooks }, (request, reply) => {
    const work = chatCompletion(request, reply);
    inFlight.add(work);
    const forget = () => inFlight.delete(work);
    work.then(forget, forget);
    return work;
  });

  let closed: Promise<void> | undefined;
  return {
    app,
    metrics,
    queue,
    async listen(port: number, host = '127.0.0.1') {
      return app.listen({ port, host });
    },
    close() {
      closed ??= (async () => {
        closing = true;
        const done = app.close();
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        app.server.closeIdleConnections();
        await done;
      })();
      return closed;
    },
  };
}
export { createGateway, type Gateway, type GatewayOptions } from './gateway.js';
export { UsageAnalytics, type AnalyticsOptions, type UsageDay, type UsageExport, type UsageRecord, type UsageRecorder } from './analytics.js';
