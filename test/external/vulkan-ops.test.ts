/**
 * The Vulkan kernels against the CPU kernels on random data (build/Release/glm-vulkan-ops, from
 * engine/test/vulkan-ops.cpp): matmuls at f32, f16, q80 and q40 for decode, prefill and a matrix split
 * over several bindings, RMSNorm, both RoPE conventions, attention over f32 and f16 caches with grouped
 * query heads, SiLU-GLU, bias add, and the MoE row gather / weighted scatter. Runs on Mesa's lavapipe
 * (Debian mesa-vulkan-drivers and libvulkan1, installed by .ci/run) or on a real GPU
 * (scripts/gpu-check.sh); fails, naming what is missing, without a Vulkan device.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

interface OpResult {
  op: string;
  shape: string;
  values: number;
  max_diff: number;
  max_ref: number;
}

// Largest difference allowed, relative to the largest reference value. The quantized matmuls see the
// same integer dot products as the CPU, so only float summation order and exp/sqrt rounding differ.
const tolerance: Record<string, number> = {
  matmul_f32: 2e-6,
  matmul_f16: 2e-6,
  matmul_q80: 2e-6,
  matmul_q40: 2e-6,
  rms_norm: 2e-6,
  rope_interleaved: 1e-6,
  rope_half_split: 1e-6,
  attention_f32: 2e-6,
  attention_f16: 2e-6,
  silu_mul: 1e-6,
  add_bias: 0,
  gather_scatter_add: 0,
};

describe('Vulkan kernels against the CPU kernels', () => {
  const device = process.env.GLM_ENGINE_TEST_DEVICE ?? 'vulkan';
  const run = spawnSync(join(process.cwd(), 'build', 'Release', 'glm-vulkan-ops'), ['--device', device], {
    encoding: 'utf8',
    env: { ...process.env, GLM_ENGINE_VULKAN_ALLOW_CPU: '1', LP_NUM_THREADS: process.env.LP_NUM_THREADS ?? '2' },
    timeout: 300_000,
  });
  const results: OpResult[] = (run.stdout ?? '')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as OpResult);

  test('runs on a Vulkan device', () => {
    if (run.status !== 0) {
      throw new Error(`glm-vulkan-ops failed (install mesa-vulkan-drivers and libvulkan1, or run on a GPU): ${run.stderr || run.error?.message}`);
    }
    expect(new Set(results.map((r) => r.op))).toEqual(new Set(Object.keys(tolerance)));
    expect(results.some((r) => /chunks=[2-9]/.test(r.shape))).toBe(true);
  });

  test.each(Object.keys(tolerance))('%s within tolerance of the CPU', (op) => {
    const cases = results.filter((r) => r.op === op);
    expect(cases.length).toBeGreaterThan(0);
    for (const r of cases) {
      expect(r.values).toBeGreaterThan(0);
      expect(r.max_ref).toBeGreaterThan(0.5);
      expect(`${r.shape}: ${r.max_diff / r.max_ref <= tolerance[op]! ? "ok" : r.max_diff / r.max_ref}`).toBe(`${r.shape}: ok`);
    }
  });
});
