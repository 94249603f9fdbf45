/**
 * The engine on a runner that has no build: compiled once with the runner's toolchain (a real node-gyp
 * build, about a minute here), saved to the actions cache, and restored instead of rebuilt next time.
 * The cache is a local service speaking @actions/cache's v1 protocol.
 * @needs a full node-gyp build (slow)
 */
import { createHash } from 'node:crypto';
import { cp, readFile, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { engineCacheKey, engineSourceHash, ensureEngine, toolchainId } from '../../actions/src/engine.js';
import { startCacheServer, type CacheServer } from '../cache-server.js';
import { removeDir, tempDir } from '../helpers.js';

let dir: string;
let cache: CacheServer;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  dir = await tempDir();
  for (const f of ['engine', 'binding.gyp', 'package.json', 'package-lock.json']) await cp(join(process.cwd(), f), join(dir, f), { recursive: true });
  // The action's own checkout would `npm ci --omit=dev` here; the test lends it the installed packages.
  await symlink(join(process.cwd(), 'node_modules'), join(dir, 'node_modules'));
  cache = await startCacheServer('runtime-token');
  for (const k of ['ACTIONS_CACHE_URL', 'ACTIONS_RUNTIME_TOKEN', 'ACTIONS_CACHE_SERVICE_V2', 'GITHUB_SERVER_URL', 'RUNNER_TEMP']) saved[k] = process.env[k];
  Object.assign(process.env, { ACTIONS_CACHE_URL: cache.url, ACTIONS_RUNTIME_TOKEN: 'runtime-token', GITHUB_SERVER_URL: 'https://github.com', RUNNER_TEMP: join(dir, 'runner-temp') });
  delete process.env.ACTIONS_CACHE_SERVICE_V2;
});

afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
  await cache.close();
  await removeDir(dir);
});

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

it('builds the engine where there is none, caches it, and restores it the next time', async () => {
  const addon = join(dir, 'build', 'Release', 'glm_engine.node');
  expect(await ensureEngine(dir)).toBe('built');
  const built = await sha256(addon);
  const key = engineCacheKey(await engineSourceHash(dir), await toolchainId());
  expect(cache.entries().map((e) => e.key)).toEqual([key]);
  expect(await readFile(join(dir, 'build', 'Release', 'engine-source.sha256'), 'utf8')).toBe(`${await engineSourceHash(dir)}\n`);

  await rm(join(dir, 'build'), { recursive: true });
  expect(await ensureEngine(dir)).toBe('cache');
  expect(await sha256(addon)).toBe(built);
  expect(await ensureEngine(dir)).toBe('present');
}, 600_000);
