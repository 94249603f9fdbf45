/**
 * The TypeScript fuzz targets (fuzz/targets.ts) for a fixed number of mutated inputs with a fixed seed, so
 * that `npm test` replays the same inputs every run, and every saved finding in fuzz/regressions replayed
 * through its target's property. Longer, time-bounded runs: `npm run fuzz` (CI runs each target for a few
 * seconds in test:external).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fuzz } from '../fuzz/run.js';
import { FUZZ_TARGETS, fuzzTarget, scratch } from '../fuzz/targets.js';
import { removeDir, tempDir } from './helpers.js';

let work: string;
beforeAll(async () => {
  work = await tempDir('glm-dllama-fuzz-');
});
afterAll(async () => {
  await removeDir(work);
});

test.each(FUZZ_TARGETS.map((t) => t.name))('%s: 150 mutated inputs hold the property', async (name) => {
  const report = await fuzz(fuzzTarget(name), work, { runs: 150, seed: 20261203 });
  expect(report.finding).toBeUndefined();
  expect(report.runs).toBeGreaterThanOrEqual(150);
});

test('the saved findings replay clean', async () => {
  const dir = join('fuzz', 'regressions');
  // native-* inputs are libFuzzer's, replayed by test/external/fuzz-native.test.ts.
  const files = (await readdir(dir)).filter((f) => !f.startsWith('native-'));
  expect(files.length).toBeGreaterThan(0);
  for (const file of files) {
    const target = fuzzTarget(file.slice(0, file.indexOf('--')));
    const prepared = await target.prepare(await scratch(work, target));
    try {
      await prepared.check(prepared.decode(await readFile(join(dir, file))));
    } finally {
      await prepared.close?.();
    }
  }
});
