/** The engine an action uses: found in place, or keyed for the actions cache by its sources, OS and CPU. */
import { appendFile, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { engineCacheKey, engineSourceHash, ensureEngine } from '../actions/src/engine.js';
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
    expect(engineCacheKey(after)).toBe(`glm-dllama-engine-${process.platform}-${process.arch}-${after}`);
    // The manifest counts only through the node-addon-api version the engine compiles against.
    const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
    await writeFile(join(root, 'package.json'), JSON.stringify({ ...manifest, version: '9.9.9' }));
    expect(await engineSourceHash(root)).toBe(after);
    await writeFile(join(root, 'package.json'), JSON.stringify({ ...manifest, dependencies: { ...manifest.dependencies, 'node-addon-api': '1.0.0' } }));
    expect(await engineSourceHash(root)).not.toBe(after);
  });

  it('uses an engine built in place from the same sources', async () => {
    await mkdir(join(root, 'build', 'Release'), { recursive: true });
    await writeFile(join(root, 'build', 'Release', 'glm_engine.node'), 'not really an addon');
    expect(await ensureEngine(root)).toBe('present'); // built by npm ci: no stamp
    await writeFile(join(root, 'build', 'Release', 'engine-source.sha256'), `${await engineSourceHash(root)}\n`);
    expect(await ensureEngine(root)).toBe('present');
  });
});
