/**
 * The GGUF v3 container (llama.cpp's model file): metadata key/values, the tensor table and the aligned
 * data section, little-endian. The writer encodes the header (everything before the tensor data); the
 * reader validates a whole file and returns its metadata and tensor table. See docs/gguf.md.
 */
import { open } from 'node:fs/promises';
import { readFully } from './io.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF"
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types. */
export enum GgufType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** ggml tensor types this project writes (and the reader sizes). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
  BF16 = 30,
}

/** [elements per block, bytes per block] of each ggml type. */
const GGML_BLOCKS: Readonly<Record<number, readonly [number, number]>> = {
  [GgmlType.F32]: [1, 4],
  [GgmlType.F16]: [1, 2],
  [GgmlType.Q4_0]: [32, 18],
  [GgmlType.Q8_0]: [32, 34],
  [GgmlType.BF16]: [1, 2],
};

export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  [GgmlType.F32]: 'F32',
  [GgmlType.F16]: 'F16',
  [GgmlType.Q4_0]: 'Q4_0',
  [GgmlType.Q8_0]: 'Q8_0',
  [GgmlType.BF16]: 'BF16',
};

/** Bytes of a tensor of `ne` elements of `type`; the first dimension must hold whole blocks. */
export function ggmlTensorBytes(type: GgmlType, ne: readonly number[]): number {
  const block = GGML_BLOCKS[type];
  if (!block) throw new Error(`unsupported ggml type ${type}`);
  const [size, bytes] = block;
  if ((ne[0] ?? 1) % size !== 0) throw new Error(`ne[0] = ${ne[0]} is not a multiple of the ${GGML_TYPE_NAMES[type]} block size ${size}`);
  return (ne.reduce((a, b) => a * b, 1) / size) * bytes;
}

type Scalar = number | bigint | boolean | string;

/** One metadata entry. Arrays name their element type; 64-bit integers are bigints. */
export type GgufValue =
  | { readonly type: GgufType.UINT8 | GgufType.INT8 | GgufType.UINT16 | GgufType.INT16 | GgufType.UINT32 | GgufType.INT32 | GgufType.FLOAT32 | GgufType.FLOAT64; readonly value: number }
  | { readonly type: GgufType.UINT64 | GgufType.INT64; readonly value: bigint }
  | { readonly type: GgufType.BOOL; readonly value: boolean }
  | { readonly type: GgufType.STRING; readonly value: string }
  | { readonly type: GgufType.ARRAY; readonly itemType: Exclude<GgufType, GgufType.ARRAY>; readonly value: readonly Scalar[] };

export const gguf = {
  u32: (value: number): GgufValue => ({ type: GgufType.UINT32, value }),
  i32: (value: number): GgufValue => ({ type: GgufType.INT32, value }),
  f32: (value: number): GgufValue => ({ type: GgufType.FLOAT32, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufType.BOOL, value }),
  str: (value: string): GgufValue => ({ type: GgufType.STRING, value }),
  strings: (value: readonly string[]): GgufValue => ({ type: GgufType.ARRAY, itemType: GgufType.STRING, value }),
  i32s: (value: readonly number[]): GgufValue => ({ type: GgufType.ARRAY, itemType: GgufType.INT32, value }),
};

export interface GgufTensorInfo {
  readonly name: string;
  /** Dimensions, fastest first: a row-major [rows, cols] matrix is ne = [cols, rows]. */
  readonly ne: readonly number[];
  readonly type: GgmlType;
  /** Byte offset inside the data section (a multiple of the alignment). */
  readonly offset: number;
  readonly bytes: number;
}

/** Places tensors back to back in the data section, each starting at a multiple of `alignment`. */
export function placeGgufTensors(tensors: readonly { name: string; ne: readonly number[]; type: GgmlType }[], alignment = GGUF_DEFAULT_ALIGNMENT): GgufTensorInfo[] {
  let offset = 0;
  return tensors.map((t) => {
    const bytes = ggmlTensorBytes(t.type, t.ne);
    const placed = { name: t.name, ne: [...t.ne], type: t.type, offset, bytes };
    offset = alignUp(offset + bytes, alignment);
    return placed;
  });
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

// ------------------------------------------------------------------------------------------------
// Writer

const SCALAR_BYTES: Readonly<Partial<Record<GgufType, number>>> = {
  [GgufType.UINT8]: 1,
  [GgufType.INT8]: 1,
  [GgufType.UINT16]: 2,
  [GgufType.INT16]: 2,
  [GgufType.UINT32]: 4,
  [GgufType.INT32]: 4,
  [GgufType.FLOAT32]: 4,
  [GgufType.BOOL]: 1,
  [GgufType.UINT64]: 8,
  [GgufType.INT64]: 8,
  [GgufType.FLOAT64]: 8,
};

class ByteWriter {
  private buffer = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + n));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  u32(v: number): void {
    this.reserve(4);
    this.buffer.writeUInt32LE(v, this.length);
    this.length += 4;
  }

  u64(v: number | bigint): void {
    this.reserve(8);
    this.buffer.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }

  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.reserve(bytes.length);
    bytes.copy(this.buffer, this.length);
    this.length += bytes.length;
  }

  scalar(type: GgufType, v: Scalar, key: string): void {
    if (type === GgufType.STRING) {
      if (typeof v !== 'string') throw new Error(`gguf: ${key}: expected a string, got ${typeof v}`);
      this.string(v);
      return;
    }
    const size = SCALAR_BYTES[type];
    if (size === undefined) throw new Error(`gguf: ${key}: type ${type} is not a scalar type`);
    this.reserve(size);
    const b = this.buffer;
    const at = this.length;
    const num = (): number => {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`gguf: ${key}: expected a finite number, got ${String(v)}`);
      return v;
    };
    const int = (min: number, max: number): number => {
      const n = num();
      if (!Number.isInteger(n) || n < min || n > max) throw new Error(`gguf: ${key}: ${n} does not fit type ${GgufType[type]}`);
      return n;
    };
    switch (type) {
      case GgufType.UINT8: b.writeUInt8(int(0, 0xff), at); break;
      case GgufType.INT8: b.writeInt8(int(-0x80, 0x7f), at); break;
      case GgufType.UINT16: b.writeUInt16LE(int(0, 0xffff), at); break;
      case GgufType.INT16: b.writeInt16LE(int(-0x8000, 0x7fff), at); break;
      case GgufType.UINT32: b.writeUInt32LE(int(0, 0xffffffff), at); break;
      case GgufType.INT32: b.writeInt32LE(int(-0x80000000, 0x7fffffff), at); break;
      case GgufType.FLOAT32: b.writeFloatLE(num(), at); break;
      case GgufType.FLOAT64: b.writeDoubleLE(num(), at); break;
      case GgufType.BOOL:
        if (typeof v !== 'boolean') throw new Error(`gguf: ${key}: expected a boolean`);
        b.writeUInt8(v ? 1 : 0, at);
        break;
      case GgufType.UINT64:
      case GgufType.INT64: {
        if (typeof v !== 'bigint') throw new Error(`gguf: ${key}: expected a bigint`);
        if (type === GgufType.UINT64) b.writeBigUInt64LE(v, at);
        else b.writeBigInt64LE(v, at);
        break;
      }
    }
    this.length += size;
  }

  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

/**
 * Everything before the tensor data: magic, version, counts, metadata, tensor table, and zero padding up
 * to `alignment` (which must equal `general.alignment` when the metadata carries it).
 */
export function encodeGgufHeader(metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensorInfo[], alignment = GGUF_DEFAULT_ALIGNMENT): Buffer {
  const declared = metadata.get('general.alignment');
  if ((declared?.value ?? GGUF_DEFAULT_ALIGNMENT) !== alignment) throw new Error(`gguf: general.alignment ${String(declared?.value)} differs from the layout's ${alignment}`);
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, entry] of metadata) {
    w.string(key);
    w.u32(entry.type);
    if (entry.type === GgufType.ARRAY) {
      if ((entry.itemType as GgufType) === GgufType.ARRAY) throw new Error(`gguf: ${key}: nested arrays are not supported`);
      w.u32(entry.itemType);
      w.u64(entry.value.length);
      for (const item of entry.value) w.scalar(entry.itemType, item, key);
    } else {
      w.scalar(entry.type, entry.value, key);
    }
  }
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`gguf: tensor ${t.name} appears twice`);
    names.add(t.name);
    if (t.offset % alignment !== 0) throw new Error(`gguf: tensor ${t.name} at offset ${t.offset} is not aligned to ${alignment}`);
    w.string(t.name);
    w.u32(t.ne.length);
    for (const n of t.ne) w.u64(n);
    w.u32(t.type);
    w.u64(t.offset);
  }
  const header = w.bytes();
  const padded = Buffer.alloc(alignUp(header.length, alignment));
  header.copy(padded);
  return padded;
}

// ------------------------------------------------------------------------------------------------
// Reader

export interface GgufFile {
  readonly path: string;
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** File offset of the data section (tensor offsets are relative to it). */
  readonly dataOffset: number;
  readonly fileSize: number;
}

class NeedMore extends Error {}

class ByteReader {
  at = 0;
  constructor(private readonly b: Buffer) {}

  private take(n: number): number {
    if (this.at + n > this.b.length) throw new NeedMore();
    const at = this.at;
    this.at += n;
    return at;
  }

  u32(): number {
    return this.b.readUInt32LE(this.take(4));
  }

  u64(): number {
    const v = this.b.readBigUInt64LE(this.take(8));
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`value ${v} too large`);
    return Number(v);
  }

  string(): string {
    const n = this.u64();
    const at = this.take(n);
    return this.b.toString('utf8', at, at + n);
  }

  scalar(type: GgufType): Scalar {
    switch (type) {
      case GgufType.UINT8: return this.b.readUInt8(this.take(1));
      case GgufType.INT8: return this.b.readInt8(this.take(1));
      case GgufType.UINT16: return this.b.readUInt16LE(this.take(2));
      case GgufType.INT16: return this.b.readInt16LE(this.take(2));
      case GgufType.UINT32: return this.b.readUInt32LE(this.take(4));
      case GgufType.INT32: return this.b.readInt32LE(this.take(4));
      case GgufType.FLOAT32: return this.b.readFloatLE(this.take(4));
      case GgufType.FLOAT64: return this.b.readDoubleLE(this.take(8));
      case GgufType.BOOL: {
        const v = this.b.readUInt8(this.take(1));
        if (v > 1) throw new Error(`bool value ${v}`);
        return v === 1;
      }
      case GgufType.UINT64: return this.b.readBigUInt64LE(this.take(8));
      case GgufType.INT64: return this.b.readBigInt64LE(this.take(8));
      case GgufType.STRING: return this.string();
      default: throw new Error(`unknown value type ${type}`);
    }
  }
}

function parseHeader(path: string, b: Buffer, fileSize: number): GgufFile {
  const r = new ByteReader(b);
  const magic = r.u32();
  if (magic !== GGUF_MAGIC) throw new Error(`${path}: not a GGUF file (magic 0x${magic.toString(16)})`);
  const version = r.u32();
  if (version !== GGUF_VERSION) throw new Error(`${path}: GGUF version ${version}; only version ${GGUF_VERSION} is read`);
  const nTensors = r.u64();
  const nKv = r.u64();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = r.string();
    if (metadata.has(key)) throw new Error(`${path}: metadata key ${key} appears twice`);
    const type = r.u32() as GgufType;
    if (type === GgufType.ARRAY) {
      const itemType = r.u32() as Exclude<GgufType, GgufType.ARRAY>;
      if ((itemType as GgufType) === GgufType.ARRAY || GgufType[itemType] === undefined) throw new Error(`${path}: ${key}: unsupported array element type ${itemType}`);
      const count = r.u64();
      const value: Scalar[] = [];
      for (let j = 0; j < count; j++) value.push(r.scalar(itemType));
      metadata.set(key, { type, itemType, value });
    } else {
      if (GgufType[type] === undefined) throw new Error(`${path}: ${key}: unknown value type ${type}`);
      metadata.set(key, { type, value: r.scalar(type) } as GgufValue);
    }
  }
  const alignEntry = metadata.get('general.alignment');
  const alignment = alignEntry ? Number(alignEntry.value) : GGUF_DEFAULT_ALIGNMENT;
  if (alignEntry && alignEntry.type !== GgufType.UINT32) throw new Error(`${path}: general.alignment must be a u32`);
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) throw new Error(`${path}: general.alignment ${alignment} is not a power of two`);
  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = r.string();
    const nDims = r.u32();
    if (nDims < 1 || nDims > 4) throw new Error(`${path}: tensor ${name} has ${nDims} dimensions`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(r.u64());
    const type = r.u32() as GgmlType;
    const offset = r.u64();
    if (names.has(name)) throw new Error(`${path}: tensor ${name} appears twice`);
    names.add(name);
    if (!GGML_BLOCKS[type]) throw new Error(`${path}: tensor ${name} has unsupported ggml type ${type}`);
    if (offset % alignment !== 0) throw new Error(`${path}: tensor ${name} offset ${offset} is not aligned to ${alignment}`);
    tensors.push({ name, ne, type, offset, bytes: ggmlTensorBytes(type, ne) });
  }
  const dataOffset = alignUp(r.at, alignment);
  for (const t of tensors) {
    if (dataOffset + t.offset + t.bytes > fileSize) throw new Error(`${path}: tensor ${t.name} ends past the end of the file; it is truncated`);
  }
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    if (prev.offset + prev.bytes > sorted[i]!.offset) throw new Error(`${path}: tensors ${prev.name} and ${sorted[i]!.name} overlap`);
  }
  return { path, version, metadata, tensors, alignment, dataOffset, fileSize };
}

/** Far above any real header (GLM's tokenizer arrays take about 10 MB). */
const MAX_GGUF_HEADER_BYTES = 1 << 30;

/** Opens and validates a GGUF file's header and tensor table (tensors inside the file, aligned, disjoint). */
export async function readGguf(path: string): Promise<GgufFile> {
  const handle = await open(path, 'r');
  try {
    const fileSize = (await handle.stat()).size;
    for (let size = Math.min(fileSize, 1 << 20); ; size = Math.min(fileSize, size * 4)) {
      const b = Buffer.alloc(size);
      await readFully(handle, b, 0, path);
      try {
        return parseHeader(path, b, fileSize);
      } catch (e) {
        if (!(e instanceof NeedMore)) throw e;
        if (size >= fileSize) throw new Error(`${path}: the GGUF header runs past the end of the file`);
        if (size >= MAX_GGUF_HEADER_BYTES) throw new Error(`${path}: GGUF header larger than ${MAX_GGUF_HEADER_BYTES} bytes`);
      }
    }
  } finally {
    await handle.close();
  }
}

/** The raw bytes of one tensor of a GGUF file. */
export async function readGgufTensorBytes(file: GgufFile, name: string): Promise<Buffer> {
  const t = file.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`${file.path}: no tensor named ${name}`);
  const bytes = Buffer.alloc(t.bytes);
  const handle = await open(file.path, 'r');
  try {
    await readFully(handle, bytes, file.dataOffset + t.offset, file.path);
  } finally {
    await handle.close();
  }
  return bytes;
}
