/**
 * The project's own JSON Schema of an App Platform app spec, written by hand from DigitalOcean's
 * published app-spec reference (docs.digitalocean.com/products/app-platform/reference/app-spec/) and
 * what doctl accepts, as gathered in the project's deploy notes. It takes the fields App Platform takes
 * (app-level alerts, envs and features, service alerts and inactivity_sleep, scheduled jobs, database
 * size and num_nodes, preserve_path_prefix a boolean) and refuses every field it does not list, at every
 * level, so that a typo fails naming its path. Deprecated fields (component routes and cors, the health
 * check's path) are left out on purpose: ingress.rules and http_path replace them. Functions components
 * are not modelled, so they are refused too. Rules across fields are in scripts/app-spec.ts.
 */

type Schema = Record<string, unknown>;

/** An object that takes exactly these fields. */
function object(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: 'object', properties, required, additionalProperties: false };
}
const string: Schema = { type: 'string' };
const boolean: Schema = { type: 'boolean' };
const integer = (minimum: number, maximum?: number): Schema => ({ type: 'integer', minimum, ...(maximum === undefined ? {} : { maximum }) });
const oneOf = (...values: string[]): Schema => ({ type: 'string', enum: values });
const list = (items: Schema): Schema => ({ type: 'array', items });

/** App and component names: lower-case letters, digits and dashes, 2 to 32 characters, a letter first. */
const NAME: Schema = { type: 'string', pattern: '^[a-z][a-z0-9-]{0,30}[a-z0-9]$' };

/** The instance sizes; the two smallest shared ones run a single instance (they cannot scale out). */
export const INSTANCE_SIZES: { slug: string; dedicated: boolean; scalable: boolean }[] = [
  { slug: 'apps-s-1vcpu-0.5gb', dedicated: false, scalable: false },
  { slug: 'apps-s-1vcpu-1gb-fixed', dedicated: false, scalable: false },
  ...['1vcpu-1gb', '1vcpu-2gb', '2vcpu-4gb'].map((s) => ({ slug: `apps-s-${s}`, dedicated: false, scalable: true })),
  ...['1vcpu-0.5gb', '1vcpu-1gb', '1vcpu-2gb', '1vcpu-4gb', '2vcpu-4gb', '2vcpu-8gb', '4vcpu-8gb', '4vcpu-16gb', '8vcpu-32gb'].map((s) => ({ slug: `apps-d-${s}`, dedicated: true, scalable: true })),
];
/** What App Platform runs when a component names no size. */
export const DEFAULT_INSTANCE_SIZE = 'apps-s-1vcpu-0.5gb';

const REGIONS = ['atl', 'nyc', 'sfo', 'tor', 'ams', 'fra', 'lon', 'blr', 'sgp', 'syd'];

/** Where a component's code comes from: a repository (one of four hosts) or a container image. */
const repository = object({ repo: string, branch: string, deploy_on_push: boolean }, ['repo']);
const SOURCES: Record<string, Schema> = {
  git: object({ repo_clone_url: string, branch: string }, ['repo_clone_url']),
  github: repository,
  gitlab: repository,
  bitbucket: repository,
  image: object(
    {
      registry_type: oneOf('DOCR', 'DOCKER_HUB', 'GHCR'),
      registry: string,
      repository: string,
      tag: string,
      digest: string,
      registry_credentials: string,
      deploy_on_push: object({ enabled: boolean }),
    },
    ['registry_type', 'repository'],
  ),
};
export const SOURCE_FIELDS = Object.keys(SOURCES);

const env = object(
  {
    key: { type: 'string', pattern: '^[_A-Za-z][_A-Za-z0-9]*$' },
    scope: oneOf('UNSET', 'RUN_TIME', 'BUILD_TIME', 'RUN_AND_BUILD_TIME'),
    type: oneOf('GENERAL', 'SECRET'),
    value: string,
  },
  ['key'],
);

/** Alerts on an app's life (deploys, domains, autoscaling, jobs) and on a component's metrics. */
const alert = (rules: string[]): Schema =>
  object(
    {
      rule: oneOf(...rules),
      disabled: boolean,
      operator: oneOf('GREATER_THAN', 'LESS_THAN'),
      value: { type: 'number' },
      window: oneOf('FIVE_MINUTES', 'TEN_MINUTES', 'THIRTY_MINUTES', 'ONE_HOUR'),
    },
    ['rule'],
  );
const appAlert = alert(['DEPLOYMENT_FAILED', 'DEPLOYMENT_LIVE', 'DEPLOYMENT_STARTED', 'DEPLOYMENT_CANCELED', 'DOMAIN_FAILED', 'DOMAIN_LIVE', 'AUTOSCALE_FAILED', 'AUTOSCALE_SUCCEEDED', 'JOB_INVOCATION_FAILED']);
const componentAlert = alert(['CPU_UTILIZATION', 'MEM_UTILIZATION', 'RESTART_COUNT', 'REQUESTS_PER_SECOND', 'REQUEST_DURATION_P95_MS']);

const logDestination = object(
  {
    name: string,
    papertrail: object({ endpoint: string }, ['endpoint']),
    datadog: object({ endpoint: string, api_key: string }, ['api_key']),
    logtail: object({ token: string }, ['token']),
    open_search: object({ endpoint: string, basic_auth: object({ user: string, password: string }), index_name: string, cluster_name: string }),
  },
  ['name'],
);

/** Readiness (health_check) and liveness checks: TCP unless http_path is set. Ranges are App Platform's. */
const healthCheck = (successThreshold: Schema): Schema =>
  object({
    http_path: string,
    port: integer(1, 65535),
    initial_delay_seconds: integer(0, 3600),
    period_seconds: integer(1, 300),
    timeout_seconds: integer(1, 120),
    success_threshold: successThreshold,
    failure_threshold: integer(1, 50),
  });

/** Autoscaling between 1 and 250 instances; services may also scale on requests, workers on CPU only. */
const cpu = object({ percent: integer(1, 100) });
const autoscaling = (metrics: Record<string, Schema>): Schema =>
  object({ min_instance_count: integer(1, 250), max_instance_count: integer(1, 250), metrics: object(metrics) });

/** The fields every component that is built from source has. */
const built: Record<string, Schema> = {
  name: NAME,
  ...SOURCES,
  source_dir: string,
  environment_slug: string,
  dockerfile_path: string,
  build_command: string,
  envs: list(env),
};
/** The fields of a component that runs instances (services, workers, jobs). */
const running: Record<string, Schema> = {
  ...built,
  run_command: string,
  instance_size_slug: oneOf(...INSTANCE_SIZES.map((s) => s.slug)),
  instance_count: integer(1, 250),
  log_destinations: list(logDestination),
};

const service = object(
  {
    ...running,
    http_port: integer(1, 65535),
    protocol: oneOf('HTTP', 'HTTP2'),
    internal_ports: list(integer(1, 65535)),
    autoscaling: autoscaling({ cpu, requests_per_second: object({ per_instance: integer(1) }), request_duration: object({ p95_milliseconds: integer(1) }) }),
    health_check: healthCheck(integer(1, 50)),
    liveness_health_check: healthCheck({ const: 1 }),
    termination: object({ drain_seconds: integer(1, 110), grace_period_seconds: integer(1, 600) }),
    inactivity_sleep: object({ after_seconds: integer(600, 86400), loading_page: object({ enabled: boolean }) }),
    alerts: list(componentAlert),
  },
  ['name'],
);

const worker = object(
  {
    ...running,
    autoscaling: autoscaling({ cpu }),
    liveness_health_check: healthCheck({ const: 1 }),
    termination: object({ grace_period_seconds: integer(1, 600) }),
    alerts: list(componentAlert),
  },
  ['name'],
);

const job = object(
  {
    ...running,
    kind: oneOf('UNSPECIFIED', 'PRE_DEPLOY', 'POST_DEPLOY', 'FAILED_DEPLOY', 'SCHEDULED'),
    schedule: object({ cron: string, time_zone: string }, ['cron']),
    termination: object({ grace_period_seconds: integer(1, 600) }),
    alerts: list(componentAlert),
  },
  ['name'],
);

/** A static site is built, never run: no run command, image, size or log destination. */
const staticSite = object({ ...built, output_dir: string, index_document: string, error_document: string, catchall_document: string }, ['name']);

const database = object(
  {
    name: NAME,
    engine: oneOf('UNSET', 'MYSQL', 'PG', 'REDIS', 'MONGODB', 'KAFKA', 'OPENSEARCH', 'VALKEY'),
    version: string,
    production: boolean,
    cluster_name: string,
    db_name: string,
    db_user: string,
    size: string,
    num_nodes: integer(1),
  },
  ['name'],
);

const stringMatch = object({ exact: string, prefix: string, regex: string });
const cors = object({
  allow_origins: list(stringMatch),
  allow_methods: list(string),
  allow_headers: list(string),
  expose_headers: list(string),
  max_age: string,
  allow_credentials: boolean,
});
const ingress = object({
  rules: list(
    object({
      match: object({ path: object({ prefix: string }, ['prefix']), authority: object({ exact: string }, ['exact']) }),
      component: object({ name: NAME, preserve_path_prefix: boolean, rewrite: string }, ['name']),
      redirect: object({ uri: string, authority: string, port: integer(1, 65535), scheme: oneOf('http', 'https'), redirect_code: integer(300, 399) }),
      cors,
    }),
  ),
});

const domain = object(
  { domain: string, type: oneOf('DEFAULT', 'PRIMARY', 'ALIAS'), wildcard: boolean, zone: string, minimum_tls_version: oneOf('1.2', '1.3') },
  ['domain'],
);

/** The whole app spec. */
export const APP_SPEC_SCHEMA: Schema = object(
  {
    name: NAME,
    region: oneOf(...REGIONS),
    domains: list(domain),
    features: list(string),
    alerts: list(appAlert),
    envs: list(env),
    services: list(service),
    workers: list(worker),
    jobs: list(job),
    static_sites: list(staticSite),
    databases: list(database),
    ingress,
    egress: object({ type: oneOf('AUTOASSIGN', 'DEDICATED_EGRESS_IP') }),
    maintenance: object({ enabled: boolean, archive: boolean, offline_page_url: string }),
    vpc: object({ id: string }, ['id']),
    disable_edge_cache: boolean,
    disable_email_obfuscation: boolean,
    enhanced_threat_control_enabled: boolean,
  },
  ['name'],
);

/** Fields App Platform still takes but the project refuses (by their path), with what to write instead. */
export const DEPRECATED_FIELDS: [RegExp, string][] = [
  [/^(services|workers|jobs|static_sites)\[\d+\]\.routes$/, 'deprecated, use ingress.rules'],
  [/^(services|workers|jobs|static_sites)\[\d+\]\.cors$/, 'deprecated on a component, use ingress.rules[].cors'],
  [/\.(health_check|liveness_health_check)\.path$/, 'deprecated, use http_path'],
];
