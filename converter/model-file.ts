/** Reading .m files: header, tensor table and size check, and dequantized tensors for verification. */
import { open } from 'node:fs/promises';
import { WeightType, weightTypeName } from './dtypes.js';
import { ARCH_NAMES, decodeHeader, type ModelHeader } from './model-header.js';
import { modelTensors, placeTensors, tensorElements, type PlacedTensor } from './model-layout.js';
import { native } from './native.js';

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
    throw new Error(`${path}: cannot open (${e.code ?? e.message})`);
  });
  try {
    const fileSize = (await handle.stat()).size;
    const prefix = Buffer.alloc(Math.min(fileSize, 8));
    await handle.read(prefix, 0, prefix.length, 0);
    const declared = prefix.length === 8 ? prefix.readInt32LE(4) : 0;
    const headerBytes = Buffer.alloc(Math.max(8, Math.min(fileSize, declared > 0 ? declared : 8)));
    const { bytesRead } = await handle.read(headerBytes, 0, headerBytes.length, 0);
    const { header, headerSize } = decodeHeader(headerBytes.subarray(0, bytesRead), path);
    const tensors = placeTensors(modelTensors(header), headerSize);
    const last = tensors[tensors.length - 1];
    const expected = last ? last.offset + last.bytes : headerSize;
    if (expected !== fileSize) {
      throw new Error(
        `${path}: the header describes ${expected} bytes (${tensors.length} tensors of ${weightTypeName(header.weightType)} ${ARCH_NAMES[header.archType]}) but the file has ${fileSize}; ` +
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
    await handle.read(bytes, 0, bytes.length, tensor.offset);
  } finally {
    await handle.close();
  }
  return tensor.type === WeightType.F32
    ? new Float32Array(bytes.buffer, bytes.byteOffset, tensorElements(tensor))
    : native().decode(bytes, tensor.type, tensorElements(tensor));
}
