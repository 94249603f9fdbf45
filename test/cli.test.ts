/** The commands as a new user runs them: the acceptance sequence and the quick-start main job. */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { cli, filesIn, removeDir, tempDir } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => removeDir(dir));

it('fixture, convert and inspect work end to end', async () => {
  const m = join(dir, 'm');
  const fixture = cli('fixture', '--arch', 'glm4moe', '--out', m);
  expect(fixture.status).toBe(0);
  expect(fixture.stdout).toMatch(/wrote tiny glm4moe checkpoint to .*: \d+ tensors/);
  expect(await filesIn(m)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json']));

  const out = join(dir, 'm.q40.m');
  const convert = cli('convert', '--model', m, '--out', out, '--weights', 'q40');
  expect(convert.stderr).toMatch(/convert: 100\.0% .* tensor \d+\/\d+ output\.weight/); // plain progress lines outside a terminal
  expect(convert.status).toBe(0);
  expect(convert.stdout).toMatch(/converted glm4moe checkpoint .* -> .*m\.q40\.m\n\s+weights\s+q40/);

  const inspect = cli('inspect', out);
  expect(inspect.status).toBe(0);
  expect(inspect.stdout).toMatch(/glm4moe, q40 weights/);
  expect(inspect.stdout).toMatch(/blk\.1\.ffn_gate\.7\.weight\s+q40\s+\[32, 64\]/);
  expect(inspect.stdout).toMatch(/header \+ tensors = \d+ bytes = file size/);
});

it('writes the tokenizer beside the model unless told otherwise', async () => {
  const m = join(dir, 'tok');
  expect(cli('fixture', '--arch', 'glm4', '--out', m).status).toBe(0);
  const out = join(dir, 'tok-out');
  expect(cli('convert', '--model', m, '--out', join(out, 'a.q80.m'), '--weights', 'q80').stdout).toMatch(/tokenizer\s+.*a\.q80\.t \(526 ids, stop ids 512, 519, 521, chat template\)/);
  expect(cli('convert', '--model', m, '--out', join(out, 'b.m'), '--tokenizer', join(out, 'custom.t')).status).toBe(0);
  expect(cli('convert', '--model', m, '--out', join(out, 'c.m'), '--no-tokenizer').status).toBe(0);
  expect(await filesIn(out)).toEqual(['a.q80.m', 'a.q80.t', 'b.m', 'c.m', 'custom.t']);
  const tokens = JSON.parse(cli('tokenize', '--tokenizer', join(out, 'custom.t'), '--json', 'Hello').stdout);
  expect(tokens.ids.length).toBeGreaterThan(0);
});

it('the main job runs the pipeline through the bundled actions and prints the pull-request report', async () => {
  const keep = join(dir, 'demo');
  const demo = cli('demo', '--out-dir', keep);
  expect(demo.stderr).toBe('');
  expect(demo.status).toBe(0);
  for (const run of ['default branch', 'pull request']) {
    for (const step of ['convert-glm', 'quantize', 'verify-perplexity', 'benchmark']) expect(demo.stdout).toContain(`▶ ${run}: ${step}`);
  }
  expect(demo.stdout).toContain('▶ pull request: publish-to-spaces');
  expect(demo.stdout).toMatch(/^### ✅ glm-dllama: model gate$/m);
  expect(demo.stdout).toMatch(/^\| glm45-kjv-tiny\.q40\.m \| perplexity \| [\d.]+ \| [\d.]+ \| 0\.00% \| ✅/m);
  expect(demo.stdout).toMatch(/^\| glm45-kjv-tiny\.q40\.m \| decode tok\/s \| [\d.]+ \| [\d.]+ \|/m);
  // The release sits in the local bucket's folder, byte for byte the model the pull request built.
  const published = join(keep, 's3', 'glm-models', 'models', 'glm45-kjv-tiny', 'q40');
  expect(await readFile(join(published, 'model.m._S3rver_object'))).toEqual(await readFile(join(keep, 'pr', 'models', 'glm45-kjv-tiny.q40.m')));
  expect(demo.stdout).toContain('/glm-models/models/glm45-kjv-tiny/q40/manifest.json');
  // The shipped model was trained on the King James Bible: its greedy continuation is words of that text.
  const sample = /The published q40 model, greedy:\n\n {2}(And it came to pass[^\n]*)/.exec(demo.stdout)?.[1] ?? '';
  expect(sample.split(/\s+/).length).toBeGreaterThan(8);
  expect(sample).toMatch(/\b(the|and|of|unto)\b/);
});

it('rejects bad arguments with usage help and a non-zero exit', () => {
  const bad = cli('convert', '--model', dir, '--out', join(dir, 'x.m'), '--weights', 'q41');
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toMatch(/argument 'q41' is invalid\. Allowed choices are f32, f16, q40, q80/);
  const missing = cli('fixture', '--out', join(dir, 'y'));
  expect(missing.status).not.toBe(0);
  expect(missing.stderr).toMatch(/required option '--arch <arch>' not specified/);
  expect(cli('--help').stdout).toMatch(/Commands:[\s\S]*fixture[\s\S]*convert[\s\S]*inspect[\s\S]*demo/);
});
