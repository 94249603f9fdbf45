/**
 * The public gateway in front of model servers (`serve` on Droplets): the same OpenAI-compatible routes,
 * requests spread over the upstreams that pass their health check, an upstream's 503 (queue full) or a
 * refused connection retried on the next one before the client sees anything, replies (server-sent events
 * included) passed through chunk by chunk, and a rate limit shared by every gateway instance through
 * Redis or Valkey.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { UsageRecorder } from './analytics.js';
import { clientKey } from './clients.js';
import { answerErrorsInOpenAIShape, errorBody } from './errors.js';
import { ApiError } from './request.js';

export interface GatewayOptions {
  /** Base URLs of the model servers (`http://10.0.0.5:8080`). */
  readonly upstreams: readonly string[];
  /** Sent to the upstreams as `Authorization: Bearer KEY` (their `--api-key`). */
  readonly upstreamKey?: string;
  /** Chat requests per window per client; false disables. Default 10 per hour. */
  readonly rateLimit?: { readonly max: number; readonly windowMs: number } | false;
  /**
   * Redis or Valkey (`redis://`, `rediss://`) holding the counts, shared by every gateway instance.
   * Without it each instance counts alone (the limit is then multiplied by the instance count).
   */
  readonly redisUrl?: string;
  /** PEM certificate(s) to trust for a `rediss://` store with its own CA (DigitalOcean's `CA_CERT`). */
  readonly redisCa?: string;
  /**
   * The request header that carries the client's address (`do-connecting-ip` on App Platform). Only that
   * header is believed; without it, or when a request lacks a valid address there, the TCP peer counts.
   */
  readonly clientIpHeader?: string;
  /** How often each upstream's /health is asked. Default 5000 ms. */
  readonly healthIntervalMs?: number;
  /** Retry-After seconds on 503 (no upstream, limit store down). Default 5. */
  readonly retryAfterSeconds?: number;
  /** Largest request body in bytes. Default 1 MiB. */
  readonly bodyLimit?: number;
  /**
   * Where each request is recorded (server/analytics.ts); the gateway expires old rows at start and
   * hourly but does not close it.
   */
  readonly analytics?: UsageRecorder;
  /** When set, GET /metrics answers with `Authorization: Bearer <this>`; else there is no /metrics. */
  readonly metricsKey?: string;
  readonly logger?: boolean | object;
}

export interface Gateway {
  readonly app: FastifyInstance;
  /** Asks every upstream's /health now (also done every healthIntervalMs). */
  checkUpstreams(): Promise<void>;
  listen(port: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

/** Counts a client's hits in fixed windows. */
interface HitCounter {
  /** The count including this hit, and the milliseconds until the window ends. */
  hit(key: string, windowMs: number): Promise<{ count: number; resetMs: number }>;
  close(): Promise<void>;
}

/**
 * One atomic script per hit: the first hit of a window sets its expiry, so any number of gateways share
 * exactly one count per client and window.
 */
const HIT_SCRIPT = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}`;

class RedisCounter implements HitCounter {
  private readonly redis: Redis;

  constructor(url: string, ca: string | undefined, onError: (e: Error) => void) {
    // No offline queue and one try per command: while the store is down a request fails at once
    // (and is refused) instead of waiting for a reconnection. rediss:// turns TLS on (certificates verified).
    this.redis = new Redis(url, {
      lazyConnect: true,
      connectTimeout: 1000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      retryStrategy: () => 500,
      ...(ca && url.startsWith('rediss://') ? { tls: { ca } } : {}),
    });
    this.redis.on('error', onError);
  }

  async connect(): Promise<void> {
    await this.redis.connect();
  }

  async hit(key: string, windowMs: number) {
    const [count, ttl] = (await this.redis.eval(HIT_SCRIPT, 1, `glm-dllama:rl:${key}`, windowMs)) as [number, number];
    return { count, resetMs: ttl > 0 ? ttl : windowMs };
  }

  async close() {
    this.redis.disconnect();
  }
}

class MemoryCounter implements HitCounter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();

  async hit(key: string, windowMs: number, now = Date.now()) {
    let w = this.windows.get(key);
    if (!w || w.resetAt <= now) {
      if (this.windows.size >= 100_000) this.windows.clear(); // bounded memory: past 100 000 clients the counts start over
      w = { count: 0, resetAt: now + windowMs };
      this.windows.set(key, w);
    }
    w.count++;
    return { count: w.count, resetMs: w.resetAt - now };
  }

  async close() {}
}

interface Upstream {
  readonly url: string;
  healthy: boolean;
}

/** Hop-by-hop and framing headers that must not be copied from an upstream's reply. */
const NOT_FORWARDED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding', 'date', 'server']);

/** Tokens of a reply, read from its `usage`. */
interface ReplyUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}
const usageOf = new WeakMap<FastifyRequest, ReplyUsage>();

function readUsage(value: unknown): ReplyUsage | undefined {
  const u = (value as { usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null } | null)?.usage;
  if (typeof u?.prompt_tokens !== 'number' || typeof u.completion_tokens !== 'number') return undefined;
  return { promptTokens: u.prompt_tokens, completionTokens: u.completion_tokens };
}

/**
 * Reads the usage out of a reply while it is passed through. A JSON body is kept (up to 1 MiB) and read at
 * the end. An event stream is read event by event; with `strip`, the usage chunk and the `usage: null`
 * fields that the gateway asked for (the client did not) are taken out, so the client gets the stream it
 * asked for, each event forwarded as soon as it is complete.
 */
class UsageReader {
  usage: ReplyUsage | undefined;
  private readonly decoder = new TextDecoder();
  private text = '';
  private readonly kept: Uint8Array[] = [];
  private keptBytes = 0;

  constructor(
    private readonly events: boolean,
    private readonly strip: boolean,
  ) {}

  /** What to send on for this chunk of the upstream's reply. */
  pass(chunk: Uint8Array): Uint8Array | string {
    if (!this.events) {
      if (this.keptBytes + chunk.length <= 1 << 20) this.kept.push(chunk);
      this.keptBytes += chunk.length;
      return chunk;
    }
    this.text += this.decoder.decode(chunk, { stream: true });
    let out = '';
    for (let end = this.text.indexOf('\n\n'); end >= 0; end = this.text.indexOf('\n\n')) {
      out += this.event(this.text.slice(0, end + 2));
      this.text = this.text.slice(end + 2);
    }
    return this.strip ? out : chunk;
  }

  /** Whatever is left once the upstream's reply has ended. */
  end(): string {
    if (!this.events) {
      if (this.keptBytes <= 1 << 20) {
        try {
          this.usage = readUsage(JSON.parse(Buffer.concat(this.kept).toString('utf8')));
        } catch {
          // not JSON (an upstream's error page): no usage
        }
      }
      return '';
    }
    return this.strip ? this.text : '';
  }

  private event(event: string): string {
    if (!event.startsWith('data: {')) return event;
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(event.slice(6)) as Record<string, unknown>;
    } catch {
      return event;
    }
    this.usage = readUsage(data) ?? this.usage;
    if (!this.strip || !('usage' in data)) return event;
    if (data['usage'] !== null && Array.isArray(data['choices']) && data['choices'].length === 0) return '';
    delete data['usage'];
    return `data: ${JSON.stringify(data)}\n\n`;
  }
}

/** The address a request counts against: the configured header when it holds an IP, else the TCP peer. */
function requestClient(request: FastifyRequest, header: string | undefined): string {
  if (header) {
    const value = request.headers[header.toLowerCase()];
    const first = (Array.isArray(value) ? value[0] : value)?.trim();
    if (first && isIP(first)) return clientKey(first);
  }
  return clientKey(request.socket.remoteAddress ?? 'unknown');
}

export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  if (options.upstreams.length === 0) throw new Error('gateway: at least one upstream URL is needed');
  const upstreams: Upstream[] = options.upstreams.map((u) => {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new Error(`gateway: upstream ${JSON.stringify(u)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`gateway: upstream ${u}: expected http:// or https://`);
    return { url: url.href.replace(/\/$/, ''), healthy: false };
  });
  const limit = options.rateLimit === undefined ? { max: 10, windowMs: 3_600_000 } : options.rateLimit;
  const retryAfter = String(options.retryAfterSeconds ?? 5);
  const auth: Record<string, string> = options.upstreamKey ? { authorization: `Bearer ${options.upstreamKey}` } : {};

  const registry = new Registry();
  const registers = [registry];
  const metrics = {
    requests: new Counter({ name: 'glm_dllama_gateway_requests_total', help: 'Requests by route and status', labelNames: ['route', 'status'], registers }),
    retries: new Counter({ name: 'glm_dllama_gateway_upstream_retries_total', help: 'Requests moved to another upstream (503 or no connection)', registers }),
    broken: new Counter({ name: 'glm_dllama_gateway_broken_streams_total', help: 'Replies cut because their upstream failed mid-way', registers }),
    rateLimited: new Counter({ name: 'glm_dllama_gateway_rate_limited_total', help: 'Requests refused by the rate limit', registers }),
    storeErrors: new Counter({ name: 'glm_dllama_gateway_limit_store_errors_total', help: 'Requests refused because the rate-limit store could not be reached', registers }),
    healthy: new Gauge({ name: 'glm_dllama_gateway_upstreams_healthy', help: 'Upstreams passing their health check', registers }),
    configured: new Gauge({ name: 'glm_dllama_gateway_upstreams', help: 'Upstreams configured', registers }),
    upstream503: new Counter({ name: 'glm_dllama_gateway_upstream_busy_total', help: "Upstream answers of 503 (the model server's queue full)", registers }),
    duration: new Histogram({
      name: 'glm_dllama_gateway_request_duration_seconds',
      help: 'From the request to the end of its reply (a whole stream), by route',
      labelNames: ['route'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120],
      registers,
    }),
    analyticsDropped: new Counter({ name: 'glm_dllama_gateway_analytics_dropped_total', help: 'Usage records not written (database unreachable, too many in flight)', registers }),
  };
  metrics.configured.set(upstreams.length);

  const app = Fastify({ logger: options.logger ?? false, bodyLimit: options.bodyLimit ?? 1024 * 1024, return503OnClosing: true, forceCloseConnections: 'idle' });
  let counter: HitCounter = new MemoryCounter();
  if (limit && options.redisUrl) {
    const redis = new RedisCounter(options.redisUrl, options.redisCa, (e) => app.log.warn(`rate-limit store: ${e.message}`));
    try {
      await redis.connect();
    } catch (e) {
      await redis.close();
      throw new Error(`gateway: cannot reach the rate-limit store (--redis): ${(e as Error).message}`);
    }
    counter = redis;
  }

  answerErrorsInOpenAIShape(app);
  const analytics = options.analytics;
  analytics?.onDrop((reason) => {
    metrics.analyticsDropped.inc();
    app.log.warn(`analytics: a usage record was not written: ${reason}`);
  });
  app.addHook('onRequest', async (request, reply) => {
    const started = performance.now();
    reply.raw.once('close', () => {
      const route = request.routeOptions.url ?? 'unmatched';
      const seconds = (performance.now() - started) / 1000;
      metrics.requests.inc({ route, status: String(reply.raw.statusCode) });
      metrics.duration.observe({ route }, seconds);
      if (analytics && route.startsWith('/v1/')) {
        const body = request.body as { model?: unknown } | undefined;
        const usage = usageOf.get(request);
        analytics.record({
          at: new Date(Date.now() - seconds * 1000),
          route,
          model: typeof body?.model === 'string' ? body.model.slice(0, 200) : null,
          status: reply.raw.statusCode,
          promptTokens: usage?.promptTokens ?? null,
          completionTokens: usage?.completionTokens ?? null,
          latencyMs: seconds * 1000,
          client: requestClient(request, options.clientIpHeader),
        });
      }
    });
  });
  const expire = () => void analytics?.expire().catch((e: Error) => app.log.warn(`analytics: ${e.message}`));
  expire();
  const expireTimer = analytics ? setInterval(expire, 3_600_000) : undefined;
  expireTimer?.unref();

  let next = 0;
  /** Healthy upstreams, starting after the one the previous request went to. */
  const candidates = (): Upstream[] => {
    const start = next++ % upstreams.length;
    return [...upstreams.slice(start), ...upstreams.slice(0, start)].filter((u) => u.healthy);
  };
  const probe = async (u: Upstream) => {
    try {
      const res = await fetch(`${u.url}/health`, { signal: AbortSignal.timeout(2000) });
      const body = (await res.json()) as { status?: unknown };
      u.healthy = res.ok && body.status === 'ok';
    } catch {
      u.healthy = false;
    }
    metrics.healthy.set(upstreams.filter((x) => x.healthy).length);
    return u.healthy;
  };
  const checkUpstreams = async () => {
    await Promise.all(upstreams.map(probe));
  };
  await checkUpstreams();
  const healthTimer = setInterval(() => void checkUpstreams(), options.healthIntervalMs ?? 5000);
  healthTimer.unref();

  const rateLimit = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!limit) return;
    const client = requestClient(request, options.clientIpHeader);
    let hit: { count: number; resetMs: number };
    try {
      hit = await counter.hit(client, limit.windowMs);
    } catch (e) {
      // Fail closed: an unlimited public endpoint is worse than a few minutes of 503s.
      metrics.storeErrors.inc();
      request.log.error(`rate-limit store: ${(e as Error).message}`);
      throw new ApiError(503, 'the service is briefly unavailable; retry later', 'server_error', 'service_unavailable', null, { 'Retry-After': retryAfter });
    }
    const resetSeconds = Math.ceil(hit.resetMs / 1000);
    void reply.headers({ 'X-RateLimit-Limit': String(limit.max), 'X-RateLimit-Remaining': String(Math.max(0, limit.max - hit.count)), 'X-RateLimit-Reset': String(resetSeconds) });
    if (hit.count > limit.max) {
      metrics.rateLimited.inc();
      throw new ApiError(429, `rate limit reached: ${limit.max} requests per ${Math.round(limit.windowMs / 1000)} s; retry in ${resetSeconds} s`, 'rate_limit_error', 'rate_limit_exceeded', null, {
        'Retry-After': String(resetSeconds),
      });
    }
  };

  /**
   * Sends the request to the healthy upstreams in turn until one answers with something other than 503,
   * then passes that answer through as it arrives.
   */
  async function forward(request: FastifyRequest, reply: FastifyReply, path: string, body?: string, stripUsage = false): Promise<FastifyReply> {
    const abort = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) abort.abort();
    };
    reply.raw.on('close', onClose);
    try {
      let tries = candidates();
      // A health check that timed out on a busy upstream must not turn away every request until the next
      // round: with none marked healthy, look again once before answering 503.
      if (tries.length === 0) {
        await checkUpstreams();
        tries = candidates();
      }
      for (let i = 0; i < tries.length; i++) {
        const upstream = tries[i]!;
        let res: Response;
        try {
          res = await fetch(`${upstream.url}${path}`, {
            method: request.method,
            headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
            body,
            signal: abort.signal,
          });
        } catch (e) {
          if (abort.signal.aborted) return reply.hijack();
          metrics.retries.inc();
          request.log.warn(`upstream ${upstream.url}: ${(e as Error).message}`);
          // A kept-alive connection the upstream had closed fails the same way as a dead upstream: ask its
          // /health on a new connection, and give it this request once more if it answers.
          if (tries.indexOf(upstream) === i && (await probe(upstream))) tries.splice(i + 1, 0, upstream);
          continue;
        }
        if (res.status === 503) {
          await res.body?.cancel();
          metrics.upstream503.inc();
          metrics.retries.inc();
          continue;
        }
        reply.hijack();
        const headers: Record<string, string> = { ...(reply.getHeaders() as Record<string, string>) };
        res.headers.forEach((value, name) => {
          if (!NOT_FORWARDED.has(name)) headers[name] = value;
        });
        reply.raw.writeHead(res.status, headers);
        const events = (res.headers.get('content-type') ?? '').startsWith('text/event-stream');
        const reader = new UsageReader(events, stripUsage && events);
        try {
          for await (const chunk of res.body ?? []) {
            const out = reader.pass(chunk);
            if (out.length > 0) reply.raw.write(out);
          }
          reply.raw.end(reader.end());
          if (reader.usage) usageOf.set(request, reader.usage);
        } catch (e) {
          if (abort.signal.aborted) return reply;
          metrics.broken.inc();
          request.log.warn(`upstream ${upstream.url} failed mid-reply: ${(e as Error).message}`);
          // A stream ends with an error event the client can show; a JSON body cannot be mended, so the
          // connection is cut and the client sees an incomplete reply rather than a wrong one.
          if (events) reply.raw.end(`\n\ndata: ${JSON.stringify(errorBody(502, 'the model server failed during the reply; retry the request', 'server_error', 'upstream_failed'))}\n\n`);
          else reply.raw.destroy();
        }
        return reply;
      }
      throw new ApiError(503, 'no model server is available; retry later', 'server_error', 'server_busy', null, { 'Retry-After': retryAfter });
    } finally {
      reply.raw.off('close', onClose);
    }
  }

  app.get('/health', async () => ({
    status: upstreams.some((u) => u.healthy) ? 'ok' : 'no_upstream',
    upstreams: { configured: upstreams.length, healthy: upstreams.filter((u) => u.healthy).length },
  }));
  app.get('/v1/models', (request, reply) => forward(request, reply, '/v1/models'));
  app.post('/v1/chat/completions', { onRequest: [rateLimit] }, (request, reply) => {
    const body = request.body as Record<string, unknown> | null;
    // With analytics on, a stream asks its upstream for the usage chunk; the client that did not ask for it
    // gets the stream without it (UsageReader).
    const streamOptions = body?.['stream_options'];
    const addUsage = analytics !== undefined && body?.['stream'] === true && (streamOptions == null || (typeof streamOptions === 'object' && (streamOptions as { include_usage?: unknown }).include_usage !== true));
    const sent = addUsage ? { ...body, stream_options: { ...(streamOptions as object | null), include_usage: true } } : body;
    return forward(request, reply, '/v1/chat/completions', JSON.stringify(sent), addUsage);
  });
  if (options.metricsKey) {
    const digest = (text: string) => createHash('sha256').update(text).digest();
    const expected = digest(`Bearer ${options.metricsKey}`);
    app.get('/metrics', async (request, reply) => {
      if (!timingSafeEqual(digest(request.headers.authorization ?? ''), expected)) throw new ApiError(401, 'missing or invalid metrics key', 'authentication_error', 'invalid_api_key');
      void reply.header('Content-Type', registry.contentType);
      return registry.metrics();
    });
  }

  return {
    app,
    checkUpstreams,
    async listen(port: number, host = '127.0.0.1') {
      return app.listen({ port, host });
    },
    async close() {
      clearInterval(healthTimer);
      clearInterval(expireTimer);
      await app.close();
      await counter.close();
    },
  };
}
