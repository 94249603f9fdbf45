/**
 * Golden vectors for the native encoders, derived by hand from distributed-llama's rules (not from our
 * code): fp16 rounding to nearest even including subnormals, q40 (delta = signed extreme / -8, q =
 * trunc(x/delta + 8.5) clipped to 0..15, element j low nibble / j+16 high nibble), q80 (absmax/127,
 * rounding half to even).
 */
import { native } from '../engine/native.js';
import { WeightType, encodedBytes } from '../converter/dtypes.js';

const engine = native();

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

async function encode(values: number[], type: WeightType): Promise<Buffer> {
  const out = Buffer.alloc(encodedBytes(type, values.length));
  await engine.encode(f32Bytes(values), 0, out, type, values.length, 1);
  return out;
}

function block(fill: (i: number) => number): number[] {
  return Array.from({ length: 32 }, (_, i) => fill(i));
}

/** Packs 32 expected q40 codes into the 16 nibble bytes. */
function nibbles(codes: number[]): number[] {
  return Array.from({ length: 16 }, (_, j) => codes[j]! | (codes[j + 16]! << 4));
}

describe('fp16 rounding', () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.1, 0x2e66],
    [1 / 3, 0x3555],
    [65504, 0x7bff],
    [65519, 0x7bff],
    [65520, 0x7c00], // halfway to 65536 ties to even: overflow to infinity
    [Infinity, 0x7c00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // half a unit ties to even zero
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], // 1.5 units ties to even 2
    [5 * 2 ** -25, 0x0002], // 2.5 units ties to even 2
    [2 ** -14 - 2 ** -25, 0x0400], // 1023.5 units ties to even 1024, the smallest normal
    [1 + 2 ** -11, 0x3c00], // halfway between 1 and 1+2^-10 ties to even
    [1 + 3 * 2 ** -11, 0x3c02],
  ];
  it.each(cases)('%p -> 0x%s', (value, bits) => {
    expect(engine.f32ToF16(value)).toBe(bits);
  });

  it('maps NaN to a quiet NaN and decodes every half exactly', () => {
    expect(engine.f32ToF16(NaN) & 0x7e00).toBe(0x7e00);
    expect(engine.f16ToF32(0x0001)).toBe(2 ** -24);
    expect(engine.f16ToF32(0x7bff)).toBe(65504);
    expect(engine.f16ToF32(0xc000)).toBe(-2);
    for (let h = 0; h < 0x7c00; h += 7) expect(engine.f32ToF16(engine.f16ToF32(h))).toBe(h);
  });
});

describe('q40 blocks', () => {
  it('encodes an all-zero block as scale -0 (0 / -8 in IEEE) and every code 8', async () => {
    const out = await encode(block(() => 0), WeightType.Q40);
    expect([...out]).toEqual([0x00, 0x80, ...Array(16).fill(0x88)]);
  });

  it('maps the negative extreme to 0, clips the top at 15, truncates x/delta + 8.5', async () => {
    // extreme -8 -> delta 1; 0.25 -> 8.75 -> 8; 0.5 -> 9; -0.5 -> 8; -0.51 -> 7.99 -> 7; 7.9 -> 16.4 -> 15
    const values = block(() => 0);
    Object.assign(values, { 0: -8, 1: 7, 2: 0.25, 3: 0.5, 16: -0.5, 17: -0.51, 18: 7.9, 31: 3 });
    const codes = block(() => 8);
    Object.assign(codes, { 0: 0, 1: 15, 2: 8, 3: 9, 16: 8, 17: 7, 18: 15, 31: 11 });
    const out = await encode(values, WeightType.Q40);
    expect([...out]).toEqual([0x00, 0x3c, ...nibbles(codes)]);
  });

  it('breaks a magnitude tie toward the positive extreme (negative scale)', async () => {
    // max 4, min -4: extreme +4 -> delta -0.5 (0xb800); 4 -> 0.5 -> 0; -4 -> 16.5 -> 15; 1 -> 6.5 -> 6
    const values = block(() => 0);
    Object.assign(values, { 0: 4, 1: -4, 20: 1 });
    const codes = block(() => 8);
    Object.assign(codes, { 0: 0, 1: 15, 20: 6 });
    const out = await encode(values, WeightType.Q40);
    expect([...out]).toEqual([0x00, 0xb8, ...nibbles(codes)]);
  });

  it('stores a subnormal fp16 scale exactly and quantizes with the unrounded delta', async () => {
    // extreme -3*2^-21 -> delta 3*2^-24 = three subnormal units (0x0003); 3*2^-22 -> 4 + 8.5 -> 12
    const unit = 2 ** -24;
    const values = block(() => 0);
    Object.assign(values, { 0: -24 * unit, 5: 12 * unit });
    const codes = block(() => 8);
    Object.assign(codes, { 0: 0, 5: 12 });
    const out = await encode(values, WeightType.Q40);
    expect([...out]).toEqual([0x03, 0x00, ...nibbles(codes)]);
    // delta 1e-7 is 1.68 subnormal units: the stored scale rounds to 2 units
    const tiny = await encode(block((i) => (i === 9 ? -8e-7 : 0)), WeightType.Q40);
    expect(tiny.readUInt16LE(0)).toBe(0x0002);
  });
});

describe('q80 blocks', () => {
  it('rounds half to even at scale 1', async () => {
    const values = block(() => 0);
    Object.assign(values, { 0: 127, 1: -127, 2: 63.5, 3: -63.5, 4: 0.5, 5: 1.5, 6: 2.5, 7: -2.5, 31: 100.49 });
    const q = block(() => 0);
    Object.assign(q, { 0: 127, 1: -127, 2: 64, 3: -64, 4: 0, 5: 2, 6: 2, 7: -2, 31: 100 });
    const out = await encode(values, WeightType.Q80);
    expect(out.readUInt16LE(0)).toBe(0x3c00);
    expect([...new Int8Array(out.buffer, out.byteOffset + 2, 32)]).toEqual(q);
  });

  it('takes the scale from a negative extreme and encodes zeros as zeros', async () => {
    const out = await encode(block((i) => (i === 3 ? -254 : i === 4 ? 127 : 0)), WeightType.Q80);
    expect(out.readUInt16LE(0)).toBe(0x4000); // delta 2
    expect(new Int8Array(out.buffer, out.byteOffset + 2, 32)[3]).toBe(-127);
    expect(new Int8Array(out.buffer, out.byteOffset + 2, 32)[4]).toBe(64); // 63.5 ties to 64
    const zeros = await encode(block(() => 0), WeightType.Q80);
    expect([...zeros]).toEqual(Array(34).fill(0));
  });
});

describe('round trips on random data', () => {
  const n = 32 * 4096;
  const values = Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1 * (1 + (i % 7)));
  const bytes = f32Bytes(values);

  it.each([
    [WeightType.Q40, 'q40'],
    [WeightType.Q80, 'q80'],
    [WeightType.F16, 'f16'],
  ])('%s (%s) decodes within its bound', async (type) => {
    const out = Buffer.alloc(encodedBytes(type, n));
    await engine.encode(bytes, 0, out, type, n, 2);
    const back = engine.decode(out, type, n);
    const worst: string[] = [];
    for (let b = 0; b < n / 32; b++) {
      const group = values.slice(b * 32, b * 32 + 32).map(Math.fround);
      const absmax = Math.max(...group.map(Math.abs));
      // q40: one step (the clip at +7) plus fp16 scale rounding; q80: half a step; f16: 2^-11 relative
      const bound = type === WeightType.Q40 ? (absmax / 8) * 1.01 : type === WeightType.Q80 ? (absmax / 127) * 0.51 + absmax * 2 ** -11 : 0;
      for (let j = 0; j < 32; j++) {
        const err = Math.abs(back[b * 32 + j]! - group[j]!);
        const limit = type === WeightType.F16 ? Math.abs(group[j]!) * 2 ** -11 + 2 ** -25 : bound;
        if (err > limit) worst.push(`element ${b * 32 + j}: error ${err} > ${limit}`);
      }
    }
    expect(worst).toEqual([]);
  });

  it('gives the same bytes on the SIMD and the scalar path, from every source dtype', async () => {
    // Random values plus the hard cases: all-zero blocks, mixed +-0, ties, subnormal scales, huge values.
    const special = [0, -0, 1e-30, -1e-30, 2 ** -24, 65504, -65504, 6e4, 0.5, -0.5, 8, -8];
    const mixed = new Float32Array(n);
    for (let i = 0; i < n; i++) mixed[i] = i < 32 * 64 ? special[(i * 7 + (i >> 5)) % special.length]! * (i % 3 === 0 ? 1 : 0) : values[i]!;
    mixed.fill(0, 32 * 10, 32 * 11);
    for (let i = 32 * 11; i < 32 * 12; i++) mixed[i] = i % 2 ? -0 : 0;
    const sources: [number, Uint8Array][] = [[0, new Uint8Array(mixed.buffer)]];
    for (const [id, dtype] of [[2, 'bf16'], [1, 'f16']] as const) {
      // Narrow the f32 values to the source dtype first (bf16 by truncation, f16 through the encoder).
      const narrow = new Uint8Array(n * 2);
      if (dtype === 'bf16') {
        const words = new Uint16Array(mixed.buffer);
        const out = new Uint16Array(narrow.buffer);
        for (let i = 0; i < n; i++) out[i] = words[2 * i + 1]!;
      } else {
        await engine.encode(new Uint8Array(mixed.buffer), 0, narrow, WeightType.F16, n, 1);
      }
      sources.push([id, narrow]);
    }
    const path = engine.setSimd(true);
    try {
      for (const [srcType, src] of sources) {
        for (const type of [WeightType.Q40, WeightType.Q80, WeightType.F16, WeightType.F32]) {
          const simd = Buffer.alloc(encodedBytes(type, n));
          const scalar = Buffer.alloc(encodedBytes(type, n));
          engine.setSimd(true);
          await engine.encode(src, srcType, simd, type, n, 2);
          expect(engine.setSimd(false)).toBe('scalar');
          await engine.encode(src, srcType, scalar, type, n, 2);
          expect([srcType, type, simd.equals(scalar)]).toEqual([srcType, type, true]);
        }
      }
    } finally {
      expect(engine.setSimd(true)).toBe(path);
    }
  });

  it('counts NaN and infinite values on both paths', async () => {
    const bad = new Float32Array(n).fill(0.25);
    bad[3] = NaN;
    bad[40] = Infinity;
    bad[n - 1] = -Infinity;
    for (const simd of [true, false]) {
      engine.setSimd(simd);
      expect(await engine.encode(new Uint8Array(bad.buffer), 0, Buffer.alloc(encodedBytes(WeightType.Q40, n)), WeightType.Q40, n, 2)).toBe(3);
      expect(await engine.encode(bytes, 0, Buffer.alloc(encodedBytes(WeightType.Q40, n)), WeightType.Q40, n, 2)).toBe(0);
    }
    engine.setSimd(true);
  });

  it('gives the same bytes with 1 and 2 threads', async () => {
    const one = Buffer.alloc(encodedBytes(WeightType.Q40, n));
    const two = Buffer.alloc(encodedBytes(WeightType.Q40, n));
    await engine.encode(bytes, 0, one, WeightType.Q40, n, 1);
    await engine.encode(bytes, 0, two, WeightType.Q40, n, 2);
    expect(one.equals(two)).toBe(true);
  });

  it('widens bf16 by shifting and rejects bad arguments with exceptions', async () => {
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xc040, 0x0001]).buffer); // 1, -3, tiny
    const out = Buffer.alloc(12);
    await engine.encode(bf16, 2, out, WeightType.F32, 3, 1);
    expect([...new Float32Array(out.buffer, out.byteOffset, 3)]).toEqual([1, -3, 2 ** -133]);
    await expect(async () => engine.encode(bytes, 0, Buffer.alloc(10), WeightType.Q40, 31, 1)).rejects.toThrow(/multiple of 32/);
    await expect(async () => engine.encode(bytes, 0, Buffer.alloc(10), WeightType.Q40, 32, 1)).rejects.toThrow(/smaller/);
    expect(() => engine.decode(Buffer.alloc(4), 9, 1)).toThrow(/unknown weight type/);
  });
});
