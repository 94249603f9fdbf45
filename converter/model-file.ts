/** Reading .m files: header, tensor table and size check, and dequantized tensors for verification. */
import { open } from 'node:fs/promises';
import { WeightType, weightTypeName } from './dtypes.js';
import { ARCH_NAMES, decodeHeader, type ModelHeader } from './model-header.js';
import { modelTensors, placeTensors, tensorElements, type PlacedTensor } from './model-layout.js';
import { InputError } from './errors.js';
import { readFully } from './io.js';
import { native } from '../engine/native.js';

/** Far above any real header (8 bytes per key); a larger declared size is refused without allocating it. */
const MAX_HEADER_BYTES = 64 * 1024;

export interface ModelFile {
  readonly path: string;
  readonly header: ModelHeader;
  readonly headerSize: number;
  readonly fileSize: number;
  readonly tensors: readonly PlacedTensor[];
  readonly parameters: number;
}

/** Opens and validates a .m file: header keys, and tensor sizes that add up to the file size exactly. */
export async function readModelFile(path: string): Promise<ModelFile> {
  const handle = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new InputError(path, `cannot open (${e.code ?? e.message})`);
  });
  try {
    const fileSize = (await handle.stat()).size;
    const prefix = Buffer.alloc(Math.min(fileSize, 8));
    await readFully(handle, prefix, 0, path);
    const declared = prefix.length === 8 ? prefix.readInt32LE(4) : 0;
    // decodeHeader checks the magic first, then that the declared size fits what was read.
    const headerBytes = Buffer.alloc(Math.min(fileSize, Math.max(8, Math.min(declared, MAX_HEADER_BYTES))));
    await readFully(handle, headerBytes, 0, path);
    const { header, headerSize } = decodeHeader(headerBytes, path);
    const tensors = placeTensors(modelTensors(header), headerSize);
    const last = tensors[tensors.length - 1];
    const expected = last ? last.offset + last.bytes : headerSize;
    if (expected !== fileSize) {
      throw new InputError(
        path,
        `the header describes ${expected} bytes (${tensors.length} tensors of ${weightTypeName(header.weightType)} ${ARCH_NAMES[header.archType]}) but the file has ${fileSize}; ` +
          (fileSize < expected ? 'it is truncated' : 'it has trailing bytes'),
      );
    }
    const parameters = tensors.reduce((n, t) => n + tensorElements(t), 0);
    return { path, header, headerSize, fileSize, tensors, parameters };
  } finally {
    await handle.close();
  }
}

/** Reads one tensor of a .m file back to float32 (dequantizing q40/q80/f16). */
export async function readTensor(model: ModelFile, name: string): Promise<Float32Array> {
  const tensor = model.tensors.find((t) => t.name === name);
  if (!tensor) throw new Error(`${model.path}: no tensor named ${name}`);
  const bytes = Buffer.alloc(tensor.bytes);
  const handle = await open(model.path, 'r');
  try {
    await readFully(handle, bytes, tensor.offset, model.path);
  } finally {
    await handle.close();
  }
  return tensor.type === WeightType.F32
    ? new Float32Array(bytes.buffer, bytes.byteOffset, tensorElements(tensor))
    : native().decode(bytes, tensor.type, tensorElements(tensor));
}
