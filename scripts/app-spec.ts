/**
 * The offline check of an App Platform app spec (.do/app.yaml): DigitalOcean's own app-spec models
 * (vendored in deploy/app-spec by scripts/vendor-app-spec-schema.ts) made into one strict JSON Schema,
 * with the corrections that make it match what App Platform accepts (the fields godo and doctl know that
 * the OpenAPI models lack, preserve_path_prefix a boolean, no unknown field anywhere), then the rules no
 * schema says: no instance_count beside autoscaling, autoscaling only on sizes that can scale, CPU-based
 * autoscaling only on dedicated sizes, a static site with one of error_document and catchall_document,
 * SECRET values left out of the file, bindable variables naming a component of the app.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parse } from 'yaml';
import { InputError } from '../converter/errors.js';
import { packageRoot } from '../engine/native.js';

type Schema = Record<string, unknown>;

interface Vendored {
  source: string;
  root: string;
  schemas: Record<string, Schema>;
}

/** Replaces every `$ref: file.yml` by that model, recursively. */
function dereference(value: unknown, models: Record<string, Schema>): unknown {
  if (Array.isArray(value)) return value.map((v) => dereference(v, models));
  if (value === null || typeof value !== 'object') return value;
  const ref = (value as Schema)['$ref'];
  if (typeof ref === 'string') {
    const model = models[ref];
    if (!model) throw new Error(`app-spec schema: $ref ${ref} is not vendored`);
    return dereference(model, models);
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, dereference(v, models)]));
}

/** One object schema from two: properties merged property by property, required lists joined. */
function merge(a: Schema, b: Schema): Schema {
  const out: Schema = { ...a, ...b };
  const pa = (a['properties'] ?? {}) as Record<string, Schema>;
  const pb = (b['properties'] ?? {}) as Record<string, Schema>;
  if (a['properties'] || b['properties']) {
    out['properties'] = Object.fromEntries([...new Set([...Object.keys(pa), ...Object.keys(pb)])].map((k) => [k, pa[k] && pb[k] ? merge(pa[k], pb[k]) : (pa[k] ?? pb[k])!]));
  }
  const required = [...new Set([...((a['required'] as string[]) ?? []), ...((b['required'] as string[]) ?? [])])];
  if (required.length > 0) out['required'] = required;
  return out;
}

/**
 * The models compose objects with allOf; a strict schema (no unknown field) needs each object whole, so
 * every allOf is folded into one object. OpenAPI-only keywords go.
 */
function normalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalise);
  if (value === null || typeof value !== 'object') return value;
  let schema = Object.fromEntries(
    Object.entries(value as Schema)
      .filter(([k]) => !['example', 'deprecated', 'format', 'nullable', 'readOnly', 'title'].includes(k))
      .map(([k, v]) => [k, k === 'properties' ? Object.fromEntries(Object.entries(v as Schema).map(([p, s]) => [p, normalise(s)])) : normalise(v)]),
  ) as Schema;
  if (Array.isArray(schema['allOf'])) {
    const { allOf, ...rest } = schema;
    schema = (allOf as Schema[]).reduce((acc, part) => merge(acc, part), rest);
  }
  if (schema['properties'] && schema['additionalProperties'] === undefined) schema['additionalProperties'] = false;
  return schema;
}

/** Where the published models differ from what App Platform takes (godo's AppSpec, which doctl decodes into). */
function correct(models: Record<string, Schema>): Record<string, Schema> {
  const m = structuredClone(models);
  const props = (file: string) => {
    const schema = m[file]!;
    // a model that is an allOf keeps its own fields in its last part
    const target = Array.isArray(schema['allOf']) ? ((schema['allOf'] as Schema[]).at(-1) as Schema) : schema;
    target['properties'] ??= {};
    return target['properties'] as Record<string, unknown>;
  };
  const alerts = { type: 'array', items: { $ref: 'app_alert_spec.yml' } };
  Object.assign(props('app_spec.yml'), { alerts, envs: { type: 'array', items: { $ref: 'app_variable_definition.yml' } }, features: { type: 'array', items: { type: 'string' } } });
  Object.assign(props('app_service_spec.yml'), {
    alerts,
    inactivity_sleep: { type: 'object', properties: { after_seconds: { type: 'integer', minimum: 600, maximum: 86400 }, loading_page: { type: 'object', properties: { enabled: { type: 'boolean' } } } } },
  });
  Object.assign(props('app_worker_spec.yml'), { alerts });
  Object.assign(props('app_static_site_spec.yml'), { alerts });
  Object.assign(props('app_database_spec.yml'), { size: { type: 'string' }, num_nodes: { type: 'integer', minimum: 1 } });
  Object.assign(props('app_service_spec_health_check.yml'), { path: { type: 'string' } });
  const job = props('app_job_spec.yml');
  (job['kind'] as Schema)['enum'] = [...((job['kind'] as Schema)['enum'] as string[]), 'SCHEDULED'];
  job['schedule'] = { type: 'object', required: ['cron'], properties: { cron: { type: 'string' }, time_zone: { type: 'string' } } };
  const routing = props('app_ingress_spec_rule_routing_component.yml');
  routing['preserve_path_prefix'] = { type: 'boolean' };
  return m;
}

/** A schema path (`/services/0/instance_count`) as a field name (`services[0].instance_count`). */
function fieldName(path: string): string {
  return path
    .split('/')
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join('')
    .replace(/^\./, '');
}

function describe(e: ErrorObject): string {
  const at = fieldName(e.instancePath) || '(root)';
  if (e.keyword === 'additionalProperties') return `${at === '(root)' ? '' : `${at}.`}${(e.params as { additionalProperty: string }).additionalProperty}: unknown field`;
  if (e.keyword === 'enum') return `${at}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  return `${at}: ${e.message ?? 'is invalid'}`;
}

let compiled: ((spec: unknown) => string[]) | undefined;

/** The schema's complaints about a parsed spec, as `field: problem` lines; [] when it conforms. */
export function schemaProblems(spec: unknown): string[] {
  if (!compiled) {
    const vendored = JSON.parse(readFileSync(join(packageRoot(), 'deploy', 'app-spec', 'openapi-app-spec.json'), 'utf8')) as Vendored;
    const models = correct(vendored.schemas);
    const schema = normalise(dereference(models[vendored.root], models)) as Schema;
    // static sites inherit image, run_command and log_destinations from the models' component base, but
    // godo's static site has none of them (doctl refuses them)
    const site = ((schema['properties'] as Record<string, Schema>)['static_sites']!['items'] as Schema)['properties'] as Record<string, unknown>;
    for (const field of ['image', 'run_command', 'log_destinations']) delete site[field];
    const validate = new Ajv({ strict: false, allErrors: true, validateFormats: false }).compile(schema);
    compiled = (value) => {
      if (validate(value)) return [];
      // oneOf/anyOf report every branch; the branch errors say more than the summary line
      const errors = validate.errors!.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'anyOf');
      return [...new Set((errors.length > 0 ? errors : validate.errors!).map(describe))];
    };
  }
  return compiled(spec);
}

/** Sizes that run one instance only (DigitalOcean's instance-size list marks them not scalable). */
const SINGLE_INSTANCE_SIZES = new Set(['apps-s-1vcpu-0.5gb', 'apps-s-1vcpu-1gb-fixed']);

interface Component {
  name?: string;
  instance_count?: number;
  instance_size_slug?: string;
  autoscaling?: { max_instance_count?: number; metrics?: { cpu?: unknown } };
  envs?: { key?: string; type?: string; value?: string }[];
  error_document?: string;
  catchall_document?: string;
}

/** The project's rules, for a spec that passed the schema. */
export function ruleProblems(spec: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const list = (key: string) => ((spec[key] as Component[] | undefined) ?? []).map((c, i) => ({ c, at: `${key}[${i}]` }));
  const components = ['services', 'workers', 'jobs', 'static_sites', 'databases'].flatMap(list);
  const names = new Set(components.map(({ c }) => c.name));
  for (const { c, at } of [...list('services'), ...list('workers')]) {
    if (c.autoscaling && c.instance_count !== undefined) problems.push(`${at}.instance_count: must not be set with autoscaling`);
    if (c.autoscaling && SINGLE_INSTANCE_SIZES.has(c.instance_size_slug ?? 'apps-s-1vcpu-0.5gb') && (c.autoscaling.max_instance_count ?? 1) > 1) {
      problems.push(`${at}.instance_size_slug: ${c.instance_size_slug ?? 'apps-s-1vcpu-0.5gb (the default)'} cannot run more than one instance; autoscaling needs apps-s-1vcpu-1gb or larger`);
    }
    if (c.autoscaling?.metrics?.cpu !== undefined && !(c.instance_size_slug ?? '').startsWith('apps-d-')) problems.push(`${at}.autoscaling.metrics.cpu: CPU-based autoscaling needs a dedicated size (apps-d-*)`);
  }
  for (const { c, at } of list('static_sites')) {
    if (c.error_document !== undefined && c.catchall_document !== undefined) problems.push(`${at}: error_document and catchall_document exclude each other`);
  }
  const envLists = [{ envs: (spec['envs'] as Component['envs']) ?? [], at: 'envs' }, ...components.map(({ c, at }) => ({ envs: c.envs ?? [], at: `${at}.envs` }))];
  for (const { envs, at } of envLists) {
    envs.forEach((e, i) => {
      // App Platform returns a stored secret as EV[...]; a plain value here would be a secret in git
      if (e.type === 'SECRET' && e.value !== undefined && !/^EV\[.+\]$/.test(e.value)) problems.push(`${at}[${i}].value: a SECRET's value does not belong in the file (set it in the control panel)`);
      for (const m of (e.value ?? '').matchAll(/\$\{([a-z][a-z0-9-]*)\.[A-Z_]+\}/g)) {
        if (!names.has(m[1])) problems.push(`${at}[${i}].value: \${${m[1]}...} names no component of this app`);
      }
    });
  }
  const rules = ((spec['ingress'] as { rules?: { component?: { name?: string } }[] } | undefined)?.rules ?? []);
  rules.forEach((r, i) => {
    if (r.component?.name !== undefined && !names.has(r.component.name)) problems.push(`ingress.rules[${i}].component.name: ${r.component.name} is no component of this app`);
  });
  return problems;
}

/** Reads and checks an app spec file; throws an InputError naming the file and every field at fault. */
export function checkAppSpec(file: string, text = readFileSync(file, 'utf8')): Record<string, unknown> {
  const spec: unknown = parse(text);
  const problems = schemaProblems(spec);
  if (problems.length === 0) problems.push(...ruleProblems(spec as Record<string, unknown>));
  if (problems.length > 0) throw new InputError(file, problems.join('; '));
  return spec as Record<string, unknown>;
}
