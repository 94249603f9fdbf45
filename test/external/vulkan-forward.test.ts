/**
 * The whole forward pass on a Vulkan device against the CPU engine, for every architecture and weight
 * type: log-probs at every position of a 24-token sequence (f32 and f16 within 1e-3; q80 and q40 with a
 * mean KL divergence <= 1e-4 and the same argmax at >= 99% of positions), plus greedy generation of 32
 * tokens identical to the CPU's at f32; and a root and a worker (two devices in one machine) both on
 * the GPU against one CPU node; a binding limit small enough to split every weight matrix and the
 * logits into several bindings (GLM_ENGINE_VULKAN_MAX_BINDING); and --cpu-experts (all, or the first MoE layer) against all on the GPU.
 * Runs on lavapipe in CI (GLM_ENGINE_VULKAN_ALLOW_CPU=1) or on a
 * GPU (scripts/gpu-check.sh); fails without a Vulkan device. Also speculative decoding (MTP drafts) with the main passes on the GPU.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { convert } from '../../converter/convert.js';
import type { FixtureArch } from '../../converter/fixture.js';
import { GenerationSession, LoadedModel } from '../../engine/index.js';
import { startWorker, stopWorker } from '../../engine/worker-process.js';
import { fixture, removeDir, tempDir } from '../helpers.js';

// lavapipe needs GLM_ENGINE_VULKAN_ALLOW_CPU=1 in the environment jest starts in (`npm run test:external`
// sets it): jest gives each test file a copy of process.env, so setting it here would not reach the addon.
const device = process.env.GLM_ENGINE_TEST_DEVICE ?? 'vulkan';
const tokens = Array.from({ length: 24 }, (_, i) => (i * 37 + 11) % 500);

function logProbs(logits: Float32Array, vocab: number): Float64Array[] {
  const rows: Float64Array[] = [];
  for (let t = 0; t < logits.length / vocab; t++) {
    const row = logits.subarray(t * vocab, (t + 1) * vocab);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const logZ = max + Math.log(sum);
    rows.push(Float64Array.from(row, (v) => v - logZ));
  }
  return rows;
}

const argmax = (row: Float64Array) => row.reduce((best, v, i) => (v > row[best]! ? i : best), 0);

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => removeDir(dir));

const cases: { arch: FixtureArch; qkNorm?: boolean }[] = [{ arch: 'glm' }, { arch: 'glm4' }, { arch: 'glm4moe', qkNorm: true }];

describe.each(cases)('$arch on the GPU against the CPU', ({ arch, qkNorm }) => {
  let checkpoint: string;
  beforeAll(async () => {
    checkpoint = await fixture(dir, { arch, ...(qkNorm ? { qkNorm } : {}) });
  });

  test.each(['f32', 'f16', 'q80', 'q40'] as const)('%s weights: log-probs at every position', async (weights) => {
    const file = join(dir, `${arch}.${weights}.m`);
    await convert({ modelDir: checkpoint, outFile: file, weights });
    const cpu = new LoadedModel(file, { device: 'cpu', threads: 2 });
    const gpu = new LoadedModel(file, { device, threads: 2 });
    try {
      const vocab = cpu.vocabSize;
      const expected = logProbs(cpu.evaluate(tokens, true), vocab);
      const actual = logProbs(gpu.evaluate(tokens, true), vocab);
      expect(actual).toHaveLength(tokens.length);
      if (weights === 'f32' || weights === 'f16') {
        let worst = 0;
        for (let t = 0; t < tokens.length; t++) for (let i = 0; i < vocab; i++) worst = Math.max(worst, Math.abs(actual[t]![i]! - expected[t]![i]!));
        expect(worst).toBeLessThanOrEqual(1e-3);
      } else {
        let kl = 0;
        let same = 0;
        for (let t = 0; t < tokens.length; t++) {
          for (let i = 0; i < vocab; i++) kl += Math.exp(expected[t]![i]!) * (expected[t]![i]! - actual[t]![i]!);
          if (argmax(actual[t]!) === argmax(expected[t]!)) same++;
        }
        expect(kl / tokens.length).toBeLessThanOrEqual(1e-4);
        expect(same / tokens.length).toBeGreaterThanOrEqual(0.99);
      }
      if (weights === 'f32') {
        // greedy decoding, one token per pass, through the GPU's KV cache
        const greedy = (model: LoadedModel) => {
          model.reset();
          let logits = model.evaluate(tokens.slice(0, 4));
          const out: number[] = [];
          for (let g = 0; g < 32; g++) {
            let best = 0;
            for (let i = 1; i < vocab; i++) if (logits[i]! > logits[best]!) best = i;
            out.push(best);
            logits = model.evaluate([best]);
          }
          return out;
        };
        expect(greedy(gpu)).toEqual(greedy(cpu));
      }
    } finally {
      cpu.close();
      gpu.close();
    }
  });
});

test('a root and a worker both on the GPU reproduce one CPU node', async () => {
  const checkpoint = await fixture(dir, { arch: 'glm4moe', seed: 2 });
  const file = join(dir, 'split.f32.m');
  await convert({ modelDir: checkpoint, outFile: file, weights: 'f32' });
  const worker = await startWorker(['--device', device], { GLM_ENGINE_VULKAN_ALLOW_CPU: '1' });
  try {
    const one = new LoadedModel(file, { device: 'cpu', threads: 1 });
    const split = new LoadedModel(file, { device, threads: 1, workers: [worker.address], sync: 'f32' });
    try {
      const vocab = one.vocabSize;
      const expected = logProbs(one.evaluate(tokens, true), vocab);
      const actual = logProbs(split.evaluate(tokens, true), vocab);
      let worst = 0;
      for (let t = 0; t < tokens.length; t++) for (let i = 0; i < vocab; i++) worst = Math.max(worst, Math.abs(actual[t]![i]! - expected[t]![i]!));
      expect(worst).toBeLessThanOrEqual(1e-3);
      expect(worker.log.join('\n')).toMatch(/running on Vulkan device \d+/);
    } finally {
      one.close();
      split.close();
    }
  } finally {
    stopWorker(worker);
  }
});

test.each(['f32', 'q40'] as const)('--cpu-experts all and 1 give the all-GPU log-probs (%s)', async (weights) => {
  const checkpoint = await fixture(dir, { arch: 'glm4moe', seed: 3 });
  const file = join(dir, `experts.${weights}.m`);
  await convert({ modelDir: checkpoint, outFile: file, weights });
  const gpu = new LoadedModel(file, { device, threads: 2 });
  const expected = logProbs(gpu.evaluate(tokens, true), gpu.vocabSize);
  gpu.close();
  for (const cpuExperts of ['all', 1] as const) {
    const split = new LoadedModel(file, { device, threads: 2, cpuExperts });
    try {
      const actual = logProbs(split.evaluate(tokens, true), split.vocabSize);
      let worst = 0;
      for (let t = 0; t < tokens.length; t++) for (let i = 0; i < actual[t]!.length; i++) worst = Math.max(worst, Math.abs(actual[t]![i]! - expected[t]![i]!));
      expect({ cpuExperts, worst: worst <= 1e-3 ? 'within 1e-3' : worst }).toEqual({ cpuExperts, worst: 'within 1e-3' });
    } finally {
      split.close();
    }
  }
});

test.each(['f32', 'q40'] as const)('weights and logits split over many bindings give the unsplit log-probs (%s)', async (weights) => {
  const checkpoint = await fixture(dir, { arch: 'glm4moe', seed: 4 });
  const file = join(dir, `bindings.${weights}.m`);
  await convert({ modelDir: checkpoint, outFile: file, weights });
  const engine = join(process.cwd(), 'build', 'Release', 'glm-engine');
  const logprobsOn = (device: string, env: NodeJS.ProcessEnv) => {
    const r = spawnSync(engine, ['logprobs', '--model', file, '--tokens', tokens.join(','), '--device', device, '--threads', '2'], {
      encoding: 'utf8',
      env: { ...process.env, GLM_ENGINE_VULKAN_ALLOW_CPU: '1', ...env },
      maxBuffer: 1 << 26,
    });
    if (r.status !== 0) throw new Error(`glm-engine logprobs --device ${device} failed: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { positions: { logprobs: number[] }[] }).positions.map((p) => p.logprobs);
  };
  const whole = logprobsOn(device, {});
  // 16 KiB: the f32 output head (576 rows) in 9 chunks, q40's in 2, the logits in passes of 7 tokens.
  // Splitting changes no arithmetic, so the log-probs stay the same to the last bit.
  const split = logprobsOn(device, { GLM_ENGINE_VULKAN_MAX_BINDING: '16384' });
  expect(split).toEqual(whole);
  const cpu = logprobsOn('cpu', {});
  let worst = 0;
  for (let t = 0; t < tokens.length; t++) for (let i = 0; i < cpu[t]!.length; i++) worst = Math.max(worst, Math.abs(split[t]![i]! - cpu[t]![i]!));
  // f32: summation order only; q40: one q80 activation may round the other way (the KL bound is the gate)
  expect(worst).toBeLessThanOrEqual(weights === 'f32' ? 1e-4 : 2e-2);
});

test('speculative decoding on the GPU: greedy with 3 MTP drafts equals the CPU without drafting', async () => {
  // The main passes run on the device; the hidden states come back for the MTP layer, which drafts on the CPU.
  const file = join(dir, 'mtp.f32.m');
  await convert({ modelDir: join('models', 'reference', 'glm45-kjv-tiny'), outFile: file, weights: 'f32', mtp: true, tokenizerFile: null });
  const prompt = [4060, 100, 200, 300, 400, 500, 600, 700, 800];
  const greedy = async (model: LoadedModel, draft: number) => {
    const ids: number[] = [];
    const run = new GenerationSession(model).generate(prompt, { temperature: 0, maxTokens: 40, draft });
    let step = await run.next();
    for (; !step.done; step = await run.next()) ids.push(step.value);
    return { ids, accepted: step.value.acceptedTokens };
  };
  const cpu = new LoadedModel(file, { device: 'cpu', threads: 2 });
  const gpu = new LoadedModel(file, { device, threads: 2, draft: 3 });
  try {
    const expected = await greedy(cpu, 0);
    const drafted = await greedy(gpu, 3);
    expect(drafted.ids).toEqual(expected.ids);
    expect(drafted.accepted).toBeGreaterThan(0);
  } finally {
    cpu.close();
    gpu.close();
  }
});

test.each(['glm', 'glm4', 'glm4moe'] as const)('%s: a batched step on the GPU gives each sequence its solo GPU logits, bit for bit (f32, q40)', async (arch) => {
  const checkpoint = await fixture(dir, { arch, seed: 4 });
  const prompts = [tokens.slice(0, 9), tokens.slice(5, 12), tokens.slice(2, 19)];
  for (const weights of ['f32', 'q40'] as const) {
    const file = join(dir, `batch-${arch}.${weights}.m`);
    await convert({ modelDir: checkpoint, outFile: file, weights });
    const solo = new LoadedModel(file, { device, threads: 2, contextLength: 64 });
    const vocab = solo.vocabSize;
    // Each sequence alone: its prompt in one pass, then one decode step.
    const expected = prompts.map((p) => {
      solo.reset();
      const rows = solo.evaluate(p, true);
      return [...Array.from({ length: p.length }, (_, t) => rows.slice(t * vocab, (t + 1) * vocab)), solo.evaluate([7]).slice()];
    });
    solo.close();
    const batched = new LoadedModel(file, { device, threads: 2, contextLength: 64, slots: 3 });
    try {
      // Sequence 0 in two chunks, 1 whole, 2 from a single token: runs of different slots in one pass.
      let out = await batched.evaluateSlots([
        { slot: 2, tokens: prompts[0]!.slice(0, 4), allLogits: true },
        { slot: 0, tokens: prompts[1]!, allLogits: true },
        { slot: 1, tokens: prompts[2]!, allLogits: true },
      ]);
      const got = prompts.map(() => [] as Float32Array[]);
      for (let t = 0; t < 4; t++) got[0]!.push(out[0]!.slice(t * vocab, (t + 1) * vocab));
      for (let t = 0; t < prompts[1]!.length; t++) got[1]!.push(out[1]!.slice(t * vocab, (t + 1) * vocab));
      for (let t = 0; t < prompts[2]!.length; t++) got[2]!.push(out[2]!.slice(t * vocab, (t + 1) * vocab));
      out = await batched.evaluateSlots([
        { slot: 1, tokens: [7] },
        { slot: 2, tokens: prompts[0]!.slice(4), allLogits: true },
        { slot: 0, tokens: [7] },
      ]);
      got[2]!.push(out[0]!.slice());
      for (let t = 0; t < prompts[0]!.length - 4; t++) got[0]!.push(out[1]!.slice(t * vocab, (t + 1) * vocab));
      got[1]!.push(out[2]!.slice());
      out = await batched.evaluateSlots([{ slot: 2, tokens: [7] }]);
      got[0]!.push(out[0]!.slice());
      const differing = got.map((rows, s) => rows.map((row, t) => (Buffer.compare(Buffer.from(row.buffer), Buffer.from(expected[s]![t]!.buffer)) === 0 ? -1 : t)).filter((t) => t >= 0));
      expect({ weights, differing }).toEqual({ weights, differing: [[], [], []] });
    } finally {
      batched.close();
    }
  }
});
