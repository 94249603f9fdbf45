/**
 * `glm-dllama gateway`: the public endpoint in front of model servers (server/gateway.ts), and
 * `glm-dllama usage-export`: its daily usage rollup as JSON for the docs site (server/analytics.ts).
 * Thin: parse, start, close on signals.
 */
import { Command } from 'commander';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { UsageAnalytics, type UsageExport } from '../server/analytics.js';
import { createGateway } from '../server/gateway.js';
import { commaList, nonNegativeInt, positiveInt, repeatableList } from './args.js';

interface GatewayFlags {
  upstream?: string[];
  upstreamKey?: string;
  host: string;
  port: number;
  rateLimit: number;
  rateWindow: number;
  redis?: string;
  redisCa?: string;
  clientIpHeader?: string;
  metricsKey?: string;
  analyticsDb?: string;
  analyticsSalt?: string;
  analyticsCa?: string;
  analyticsRetention: number;
  bodyLimit: number;
  log: boolean;
}

export function registerGatewayCommand(program: Command): void {
  program
    .command('gateway')
    .description('the public OpenAI-compatible endpoint in front of `serve` instances: health checks, retries, shared rate limits')
    .option('--upstream <urls>', 'model servers, comma-separated (repeatable; also GLM_DLLAMA_UPSTREAMS)', repeatableList)
    .option('--upstream-key <key>', "the upstreams' --api-key (also GLM_DLLAMA_UPSTREAM_KEY)")
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port', nonNegativeInt, 8080)
    .option('--rate-limit <n>', 'chat requests per client per window (0 disables)', nonNegativeInt, 10)
    .option('--rate-window <seconds>', 'the rate-limit window', positiveInt, 3600)
    .option('--redis <url>', 'Redis/Valkey shared by all gateway instances, redis:// or rediss:// (also REDIS_URL)')
    .option('--redis-ca <file>', 'PEM CA certificate of a rediss:// store (also REDIS_CA_CERT, the PEM text itself)')
    .option('--client-ip-header <name>', 'the header holding the client address, set by the platform (do-connecting-ip on App Platform)')
    .option('--metrics-key <key>', 'serve /metrics to Authorization: Bearer KEY (also GLM_DLLAMA_METRICS_KEY)')
    .option('--analytics-db <url>', 'PostgreSQL for the usage records, postgres:// (also GLM_DLLAMA_ANALYTICS_DB); migrations run at start')
    .option('--analytics-ca <file>', 'PEM CA certificate of the analytics database; TLS then verified against it (also GLM_DLLAMA_ANALYTICS_CA, the PEM text itself)')
    .option('--analytics-salt <secret>', 'secret of the client hashes, the same on every instance (also GLM_DLLAMA_ANALYTICS_SALT)')
    .option('--analytics-retention <days>', 'days the per-request rows are kept (the daily rollup stays)', positiveInt, 30)
    .option('--body-limit <bytes>', 'largest request body', positiveInt, 1024 * 1024)
    .option('--log', 'log each request as JSON lines on stdout', false)
    .action(async (o: GatewayFlags) => {
      const upstreams = o.upstream ?? commaList(process.env['GLM_DLLAMA_UPSTREAMS'] ?? '');
      if (upstreams.length === 0) throw new Error('gateway: pass --upstream URL[,URL...] (or set GLM_DLLAMA_UPSTREAMS)');
      const analyticsDb = o.analyticsDb ?? process.env['GLM_DLLAMA_ANALYTICS_DB'];
      const analyticsSalt = o.analyticsSalt ?? process.env['GLM_DLLAMA_ANALYTICS_SALT'];
      if (analyticsDb && !analyticsSalt) throw new Error('gateway: --analytics-db needs --analytics-salt (or GLM_DLLAMA_ANALYTICS_SALT), the same secret on every instance');
      const analyticsCa = o.analyticsCa ? await readFile(o.analyticsCa, 'utf8') : process.env['GLM_DLLAMA_ANALYTICS_CA'];
      const analytics = analyticsDb ? await UsageAnalytics.open({ url: analyticsDb, ca: analyticsCa, salt: analyticsSalt!, retentionDays: o.analyticsRetention }) : undefined;
      const gateway = await createGateway({
        upstreams,
        upstreamKey: o.upstreamKey ?? process.env['GLM_DLLAMA_UPSTREAM_KEY'],
        rateLimit: o.rateLimit > 0 ? { max: o.rateLimit, windowMs: o.rateWindow * 1000 } : false,
        redisUrl: o.redis ?? process.env['REDIS_URL'],
        redisCa: o.redisCa ? await readFile(o.redisCa, 'utf8') : process.env['REDIS_CA_CERT'],
        clientIpHeader: o.clientIpHeader,
        metricsKey: o.metricsKey ?? process.env['GLM_DLLAMA_METRICS_KEY'],
        analytics,
        bodyLimit: o.bodyLimit,
        logger: o.log,
      });
      const address = await gateway.listen(o.port, o.host);
      process.stderr.write(`gateway on ${address}/v1\n`);
      const shutdown = () => {
        gateway
          .close()
          .then(() => analytics?.close())
          .then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGINT', shutdown);
      process.on('SIGTERM', shutdown);
    });

  program
    .command('usage-export')
    .description("the gateway's daily usage rollup (requests, tokens, distinct clients, p50/p95 latency, error rate) as JSON for the docs site")
    .requiredOption('--analytics-db <url>', 'the PostgreSQL the gateways record to, postgres:// (also GLM_DLLAMA_ANALYTICS_DB)', process.env['GLM_DLLAMA_ANALYTICS_DB'])
    .option('--analytics-ca <file>', 'PEM CA certificate of the database (also GLM_DLLAMA_ANALYTICS_CA, the PEM text itself)')
    .option('--days <n>', 'days back from today (UTC)', positiveInt, 90)
    .option('--out <file>', 'where to write it', 'docs/data/usage.json')
    .action(async (o: { analyticsDb: string; analyticsCa?: string; days: number; out: string }) => {
      // Reading needs no salt: the rollup holds counts only.
      const ca = o.analyticsCa ? await readFile(o.analyticsCa, 'utf8') : process.env['GLM_DLLAMA_ANALYTICS_CA'];
      const analytics = await UsageAnalytics.open({ url: o.analyticsDb, ca });
      try {
        const result: UsageExport = { generated: new Date().toISOString(), days: await analytics.rollup(o.days) };
        await writeFile(`${o.out}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
        await rename(`${o.out}.tmp`, o.out);
        process.stderr.write(`wrote ${o.out}: ${result.days.length} days\n`);
      } finally {
        await analytics.close();
      }
    });
}
