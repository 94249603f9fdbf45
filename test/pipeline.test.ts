/**
 * A model repository's workflow end to end: the five bundled actions and the report, run as the runner
 * runs them, on the fixture checkpoint served by a local hub, with baselines in a local actions cache,
 * comments on a local GitHub API and the release in a local S3 (s3rver). First the default branch's run
 * saves the baselines; then a pull request's run compares with them, comments and publishes.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { convert } from '../converter/convert.js';
import { writeFixture } from '../converter/fixture.js';
import { WeightType } from '../converter/dtypes.js';
import { imatrixFromStats, writeImatrix } from '../converter/imatrix.js';
import { readModelFile } from '../converter/model-file.js';
import { LoadedModel } from '../engine/index.js';
import { startLocalS3, type LocalS3 } from '../pipeline/local-s3.js';
import { pullRequestEvent, runAction, type ActionRun } from '../pipeline/local-runner.js';
import { startCacheServer, type CacheServer } from './cache-server.js';
import { startGithubServer, type GithubServer } from './github-server.js';
import { removeDir, tempDir } from './helpers.js';
import { startHubServer, type HubServer } from './hub-server.js';
import { startWorker, stopWorker } from '../engine/worker-process.js';

const BUCKET = 'glm-models';

describe('model pipeline through the actions', () => {
  let dir: string;
  let s3: LocalS3;
  let github: GithubServer;
  let cache: CacheServer;
  let hub: HubServer;
  const env = () => ({ ACTIONS_CACHE_URL: cache.url, ACTIONS_RUNTIME_TOKEN: 'runtime-token' });

  beforeAll(async () => {
    dir = await tempDir();
    const checkpoint = await writeFixture({ arch: 'glm4moe', outDir: join(dir, 'checkpoint'), size: 'tiny', seed: 3 });
    hub = await startHubServer({ repo: 'zai-org/GLM-4.5-Air', dir: checkpoint.outDir, token: 'hf_secret' });
    s3 = await startLocalS3({ directory: join(dir, 's3'), buckets: [BUCKET] });
    github = await startGithubServer({ tokens: ['gh-token'], owner: 'octo', repo: 'models' });
    cache = await startCacheServer('runtime-token');
  });
  afterAll(async () => {
    await Promise.all([hub.close(), s3.close(), github.close(), cache.close()]);
    await removeDir(dir);
  });

  /** One job: convert from the hub, quantize, verify against f32, benchmark; returns the steps' runs. */
  async function job(name: string, event: { eventName: string; event: Record<string, unknown>; env?: Record<string, string> }, gates: { maxKld: string }) {
    const workspace = join(dir, name);
    await mkdir(workspace, { recursive: true });
    const context = { ...event, githubUrl: github.url, workspace, env: { ...env(), ...event.env } };
    const reporting = { 'results-dir': join(workspace, 'results'), 'github-token': 'gh-token' };
    const runs: Record<string, ActionRun> = {};
    runs.convert = await runAction('convert-glm', { model: `hf:zai-org/GLM-4.5-Air@${hub.commit}`, weights: 'f32', 'out-dir': 'models', 'hf-token': 'hf_secret', 'cache-dir': join(dir, 'hub-cache'), 'hub-url': hub.url }, context);
    expect(runs.convert.code).toBe(0);
    const f32 = runs.convert.outputs['model-path'] as string;
    runs.quantize = await runAction('quantize', { model: join(workspace, f32), weights: 'q40', ...reporting }, context);
    expect(runs.quantize.code).toBe(0);
    const q40 = runs.quantize.outputs['model-path'] as string;
    runs.verify = await runAction('verify-perplexity', { model: q40, tokenizer: join(workspace, runs.convert.outputs['tokenizer-path'] as string), reference: join(workspace, f32), 'max-ppl-increase': '50', 'max-kld': gates.maxKld, ...reporting }, context);
    runs.bench = await runAction('benchmark', { model: q40, 'prompt-tokens': '64', 'gen-tokens': '64', threads: '1', repeat: '3', 'cost-per-hour': '0.25', 'max-regression': '90', ...reporting }, context);
    expect(runs.bench.code).toBe(0);
    return { runs, workspace, q40, tokenizer: join(workspace, runs.convert.outputs['tokenizer-path'] as string) };
  }

  it('saves baselines on the default branch, then gates, comments on and publishes a pull request', async () => {
    // The default branch's run: no comment, baselines saved to the actions cache.
    const push = { eventName: 'push', event: { repository: { default_branch: 'main' } }, env: { GITHUB_REF: 'refs/heads/main' } };
    const main = await job('main', push, { maxKld: '1' });
    expect(main.runs.convert?.outputs.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Number(main.runs.convert?.outputs.params)).toBeGreaterThan(0);
    expect(main.runs.verify?.code).toBe(0);
    expect(github.calls).toHaveLength(0);
    expect(cache.entries().map((e) => e.key.replace(/-[0-9a-f]{40}-.*$/, '')).sort()).toEqual([
      'glm-dllama-baselines/main/linux-x64/GLM-4.5-Air.q40.m/benchmark.json',
      'glm-dllama-baselines/main/linux-x64/GLM-4.5-Air.q40.m/perplexity.json',
      'glm-dllama-baselines/main/linux-x64/GLM-4.5-Air.q40.m/quantize.json',
    ]);

    // The pull request's run: compared with the cached baselines, one sticky comment, a gate that fails.
    const pr = await job('pr', { eventName: 'pull_request', event: pullRequestEvent(7) }, { maxKld: '0' });
    expect(pr.runs.verify?.code).toBe(1);
    expect(pr.runs.verify?.outputs.passed).toBe('false');
    expect(github.comments).toHaveLength(1);
    const comment = github.comments[0]?.body ?? '';
    expect(comment).toContain('<!-- glm-dllama-report: model gate -->');
    expect(comment).toContain('1 of 4 gates failed: kld.');
    expect(comment).toMatch(/\| GLM-4\.5-Air\.q40\.m \| perplexity \| [\d.]+ \| [\d.]+ \| 0\.00% \| ✅/);
    expect(comment).toMatch(/\| GLM-4\.5-Air\.q40\.m \| KL divergence \(mean\) \| [\d.e-]+ \| [\d.e-]+ \| 0\.00% \| ❌ mean KL divergence/);
    expect(comment).toMatch(/\| GLM-4\.5-Air\.q40\.m \| decode tok\/s \| [\d.]+ \| [\d.]+ \|/);
    expect(comment).toMatch(/\$ \/ M tokens/);
    expect(comment).toContain('Base results: actions cache');
    expect(cache.entries()).toHaveLength(3); // pull requests never overwrite the baselines

    // Publishing the pull request's model to the bucket (as the approved promotion would).
    const publish = await runAction(
      'publish-to-spaces',
      { files: `${pr.q40}\n${pr.tokenizer}`, 'model-name': 'GLM-4.5-Air', quant: 'q40', bucket: BUCKET, endpoint: s3.endpoint, 'access-key-id': s3.accessKeyId, 'secret-access-key': s3.secretAccessKey, 'results-dir': join(pr.workspace, 'results'), 'source-repo': 'zai-org/GLM-4.5-Air', 'source-revision': hub.commit },
      { eventName: 'pull_request', event: pullRequestEvent(7), workspace: pr.workspace },
    );
    expect(publish.code).toBe(0);
    // Keys are masked: only the runner's ::add-mask:: commands name them.
    expect((publish.stdout + publish.stderr).replace(/^::add-mask::.*$/gm, '')).not.toContain('S3RVER');
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'models/' }));
    expect((listed.Contents ?? []).map((o) => o.Key).sort()).toEqual(
      ['README.md', 'checksums.txt', 'manifest.json', 'model.m', 'tokenizer.t'].map((f) => `models/GLM-4.5-Air/q40/${f}`),
    );
    const text = async (key: string) => (await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body?.transformToString()) ?? '';
    const manifest = JSON.parse(await text('models/GLM-4.5-Air/q40/manifest.json')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ model: 'GLM-4.5-Air', quant: 'q40', sourceRevision: hub.commit });
    const modelSha = createHash('sha256').update(await readFile(pr.q40)).digest('hex');
    expect(await text('models/GLM-4.5-Air/q40/checksums.txt')).toContain(`${modelSha}  model.m`);
    expect(publish.outputs['manifest-url']).toContain('models/GLM-4.5-Air/q40/manifest.json');

    // The closing report of the run: the same comment, updated in place.
    const report = await runAction('report', { 'results-dir': join(pr.workspace, 'results'), 'github-token': 'gh-token', 'baseline-store': 'none' }, { githubUrl: github.url, event: pullRequestEvent(7) });
    expect(report.code).toBe(1); // the failed KL gate fails the report too, for branch protection
    expect(github.comments).toHaveLength(1);
  });

  it('quantize takes an imatrix from the bucket, and the published manifest and card record it and its calibration text', async () => {
    const checkpoint = await writeFixture({ arch: 'glm4moe', outDir: join(dir, 'imatrix-checkpoint'), size: 'tiny', seed: 4 });
    const f32 = join(dir, 'imx.f32.m');
    await convert({ modelDir: checkpoint.outDir, outFile: f32, weights: 'f32', tokenizerFile: null });
    const model = new LoadedModel(f32, { threads: 1, contextLength: 64, device: 'cpu' });
    model.collectActivations();
    model.evaluate(Array.from({ length: 48 }, (_, i) => (i * 29 + 3) % 500));
    const imatrix = join(dir, 'tiny.imatrix.gguf');
    await writeImatrix(imatrix, imatrixFromStats((await readModelFile(f32)).header, model.activationStats(), { datasets: ['calibration.txt'], chunkCount: 1, chunkSize: 48 }));
    model.close();
    const bucket = { bucket: BUCKET, endpoint: s3.endpoint, 'access-key-id': s3.accessKeyId, 'secret-access-key': s3.secretAccessKey };
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'imatrix/tiny.imatrix.gguf', Body: await readFile(imatrix) }));
    const results = join(dir, 'imatrix-results');
    const reporting = { 'results-dir': results, 'baseline-store': 'none', comment: 'false' };
    const out = join(dir, 'imx.q40.m');
    const missing = await runAction('quantize', { model: f32, weights: 'q40', out, imatrix: 'spaces:imatrix/none.gguf', ...bucket, ...reporting });
    expect(missing.code).toBe(1);
    expect(missing.stdout + missing.stderr).toContain('imatrix/none.gguf');
    const run = await runAction('quantize', { model: f32, weights: 'q40', out, imatrix: 'spaces:imatrix/tiny.imatrix.gguf', 'output-type': 'q80', ...bucket, ...reporting });
    expect(run.code).toBe(0);
    expect((await readModelFile(out)).header.outputType).toBe(WeightType.Q80);
    const publish = await runAction('publish-to-spaces', { files: out, 'model-name': 'imx', quant: 'q40', ...bucket, 'results-dir': results });
    expect(publish.code).toBe(0);
    const text = async (key: string) => (await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body?.transformToString()) ?? '';
    expect(JSON.parse(await text('models/imx/q40/manifest.json'))).toMatchObject({ imatrix: 'tiny.imatrix.gguf', calibration: ['calibration.txt'] });
    expect(await text('models/imx/q40/README.md')).toContain('| Importance matrix | tiny.imatrix.gguf (calibration text: calibration.txt) |');
  });

  it('publish-to-spaces fails clearly on wrong credentials and on a missing bucket, without printing keys', async () => {
    const file = join(dir, 'tiny.q40.m');
    await writeFile(file, 'not really a model');
    const inputs = { files: file, 'model-name': 'tiny', quant: 'q40', endpoint: s3.endpoint };
    const visible = (r: ActionRun) => (r.stdout + r.stderr).replace(/^::add-mask::.*$/gm, '');
    const shown: string[] = [];
    const wrongKeys = await runAction(
      'publish-to-spaces',
      { ...inputs, bucket: BUCKET, 'access-key-id': 'AKIAWRONGWRONGWRONG', 'secret-access-key': 'wrong-secret-value-123' },
      { onLine: (l) => shown.push(l) },
    );
    expect(wrongKeys.code).toBe(1);
    // As GitHub's log shows it: the mask commands are in the output but not among the lines shown.
    expect(wrongKeys.stdout).toMatch(/^::add-mask::/m);
    expect(shown.filter((l) => l.startsWith('::add-mask::'))).toEqual([]);
    expect(shown.join('\n')).toContain('wrong credentials');
    expect(visible(wrongKeys)).toContain(`failed: wrong credentials for bucket ${BUCKET} at endpoint ${s3.endpoint}`);
    expect(visible(wrongKeys)).not.toMatch(/AKIAWRONGWRONGWRONG|wrong-secret-value-123/);
    const noBucket = await runAction('publish-to-spaces', { ...inputs, bucket: 'no-such-bucket', 'access-key-id': s3.accessKeyId, 'secret-access-key': s3.secretAccessKey });
    expect(noBucket.code).toBe(1);
    expect(visible(noBucket)).toContain(`bucket no-such-bucket does not exist at ${s3.endpoint}`);
    const noRegion = await runAction('publish-to-spaces', { files: file, 'model-name': 'tiny', quant: 'q40', bucket: BUCKET, 'access-key-id': 'a', 'secret-access-key': 'b' });
    expect(visible(noRegion)).toContain('::error::input `region`: give `region` (a Spaces region such as nyc3) or `endpoint`');
  });

  it('benchmark runs a model across glm-engine workers given in `workers`, and reports the traffic', async () => {
    const checkpoint = await writeFixture({ arch: 'glm4moe', outDir: join(dir, 'cluster-checkpoint'), size: 'tiny', seed: 5 });
    // f32: the tiny fixture's expert rows (32 values) are too short to split q40 blocks over two nodes.
    const model = join(dir, 'cluster.f32.m');
    await convert({ modelDir: checkpoint.outDir, outFile: model, weights: 'f32', tokenizerFile: null });
    const worker = await startWorker(['--secret', 'cluster-secret']);
    try {
      const run = await runAction('benchmark', { model, 'prompt-tokens': '8', 'gen-tokens': '8', threads: '1', repeat: '3', workers: worker.address, 'worker-secret': 'cluster-secret', 'baseline-store': 'none', comment: 'false', 'results-dir': join(dir, 'cluster-results') });
      expect(run.stderr).not.toContain('cluster-secret');
      expect(run.stdout).toBe('::add-mask::cluster-secret\n');
      expect(run.code).toBe(0);
      const results = JSON.parse(await readFile(run.outputs.results as string, 'utf8')) as { current: { nodes: number; decodeBytesPerToken: { sent: number; received: number }[] } };
      expect(results.current.nodes).toBe(2);
      expect(results.current.decodeBytesPerToken).toHaveLength(2);
      expect(results.current.decodeBytesPerToken[0]?.sent).toBeGreaterThan(0);
      const wrong = await runAction('benchmark', { model, repeat: '3', workers: worker.address, 'worker-secret': 'not-the-secret', 'baseline-store': 'none', comment: 'false' });
      expect(wrong.code).toBe(1);
      expect(wrong.stdout).toMatch(/::error::.*secret/);
    } finally {
      await stopWorker(worker);
    }
  });
});
