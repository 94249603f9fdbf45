/**
 * The App Platform app spec (.do/app.yaml) checked offline: DigitalOcean's vendored app-spec schema with
 * the project's corrections, then the project's rules (scripts/app-spec.ts); what the spec runs matches
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
])('a copy with %s fails, naming the field', (_what, edit, message) => {
  expect(() => checkAppSpec('broken.yaml', broken(edit))).toThrow(`broken.yaml: `);
  expect(() => checkAppSpec('broken.yaml', broken(edit))).toThrow(message);
});

it('takes the fields App Platform has that the published models lack, and preserve_path_prefix as a boolean', () => {
  const spec = parse(TEXT) as Spec;
  // service alerts and app-level alerts are in godo, not in the OpenAPI models
  expect(schemaProblems(spec)).toEqual([]);
  const rule = (spec['ingress'] as { rules: { component: Record<string, unknown> }[] }).rules[0]!;
  rule.component['preserve_path_prefix'] = 'true';
  expect(schemaProblems(spec)).toEqual(['ingress.rules[0].component.preserve_path_prefix: must be boolean']);
});
