import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { convertModel } from '../pipeline/convert-model.js';
import { HubError, IntegrityError, downloadModel, parseModelSource, sha256File, type DownloadOptions } from '../pipeline/hub.js';
import { InputError } from '../converter/errors.js';
import { execFile } from 'node:child_process';
import { fixture, removeDir, tempDir } from './helpers.js';
import { startHubServer, type HubServer } from './hub-server.js';

const REPO = 'fixture-org/GLM-Tiny';
const TOKEN = 'hf_testtoken0123456789';

describe('parseModelSource', () => {
  it('reads local paths and hf: sources, with main as the default revision', () => {
    expect(parseModelSource('./models/glm', 'model')).toEqual({ kind: 'local', path: './models/glm' });
    expect(parseModelSource('hf:zai-org/GLM-4-9B-0414', 'model')).toEqual({ kind: 'hub', repo: 'zai-org/GLM-4-9B-0414', revision: 'main' });
    expect(parseModelSource('hf:a_b/c.d@refs/pr/1', 'model')).toEqual({ kind: 'hub', repo: 'a_b/c.d', revision: 'refs/pr/1' });
  });

  it.each([
    ['', /model: is empty/],
    ['hf:', /model: "hf:" is not a hub model \(the repository must be owner\/name\)/],
    ['hf:glm', /the repository must be owner\/name/],
    ['hf:a/b/c', /the repository must be owner\/name/],
    ['hf:/name', /"" is not a valid owner or name/],
    ['hf:own er/name', /"own er" is not a valid owner or name/],
    ['hf:owner/-name', /"-name" is not a valid owner or name/],
    ['hf:owner/na--me', /"na--me" is not a valid owner or name/],
    ['hf:owner/name@', /"" is not a valid revision/],
    ['hf:owner/name@a..b', /"a..b" is not a valid revision/],
    ['hf:owner/name@rev@x', /"rev@x" is not a valid revision/],
  ])('rejects %j', (value, message) => {
    expect(() => parseModelSource(value, 'model')).toThrow(InputError);
    expect(() => parseModelSource(value, 'model')).toThrow(message);
  });
});

describe('convertModel inputs', () => {
  it('names the field of a bad model or weight type', async () => {
    await expect(convertModel({ model: '/no/such/checkpoint', weights: 'q40', outDir: '/tmp/unused' })).rejects.toThrow('model: /no/such/checkpoint is not a checkpoint directory');
    await expect(convertModel({ model: 'hf:owner', weights: 'q40', outDir: '/tmp/unused' })).rejects.toThrow('model: "hf:owner" is not a hub model');
    await expect(convertModel({ model: '.', weights: 'q5' as 'q40', outDir: '/tmp/unused' })).rejects.toThrow('weights: "q5" is not a weight type; expected one of f32, f16, q40, q80');
  });
});

describe('hub download (local hub server)', () => {
  let work: string;
  let checkpoint: string;
  let hub: HubServer;
  let logs: string[];
  /** The first weight shard, an LFS file. */
  let SHARD: string;

  beforeAll(async () => {
    work = await tempDir();
    checkpoint = await fixture(work, { arch: 'glm4', size: 'tiny' });
    hub = await startHubServer({ repo: REPO, dir: checkpoint, token: TOKEN });
    SHARD = [...hub.files.keys()].find((p) => p.endsWith('.safetensors'))!;
  });
  afterAll(async () => {
    await hub.close();
    await removeDir(work);
  });
  beforeEach(() => {
    hub.requests.length = 0;
    logs = [];
  });

  const options = (cacheDir: string, extra: Partial<DownloadOptions> = {}): DownloadOptions => ({
    source: { repo: REPO, revision: 'main' },
    cacheDir,
    token: TOKEN,
    hubUrl: hub.url,
    log: (line) => logs.push(line),
    ...extra,
  });

  it('downloads, converts, and gives the same .m and .t as converting the local folder; a second run downloads nothing', async () => {
    const cacheDir = join(work, 'cache-e2e');
    const progress: number[] = [];
    const fromHub = await convertModel({
      model: `hf:${REPO}`,
      weights: 'q40',
      outDir: join(work, 'out-hub'),
      token: TOKEN,
      cacheDir,
      hubUrl: hub.url,
      threads: 1,
      log: (line) => logs.push(line),
      onProgress: (p) => p.phase === 'download' && progress.push(p.done),
    });
    const local = await convertModel({ model: checkpoint, weights: 'q40', outDir: join(work, 'out-local'), threads: 1 });

    expect(fromHub.modelPath).toBe(join(work, 'out-hub', 'GLM-Tiny.q40.m'));
    expect(fromHub.tokenizerPath).toBe(join(work, 'out-hub', 'GLM-Tiny.q40.t'));
    expect(Buffer.compare(await readFile(fromHub.modelPath), await readFile(local.modelPath))).toBe(0);
    expect(Buffer.compare(await readFile(fromHub.tokenizerPath!), await readFile(local.tokenizerPath!))).toBe(0);
    expect(fromHub.sha256).toBe(local.sha256);
    expect(fromHub.sha256).toBe((await sha256File(fromHub.modelPath)).sha256);
    expect(fromHub.bytes).toBe((await stat(fromHub.modelPath)).size);
    expect(fromHub.params).toBe(local.params);
    expect(fromHub.params).toBeGreaterThan(0);
    expect(fromHub).toMatchObject({ architecture: local.architecture, sourceRepo: REPO, sourceRevision: 'main', sourceCommit: hub.commit });
    expect(fromHub.sourceDir).toBe(join(cacheDir, 'fixture-org--GLM-Tiny', hub.commit));

    // The snapshot holds the wanted files only (not README.md or .gitattributes), each identical to the source.
    const wanted = [...hub.files.keys()].filter((p) => p !== 'README.md' && p !== '.gitattributes').sort();
    expect((await readdir(fromHub.sourceDir)).sort()).toEqual(wanted);
    for (const path of wanted) expect(Buffer.compare(await readFile(join(fromHub.sourceDir, path)), hub.files.get(path)!.content)).toBe(0);
    expect(progress.at(-1)).toBe(wanted.reduce((n, p) => n + hub.files.get(p)!.content.length, 0));

    // Exactly these endpoints, all with the token; the tree came in several pages; the token is in no log line.
    const kinds = new Set(hub.requests.map((r) => r.path.replace(/\?.*/, '').replace(/^\/api\/models\/[^/]+\/[^/]+\/(revision|tree)\/.*/, '$1').replace(/^\/[^/]+\/[^/]+\/resolve\/.*/, 'resolve').replace(/^\/cdn\/.*/, 'cdn')));
    expect([...kinds].sort()).toEqual(['cdn', 'resolve', 'revision', 'tree']);
    expect(hub.requests.every((r) => r.authorized)).toBe(true);
    expect(hub.requests.filter((r) => r.path.includes('/tree/')).length).toBeGreaterThan(1);
    expect(hub.requests.some((r) => r.path.includes('README.md'))).toBe(false);
    expect(logs.join('\n')).not.toContain(TOKEN);

    hub.requests.length = 0;
    const again = await downloadModel(options(cacheDir));
    expect(again.downloadedBytes).toBe(0);
    expect(again.commit).toBe(hub.commit);
    expect(hub.transfers()).toEqual([]);
    expect(hub.requests.some((r) => r.path.includes('/resolve/'))).toBe(false);
    expect(again.files.find((f) => f.path === SHARD)?.sha256).toBe(hub.files.get(SHARD)!.lfsOid);
  });

  it('resumes a dropped transfer on the next run with a Range request from the partial length', async () => {
    const cacheDir = join(work, 'cache-resume');
    const cut = 5000;
    hub.dropAfter.set(SHARD, cut);
    const first = downloadModel(options(cacheDir, { retries: 0 }));
    await expect(first).rejects.toThrow(HubError);
    await expect(first).rejects.toThrow(`${REPO}@main (commit ${hub.commit}): ${SHARD}: download (after 1 tries) failed`);
    const partial = join(cacheDir, 'fixture-org--GLM-Tiny', hub.commit, `${SHARD}.incomplete`);
    expect((await stat(partial)).size).toBe(cut);

    hub.requests.length = 0;
    const second = await downloadModel(options(cacheDir));
    const shardTransfers = hub.transfers().filter((r) => r.path === `/cdn/${hub.files.get(SHARD)!.lfsOid}`);
    const size = hub.files.get(SHARD)!.content.length;
    expect(shardTransfers.map((r) => r.range)).toEqual([`bytes=${cut}-${size - 1}`]);
    expect(existsSync(partial)).toBe(false);
    expect(second.files.find((f) => f.path === SHARD)?.sha256).toBe(hub.files.get(SHARD)!.lfsOid);
    expect(Buffer.compare(await readFile(join(second.dir, SHARD)), hub.files.get(SHARD)!.content)).toBe(0);
    expect(second.downloadedBytes).toBeLessThan([...hub.files.values()].reduce((n, f) => n + f.content.length, 0));
  });

  it('resumes within the same call when the connection drops', async () => {
    const cacheDir = join(work, 'cache-retry');
    hub.dropAfter.set(SHARD, 3000);
    const result = await downloadModel(options(cacheDir));
    expect(hub.transfers().filter((r) => r.path.startsWith('/cdn/') && r.range?.startsWith('bytes=3000-'))).toHaveLength(1);
    expect(logs).toContain(`${SHARD}: resuming at byte 3000 of ${hub.files.get(SHARD)!.content.length}`);
    expect(Buffer.compare(await readFile(join(result.dir, SHARD)), hub.files.get(SHARD)!.content)).toBe(0);
  });

  it('starts a file over when the server answers a resumed request with the whole file', async () => {
    const cacheDir = join(work, 'cache-no-range');
    hub.dropAfter.set(SHARD, 4000);
    await expect(downloadModel(options(cacheDir, { retries: 0 }))).rejects.toThrow(HubError);
    hub.ignoreRange = true;
    hub.requests.length = 0;
    try {
      const result = await downloadModel(options(cacheDir));
      const size = hub.files.get(SHARD)!.content.length;
      expect(hub.transfers().filter((r) => r.path.startsWith('/cdn/') && r.path.endsWith(hub.files.get(SHARD)!.lfsOid!)).map((r) => r.range)).toEqual([`bytes=4000-${size - 1}`, undefined]);
      expect(logs.some((l) => l.startsWith(`${SHARD}: the server cannot resume (asked for bytes from 4000, got 200`) && l.endsWith('starting over'))).toBe(true);
      expect(Buffer.compare(await readFile(join(result.dir, SHARD)), hub.files.get(SHARD)!.content)).toBe(0);
    } finally {
      hub.ignoreRange = false;
    }
  });

  it('downloads again a cached file that no longer matches, and stops cleanly when cancelled', async () => {
    const cacheDir = join(work, 'cache-damaged');
    const controller = new AbortController();
    const cancelled = downloadModel(options(cacheDir, { signal: controller.signal, onProgress: (done) => done > 0 && controller.abort() }));
    await expect(cancelled).rejects.toThrow('download cancelled');
    const first = await downloadModel(options(cacheDir));
    const cached = join(first.dir, SHARD);
    const bytes = await readFile(cached);
    bytes[100] = bytes[100]! ^ 1;
    await writeFile(cached, bytes);
    hub.requests.length = 0;
    logs = [];
    const second = await downloadModel(options(cacheDir));
    expect(hub.transfers().map((r) => r.path)).toEqual([`/cdn/${hub.files.get(SHARD)!.lfsOid}`]);
    expect(second.downloadedBytes).toBe(bytes.length);
    expect(logs.filter((l) => l.endsWith(': cached'))).toHaveLength(second.files.length - 1);
    expect(logs).toContainEqual(expect.stringMatching(new RegExp(`^${SHARD}: the cached copy sha256 [0-9a-f]{64} does not match the hub's LFS oid [0-9a-f]{64}; downloading it again$`)));
    expect(Buffer.compare(await readFile(cached), hub.files.get(SHARD)!.content)).toBe(0);
  });

  it('deletes what the tree does not list from the commit folder, so an earlier job cannot plant files', async () => {
    const cacheDir = join(work, 'cache-planted');
    const first = await downloadModel(options(cacheDir));
    // shards and an index the conversion would read, nested files, a partial download, a link
    const planted = ['model-00009-of-00009.safetensors', 'pytorch_model.bin.index.json', 'nested/evil.bin', `${SHARD}.incomplete`];
    expect(planted.filter((p) => hub.files.has(p))).toEqual([]);
    for (const p of planted) {
      await mkdir(dirname(join(first.dir, p)), { recursive: true });
      await writeFile(join(first.dir, p), '{"weight_map": {}}');
    }
    await symlink(join(first.dir, SHARD), join(first.dir, 'linked.safetensors'));
    logs = [];
    const second = await downloadModel(options(cacheDir));
    expect(second.downloadedBytes).toBe(0);
    const left = (await readdir(second.dir, { recursive: true })).map(String).sort();
    expect(left).toEqual(second.files.map((f) => f.path).sort());
    for (const p of [...planted, 'linked.safetensors']) expect(logs).toContain(`${p.split('/')[0]}: not in the tree of this commit; deleted from the cache`);
  });

  it('deletes a corrupted LFS file and names repo, revision and file', async () => {
    const cacheDir = join(work, 'cache-corrupt');
    hub.corrupt.add(SHARD);
    try {
      const run = downloadModel(options(cacheDir));
      await expect(run).rejects.toThrow(IntegrityError);
      await expect(run).rejects.toThrow(
        new RegExp(`^${REPO}@main \\(commit ${hub.commit}\\): ${SHARD} sha256 [0-9a-f]{64} does not match the hub's LFS oid ${hub.files.get(SHARD)!.lfsOid}; the download was deleted$`),
      );
    } finally {
      hub.corrupt.clear();
    }
    const snapshot = join(cacheDir, 'fixture-org--GLM-Tiny', hub.commit);
    expect((await readdir(snapshot)).filter((f) => f.startsWith(SHARD))).toEqual([]);
  });

  it('explains a wrong token, a missing token, a gated repo and an unknown revision', async () => {
    const cacheDir = join(work, 'cache-errors');
    const wrong = 'hf_wrongtoken999';
    const attempt = (extra: Partial<DownloadOptions>) => downloadModel(options(cacheDir, extra));
    await expect(attempt({ token: wrong })).rejects.toMatchObject({ status: 401, message: expect.stringMatching(/^fixture-org\/GLM-Tiny@main: resolving the revision failed: the hub rejected the token: it is wrong or expired/) });
    await expect(attempt({ token: wrong })).rejects.not.toThrow(wrong);
    await expect(attempt({ token: undefined })).rejects.toThrow(/@main: resolving the revision failed: no such repository, or it is private or gated and it needs a token \(set HF_TOKEN \/ hf-token\)/);
    await expect(attempt({ token: 'not-a-token' })).rejects.toThrow("hf-token: a Hugging Face token starts with 'hf_'");
    await expect(attempt({ source: { repo: REPO, revision: 'no-such-branch' } })).rejects.toMatchObject({ status: 404, message: expect.stringMatching(/^fixture-org\/GLM-Tiny@no-such-branch: resolving the revision failed: no such revision \(branch, tag or commit\)/) });
    await expect(attempt({ source: { repo: 'fixture-org/other', revision: 'main' } })).rejects.toMatchObject({ status: 404, message: expect.stringContaining('no such repository, or it is private or gated and this token cannot see it') });
    hub.gated = true;
    try {
      await expect(attempt({})).rejects.toMatchObject({ status: 403, message: expect.stringContaining(`the repository is gated and this token has not been granted access: accept its terms at ${hub.url}/${REPO}`) });
    } finally {
      hub.gated = false;
    }
    expect(hub.transfers()).toEqual([]);
    expect(existsSync(cacheDir)).toBe(false);
  });
});

/** The built CLI, run without blocking this process (it talks to the hub server running here). */
function cli(env: Record<string, string | undefined>, ...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(process.cwd(), 'dist', 'cli', 'glm-dllama.js'), ...args], { env: { ...process.env, CI: 'true', ...env } }, (error, stdout, stderr) => {
      resolve({ status: error ? Number(error.code ?? -1) : 0, stdout, stderr });
    });
  });
}

describe('glm-dllama download / convert --model hf:', () => {
  let work: string;
  let hub: HubServer;

  beforeAll(async () => {
    work = await tempDir();
    hub = await startHubServer({ repo: REPO, dir: await fixture(work, { arch: 'glm4', size: 'tiny' }), token: TOKEN });
  });
  afterAll(async () => {
    await hub.close();
    await removeDir(work);
  });

  it('downloads with the token from HF_TOKEN, then converts from the cache without downloading again', async () => {
    const cacheDir = join(work, 'cache');
    const denied = await cli({ HF_TOKEN: undefined }, 'download', `hf:${REPO}`, '--cache-dir', cacheDir, '--hub-url', hub.url);
    expect(denied.status).toBe(1);
    expect(denied.stderr).toMatch(/^glm-dllama: error: fixture-org\/GLM-Tiny@main: resolving the revision failed: no such repository, or it is private or gated and it needs a token \(set HF_TOKEN/);

    const ok = await cli({ HF_TOKEN: TOKEN }, 'download', `hf:${REPO}@main`, '--cache-dir', cacheDir, '--hub-url', hub.url);
    expect(ok.stderr).not.toContain('error');
    expect(ok.status).toBe(0);
    const dir = join(cacheDir, 'fixture-org--GLM-Tiny', hub.commit);
    expect(ok.stdout).toContain(`hf:${REPO}@main (commit ${hub.commit}) -> ${dir}`);
    const shard = [...hub.files.values()].find((f) => f.lfsOid)!;
    expect(ok.stdout).toContain(`  ${shard.lfsOid}  ${shard.path} (${shard.content.length} bytes)`);
    expect(ok.stdout).toMatch(/^ {2}\d+ files, [\d.]+ MiB \(all downloaded\)$/m);
    // Not a terminal: progress lines every few seconds, and the 100% line once.
    expect(ok.stderr.match(/^download: 100\.0%/gm)).toHaveLength(1);
    const cached = await cli({ HF_TOKEN: TOKEN }, 'download', `hf:${REPO}@main`, '--cache-dir', cacheDir, '--hub-url', hub.url);
    expect(cached.stdout).toMatch(/^ {2}\d+ files, [\d.]+ MiB \(all from the cache\)$/m);

    hub.requests.length = 0;
    const out = join(work, 'm.q80.m');
    const converted = await cli({ HF_TOKEN: TOKEN }, 'convert', '--model', `hf:${REPO}`, '--cache-dir', cacheDir, '--hub-url', hub.url, '--out', out, '--weights', 'q80', '--threads', '1');
    expect(converted.stderr).not.toContain('error');
    expect(converted.status).toBe(0);
    expect(converted.stdout).toContain(`checkpoint hf:${REPO} -> ${out}`);
    expect(hub.transfers()).toEqual([]);
    const direct = await convertModel({ model: dir, weights: 'q80', outDir: join(work, 'direct'), threads: 1 });
    expect((await sha256File(out)).sha256).toBe(direct.sha256);
  });
});
