/** The models registry: schema validation with field paths, the matrix, and check-updates against an emulated hub. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { affectedModels, loadRegistry, matrixOf, parseRegistry, RegistryError, type RegistryIssue } from '../pipeline/registry.js';
import { execFile } from 'node:child_process';
import { cli, removeDir, tempDir } from './helpers.js';

/** The built CLI, without blocking the event loop (the emulated hub is served from this process). */
function cliAsync(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join('dist', 'cli', 'glm-dllama.js'), ...args], { encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

const REGISTRY = 'models/registry.yaml';

async function registryText(): Promise<string> {
  return readFile(REGISTRY, 'utf8');
}

/** Runs `fn` on a temporary copy of the registry holding `text`. */
async function withRegistry(text: string, fn: (file: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    const file = join(dir, 'registry.yaml');
    await writeFile(file, text);
    await fn(file);
  } finally {
    await removeDir(dir);
  }
}

function issues(text: string): RegistryIssue[] {
  try {
    parseRegistry(text, 'broken.yaml');
  } catch (e) {
    if (e instanceof RegistryError) return e.issues;
    throw e;
  }
  throw new Error('the broken registry was accepted');
}

describe('models/registry.yaml', () => {
  test('validates and lists the tracked models', async () => {
    const r = await loadRegistry(REGISTRY);
    const repos = r.models.map((m) => (m.source.kind === 'hub' ? m.source.repo : m.source.arch));
    expect(repos).toEqual(expect.arrayContaining(['zai-org/GLM-4-9B-0414', 'zai-org/GLM-4-32B-0414', 'zai-org/GLM-4.5-Air', 'PrimeIntellect/INTELLECT-3']));
    for (const m of r.models) {
      expect(m.runnerLabels.length).toBeGreaterThan(0);
      expect(m.gates.maxKld).toBeGreaterThan(0);
    }
    const air = r.models.find((m) => m.id === 'glm-4.5-air')!;
    expect(air.source).toEqual({ kind: 'hub', repo: 'zai-org/GLM-4.5-Air', revision: 'a24ceef6ce4f3536971efe9b778bdaa1bab18daa' });
    expect(air.gates).toEqual({ maxPplIncrease: 6, maxKld: 0.08, maxRegression: 10 });
  });

  test('the fixture registry validates', async () => {
    const r = await loadRegistry('models/fixture-registry.yaml');
    expect(r.models[0]!.source).toEqual({ kind: 'fixture', arch: 'glm4moe' });
  });

  test('a missing revision is named by its field path', async () => {
    const text = (await registryText()).replace(/^ {4}revision: 077b5c2f.*\n/m, '');
    expect(issues(text)).toEqual([{ path: 'models[1].revision', message: 'is required' }]);
  });

  test('a revision that is not a commit sha is refused', async () => {
    const text = (await registryText()).replace('645b8482494e31b6b752272bf7f7f273ef0f3caf', 'main');
    expect(issues(text).map((i) => i.path)).toEqual(['models[0].revision']);
  });

  test('a revision YAML reads as a number says to quote it', async () => {
    const text = (await registryText()).replace('645b8482494e31b6b752272bf7f7f273ef0f3caf', '1234567890123456789012345678901234567890');
    expect(issues(text)).toContainEqual({ path: 'models[0].revision', message: 'must be string (quote it in the YAML)' });
  });

  test('a registry file that is not there is named, with what to do', async () => {
    await expect(loadRegistry('no/such/registry.yaml')).rejects.toThrow(/^no\/such\/registry\.yaml: cannot read the registry \(ENOENT\); run from the repository that holds it, or name the file$/);
  });

  test('an unknown quantization is refused with the allowed values', async () => {
    const text = (await registryText()).replace('quantizations: [q40, q80]', 'quantizations: [q40, q50]');
    expect(issues(text)).toEqual([{ path: 'models[0].quantizations[1]', message: 'must be one of q40, q80' }]);
  });

  test('bad gates are refused field by field', async () => {
    const text = (await registryText()).replace('max-kld: 0.05', 'max-kld: -1').replace('max-ppl-increase: 5 #', 'max-ppl-increase: five #');
    const found = issues(text);
    expect(found).toContainEqual({ path: 'models[0].gates.max-kld', message: 'must be > 0' });
    expect(found).toContainEqual({ path: 'models[0].gates.max-ppl-increase', message: 'must be number' });
  });

  test('unknown fields, duplicate ids, fixture with repo and YAML syntax errors are refused', async () => {
    const text = await registryText();
    expect(issues(text.replace('    architecture: glm4\n', '    architecture: glm4\n    weights: q40\n'))).toContainEqual({
      path: 'models[0].weights',
      message: 'is not a known field',
    });
    expect(issues(text.replace('id: glm-4-32b-0414', 'id: glm-4-9b-0414'))).toEqual([{ path: 'models[1].id', message: 'duplicate id glm-4-9b-0414' }]);
    expect(issues(text.replace('  - id: glm-4-9b-0414\n', '  - id: glm-4-9b-0414\n    fixture: glm4\n'))).toContainEqual({
      path: 'models[0].repo',
      message: 'is not allowed with fixture',
    });
    expect(issues(text.replace('models:\n', 'models: [\n'))[0]!.path).toBe('');
  });
});

describe('matrix', () => {
  test('one entry per quantization; unpinned models are skipped', async () => {
    const r = await loadRegistry(REGISTRY);
    const { include, skipped } = matrixOf(r.models);
    expect(skipped).toEqual(['intellect-3']);
    expect(include.map((e) => `${e.id}:${e.quant}`)).toEqual(['glm-4-9b-0414:q40', 'glm-4-9b-0414:q80', 'glm-4-32b-0414:q40', 'glm-4-32b-0414:q80', 'glm-4.5-air:q40']);
    expect(include[0]).toMatchObject({ model: 'hf:zai-org/GLM-4-9B-0414@645b8482494e31b6b752272bf7f7f273ef0f3caf', fixture: '', 'runs-on': ['self-hosted', 'linux', 'x64', 'cpu-32g'], threads: '' });
  });

  test("the publish workflow's label goes on every self-hosted entry, and on no hosted one", async () => {
    const r = await loadRegistry(REGISTRY);
    const fixtures = await loadRegistry('models/fixture-registry.yaml');
    const { include } = matrixOf([...r.models, ...fixtures.models], 'publish');
    for (const e of include) {
      expect(e['runs-on'].includes('publish')).toBe(e['runs-on'].includes('self-hosted'));
    }
    expect(include[0]!['runs-on']).toEqual(['self-hosted', 'linux', 'x64', 'cpu-32g', 'publish']);
    expect(include.some((e) => e['runs-on'].join() === 'ubuntu-latest')).toBe(true);
    expect(matrixOf(r.models).include[0]!['runs-on']).toEqual(['self-hosted', 'linux', 'x64', 'cpu-32g']);
  });

  test('affected models: edited entries only, every model when the engine changed', async () => {
    const text = await registryText();
    const base = parseRegistry(text, 'base.yaml');
    const head = parseRegistry(text.replace('max-kld: 0.08', 'max-kld: 0.07'), 'head.yaml');
    expect(affectedModels(head, base, [REGISTRY], ['engine/']).map((m) => m.id)).toEqual(['glm-4.5-air']);
    expect(affectedModels(head, base, ['engine/src/kernels.cpp'], ['engine/'])).toHaveLength(4);
    expect(affectedModels(head, undefined, [], ['engine/'])).toHaveLength(4);
  });
});

describe('glm-dllama registry check-updates', () => {
  let server: Server;
  let hubUrl: string;
  const latest: Record<string, string> = {
    'zai-org/GLM-4-9B-0414': '645b8482494e31b6b752272bf7f7f273ef0f3caf', // unchanged
    'zai-org/GLM-4-32B-0414': '077b5c2f5c43bd3239fd605a0600229e8facbd4a', // unchanged
    'zai-org/GLM-4.5-Air': '1f'.repeat(20), // moved upstream
    'PrimeIntellect/INTELLECT-3': 'e2'.repeat(20), // unpinned -> pinned
  };
  const requests: string[] = [];

  beforeAll(async () => {
    // The hub's model info endpoint: GET /api/models/{owner}/{name}/revision/{rev}?expand=...
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://hub');
      requests.push(url.pathname);
      const match = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/HEAD$/.exec(url.pathname);
      const sha = match ? latest[match[1]!] : undefined;
      if (!sha || !url.searchParams.getAll('expand').includes('sha')) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'Repository not found' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ _id: 'x', id: match![1], sha, private: false, gated: false, downloads: 0, likes: 0, lastModified: '2026-11-01T00:00:00.000Z', pipeline_tag: 'text-generation' }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    hubUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => new Promise<void>((resolve) => server.close(() => resolve())));

  test('reports changed revisions, and --write updates the file keeping its comments', async () => {
    const original = await registryText();
    await withRegistry(original, async (file) => {

      const report = await cliAsync('registry', 'check-updates', file, '--hub-url', hubUrl, '--json');
      expect(report.stderr).toBe('');
      expect(JSON.parse(report.stdout)).toEqual([
        { id: 'glm-4.5-air', repo: 'zai-org/GLM-4.5-Air', current: 'a24ceef6ce4f3536971efe9b778bdaa1bab18daa', latest: latest['zai-org/GLM-4.5-Air'] },
        { id: 'intellect-3', repo: 'PrimeIntellect/INTELLECT-3', current: null, latest: latest['PrimeIntellect/INTELLECT-3'] },
      ]);
      expect(requests).toContain('/api/models/zai-org/GLM-4.5-Air/revision/HEAD');
      expect(await readFile(file, 'utf8')).toBe(original); // no --write, no change

      const write = await cliAsync('registry', 'check-updates', file, '--hub-url', hubUrl, '--write');
      expect(write.status).toBe(0);
      expect(write.stdout).toContain(`glm-4.5-air (zai-org/GLM-4.5-Air): a24ceef6ce4f3536971efe9b778bdaa1bab18daa -> ${'1f'.repeat(20)}`);
      const written = await readFile(file, 'utf8');
      expect(written).toBe(
        original
          .replace('revision: a24ceef6ce4f3536971efe9b778bdaa1bab18daa', `revision: ${latest['zai-org/GLM-4.5-Air']}`)
          .replace('revision: unpinned', `revision: ${latest['PrimeIntellect/INTELLECT-3']}`),
      );
      expect(written).toContain('# GLM-4.5-Air fine-tune, same layout.');

      const again = await cliAsync('registry', 'check-updates', file, '--hub-url', hubUrl);
      expect(again.stdout).toContain('every model is at its latest revision');
    });
  });

  test('a repository the hub does not know is an error naming it', async () => {
    await withRegistry((await registryText()).replace('zai-org/GLM-4-9B-0414', 'zai-org/GLM-4-9B-0415'), async (file) => {
      const run = await cliAsync('registry', 'check-updates', file, '--hub-url', hubUrl);
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/^glm-dllama: error: zai-org\/GLM-4-9B-0415: .*Repository not found/);
    });
  });

  test('validate reports the file and field', async () => {
    await withRegistry((await registryText()).replace('architecture: glm4moe', 'architecture: glm5'), async (file) => {
      const run = cli('registry', 'validate', file);
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(`${file}: models[2].architecture: must be one of glm, glm4, glm4moe`);
    });
    expect(cli('registry', 'validate', REGISTRY).stdout).toContain('4 models valid (unpinned: intellect-3)');
  });
});
