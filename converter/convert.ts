/**
 * Checkpoint -> .m conversion. Everything is checked before a byte is written (architecture, config,
 * every source tensor's presence, dtype and shape, q40/q80 row lengths); then tensors stream through a
 * three-stage pipeline (read chunk i+1, encode chunk i natively, write chunk i-1) with a few fixed-size
 * buffers, so memory stays bounded whatever the model size. Output goes to a temporary name and is
 * renamed only once complete.
 */
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ConfigReader } from './config.js';
import { BLOCK_SIZE, SOURCE_DTYPE_BYTES, SOURCE_DTYPE_IDS, WeightType, encodedBytes, isBlockType, weightTypeFromName, weightTypeName, type WeightTypeName } from './dtypes.js';
import { CancelledError, InputError } from './errors.js';
import { architectureOf, type Architecture } from './architectures/index.js';
import { encodeHeader, type ModelHeader } from './model-header.js';
import { modelTensors, tensorElements, type TensorSpec } from './model-layout.js';
import { WriteBack, writeFully } from './io.js';
import { native } from './native.js';
import { Checkpoint, elementCount, isConvertible, type ConvertibleDtype, type TensorInfo } from './safetensors.js';

export interface ConvertOptions {
  /** Hugging Face checkpoint directory (config.json + safetensors). */
  modelDir: string;
  outFile: string;
  weights: WeightTypeName | WeightType;
  /** Native encoder threads; defaults to the machine's parallelism. */
  threads?: number;
  /** Source bytes read per chunk (default 8 MiB); peak memory is about six chunks. */
  chunkBytes?: number;
  onProgress?: (progress: ConvertProgress) => void;
  signal?: AbortSignal;
}

export interface ConvertProgress {
  tensor: string;
  tensorsDone: number;
  tensorsTotal: number;
  /** Checkpoint bytes consumed so far, of `bytesTotal`. */
  bytesDone: number;
  bytesTotal: number;
}

export interface ConvertResult {
  outFile: string;
  architecture: string;
  header: ModelHeader;
  parameters: number;
  /** Size of the written .m file. */
  bytes: number;
  tensors: number;
  /** Checkpoint bytes read. */
  sourceBytes: number;
  seconds: number;
}

interface PlannedTensor {
  spec: TensorSpec;
  info: TensorInfo;
  dtype: ConvertibleDtype;
  /** Elements per row of the output tensor (1 for vectors). */
  rowLength: number;
  rows: number;
  /** Byte offset of the first source row inside the checkpoint tensor. */
  sourceOffset: number;
}

export interface ConversionPlan {
  architecture: Architecture;
  header: ModelHeader;
  tensors: PlannedTensor[];
  checkpoint: Checkpoint;
}

/** Resolves and validates every output tensor against the checkpoint; reads only headers and config. */
export async function planConversion(modelDir: string, weightType: WeightType): Promise<ConversionPlan> {
  const config = await ConfigReader.load(modelDir);
  const architecture = architectureOf(config);
  const params = architecture.parseConfig(config);
  const { tiedEmbeddings: _tied, ...headerParams } = params;
  const header: ModelHeader = { version: 0, weightType, ...headerParams };
  const checkpoint = await Checkpoint.open(modelDir);
  const tensors: PlannedTensor[] = [];
  try {
    for (const spec of modelTensors(header)) {
      const source = architecture.source(spec.name, params, { has: (n) => checkpoint.get(n) !== undefined });
      const info = checkpoint.get(source.tensor);
      if (!info) throw new InputError(modelDir, `missing tensor ${source.tensor} (needed for ${spec.name})`);
      if (info.shape.join() !== source.shape.join()) {
        throw new InputError(info.file, `tensor ${info.name} has shape [${info.shape}] but ${config.file} implies [${source.shape}]`);
      }
      if (!isConvertible(info.dtype)) {
        throw new InputError(info.file, `tensor ${info.name} has unsupported dtype ${info.dtype}; only BF16, F16 and F32 checkpoints can be converted`);
      }
      const rowLength = spec.shape.length > 1 ? spec.shape[spec.shape.length - 1]! : 1;
      const rows = tensorElements(spec) / rowLength;
      const sourceRows = elementCount(source.shape) / rowLength;
      if (source.rowStart + rows > sourceRows) throw new Error(`internal: ${spec.name} reads past ${info.name}`);
      if (isBlockType(spec.type) && rowLength % BLOCK_SIZE !== 0) {
        throw new InputError(
          info.file,
          `tensor ${info.name}: row length ${rowLength} is not a multiple of ${BLOCK_SIZE}, which ${weightTypeName(spec.type)} blocks need; convert to f16 or f32 instead`,
        );
      }
      const elementBytes = SOURCE_DTYPE_BYTES[info.dtype];
      tensors.push({ spec, info, dtype: info.dtype, rowLength, rows, sourceOffset: source.rowStart * rowLength * elementBytes });
    }
  } catch (e) {
    await checkpoint.close();
    throw e;
  }
  return { architecture, header, tensors, checkpoint };
}

/** Output bytes between two background flushes (see WriteBack). */
const FLUSH_BYTES = 64 * 1024 * 1024;

/**
 * Marks a promise that is awaited later, after other awaits, as handled now: otherwise a failure in
 * the meantime would be reported as an unhandled rejection and end the process. It still rejects
 * where it is awaited.
 */
function inFlight<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

interface Chunk {
  tensor: PlannedTensor;
  index: number;
  firstRow: number;
  rows: number;
}

function* chunksOf(plan: readonly PlannedTensor[], chunkBytes: number): Generator<Chunk> {
  for (let index = 0; index < plan.length; index++) {
    const t = plan[index]!;
    const rowBytes = t.rowLength * SOURCE_DTYPE_BYTES[t.dtype];
    const rowsPerChunk = Math.max(1, Math.floor(chunkBytes / rowBytes));
    for (let firstRow = 0; firstRow < t.rows; firstRow += rowsPerChunk) {
      yield { tensor: t, index, firstRow, rows: Math.min(rowsPerChunk, t.rows - firstRow) };
    }
  }
}

export async function convert(options: ConvertOptions): Promise<ConvertResult> {
  const started = performance.now();
  const weightType = typeof options.weights === 'number' ? options.weights : weightTypeFromName(options.weights);
  const threads = options.threads ?? availableParallelism();
  const chunkBytes = options.chunkBytes ?? 8 * 1024 * 1024;
  const plan = await planConversion(options.modelDir, weightType);
  const { checkpoint, tensors } = plan;
  const engine = native();

  // Two source and two output buffers, each large enough for the biggest chunk (f32 output of an f16 source doubles it).
  const maxRowBytes = tensors.reduce((m, t) => Math.max(m, t.rowLength * SOURCE_DTYPE_BYTES[t.dtype]), 0);
  const sourceCapacity = Math.max(chunkBytes, maxRowBytes);
  const outputCapacity = sourceCapacity * 2;
  const sources = [Buffer.allocUnsafe(sourceCapacity), Buffer.allocUnsafe(sourceCapacity)];
  const outputs = [Buffer.allocUnsafe(outputCapacity), Buffer.allocUnsafe(outputCapacity)];
  const bytesTotal = tensors.reduce((n, t) => n + t.rows * t.rowLength * SOURCE_DTYPE_BYTES[t.dtype], 0);

  await mkdir(dirname(options.outFile), { recursive: true });
  const tmp = join(dirname(options.outFile), `.${basename(options.outFile)}.${process.pid}.partial`);
  const out = await open(tmp, 'w');
  let bytesWritten = 0;
  let bytesDone = 0;
  // In flight while the loop runs; settled before cleanup so that no I/O outlives the handles.
  let pendingRead: Promise<Buffer> | undefined;
  let pendingWrite: Promise<void> = Promise.resolve();
  const writeBack = new WriteBack(out, FLUSH_BYTES);
  try {
    const header = encodeHeader(plan.header);
    await writeFully(out, header);
    bytesWritten += header.length;

    const read = async (chunk: Chunk, slot: number): Promise<Buffer> => {
      const t = chunk.tensor;
      const elementBytes = SOURCE_DTYPE_BYTES[t.dtype];
      const length = chunk.rows * t.rowLength * elementBytes;
      const view = sources[slot]!.subarray(0, length);
      await checkpoint.read(t.info, t.sourceOffset + chunk.firstRow * t.rowLength * elementBytes, view);
      return view;
    };

    const chunks = chunksOf(tensors, chunkBytes);
    let next = chunks.next();
    pendingRead = next.done ? undefined : inFlight(read(next.value, 0));
    for (let i = 0; !next.done; i++) {
      if (options.signal?.aborted) throw new CancelledError('conversion');
      const chunk = next.value;
      const source = await pendingRead!;
      next = chunks.next();
      pendingRead = next.done ? undefined : inFlight(read(next.value, (i + 1) % 2));
      const elements = chunk.rows * chunk.tensor.rowLength;
      const encoded = outputs[i % 2]!.subarray(0, encodedBytes(chunk.tensor.spec.type, elements));
      const nonFinite = await engine.encode(source, SOURCE_DTYPE_IDS[chunk.tensor.dtype], encoded, chunk.tensor.spec.type, elements, threads);
      if (nonFinite > 0) {
        throw new InputError(chunk.tensor.info.file, `tensor ${chunk.tensor.info.name} holds ${nonFinite} NaN or infinite values (rows ${chunk.firstRow}-${chunk.firstRow + chunk.rows - 1} of the slice for ${chunk.tensor.spec.name})`);
      }
      await pendingWrite;
      pendingWrite = inFlight(writeFully(out, encoded));
      bytesWritten += encoded.length;
      writeBack.written(bytesWritten, pendingWrite);
      bytesDone += source.length;
      const lastOfTensor = chunk.firstRow + chunk.rows === chunk.tensor.rows;
      options.onProgress?.({
        tensor: chunk.tensor.spec.name,
        tensorsDone: chunk.index + (lastOfTensor ? 1 : 0),
        tensorsTotal: tensors.length,
        bytesDone,
        bytesTotal,
      });
    }
    await pendingWrite;
    await writeBack.finish();
    if (options.signal?.aborted) throw new CancelledError('conversion');
    const written = (await out.stat()).size;
    if (written !== bytesWritten) throw new Error(`${tmp}: wrote ${written} bytes, expected ${bytesWritten}`);
    await out.sync();
    await out.close();
    await rename(tmp, options.outFile);
  } catch (e) {
    await Promise.allSettled([pendingRead, pendingWrite, writeBack.finish()]);
    await out.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  } finally {
    await checkpoint.close();
  }
  return {
    outFile: options.outFile,
    architecture: plan.architecture.name,
    header: plan.header,
    parameters: tensors.reduce((n, t) => n + tensorElements(t.spec), 0),
    bytes: bytesWritten,
    tensors: tensors.length,
    sourceBytes: bytesDone,
    seconds: (performance.now() - started) / 1000,
  };
}
