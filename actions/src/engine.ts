/**
 * The native engine on the runner. An action's checkout holds the engine's sources but no build: the
 * addon is restored from the actions cache (keyed by the engine's source hash, the OS release, the C++
 * compiler and the CPU architecture) or
 * built once with the runner's C++ toolchain and cached for the next job.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import * as cache from '@actions/cache';
import * as core from '@actions/core';
import { exec, getExecOutput } from '@actions/exec';
import { packageRoot } from '../../engine/native.js';

const BUILD_DIR = join('build', 'Release');
const STAMP = join(BUILD_DIR, 'engine-source.sha256');

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(entries.map((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : Promise.resolve([join(dir, e.name)]))));
  return nested.flat();
}

/** sha256 over the engine's sources, the build file and the node-addon-api version it compiles against. */
export async function engineSourceHash(root: string): Promise<string> {
  const files = [...(await filesUnder(join(root, 'engine', 'src'))), join(root, 'binding.gyp')].map((f) => relative(root, f).split('\\').join('/')).sort();
  const hash = createHash('sha256');
  for (const f of files) {
    hash.update(`${f}\0`);
    hash.update(await readFile(join(root, f)));
    hash.update('\0');
  }
  const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  hash.update(`node-addon-api@${manifest.dependencies?.['node-addon-api'] ?? ''}`);
  return hash.digest('hex');
}

/**
 * The OS release (os-release's ID and VERSION_ID) and the C++ compiler (the first line of `$CXX --version`,
 * g++ by default, as node-gyp uses) as a cache-key fragment. Self-hosted runners on Debian 12 and Ubuntu
 * 22.04 share the cache when the action sits at the same path, and an addon built against one glibc or
 * libstdc++ does not load on an older one.
 */
export async function toolchainId(osRelease = '/etc/os-release'): Promise<string> {
  let os: string = process.platform;
  if (existsSync(osRelease)) {
    const text = await readFile(osRelease, 'utf8');
    const field = (name: string) => new RegExp(`^${name}=("?)([^"\n]*)\\1$`, 'm').exec(text)?.[2] ?? '';
    os = `${field('ID')}${field('VERSION_ID')}` || os;
  }
  const cxx = process.env.CXX || 'g++';
  const version = await getExecOutput(cxx, ['--version'], { silent: true, ignoreReturnCode: true }).catch(() => undefined);
  const compiler = version && version.exitCode === 0 ? version.stdout.split('\n')[0]! : `${cxx}-missing`;
  return `${os}-${compiler}`.replace(/[^A-Za-z0-9.+-]+/g, '_');
}

export function engineCacheKey(sourceHash: string, toolchain: string): string {
  return `glm-dllama-engine-${process.platform}-${process.arch}-${toolchain}-${sourceHash}`;
}

/** How the engine was made available: already built here, restored from the cache, or built now. */
export type EngineSource = 'present' | 'cache' | 'built';

export async function ensureEngine(root = packageRoot()): Promise<EngineSource> {
  const hash = await engineSourceHash(root);
  const addon = join(root, BUILD_DIR, 'glm_engine.node');
  if (existsSync(addon)) {
    const stamp = existsSync(join(root, STAMP)) ? (await readFile(join(root, STAMP), 'utf8')).trim() : undefined;
    // No stamp: built by `npm ci` in this checkout (a development tree), which builds from these sources.
    if (stamp === undefined || stamp === hash) return 'present';
    core.info(`the engine in ${BUILD_DIR} was built from other sources: rebuilding`);
  }
  const key = engineCacheKey(hash, await toolchainId());
  const cacheAvailable = cache.isFeatureAvailable();
  // The cache version hashes the path, so runners share the entry when the action sits at the same place.
  const buildDir = join(root, BUILD_DIR);
  if (cacheAvailable && (await cache.restoreCache([buildDir], key)) && existsSync(addon)) {
    core.info(`engine restored from the actions cache (${key})`);
    return 'cache';
  }
  await core.group('building the native engine', async () => {
    if (!existsSync(join(root, 'node_modules', 'node-addon-api'))) {
      await exec('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: root });
    }
    await exec('npm', ['run', 'build:native'], { cwd: root });
  });
  await writeFile(join(root, STAMP), `${hash}\n`);
  if (cacheAvailable) {
    await cache.saveCache([buildDir], key);
    core.info(`engine saved to the actions cache (${key})`);
  }
  return 'built';
}
