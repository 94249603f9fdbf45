/**
 * The App Platform app spec (.do/app.yaml) checked offline: the project's own app-spec schema
 * (scripts/app-spec-schema.ts), then the project's rules (scripts/app-spec.ts); what the spec runs matches
 * the gateway's real options and environment variables; broken copies fail naming the field.
 */
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { checkAppSpec, schemaProblems } from '../scripts/app-spec.js';
import { cli } from './helpers.js';

const FILE = '.do/app.yaml';
const TEXT = readFileSync(FILE, 'utf8');

interface Env {
  key: string;
  value?: string;
  scope?: string;
  type?: string;
}
type Spec = {
  services: { name: string; run_command: string; instance_count?: number; instance_size_slug: string; autoscaling: Record<string, unknown>; health_check: { http_path: string }; envs: Env[]; alerts: unknown[] }[];
  static_sites: { name: string; error_document?: string; catchall_document?: string; run_command?: string }[];
  databases: { name: string; engine: string }[];
  [key: string]: unknown;
};

/** The spec after `edit`, as YAML text. */
function broken(edit: (spec: Spec) => void): string {
  const spec = parse(TEXT) as Spec;
  edit(spec);
  return stringify(spec);
}

it('validates, with the gateway service, the docs site and both databases bound by URL', () => {
  const spec = checkAppSpec(FILE) as Spec;
  const gateway = spec.services.find((s) => s.name === 'gateway')!;
  expect(gateway.instance_count).toBeUndefined();
  expect(gateway.autoscaling).toMatchObject({ min_instance_count: 1, metrics: { requests_per_second: { per_instance: expect.any(Number) } } });
  expect(gateway.health_check.http_path).toBe('/health');
  const env = Object.fromEntries(gateway.envs.map((e) => [e.key, e]));
  expect(env['REDIS_URL']!.value).toBe('${cache.DATABASE_URL}');
  expect(env['GLM_DLLAMA_ANALYTICS_DB']!.value).toBe('${analytics.DATABASE_URL}');
  for (const key of ['GLM_DLLAMA_UPSTREAM_KEY', 'GLM_DLLAMA_METRICS_KEY', 'GLM_DLLAMA_ANALYTICS_SALT']) expect(env[key]).toEqual({ key, scope: 'RUN_TIME', type: 'SECRET' });
  expect(spec.databases.map((d) => d.engine).sort()).toEqual(['PG', 'VALKEY']);
  expect(spec.static_sites.map((s) => s.name)).toEqual(['docs']);
  expect(gateway.alerts.length).toBeGreaterThan(0);
});

it("runs the gateway with options it has and sets only environment variables it reads", () => {
  const gateway = (parse(TEXT) as Spec).services[0]!;
  const help = cli('gateway', '--help').stdout;
  const flags = [...gateway.run_command.matchAll(/\s(--[a-z-]+)/g)].map((m) => m[1]!);
  expect(flags.length).toBeGreaterThan(2);
  for (const flag of flags) expect(help).toContain(flag);
  const source = readFileSync('cli/gateway-command.ts', 'utf8');
  for (const { key } of gateway.envs) expect(source).toContain(`process.env['${key}']`);
});

it.each([
  ['an unknown top-level field', (s: Spec) => void (s['bogus'] = 1), 'bogus: unknown field'],
  ['an unknown service field', (s: Spec) => void ((s.services[0] as Record<string, unknown>)['instanc_count'] = 2), 'services[0].instanc_count: unknown field'],
  ['instance_count beside autoscaling', (s: Spec) => void (s.services[0]!.instance_count = 2), 'services[0].instance_count: must not be set with autoscaling'],
  ['a size that cannot scale', (s: Spec) => void (s.services[0]!.instance_size_slug = 'apps-s-1vcpu-1gb-fixed'), 'services[0].instance_size_slug: apps-s-1vcpu-1gb-fixed cannot run more than one instance'],
  ['CPU autoscaling on a shared size', (s: Spec) => void ((s.services[0]!.autoscaling['metrics'] as Record<string, unknown>)['cpu'] = { percent: 70 }), 'services[0].autoscaling.metrics.cpu: CPU-based autoscaling needs a dedicated size'],
  ['an unknown size', (s: Spec) => void (s.services[0]!.instance_size_slug = 'apps-s-1vcpu-3gb'), 'services[0].instance_size_slug: must be one of'],
  ['a secret with its value', (s: Spec) => void (s.services[0]!.envs.find((e) => e.type === 'SECRET')!.value = 'hunter2'), 'services[0].envs[1].value: a SECRET'],
  ['a binding to no database', (s: Spec) => void (s.services[0]!.envs.find((e) => e.key === 'REDIS_URL')!.value = '${valkey.DATABASE_URL}'), '${valkey...} names no component'],
  ['a static site with both documents', (s: Spec) => void (s.static_sites[0]!.catchall_document = 'index.html'), 'static_sites[0]: error_document and catchall_document exclude each other'],
  ['a static site with a run command', (s: Spec) => void (s.static_sites[0]!.run_command = 'node x'), 'static_sites[0].run_command: unknown field'],
  ['a wrong type', (s: Spec) => void ((s.databases[0] as Record<string, unknown>)['production'] = 'yes'), 'databases[0].production: must be boolean'],
  ['an unknown region', (s: Spec) => void (s['region'] = 'mars'), 'region: must be one of atl, nyc'],
  ['an unknown env scope', (s: Spec) => void (s.services[0]!.envs[0]!.scope = 'RUNTIME'), 'services[0].envs[0].scope: must be one of UNSET, RUN_TIME'],
  ['a health check period past 300 s', (s: Spec) => void ((s.services[0]!.health_check as Record<string, unknown>)['period_seconds'] = 301), 'services[0].health_check.period_seconds: must be <= 300'],
  ['an unknown field deep down', (s: Spec) => void ((s.services[0]!.autoscaling['metrics'] as Record<string, unknown>)['requests_per_second'] = { per_instanse: 20 }), 'services[0].autoscaling.metrics.requests_per_second.per_instanse: unknown field'],
  ['a component alert at app level', (s: Spec) => void ((s['alerts'] as unknown[]).push({ rule: 'CPU_UTILIZATION' })), 'alerts[3].rule: must be one of DEPLOYMENT_FAILED'],
  ['a name with capitals', (s: Spec) => void (s.static_sites[0]!.name = 'Docs'), 'static_sites[0].name: must match pattern'],
  ['the deprecated health check path', (s: Spec) => void ((s.services[0]!.health_check as Record<string, unknown>)['path'] = '/health'), 'services[0].health_check.path: deprecated, use http_path'],
  ['a minimum above the maximum', (s: Spec) => void (s.services[0]!.autoscaling['min_instance_count'] = 4), 'services[0].autoscaling.min_instance_count: must not exceed max_instance_count'],
  ['two sources', (s: Spec) => void ((s.services[0] as Record<string, unknown>)['gitlab'] = { repo: 'a/b' }), 'services[0]: takes exactly one source of git, github, gitlab, bitbucket, image (has github and gitlab)'],
  ['an ingress rule to no component', (s: Spec) => void ((s['ingress'] as { rules: { component: { name: string } }[] }).rules[0]!.component.name = 'api'), 'ingress.rules[0].component.name: api is no component of this app'],
])('a copy with %s fails, naming the field', (_what, edit, message) => {
  expect(() => checkAppSpec('broken.yaml', broken(edit))).toThrow(`broken.yaml: `);
  expect(() => checkAppSpec('broken.yaml', broken(edit))).toThrow(message);
});

it('takes app-level and service alerts, and preserve_path_prefix as a boolean', () => {
  const spec = parse(TEXT) as Spec;
  expect(schemaProblems(spec)).toEqual([]);
  const rule = (spec['ingress'] as { rules: { component: Record<string, unknown> }[] }).rules[0]!;
  rule.component['preserve_path_prefix'] = 'true';
  expect(schemaProblems(spec)).toEqual(['ingress.rules[0].component.preserve_path_prefix: must be boolean']);
});

it('takes CPU-based autoscaling on a dedicated size, and a worker that scales on CPU', () => {
  const text = broken((s) => {
    s.services[0]!.instance_size_slug = 'apps-d-1vcpu-1gb';
    (s.services[0]!.autoscaling['metrics'] as Record<string, unknown>)['cpu'] = { percent: 70 };
    s['workers'] = [{ name: 'sweeper', github: { repo: 'glm-dllama/glm-dllama' }, run_command: 'node x', instance_size_slug: 'apps-d-1vcpu-1gb', autoscaling: { min_instance_count: 1, max_instance_count: 2, metrics: { cpu: { percent: 80 } } } }];
  });
  expect(() => checkAppSpec('scaled.yaml', text)).not.toThrow();
  // workers have no request metrics
  const requests = broken((s) => void (s['workers'] = [{ name: 'sweeper', github: { repo: 'a/b' }, autoscaling: { metrics: { requests_per_second: { per_instance: 5 } } } }]));
  expect(() => checkAppSpec('scaled.yaml', requests)).toThrow('workers[0].autoscaling.metrics.requests_per_second: unknown field');
});
