/**
 * The .m header bounds: one table (HEADER_KEYS) feeds the TypeScript reader and, through the generated
 * engine/src/model-limits.h, the native loader; one corpus of crafted files goes through both, which
 * must give the same verdict on every file. The review's crafted headers (wrapping products, millions
 * of layers) are refused at once with a message naming the field.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { HEADER_KEYS } from '../converter/model-header.js';
import { readModelFile } from '../converter/model-file.js';
import { ENGINE } from '../engine/worker-process.js';
import { MODEL_LIMITS_HEADER, modelLimitsHeader } from '../scripts/model-limits.js';
import { cli, fixture, removeDir, tempDir } from './helpers.js';

let dir: string;
const models = new Map<string, Buffer>();

beforeAll(async () => {
  dir = await tempDir();
  for (const [arch, weights] of [['glm4', 'f32'], ['glm4moe', 'q40']] as const) {
    const out = join(dir, `${arch}.${weights}.m`);
    await convert({ modelDir: await fixture(dir, { arch }), outFile: out, weights });
    models.set(arch, await readFile(out));
  }
  // A file with the optional MTP section (header key 300): both readers must walk it alike too.
  const mtp = join(dir, 'glm4moe-mtp.q40.m');
  await convert({ modelDir: await fixture(dir, { arch: 'glm4moe', seed: 3 }), outFile: mtp, weights: 'q40', mtp: true });
  models.set('glm4moe-mtp', await readFile(mtp));
});
afterAll(() => removeDir(dir));

it('engine/src/model-limits.h is what `npm run gen:model-limits` makes of HEADER_KEYS', () => {
  expect(readFileSync(MODEL_LIMITS_HEADER, 'utf8')).toBe(modelLimitsHeader());
});

/** A copy of `model` with header key `key` set to `value` (appended if absent). */
function withKey(model: Buffer, key: number, value: number): Buffer {
  const out = Buffer.from(model);
  const size = out.readInt32LE(4);
  for (let at = 8; at < size; at += 8) {
    if (out.readInt32LE(at) === key) {
      out.writeInt32LE(value | 0, at + 4);
      return out;
    }
  }
  const pair = Buffer.alloc(8);
  pair.writeInt32LE(key, 0);
  pair.writeInt32LE(value | 0, 4);
  const grown = Buffer.concat([out.subarray(0, size), pair, out.subarray(size)]);
  grown.writeInt32LE(size + 8, 4);
  return grown;
}

interface Verdicts {
  ts: string | null;
  native: string | null;
}

async function verdicts(name: string, bytes: Buffer): Promise<Verdicts> {
  const path = join(dir, `${name}.m`);
  await writeFile(path, bytes);
  const ts = await readModelFile(path).then(
    () => null,
    (e: Error) => e.message,
  );
  const run = spawnSync(ENGINE, ['info', '--model', path], { encoding: 'utf8' });
  expect(run.signal).toBeNull();
  const native = run.status === 0 ? null : run.stderr.trim();
  if (run.status !== 0) expect(run.status).toBe(1);
  return { ts, native };
}

it('both readers give the same verdict on every file of the corpus', async () => {
  const corpus: [string, Buffer][] = [];
  for (const [arch, model] of models) {
    corpus.push([`${arch}-as-is`, model], [`${arch}-truncated`, model.subarray(0, model.length - 1)], [`${arch}-trailing`, Buffer.concat([model, Buffer.alloc(1)])]);
    for (const key of HEADER_KEYS) {
      // Each bound and its neighbour outside, the extremes, and for floats zero and NaN.
      const values = new Set(key.range ? [key.range[0] - 1, key.range[0], key.range[1], key.range[1] + 1, -1, 0x7fffffff] : [0, 0x7fc00000, -0x40800000]);
      for (const v of values) corpus.push([`${arch}-key${key.id}=${v}`, withKey(model, key.id, v)]);
    }
    corpus.push([`${arch}-unknown-key`, withKey(model, 999, 1)], [`${arch}-dllama-key`, withKey(model, 12, 10000)]);
  }
  const accepted: string[] = [];
  for (const [name, bytes] of corpus) {
    const v = await verdicts(name, bytes);
    expect({ name, ts: v.ts !== null, native: v.native !== null }).toEqual({ name, ts: v.native !== null, native: v.ts !== null });
    if (v.ts === null) accepted.push(name);
  }
  // The corpus holds files both accept, not only refusals.
  expect(accepted).toEqual(expect.arrayContaining(['glm4-as-is', 'glm4moe-as-is', 'glm4-key10=16777216', 'glm4moe-key264=1', 'glm4-key258=2']));
  expect(accepted.length).toBeLessThan(corpus.length / 2);
});

it.each([
  // 268435460 x 16 wraps in 32 bits to the fixture's q_dim of 64, so the tensor table is unchanged.
  ['n_heads 2^28 + 4', [[5, 268435460]], /header field n_heads = 268435460 is outside 1\.\.4096/],
  ['a negative q_dim (65537 heads of 65535)', [[5, 65537], [19, 65535]], /header field n_heads = 65537 is outside/],
  ['20,000,000 layers', [[4, 20_000_000]], /header field n_layers = 20000000 is outside 1\.\.1024/],
  ['0x7fffffff layers', [[4, 0x7fffffff]], /header field n_layers = 2147483647 is outside/],
  ['a vocabulary of 2^24 + 1', [[9, (1 << 24) + 1]], /header field vocab_size = 16777217 is outside 1\.\.16777216/],
])('both readers refuse %s, naming the field', async (name, pairs, message) => {
  let bytes = models.get('glm4')!;
  for (const [key, value] of pairs as [number, number][]) bytes = withKey(bytes, key, value);
  const v = await verdicts(name.replace(/\W+/g, '-'), bytes);
  expect(v.ts).toMatch(message);
  expect(v.native).toMatch(message);
});

it('`inspect` refuses 1024 layers in a small file from the size, before listing a tensor', async () => {
  // In range, but the file holds 2 layers: the size is computed, not walked.
  const path = join(dir, 'many-layers.m');
  await writeFile(path, withKey(models.get('glm4moe')!, 4, 1024));
  const r = cli('inspect', path);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/many-layers\.m: the header describes \d+ bytes \(q40 glm4moe, 1024 layers\) but the file has \d+; it is truncated/);
});
