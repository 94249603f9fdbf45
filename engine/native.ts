/** The native engine addon (engine/src), built by `npm ci` into build/Release: the engine and the converter's encoders. */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeEngine {
  /**
   * Encodes `elements` values of `src` (SourceDtype) into `dst` as `dstType` (WeightType), on worker
   * threads; resolves to the number of NaN and infinite values met (their encodings are unspecified).
   * With `importance` (q40 only: E[x^2] of each input column, one row's length), every block takes the
   * importance-weighted scale search instead of round-to-nearest (engine/src/quant.h).
   */
  encode(src: Uint8Array, srcType: number, dst: Uint8Array, dstType: number, elements: number, threads: number, importance?: Float32Array): Promise<number>;
  /** Decodes `elements` values of `type` (WeightType) to float32. */
  decode(src: Uint8Array, type: number, elements: number): Float32Array;
  /** IEEE half bits of a float32, rounded to nearest even. */
  f32ToF16(value: number): number;
  f16ToF32(bits: number): number;
  /** HMAC-SHA-256 as the distributed handshake computes it (engine/src/net/crypto.h). */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** Enables (where the CPU allows) or disables the SIMD encoders; returns the path now in use. */
  setSimd(enabled: boolean): 'avx2' | 'scalar';
}

/** The package root: the nearest folder above this module that holds package.json (works from dist/ and from source). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('glm-dllama: cannot find the package root');
    dir = parent;
  }
  return dir;
}

/** This package's version, from its package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

let engine: NativeEngine | undefined;

export function native(): NativeEngine {
  if (!engine) {
    const path = join(packageRoot(), 'build', 'Release', 'glm_engine.node');
    if (!existsSync(path)) {
      throw new Error(`native engine not built: ${path} is missing; run \`npm ci\` (or \`npm run build:native\`) with a C++ toolchain`);
    }
    engine = createRequire(import.meta.url)(path) as NativeEngine;
  }
  return engine;
}
