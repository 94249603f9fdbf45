/** `glm-dllama serve`: the OpenAI-compatible server (server/) on a model. Thin: parse, load, listen, close on signals. */
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { freemem } from 'node:os';
import { readModelFile } from '../converter/model-file.js';
import { LoadedModel, planParallel } from '../engine/index.js';
import { loadTokenizer, tokenizerPathFor } from '../tokenizer/index.js';
import { createServer, EngineGenerator } from '../server/index.js';
import { commaList, engineThreads, nonNegativeInt, positiveInt, repeatableList } from './args.js';
import { distributedOptions, draftOption, withDistributed, type DistributedFlags } from './engine-commands.js';

interface ServeFlags extends DistributedFlags {
  draft?: number;
  model: string;
  tokenizer?: string;
  modelName?: string;
  host: string;
  port: number;
  threads?: number;
  ctx?: number;
  kvCache: 'f32' | 'f16';
  rateLimit?: number;
  rateWindow?: number;
  trustProxy?: string[];
  apiKey?: string[];
  queue: number;
  parallel?: number;
  maxTokens: number;
  bodyLimit: number;
  timeout: number;
  cors?: string[];
  log: boolean;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * The per-IP limit on chat requests: as given, else one for where the server listens. Only this machine
 * reaches a loopback address, so someone trying the server gets room to experiment (60 a minute); an
 * address others can reach keeps the public demo's 10 an hour until told otherwise.
 */
export function rateLimitFor(host: string, o: { rateLimit?: number; rateWindow?: number }): { max: number; windowSeconds: number } {
  const local = LOOPBACK.has(host) || host.startsWith('127.');
  return { max: o.rateLimit ?? (local ? 60 : 10), windowSeconds: o.rateWindow ?? (local ? 60 : 3600) };
}

export function registerServeCommand(program: Command): void {
  withDistributed(
    program
      .command('serve')
      .description('an OpenAI-compatible HTTP server (/v1/chat/completions, /v1/models, /health, /metrics) on a model')
      .requiredOption('--model <file>', '.m model file')
      .option('--tokenizer <file>', '.t or tokenizer.json (default: the .t beside the model)')
      .option('--model-name <id>', 'the model id clients see (default: the file name without .m)')
      .option('--host <address>', 'address to listen on', '127.0.0.1')
      .option('--port <n>', 'port', nonNegativeInt, 8080)
      .option('--threads <n>', 'threads (default: all cores)', engineThreads)
      .option('--ctx <n>', "context length in tokens (default: the model's, at most 4096)", positiveInt)
      .addOption(new Option('--kv-cache <type>', 'keys and values in f32 or f16').choices(['f32', 'f16']).default('f32'))
      .option('--rate-limit <n>', 'chat requests per client IP per window, 0 for none (default: 60 a minute on a loopback --host, else 10 an hour)', nonNegativeInt)
      .option('--rate-window <seconds>', 'the rate-limit window (default: 60 on a loopback --host, else 3600)', positiveInt)
      .option('--trust-proxy <addresses>', 'reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed', repeatableList)
      .option('--api-key <key>', 'require Authorization: Bearer KEY (repeatable; also GLM_DLLAMA_API_KEYS, comma-separated)', repeatableList)
      .option('--parallel <n>', 'generations decoded together, each with its own KV cache (default: as many as fit a quarter of the free memory, at most 8; 1 with --workers or --draft)', positiveInt)
      .option('--queue <n>', 'requests that may wait while --parallel generate (more get 503)', nonNegativeInt, 8)
      .option('--max-tokens <n>', 'largest max_tokens accepted, and the default', positiveInt, 1024)
      .option('--body-limit <bytes>', 'largest request body', positiveInt, 1024 * 1024)
      .option('--timeout <seconds>', 'a request (queue wait and generation) is ended after this long', positiveInt, 300)
      .option('--cors <origins>', 'allowed browser origins, comma-separated, or * for any (default: no CORS)', repeatableList)
      .option('--log', 'log each request as JSON lines on stdout', false)
      .addOption(draftOption()),
  ).action(async (o: ServeFlags) => {
    const tokenizer = o.tokenizer ?? tokenizerPathFor(o.model);
    if (!o.tokenizer && !existsSync(tokenizer)) throw new Error(`${o.model}: no tokenizer found beside it (${tokenizer}); pass --tokenizer FILE`);
    const { header } = await readModelFile(o.model);
    const context = Math.min(header.maxSeqLen, o.ctx ?? LoadedModel.DEFAULT_CONTEXT);
    const distributed = distributedOptions(o);
    const plan = planParallel(header, context, o.kvCache, { requested: o.parallel, freeBytes: freemem(), workers: distributed.workers?.length ?? 0, draft: o.draft ?? 0 });
    const model = new LoadedModel(o.model, { threads: o.threads, contextLength: o.ctx, kvCache: o.kvCache, draft: o.draft, ...distributed, slots: plan.parallel });
    const generator = new EngineGenerator(model, await loadTokenizer(tokenizer), o.modelName);
    const envKeys = commaList(process.env['GLM_DLLAMA_API_KEYS'] ?? '');
    const limit = rateLimitFor(o.host, o);
    const server = await createServer({
      generator,
      rateLimit: limit.max > 0 ? { max: limit.max, windowMs: limit.windowSeconds * 1000 } : false,
      trustedProxies: o.trustProxy,
      apiKeys: [...(o.apiKey ?? []), ...envKeys],
      maxQueue: o.queue,
      maxTokens: o.maxTokens,
      bodyLimit: o.bodyLimit,
      requestTimeoutMs: o.timeout * 1000,
      corsOrigins: o.cors ? (o.cors.includes('*') ? true : o.cors) : false,
      logger: o.log,
    });
    const address = await server.listen(o.port, o.host);
    process.stderr.write(
      [
        `serving ${generator.modelId} (context ${generator.contextLength} tokens) on ${address}/v1`,
        `parallel: ${plan.parallel} generation${plan.parallel > 1 ? 's' : ''} decoded together, KV cache ${(plan.slotBytes / 2 ** 20).toFixed(1)} MiB each, ${((plan.parallel * plan.slotBytes) / 2 ** 20).toFixed(1)} MiB in all` +
          (plan.chosen ? ` (the default within ${(plan.budgetBytes / 2 ** 20).toFixed(0)} MiB, a quarter of the free memory; --parallel N to change)` : ' (--parallel)'),
        limit.max > 0
          ? `rate limit: ${limit.max} chat requests per client IP per ${limit.windowSeconds} s (--rate-limit N --rate-window SECONDS to change, --rate-limit 0 for none)`
          : 'rate limit: none (--rate-limit 0)',
      ].join('\n') + '\n',
    );
    let signals = 0;
    const shutdown = () => {
      if (++signals > 1) process.exit(130);
      process.stderr.write('closing: refusing new requests, finishing those in flight (again to quit now)\n');
      server.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGINT', shutdown);
    process.on('SIGTERM', shutdown);
  });
}
