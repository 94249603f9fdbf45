/** The engine an action uses: found in place, or keyed for the actions cache by its sources, OS release, compiler and CPU. */
import { appendFile, chmod, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { engineCacheKey, engineSourceHash, ensureEngine, toolchainId } from '../actions/src/engine.js';
import { removeDir, tempDir } from './helpers.js';

describe('engine for actions', () => {
  let root: string;
  beforeAll(async () => {
    root = await tempDir();
    await cp(join(process.cwd(), 'engine', 'src'), join(root, 'engine', 'src'), { recursive: true });
    await cp(join(process.cwd(), 'binding.gyp'), join(root, 'binding.gyp'));
    await cp(join(process.cwd(), 'package.json'), join(root, 'package.json'));
  });
  afterAll(() => removeDir(root));

  it('keys the cache by every engine source, the OS and the CPU architecture', async () => {
    const before = await engineSourceHash(root);
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    expect(await engineSourceHash(root)).toBe(before);
    await appendFile(join(root, 'engine', 'src', 'graph', 'glm.cpp'), '\n// changed\n');
    const after = await engineSourceHash(root);
    expect(after).not.toBe(before);
    expect(engineCacheKey(after, 'debian12-g++_12.2.0')).toBe(`glm-dllama-engine-${process.platform}-${process.arch}-debian12-g++_12.2.0-${after}`);
    // The manifest counts only through the node-addon-api version the engine compiles against.
    const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
    await writeFile(join(root, 'package.json'), JSON.stringify({ ...manifest, version: '9.9.9' }));
    expect(await engineSourceHash(root)).toBe(after);
    await writeFile(join(root, 'package.json'), JSON.stringify({ ...manifest, dependencies: { ...manifest.dependencies, 'node-addon-api': '1.0.0' } }));
    expect(await engineSourceHash(root)).not.toBe(after);
  });

  it("keys the cache by the OS release and the compiler's version", async () => {
    const osRelease = (id: string, version: string) => `PRETTY_NAME="x"\nNAME="x"\nID=${id}\nVERSION_ID="${version}"\nID_LIKE=debian\n`;
    await writeFile(join(root, 'debian'), osRelease('debian', '12'));
    await writeFile(join(root, 'ubuntu'), osRelease('ubuntu', '22.04'));
    const compiler = join(root, 'fake-g++');
    await writeFile(compiler, '#!/bin/sh\necho "g++ (Debian 12.2.0-14) 12.2.0"\necho "Copyright"\n');
    await chmod(compiler, 0o755);
    const saved = process.env.CXX;
    try {
      process.env.CXX = compiler;
      expect(await toolchainId(join(root, 'debian'))).toBe('debian12-g++_Debian_12.2.0-14_12.2.0');
      expect(await toolchainId(join(root, 'ubuntu'))).toBe('ubuntu22.04-g++_Debian_12.2.0-14_12.2.0');
      await writeFile(compiler, '#!/bin/sh\necho "g++ (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0"\n');
      expect(await toolchainId(join(root, 'ubuntu'))).toBe('ubuntu22.04-g++_Ubuntu_11.4.0-1ubuntu1_22.04_11.4.0');
      process.env.CXX = join(root, 'no-such-compiler');
      expect(await toolchainId(join(root, 'missing'))).toBe(`${process.platform}-${join(root, 'no-such-compiler').replace(/[^A-Za-z0-9.+-]+/g, '_')}-missing`);
    } finally {
      if (saved === undefined) delete process.env.CXX;
      else process.env.CXX = saved;
    }
  });

  it('uses an engine built in place from the same sources', async () => {
    await mkdir(join(root, 'build', 'Release'), { recursive: true });
    await writeFile(join(root, 'build', 'Release', 'glm_engine.node'), 'not really an addon');
    expect(await ensureEngine(root)).toBe('present'); // built by npm ci: no stamp
    await writeFile(join(root, 'build', 'Release', 'engine-source.sha256'), `${await engineSourceHash(root)}\n`);
    expect(await ensureEngine(root)).toBe('present');
  });
});
