/** The server's Prometheus metrics, on a registry of its own (several servers can live in one process). */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface ServerMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly promptTokens: Counter;
  readonly cachedPromptTokens: Counter;
  readonly completionTokens: Counter;
  readonly draftedTokens: Counter;
  readonly acceptedDraftTokens: Counter;
  readonly timeToFirstToken: Histogram;
  readonly timePerOutputToken: Histogram;
  readonly queueDepth: Gauge;
  readonly queueCapacity: Gauge;
  readonly generationsRunning: Gauge;
  readonly rateLimited: Counter;
  readonly disconnects: Counter;
  readonly finishReasons: Counter<'reason'>;
}

export function createMetrics(defaultMetrics = true): ServerMetrics {
  const registry = new Registry();
  if (defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'glm_dllama_' });
  const registers = [registry];
  return {
    registry,
    requests: new Counter({ name: 'glm_dllama_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers }),
    promptTokens: new Counter({ name: 'glm_dllama_prompt_tokens_total', help: 'Prompt tokens of completed generations', registers }),
    cachedPromptTokens: new Counter({ name: 'glm_dllama_prompt_tokens_cached_total', help: 'Prompt tokens reused from the KV cache', registers }),
    completionTokens: new Counter({ name: 'glm_dllama_completion_tokens_total', help: 'Generated tokens', registers }),
    draftedTokens: new Counter({ name: 'glm_dllama_draft_tokens_total', help: "Tokens drafted by the model's MTP layer (speculative decoding)", registers }),
    acceptedDraftTokens: new Counter({ name: 'glm_dllama_draft_accepted_tokens_total', help: 'Drafted tokens that verification kept', registers }),
    timeToFirstToken: new Histogram({
      name: 'glm_dllama_time_to_first_token_seconds',
      help: 'From the start of a generation (after the queue) to its first text',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    timePerOutputToken: new Histogram({
      name: 'glm_dllama_time_per_output_token_seconds',
      help: 'Mean decode time per generated token, one observation per generation',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    queueDepth: new Gauge({ name: 'glm_dllama_queue_depth', help: 'Requests waiting for the model', registers }),
    queueCapacity: new Gauge({ name: 'glm_dllama_queue_capacity', help: 'Requests that may wait before the server answers 503 (--max-queue)', registers }),
    generationsRunning: new Gauge({ name: 'glm_dllama_generations_running', help: 'Generations in progress (0 or 1)', registers }),
    rateLimited: new Counter({ name: 'glm_dllama_rate_limited_total', help: 'Requests refused by the per-IP rate limit', registers }),
    disconnects: new Counter({ name: 'glm_dllama_client_disconnects_total', help: 'Requests whose client went away before the reply ended', registers }),
    finishReasons: new Counter({ name: 'glm_dllama_completions_total', help: 'Completions by finish reason', labelNames: ['reason'], registers }),
  };
}
