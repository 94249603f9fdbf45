/**
 * The native encoders against numpy: distributed-llama's converter formulas evaluated by numpy
 * (test/reference/dllama_numpy.py), whose float32 arithmetic, float16 conversion and round-half-even
 * are not ours. Needs python3 with numpy (.ci/run installs Debian's python3-numpy where it is missing).
 * @needs python3-numpy
 */
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WeightType, encodedBytes } from '../../converter/dtypes.js';
import { native } from '../../engine/native.js';
import { removeDir, tempDir } from '../helpers.js';

const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0);

/** Blocks of 32: random data at several scales, then the edge cases of both formats. */
function testValues(): Float32Array {
  const blocks: number[][] = [];
  let state = 12345;
  const random = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  for (let b = 0; b < 4096; b++) {
    const scale = [1, 0.02, 3e-6, 1e-8, 100, 6e4][b % 6]!;
    blocks.push(Array.from({ length: 32 }, () => random() * scale));
  }
  const zeros = Array<number>(32).fill(0);
  const edge: number[][] = [
    zeros,
    zeros.map((_, i) => (i === 5 ? 4 : i === 9 ? -4 : 0)), // magnitude tie: the positive extreme wins
    zeros.map((_, i) => (i === 0 ? -8 : i === 31 ? 7.9 : i / 64)), // clip at 15
    zeros.map((_, i) => (i % 2 ? 1.5 : -0.5)), // q80 halves
    zeros.map((_, i) => (i - 16) * 2 ** -24), // subnormal scales
    zeros.map((_, i) => (i === 3 ? 65504 * 8 : 1)), // scale at the f16 maximum
    zeros.map((_, i) => (i === 3 ? 1e6 : -1)), // scale beyond f16: infinity
    zeros.map((_, i) => 127 * (i % 3 === 0 ? 1 : -1)),
  ];
  return new Float32Array([...blocks, ...edge].flat());
}

it('q40, q80 and f16 match numpy byte for byte on both encoder paths', async () => {
  if (!python) throw new Error('python3 with numpy is required for this test (apt-get install python3-numpy)');
  const dir = await tempDir();
  try {
    const values = testValues();
    const input = join(dir, 'input.f32');
    await writeFile(input, new Uint8Array(values.buffer));
    const run = spawnSync(python, [join(process.cwd(), 'test', 'reference', 'dllama_numpy.py'), input, join(dir, 'numpy')], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const n = values.length;
    const engine = native();
    for (const simd of [true, false]) {
      engine.setSimd(simd);
      for (const [type, name] of [[WeightType.Q40, 'q40'], [WeightType.Q80, 'q80'], [WeightType.F16, 'f16']] as const) {
        const ours = Buffer.alloc(encodedBytes(type, n));
        await engine.encode(new Uint8Array(values.buffer), 0, ours, type, n, 2);
        const theirs = await readFile(join(dir, `numpy.${name}`));
        const blockBytes = type === WeightType.F16 ? 64 : encodedBytes(type, 32);
        const differing: string[] = [];
        for (let at = 0; at < ours.length; at += blockBytes) {
          if (!ours.subarray(at, at + blockBytes).equals(theirs.subarray(at, at + blockBytes))) {
            differing.push(`${name} block ${at / blockBytes}: ours ${ours.subarray(at, at + 6).toString('hex')}… numpy ${theirs.subarray(at, at + 6).toString('hex')}…`);
          }
        }
        expect([simd, differing.slice(0, 5)]).toEqual([simd, []]);
        expect(theirs.length).toBe(ours.length);
      }
    }
  } finally {
    native().setSimd(true);
    await removeDir(dir);
  }
});
