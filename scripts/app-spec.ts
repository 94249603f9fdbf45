/**
 * The offline check of an App Platform app spec (.do/app.yaml): the project's own schema of it
 * (scripts/app-spec-schema.ts, written from DigitalOcean's published app-spec reference; no unknown field
 * anywhere), then the rules no schema says: no instance_count beside autoscaling, autoscaling only on sizes
 * that can scale, CPU-based autoscaling only on dedicated sizes, min_instance_count not above
 * max_instance_count, one source per component, a static site with at most one of error_document and
 * catchall_document, SECRET values left out of the file, bindable variables and ingress rules naming a
 * component of the app.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { parse } from 'yaml';
import { InputError } from '../converter/errors.js';
import { APP_SPEC_SCHEMA, DEFAULT_INSTANCE_SIZE, DEPRECATED_FIELDS, INSTANCE_SIZES, SOURCE_FIELDS } from './app-spec-schema.js';

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
  if (e.keyword === 'additionalProperties') {
    const field = `${at === '(root)' ? '' : `${at}.`}${(e.params as { additionalProperty: string }).additionalProperty}`;
    return `${field}: ${DEPRECATED_FIELDS.find(([path]) => path.test(field))?.[1] ?? 'unknown field'}`;
  }
  if (e.keyword === 'enum') return `${at}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  return `${at}: ${e.message ?? 'is invalid'}`;
}

const validate = new Ajv({ allErrors: true }).compile(APP_SPEC_SCHEMA);

/** The schema's complaints about a parsed spec, as `field: problem` lines; [] when it conforms. */
export function schemaProblems(spec: unknown): string[] {
  if (validate(spec)) return [];
  return [...new Set(validate.errors!.map(describe))];
}

const SINGLE_INSTANCE_SIZES = new Set(INSTANCE_SIZES.filter((s) => !s.scalable).map((s) => s.slug));
const DEDICATED_SIZES = new Set(INSTANCE_SIZES.filter((s) => s.dedicated).map((s) => s.slug));

interface Component {
  name?: string;
  instance_count?: number;
  instance_size_slug?: string;
  autoscaling?: { min_instance_count?: number; max_instance_count?: number; metrics?: { cpu?: unknown } };
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
  for (const { c, at } of ['services', 'workers', 'jobs', 'static_sites'].flatMap(list)) {
    const sources = SOURCE_FIELDS.filter((f) => f in c);
    if (sources.length !== 1) problems.push(`${at}: takes exactly one source of ${SOURCE_FIELDS.join(', ')}${sources.length > 1 ? ` (has ${sources.join(' and ')})` : ''}`);
  }
  for (const { c, at } of [...list('services'), ...list('workers')]) {
    const size = c.instance_size_slug ?? DEFAULT_INSTANCE_SIZE;
    const scaling = c.autoscaling;
    if (!scaling) continue;
    if (c.instance_count !== undefined) problems.push(`${at}.instance_count: must not be set with autoscaling`);
    if (SINGLE_INSTANCE_SIZES.has(size) && (scaling.max_instance_count ?? 1) > 1) {
      problems.push(`${at}.instance_size_slug: ${c.instance_size_slug ?? `${size} (the default)`} cannot run more than one instance; autoscaling needs apps-s-1vcpu-1gb or larger`);
    }
    if ((scaling.min_instance_count ?? 1) > (scaling.max_instance_count ?? 1)) problems.push(`${at}.autoscaling.min_instance_count: must not exceed max_instance_count`);
    if (scaling.metrics?.cpu !== undefined && !DEDICATED_SIZES.has(size)) problems.push(`${at}.autoscaling.metrics.cpu: CPU-based autoscaling needs a dedicated size (apps-d-*)`);
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
