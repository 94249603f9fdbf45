/**
 * The engine against two implementations nobody here wrote the engine of: llama.cpp (node-llama-cpp,
 * on the GGUF export of the same checkpoint, so both read identical weight bytes) and the float64
 * reference forward pass written from the architecture notes. 24 tokens, so that a wrong RoPE
 * convention shows (position 0 alone cannot). With q80/q40 weights both engines quantize activations to
 * q80 blocks the same way, so they stay within float32 noise; the float64 reference is compared at f32.
 */
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { convertToGguf } from '../converter/gguf.js';
import type { FixtureOptions } from '../converter/fixture.js';
import { LoadedModel, logprobs } from '../engine/index.js';
import { fixture, removeDir, tempDir } from './helpers.js';
import { finiteLogprobsMaxDiff, llamaCppLogprobs } from './llama-cpp.js';
import { referenceLogprobs } from './reference-forward.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => removeDir(dir));

const tokens = Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 500);

function engineLogprobs(path: string): number[][] {
  return logprobs(new LoadedModel(path, { threads: 2 }), tokens).positions.map((p) => p.logprobs!);
}

describe.each([['glm4moe'], ['glm4'], ['chatglm'], ['glm']] as const)('%s', (arch) => {
  let checkpoint: string;
  beforeAll(async () => {
    checkpoint = await fixture(dir, { arch });
  });

  it.each([['f32'], ['q80'], ['q40']] as const)('matches llama.cpp at every position with %s weights', async (weights) => {
    const m = join(dir, `${arch}.${weights}.m`);
    const g = join(dir, `${arch}.${weights}.gguf`);
    await convert({ modelDir: checkpoint, outFile: m, weights });
    await convertToGguf({ modelDir: checkpoint, outFile: g, weights });
    const ours = engineLogprobs(m);
    const theirs = await llamaCppLogprobs(g, tokens);
    const perPosition = ours.map((row, i) => finiteLogprobsMaxDiff([row], [theirs[i]!]).maxDiff);
    expect(perPosition.filter((d) => !(d < 1e-4))).toEqual([]);
    expect(perPosition).toHaveLength(24);
  });
});

it.each([
  ['glm4moe', { arch: 'glm4moe' }],
  ['glm4moe with q/k norm', { arch: 'glm4moe', qkNorm: true }],
  ['glm4 without attention biases', { arch: 'glm4', attentionBias: false }],
  ['chatglm', { arch: 'chatglm' }],
  ['glm, seed 9', { arch: 'glm', seed: 9 }],
] as [string, Omit<FixtureOptions, 'outDir'>][])('matches the float64 reference at every position: %s', async (name, options) => {
  const checkpoint = await fixture(dir, options);
  const m = join(dir, `${name.replace(/\W+/g, '-')}.ref.m`);
  await convert({ modelDir: checkpoint, outFile: m, weights: 'f32' });
  const diff = finiteLogprobsMaxDiff(engineLogprobs(m), await referenceLogprobs(m, tokens));
  expect(diff.maxDiff).toBeLessThan(1e-4);
  expect(diff.compared).toBeGreaterThan(24 * 500);
});
