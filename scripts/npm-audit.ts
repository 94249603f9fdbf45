/**
 * `npm run audit`: `npm audit` at high severity with a documented allowlist (.github/npm-audit-allowlist.yaml).
 * Fails on a high or critical advisory that the allowlist does not name, on an allowlist entry past its
 * expiry, and when npm audit itself cannot answer (no registry, an endpoint error): a check that could
 * not run never passes. Entries that no longer match anything are named so they can be removed.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { InputError } from '../converter/errors.js';
import { packageRoot } from '../engine/native.js';
import { readData } from './docs-data.js';

export interface Advisory {
  /** GHSA-xxxx-xxxx-xxxx, from the advisory's URL. */
  readonly id: string;
  readonly package: string;
  readonly severity: 'high' | 'critical';
  readonly title: string;
}

export interface AllowedAdvisory {
  readonly id: string;
  readonly package: string;
  readonly reason: string;
  readonly expires: string;
}

const ALLOWLIST_SCHEMA = {
  type: 'object',
  required: ['advisories'],
  additionalProperties: false,
  properties: {
    advisories: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'package', 'reason', 'expires'],
        additionalProperties: false,
        properties: {
          id: { type: 'string', pattern: '^GHSA(-[23456789cfghjmpqrvwx]{4}){3}$' },
          package: { type: 'string', minLength: 1 },
          reason: { type: 'string', minLength: 20 },
          expires: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' },
        },
      },
    },
  },
};

export function readAllowlist(file = join(packageRoot(), '.github', 'npm-audit-allowlist.yaml')): AllowedAdvisory[] {
  return readData<{ advisories: AllowedAdvisory[] }>(file, ALLOWLIST_SCHEMA).advisories;
}

interface AuditVia {
  name?: string;
  title?: string;
  url?: string;
  severity?: string;
}

/**
 * The high and critical advisories of an `npm audit --json` report (format 2). A package flagged only
 * through another one (a `via` naming a package, not an advisory) is that package's advisory, counted once.
 */
export function auditAdvisories(reportText: string): Advisory[] {
  let report: { auditReportVersion?: number; vulnerabilities?: Record<string, { via: (string | AuditVia)[] }>; message?: string; error?: { summary?: string } };
  try {
    report = JSON.parse(reportText) as typeof report;
  } catch {
    throw new Error(`npm audit gave no JSON report: ${reportText.slice(0, 200)}`);
  }
  if (report.auditReportVersion !== 2 || !report.vulnerabilities) {
    throw new Error(`npm audit could not check the dependencies: ${report.message ?? report.error?.summary ?? 'no report in its output'}`);
  }
  const found = new Map<string, Advisory>();
  for (const [name, entry] of Object.entries(report.vulnerabilities)) {
    for (const via of entry.via) {
      if (typeof via === 'string' || (via.severity !== 'high' && via.severity !== 'critical')) continue;
      const id = /\/(GHSA(?:-[a-z0-9]{4}){3})$/.exec(via.url ?? '')?.[1] ?? via.url ?? via.title ?? 'unknown advisory';
      found.set(`${id} ${via.name ?? name}`, { id, package: via.name ?? name, severity: via.severity, title: via.title ?? '' });
    }
  }
  return [...found.values()].sort((a, b) => `${a.package} ${a.id}`.localeCompare(`${b.package} ${b.id}`));
}

export interface AuditVerdict {
  readonly blocking: Advisory[];
  readonly allowed: Advisory[];
  readonly expired: AllowedAdvisory[];
  readonly unused: AllowedAdvisory[];
}

export function judgeAudit(advisories: Advisory[], allowlist: AllowedAdvisory[], today = new Date().toISOString().slice(0, 10)): AuditVerdict {
  const matches = (a: Advisory, e: AllowedAdvisory) => a.id === e.id && a.package === e.package;
  const live = allowlist.filter((e) => e.expires >= today);
  return {
    blocking: advisories.filter((a) => !live.some((e) => matches(a, e))),
    allowed: advisories.filter((a) => live.some((e) => matches(a, e))),
    expired: allowlist.filter((e) => e.expires < today),
    unused: allowlist.filter((e) => !advisories.some((a) => matches(a, e))),
  };
}

function main(): void {
  const allowlist = readAllowlist();
  const run = spawnSync('npm', ['audit', '--json'], { cwd: packageRoot(), encoding: 'utf8', maxBuffer: 64 << 20 });
  // npm audit exits 1 when it finds anything; the report on stdout says what
  const advisories = auditAdvisories(run.stdout || run.stderr);
  const verdict = judgeAudit(advisories, allowlist);
  for (const a of verdict.allowed) console.log(`allowed  ${a.severity} ${a.id} in ${a.package}: ${a.title}`);
  for (const e of verdict.unused) console.log(`unused   allowlist entry ${e.id} in ${e.package}: npm audit no longer reports it; remove it`);
  for (const e of verdict.expired) console.log(`expired  allowlist entry ${e.id} in ${e.package} (${e.expires}): look at it again`);
  for (const a of verdict.blocking) console.log(`BLOCKING ${a.severity} ${a.id} in ${a.package}: ${a.title}`);
  console.log(`npm audit: ${advisories.length} high/critical advisories, ${verdict.blocking.length} blocking, ${verdict.allowed.length} allowed, ${verdict.expired.length} expired allowlist entries`);
  if (verdict.blocking.length > 0 || verdict.expired.length > 0) process.exitCode = 1;
}

if (process.argv[1]?.endsWith('npm-audit.js')) {
  try {
    main();
  } catch (e) {
    console.error(e instanceof InputError ? e.message : `npm-audit: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
