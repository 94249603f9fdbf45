/**
 * Usage analytics of the public gateway in PostgreSQL, with no third-party tracker: one row per request
 * (time, route, model, status, tokens in and out, latency, a salted hash of the client), a daily rollup
 * (requests, tokens, distinct clients, p50/p95 latency, error rate) kept after the raw rows expire, and the
 * rollup as JSON for the docs site's charts. The client's address is never stored: the hash is an HMAC
 * under a secret salt and the day, so one client is one value within a day and cannot be followed across
 * days or reversed by trying every IPv4 address without the salt.
 */
import { createHmac } from 'node:crypto';
import pg from 'pg';

/** One answered request, as the gateway saw it. */
export interface UsageRecord {
  readonly at: Date;
  readonly route: string;
  readonly model: string | null;
  readonly status: number;
  readonly promptTokens: number | null;
  readonly completionTokens: number | null;
  readonly latencyMs: number;
  /** The rate limit's client key (server/clients.ts); hashed here, never written. */
  readonly client: string;
}

/** One UTC day of the rollup. */
export interface UsageDay {
  readonly day: string;
  readonly requests: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly clients: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  /** Share of requests answered with a 5xx status. */
  readonly errorRate: number;
  /** Requests refused by the rate limit (429). */
  readonly rateLimited: number;
}

/** The exported file (docs/data/usage.json): the rollup, oldest day first. */
export interface UsageExport {
  readonly generated: string;
  readonly days: readonly UsageDay[];
}

export interface AnalyticsOptions {
  /** postgres:// URL (App Platform binds `${analytics.DATABASE_URL}`, TLS with `sslmode=require`). */
  readonly url: string;
  /**
   * Secret mixed into every client hash; the same on every gateway instance, or clients count twice.
   * Needed to record; a reader of the rollup (usage-export) goes without.
   */
  readonly salt?: string;
  /**
   * PEM certificate(s) to verify the server with (DigitalOcean's `${db.CA_CERT}`): TLS is then required
   * and verified against these, whatever the URL's sslmode says.
   */
  readonly ca?: string;
  /** Days raw rows are kept (the rollup stays). Default 30. */
  readonly retentionDays?: number;
  /** Inserts allowed in flight before new records are dropped (and counted). Default 1000. */
  readonly maxPending?: number;
}

/**
 * The schema, one step per entry, applied in order and remembered in `usage_migrations`; a released step
 * is never edited, a change is a new step.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE usage_requests (
     id bigserial PRIMARY KEY,
     at timestamptz NOT NULL,
     route text NOT NULL,
     model text,
     status smallint NOT NULL,
     prompt_tokens integer,
     completion_tokens integer,
     latency_ms double precision NOT NULL,
     client_hash text NOT NULL
   );
   CREATE INDEX usage_requests_at ON usage_requests (at);
   CREATE TABLE usage_daily (
     day date PRIMARY KEY,
     requests integer NOT NULL,
     prompt_tokens bigint NOT NULL,
     completion_tokens bigint NOT NULL,
     clients integer NOT NULL,
     p50_ms double precision NOT NULL,
     p95_ms double precision NOT NULL,
     error_rate double precision NOT NULL,
     rate_limited integer NOT NULL
   );`,
];

/**
 * node-postgres lets a URL's sslmode override the ssl option, so with a CA of its own the URL loses its
 * TLS parameters and the CA alone decides.
 */
function connection(url: string, ca: string | undefined): pg.PoolConfig {
  if (!ca) return { connectionString: url };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('analytics: --analytics-db is not a postgres:// URL');
  }
  for (const p of ['sslmode', 'ssl', 'sslcert', 'sslkey', 'sslrootcert']) parsed.searchParams.delete(p);
  return { connectionString: parsed.href, ssl: { ca, rejectUnauthorized: true } };
}

/** Any number above it identifies this schema's migrations to pg_advisory_xact_lock, so gateways starting together take turns. */
const MIGRATION_LOCK = 720_020;

/** The rollup of the days that still have raw rows from `$1` on, written over what was there. */
const ROLLUP = `INSERT INTO usage_daily
  SELECT (at AT TIME ZONE 'UTC')::date AS day,
         count(*),
         coalesce(sum(prompt_tokens), 0),
         coalesce(sum(completion_tokens), 0),
         count(DISTINCT client_hash),
         percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
         percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms),
         avg((status >= 500)::int),
         count(*) FILTER (WHERE status = 429)
    FROM usage_requests
   WHERE at >= $1
   GROUP BY 1
  ON CONFLICT (day) DO UPDATE SET requests = EXCLUDED.requests, prompt_tokens = EXCLUDED.prompt_tokens,
    completion_tokens = EXCLUDED.completion_tokens, clients = EXCLUDED.clients, p50_ms = EXCLUDED.p50_ms,
    p95_ms = EXCLUDED.p95_ms, error_rate = EXCLUDED.error_rate, rate_limited = EXCLUDED.rate_limited`;

/** What the gateway needs of the analytics: record, hear about lost records, expire old rows. */
export interface UsageRecorder {
  record(r: UsageRecord): void;
  onDrop(listener: (reason: string) => void): void;
  expire(): Promise<void>;
}

export class UsageAnalytics implements UsageRecorder {
  private pending = 0;
  private readonly writes = new Set<Promise<void>>();
  private readonly dropListeners: ((reason: string) => void)[] = [];

  private constructor(
    private readonly pool: pg.Pool,
    private readonly options: AnalyticsOptions,
  ) {}

  /** Connects and applies the migrations not yet applied. */
  static async open(options: AnalyticsOptions): Promise<UsageAnalytics> {
    if (options.salt !== undefined && options.salt.length < 16) throw new Error('analytics: the client-hash salt must have at least 16 characters (--analytics-salt, GLM_DLLAMA_ANALYTICS_SALT)');
    const retention = options.retentionDays ?? 30;
    if (!Number.isInteger(retention) || retention < 1) throw new Error(`analytics: retention must be a whole number of days >= 1, got ${retention}`);
    const pool = new pg.Pool({ ...connection(options.url, options.ca), max: 4, connectionTimeoutMillis: 5000 });
    pool.on('error', () => {}); // an idle connection dropped by the server: the next query opens another
    const analytics = new UsageAnalytics(pool, { ...options, retentionDays: retention });
    try {
      await analytics.migrate();
    } catch (e) {
      await pool.end();
      throw new Error(`analytics: cannot prepare the database (--analytics-db): ${(e as Error).message}`);
    }
    return analytics;
  }

  /** Runs `work` in one transaction on a pooled connection: committed when it returns, rolled back when it throws. */
  private async transaction(work: (db: pg.PoolClient) => Promise<void>): Promise<void> {
    const db = await this.pool.connect();
    try {
      await db.query('BEGIN');
      await work(db);
      await db.query('COMMIT');
    } catch (e) {
      await db.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      db.release();
    }
  }

  private async migrate(): Promise<void> {
    await this.transaction(async (db) => {
      await db.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await db.query('CREATE TABLE IF NOT EXISTS usage_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
      const done = new Set((await db.query<{ version: number }>('SELECT version FROM usage_migrations')).rows.map((r) => r.version));
      for (let version = 1; version <= MIGRATIONS.length; version++) {
        if (done.has(version)) continue;
        await db.query(MIGRATIONS[version - 1]!);
        await db.query('INSERT INTO usage_migrations (version) VALUES ($1)', [version]);
      }
    });
  }

  /** The hash a client is stored under on `day` (YYYY-MM-DD, UTC). */
  clientHash(client: string, day: string): string {
    if (this.options.salt === undefined) throw new Error('analytics: opened without a salt, so it cannot record');
    return createHmac('sha256', this.options.salt).update(`${day}\n${client}`).digest('hex').slice(0, 32);
  }

  /** Calls `listener` for each record that could not be written (the database down, too many in flight). */
  onDrop(listener: (reason: string) => void): void {
    this.dropListeners.push(listener);
  }

  private dropped(reason: string): void {
    for (const listener of this.dropListeners) listener(reason);
  }

  /** Queues the row's insert; never delays the reply. */
  record(r: UsageRecord): void {
    if (this.options.salt === undefined) {
      this.dropped('opened without a salt (a reader, such as usage-export)');
      return;
    }
    const hash = this.clientHash(r.client, r.at.toISOString().slice(0, 10));
    if (this.pending >= (this.options.maxPending ?? 1000)) {
      this.dropped('too many writes in flight');
      return;
    }
    this.pending++;
    const write = this.pool
      .query(
        'INSERT INTO usage_requests (at, route, model, status, prompt_tokens, completion_tokens, latency_ms, client_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
        [r.at, r.route, r.model, r.status, r.promptTokens, r.completionTokens, r.latencyMs, hash],
      )
      .then(
        () => {},
        (e: Error) => this.dropped(e.message),
      )
      .finally(() => {
        this.pending--;
        this.writes.delete(write);
      });
    this.writes.add(write);
  }

  /** Resolves when every record queued so far is written (or dropped). */
  async flush(): Promise<void> {
    await Promise.all([...this.writes]);
  }

  /**
   * Rolls up the raw rows into usage_daily, then deletes the rows older than the retention: their days
   * were rolled up in the same transaction, so the rollup never loses a day.
   */
  async expire(now = new Date()): Promise<void> {
    const cutoff = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - this.options.retentionDays! + 1));
    await this.transaction(async (db) => {
      await db.query(ROLLUP, [new Date(0)]);
      await db.query('DELETE FROM usage_requests WHERE at < $1', [cutoff]);
    });
  }

  /** The daily rollup, the days with raw rows brought up to date first, oldest day first. */
  async rollup(sinceDays = 365, now = new Date()): Promise<UsageDay[]> {
    const since = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - sinceDays + 1));
    await this.pool.query(ROLLUP, [since]);
    const rows = await this.pool.query(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, requests, prompt_tokens::float8 AS prompt_tokens, completion_tokens::float8 AS completion_tokens,
              clients, p50_ms, p95_ms, error_rate, rate_limited
         FROM usage_daily WHERE day >= $1::date ORDER BY day`,
      [since.toISOString().slice(0, 10)],
    );
    return rows.rows.map((r: Record<string, number | string>) => ({
      day: r['day'] as string,
      requests: r['requests'] as number,
      promptTokens: r['prompt_tokens'] as number,
      completionTokens: r['completion_tokens'] as number,
      clients: r['clients'] as number,
      p50Ms: Math.round((r['p50_ms'] as number) * 10) / 10,
      p95Ms: Math.round((r['p95_ms'] as number) * 10) / 10,
      errorRate: Math.round((r['error_rate'] as number) * 10_000) / 10_000,
      rateLimited: r['rate_limited'] as number,
    }));
  }

  async close(): Promise<void> {
    await this.flush();
    await this.pool.end();
  }
}
