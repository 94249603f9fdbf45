/**
 * A bounded load test of the server with autocannon: a fixed number of connections for a fixed time
 * against /v1/chat/completions on loopback. Reports the status codes, errors, latency and the process's
 * memory before and after, so a test can assert "no errors but the expected 429/503, memory stable".
 */
import autocannon from 'autocannon';
import type { DemoServer } from '../server/index.js';

export interface LoadTestOptions {
  /** The server's address, e.g. http://127.0.0.1:8080. */
  url: string;
  connections: number;
  durationSeconds: number;
  /** Tokens per reply. */
  maxTokens: number;
  /** Send a streaming request instead of a plain one. */
  stream?: boolean;
  /** Seconds of warm-up load before the measured run (memory is sampled after it). */
  warmupSeconds?: number;
}

export interface LoadTestResult {
  connections: number;
  durationSeconds: number;
  requests: number;
  requestsPerSecond: number;
  statusCodes: Record<string, number>;
  /** Connection errors and timeouts (refused, reset, no answer in time). */
  errors: number;
  timeouts: number;
  latencyMs: { p50: number; p99: number; max: number };
  rssMiB: { before: number; after: number };
  heapUsedMiB: { before: number; after: number };
}

const MiB = 1024 * 1024;

async function run(o: LoadTestOptions, seconds: number): Promise<autocannon.Result> {
  return autocannon({
    url: `${o.url}/v1/chat/completions`,
    method: 'POST',
    connections: o.connections,
    duration: seconds,
    timeout: 30,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'any', messages: [{ role: 'user', content: 'Tell me about the river town.' }], max_tokens: o.maxTokens, temperature: 0.7, stream: o.stream === true }),
  });
}

export async function loadTest(o: LoadTestOptions): Promise<LoadTestResult> {
  if (o.warmupSeconds) await run(o, o.warmupSeconds);
  const before = process.memoryUsage();
  const r = await run(o, o.durationSeconds);
  const after = process.memoryUsage();
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = s.count ?? 0;
  return {
    connections: o.connections,
    durationSeconds: o.durationSeconds,
    requests: r.requests.total,
    requestsPerSecond: r.requests.average,
    statusCodes,
    errors: r.errors,
    timeouts: r.timeouts,
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max },
    rssMiB: { before: before.rss / MiB, after: after.rss / MiB },
    heapUsedMiB: { before: before.heapUsed / MiB, after: after.heapUsed / MiB },
  };
}

/** The figures as a few lines, with the server's own counters. */
export async function formatLoadTest(r: LoadTestResult, server?: DemoServer): Promise<string> {
  const codes = Object.entries(r.statusCodes)
    .map(([c, n]) => `${c}: ${n}`)
    .join(', ');
  const lines = [
    `${r.connections} connections for ${r.durationSeconds} s: ${r.requests} requests (${r.requestsPerSecond.toFixed(1)}/s), ${codes}; ${r.errors} errors, ${r.timeouts} timeouts`,
    `latency p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms`,
    `memory: rss ${r.rssMiB.before.toFixed(0)} -> ${r.rssMiB.after.toFixed(0)} MiB, heap used ${r.heapUsedMiB.before.toFixed(0)} -> ${r.heapUsedMiB.after.toFixed(0)} MiB`,
  ];
  if (server) lines.push(await serverCounters(server));
  return lines.join('\n');
}

/** The model server's own view: tokens generated and requests it rate-limited. */
export async function serverCounters(server: DemoServer): Promise<string> {
  const m = await server.metrics.registry.getMetricsAsJSON();
  const value = (name: string) => (m.find((x) => x.name === name)?.values ?? []).reduce((a, v) => a + v.value, 0);
  return `server: ${value('glm_dllama_completion_tokens_total')} tokens generated, ${value('glm_dllama_rate_limited_total')} rate-limited`;
}
