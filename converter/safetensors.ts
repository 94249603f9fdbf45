/**
 * The safetensors format: reading sharded checkpoints tensor by tensor without holding a shard in
 * memory, and writing them (for the fixture checkpoints). Layout: u64 little-endian header length N,
 * N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}, then the data
 * section; offsets are relative to the data section.
 */
import { open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InputError } from './errors.js';
import { readFully, writeFully } from './io.js';

/** Element sizes of every dtype the format defines; only F32, F16 and BF16 can be converted. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1,
  U16: 2, I16: 2, F16: 2, BF16: 2,
  U32: 4, I32: 4, F32: 4,
  U64: 8, I64: 8, F64: 8,
};

export type ConvertibleDtype = 'F32' | 'F16' | 'BF16';
export const CONVERTIBLE_DTYPES: readonly ConvertibleDtype[] = ['F32', 'F16', 'BF16'];

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
/** Headers larger than this are refused: real checkpoints stay far below it. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Shard file that holds the tensor. */
  readonly file: string;
  /** Absolute byte offset of the tensor's data in `file`. */
  readonly offset: number;
  readonly byteLength: number;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function isConvertible(dtype: string): dtype is ConvertibleDtype {
  return (CONVERTIBLE_DTYPES as readonly string[]).includes(dtype);
}

/** Parses and validates one shard's header; reads only the header bytes. */
export async function readShardHeader(file: string): Promise<TensorInfo[]> {
  const fileSize = (await stat(file)).size;
  if (fileSize < 8) throw new InputError(file, `file is ${fileSize} bytes, too short for a safetensors header`);
  const handle = await open(file, 'r');
  try {
    const lengthBytes = Buffer.alloc(8);
    await readFully(handle, lengthBytes, 0, file);
    const headerLength = lengthBytes.readBigUInt64LE(0);
    if (headerLength > BigInt(fileSize - 8)) {
      throw new InputError(file, `header length ${headerLength} runs past the end of the file (${fileSize} bytes)`);
    }
    if (headerLength > BigInt(MAX_HEADER_BYTES)) {
      throw new InputError(file, `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    }
    const headerBytes = Buffer.alloc(Number(headerLength));
    await readFully(handle, headerBytes, 8, file);
    return parseHeader(file, headerBytes, fileSize);
  } finally {
    await handle.close();
  }
}

function parseHeader(file: string, headerBytes: Buffer, fileSize: number): TensorInfo[] {
  let json: unknown;
  try {
    json = JSON.parse(headerBytes.toString('utf8'));
  } catch (e) {
    throw new InputError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InputError(file, 'header is not a JSON object');
  }
  const dataStart = 8 + headerBytes.length;
  const dataLength = fileSize - dataStart;
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const where = `tensor ${name}`;
    if (typeof entry !== 'object' || entry === null) throw new InputError(file, `${where}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
      throw new InputError(file, `${where}: unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new InputError(file, `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new InputError(file, `${where}: data_offsets ${JSON.stringify(offsets)} is not a [begin, end] pair`);
    }
    const [begin, end] = offsets as [number, number];
    const expected = elementCount(shape as number[]) * DTYPE_BYTES[dtype]!;
    if (end < begin || end - begin !== expected) {
      throw new InputError(
        file,
        `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ${JSON.stringify(shape)} of ${dtype} needs ${expected}`,
      );
    }
    if (end > dataLength) {
      throw new InputError(file, `${where}: data_offsets end ${end} lies beyond the data section (${dataLength} bytes); the file may be truncated`);
    }
    tensors.push({ name, dtype, shape: shape as number[], file, offset: dataStart + begin, byteLength: expected });
  }
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.offset < prev.offset + prev.byteLength) {
      throw new InputError(file, `tensors ${prev.name} and ${cur.name} have overlapping data_offsets`);
    }
  }
  return tensors;
}

/** A checkpoint directory: every tensor of every shard, validated, with lazily opened shard files. */
export class Checkpoint {
  private readonly handles = new Map<string, Promise<FileHandle>>();

  private constructor(
    readonly dir: string,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly shards: readonly string[],
  ) {}

  static async open(dir: string): Promise<Checkpoint> {
    const indexPath = join(dir, INDEX_FILE);
    let shards: string[];
    let weightMap: Record<string, string> | undefined;
    if (existsSync(indexPath)) {
      weightMap = await readIndex(indexPath);
      shards = [...new Set(Object.values(weightMap))].sort();
    } else if (existsSync(join(dir, SINGLE_FILE))) {
      shards = [SINGLE_FILE];
    } else {
      throw new InputError(dir, `neither ${INDEX_FILE} nor ${SINGLE_FILE} found`);
    }
    const tensors = new Map<string, TensorInfo>();
    for (const shard of shards) {
      const path = join(dir, shard);
      if (!existsSync(path)) throw new InputError(indexPath, `weight_map names shard ${shard}, which does not exist`);
      if (!statSync(path).isFile()) throw new InputError(indexPath, `weight_map names shard ${shard}, which is not a file`);
      for (const info of await readShardHeader(path)) {
        if (tensors.has(info.name)) throw new InputError(path, `tensor ${info.name} is also stored in ${basename(tensors.get(info.name)!.file)}`);
        tensors.set(info.name, info);
      }
    }
    if (weightMap) {
      for (const [name, shard] of Object.entries(weightMap)) {
        const info = tensors.get(name);
        if (!info || basename(info.file) !== shard) {
          throw new InputError(indexPath, `weight_map places tensor ${name} in ${shard}, but that shard's header does not list it`);
        }
      }
    }
    return new Checkpoint(dir, tensors, shards);
  }

  get(name: string): TensorInfo | undefined {
    return this.tensors.get(name);
  }

  /** Total bytes of tensor data in the checkpoint. */
  get dataBytes(): number {
    let total = 0;
    for (const t of this.tensors.values()) total += t.byteLength;
    return total;
  }

  /** Reads `into.length` bytes of `tensor` starting `byteOffset` bytes into its data. */
  async read(tensor: TensorInfo, byteOffset: number, into: Uint8Array): Promise<void> {
    if (byteOffset + into.length > tensor.byteLength) {
      throw new RangeError(`read past the end of tensor ${tensor.name}`);
    }
    let handle = this.handles.get(tensor.file);
    if (!handle) {
      handle = open(tensor.file, 'r');
      this.handles.set(tensor.file, handle);
    }
    await readFully(await handle, into, tensor.offset + byteOffset, tensor.file);
  }

  async close(): Promise<void> {
    const handles = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(handles.map(async (h) => (await h).close()));
  }
}

async function readIndex(indexPath: string): Promise<Record<string, string>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new InputError(indexPath, `not valid JSON (${(e as Error).message})`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new InputError(indexPath, 'field weight_map is missing or not an object');
  }
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard === '' || shard === '.' || shard === '..' || shard.includes('/') || shard.includes('\\')) {
      throw new InputError(indexPath, `weight_map entry for ${name} is not a shard file name`);
    }
  }
  return weightMap as Record<string, string>;
}

/** A tensor to write: its bytes come from `data`, called once, in pieces that add up to the declared size. */
export interface TensorToWrite {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data: () => Iterable<Uint8Array> | AsyncIterable<Uint8Array>;
}

/**
 * Writes one shard: header first (padded with spaces to 8 bytes, as Hugging Face does), then the data in
 * declaration order. Written to a temporary name and renamed when complete.
 */
export async function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<number> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const bytes = elementCount(t.shape) * (DTYPE_BYTES[t.dtype] ?? NaN);
    if (!Number.isFinite(bytes)) throw new Error(`cannot write dtype ${t.dtype}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const tmp = `${path}.partial`;
  const handle = await open(tmp, 'w');
  try {
    await writeFully(handle, prefix);
    await writeFully(handle, Buffer.from(json));
    for (const t of tensors) {
      const expected = elementCount(t.shape) * DTYPE_BYTES[t.dtype]!;
      let written = 0;
      for await (const piece of t.data()) {
        await writeFully(handle, piece);
        written += piece.length;
      }
      if (written !== expected) throw new Error(`tensor ${t.name}: wrote ${written} bytes, declared ${expected}`);
    }
    await handle.close();
    await rename(tmp, path);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  return 8 + Buffer.byteLength(json) + offset;
}
