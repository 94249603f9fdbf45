/**
 * Checkpoint -> .m conversion. Everything is checked before a byte is written (architecture, config,
 * every source tensor's presence, dtype and shape, q40/q80 row lengths); then tensors stream through a
 * three-stage pipeline (read chunk i+1, encode chunk i natively, write chunk i-1) with a few fixed-size
 * buffers, so memory stays bounded whatever the model size. Output goes to a temporary name and is
 * renamed only once complete.
 */
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ConfigReader } from './config.js';
import { BLOCK_SIZE, SOURCE_DTYPE_BYTES, SOURCE_DTYPE_IDS, WeightType, encodedBytes, isBlockType, weightTypeFromName, weightTypeName, type WeightTypeName } from './dtypes.js';
import { CancelledError, InputError } from './errors.js';
import { architectureOf, type Architecture } from './architectures/index.js';
import { encodeHeader, type ModelHeader } from './model-header.js';
import { modelTensors, tensorElements, type TensorSpec } from './model-layout.js';
import { WriteBack, writeFully } from './io.js';
import { imatrixForConversion, type ImatrixUse } from './imatrix.js';
import { native } from '../engine/native.js';
import { hasTokenizer, loadTokenizer, saveTokenizer, tokenizerPathFor, type ConvertTokenizerResult } from '../tokenizer/load.js';
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
  /**
   * Where to write the tokenizer (.t): by default beside the .m (`m.q40.m` -> `m.q40.t`) when the
   * checkpoint has a tokenizer.json or tokenizer.model; null writes none.
   */
  tokenizerFile?: string | null;
  /** Keep the checkpoint's MTP (next-n) layer in the optional section of docs/model-format.md (glm4moe only). */
  mtp?: boolean;
  /** An importance matrix (GGUF imatrix or legacy .dat) for the weighted q40 encoder; q40 only. */
  imatrix?: string;
  /** The output head's type (default: `weights`); e.g. q80 or f16 beside q40 matrices. */
  outputType?: WeightTypeName;
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
  /** The .t written beside the model, if any. */
  tokenizer?: ConvertTokenizerResult;
  /** The imatrix that weighted the q40 encoding, if any. */
  imatrix?: ImatrixUse;
}

export interface PlannedTensor {
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
export async function planConversion(modelDir: string, weightType: WeightType, options: { mtp?: boolean; outputType?: WeightType } = {}): Promise<ConversionPlan> {
  const config = await ConfigReader.load(modelDir);
  const architecture = architectureOf(config);
  const params = architecture.parseConfig(config);
  const { tiedEmbeddings: _tied, nextnLayers, ...headerParams } = params;
  if (options.mtp && !(nextnLayers! > 0)) {
    config.fail('num_nextn_predict_layers', `is ${nextnLayers ?? 'absent'}: this ${architecture.name} checkpoint has no MTP layer for --mtp to keep`);
  }
  const { outputType } = options;
  const header: ModelHeader = {
    version: 0,
    weightType,
    ...headerParams,
    mtpLayers: options.mtp ? 1 : 0,
    ...(outputType !== undefined && outputType !== weightType ? { outputType } : {}),
  };
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

/** What the streaming core needs besides the tensors: the encoder's threads, chunking, progress and cancellation. */
export interface StreamOptions {
  threads: number;
  /** Source bytes read per chunk. */
  chunkBytes: number;
  onProgress?: (progress: ConvertProgress) => void;
  signal?: AbortSignal;
  /** Sees every chunk's source and encoded bytes, in file order, before they are written (quality figures, checksums). */
  onChunk?: (tensor: PlannedTensor, source: Buffer, encoded: Buffer) => void;
  /** The importance vector (one per input column) of a q40 tensor, for the weighted encoder; undefined keeps round-to-nearest. */
  importance?: (tensor: PlannedTensor) => Float32Array | undefined;
}

/** Where the streaming core reads source bytes: a checkpoint, or another file read the same way (quantize reads a .m). */
export type TensorReader = Pick<Checkpoint, 'read'>;

/** One planned tensor to stream, followed by `padAfter` zero bytes (GGUF aligns every tensor). */
export interface StreamItem {
  tensor: PlannedTensor;
  padAfter?: number;
}

/** The largest padding a StreamItem may ask for. */
const MAX_PADDING = 4096;

/**
 * The streaming core shared by the .m and GGUF writers: appends `items` to `out` at its current position
 * through a three-stage pipeline (read chunk i+1 from the checkpoint, encode chunk i natively, write chunk
 * i-1), with two source and two output buffers and background write-back. `offset` is the number of bytes
 * already in the file. Resolves to the bytes appended and the checkpoint bytes read; whether it resolves
 * or throws, no read, write or flush it started is still in flight.
 */
export async function streamTensors(
  out: FileHandle,
  checkpoint: TensorReader,
  items: readonly StreamItem[],
  offset: number,
  options: StreamOptions,
): Promise<{ bytesWritten: number; sourceBytes: number }> {
  const engine = native();
  // Two source and two output buffers, each large enough for the biggest chunk (f32 output of an f16 source doubles it).
  const maxRowBytes = items.reduce((m, { tensor: t }) => Math.max(m, t.rowLength * SOURCE_DTYPE_BYTES[t.dtype]), 0);
  const sourceCapacity = Math.max(options.chunkBytes, maxRowBytes);
  const outputCapacity = sourceCapacity * 2;
  const sources = [Buffer.allocUnsafe(sourceCapacity), Buffer.allocUnsafe(sourceCapacity)];
  const outputs = [Buffer.allocUnsafe(outputCapacity), Buffer.allocUnsafe(outputCapacity)];
  const zeros = Buffer.alloc(MAX_PADDING);
  const tensors = items.map((item) => item.tensor);
  const bytesTotal = tensors.reduce((n, t) => n + t.rows * t.rowLength * SOURCE_DTYPE_BYTES[t.dtype], 0);
  let bytesWritten = 0;
  let bytesDone = 0;
  // In flight while the loop runs; settled before returning so that no I/O outlives the caller's handles.
  let pendingRead: Promise<Buffer> | undefined;
  let pendingWrite: Promise<void> = Promise.resolve();
  const writeBack = new WriteBack(out, FLUSH_BYTES);
  try {
    const read = async (chunk: Chunk, slot: number): Promise<Buffer> => {
      const t = chunk.tensor;
      const elementBytes = SOURCE_DTYPE_BYTES[t.dtype];
      const length = chunk.rows * t.rowLength * elementBytes;
      const view = sources[slot]!.subarray(0, length);
      await checkpoint.read(t.info, t.sourceOffset + chunk.firstRow * t.rowLength * elementBytes, view);
      return view;
    };

    // The importance vector of the tensor being streamed, computed once per tensor.
    let weighted: { tensor: PlannedTensor; importance: Float32Array | undefined } | undefined;
    const importanceOf = (t: PlannedTensor): Float32Array | undefined => {
      if (!options.importance || t.spec.type !== WeightType.Q40) return undefined;
      if (weighted?.tensor !== t) weighted = { tensor: t, importance: options.importance(t) };
      return weighted.importance;
    };
    const chunks = chunksOf(tensors, options.chunkBytes);
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
      const nonFinite = await engine.encode(source, SOURCE_DTYPE_IDS[chunk.tensor.dtype], encoded, chunk.tensor.spec.type, elements, options.threads, importanceOf(chunk.tensor));
      if (nonFinite > 0) {
        throw new InputError(chunk.tensor.info.file, `tensor ${chunk.tensor.info.name} holds ${nonFinite} NaN or infinite values (rows ${chunk.firstRow}-${chunk.firstRow + chunk.rows - 1} of the slice for ${chunk.tensor.spec.name})`);
      }
      options.onChunk?.(chunk.tensor, source, encoded);
      const lastOfTensor = chunk.firstRow + chunk.rows === chunk.tensor.rows;
      const padding = lastOfTensor ? (items[chunk.index]!.padAfter ?? 0) : 0;
      if (padding < 0 || padding > MAX_PADDING) throw new Error(`internal: padding of ${padding} bytes after ${chunk.tensor.spec.name}`);
      await pendingWrite;
      pendingWrite = inFlight(
        padding > 0 ? writeFully(out, encoded).then(() => writeFully(out, zeros.subarray(0, padding))) : writeFully(out, encoded),
      );
      bytesWritten += encoded.length + padding;
      writeBack.written(offset + bytesWritten, pendingWrite);
      bytesDone += source.length;
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
  } catch (e) {
    await Promise.allSettled([pendingRead, pendingWrite, writeBack.finish()]);
    throw e;
  }
  return { bytesWritten, sourceBytes: bytesDone };
}

/**
 * Writes `outFile` through a temporary name in the same folder: `body` writes the whole file into the
 * handle and returns the size it must have; the file is synced and renamed only when that holds and the
 * signal was not aborted. On any failure the temporary file is removed and the error rethrown.
 */
export async function writeFileAtomically(outFile: string, signal: AbortSignal | undefined, body: (out: FileHandle) => Promise<number>): Promise<void> {
  await mkdir(dirname(outFile), { recursive: true });
  const tmp = join(dirname(outFile), `.${basename(outFile)}.${process.pid}.partial`);
  const out = await open(tmp, 'w');
  try {
    const expected = await body(out);
    if (signal?.aborted) throw new CancelledError('conversion');
    const written = (await out.stat()).size;
    if (written !== expected) throw new Error(`${tmp}: wrote ${written} bytes, expected ${expected}`);
    await out.sync();
    await out.close();
    await rename(tmp, outFile);
  } catch (e) {
    await out.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/** Resolves the weight types, threads and chunk size of convert-like options. */
export function streamSettings(
  options: Pick<ConvertOptions, 'weights' | 'threads' | 'chunkBytes' | 'onProgress' | 'signal' | 'outputType'>,
): { weightType: WeightType; outputType?: WeightType } & StreamOptions {
  return {
    weightType: typeof options.weights === 'number' ? options.weights : weightTypeFromName(options.weights),
    ...(options.outputType ? { outputType: weightTypeFromName(options.outputType) } : {}),
    threads: options.threads ?? availableParallelism(),
    chunkBytes: options.chunkBytes ?? 8 * 1024 * 1024,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
}

export async function convert(options: ConvertOptions): Promise<ConvertResult> {
  const started = performance.now();
  const settings = streamSettings(options);
  const tokenizerFile =
    options.tokenizerFile === null ? undefined : (options.tokenizerFile ?? (hasTokenizer(options.modelDir) ? tokenizerPathFor(options.outFile) : undefined));
  // Loaded (and so checked) before the weights; written after them, so a failure leaves neither file.
  const tokenizer = tokenizerFile ? await loadTokenizer(options.modelDir) : undefined;
  const plan = await planConversion(options.modelDir, settings.weightType, { mtp: options.mtp ?? false, outputType: settings.outputType });
  const { checkpoint, tensors } = plan;
  const weighted = options.imatrix ? await imatrixForConversion(options.imatrix, plan.header).catch(async (e: unknown) => {
    await checkpoint.close();
    throw e;
  }) : undefined;
  let bytes = 0;
  let sourceBytes = 0;
  try {
    await writeFileAtomically(options.outFile, options.signal, async (out) => {
      const header = encodeHeader(plan.header);
      await writeFully(out, header);
      const streamed = await streamTensors(out, checkpoint, tensors.map((tensor) => ({ tensor })), header.length, {
        ...settings,
        ...(weighted ? { importance: weighted.importance } : {}),
      });
      bytes = header.length + streamed.bytesWritten;
      sourceBytes = streamed.sourceBytes;
      return bytes;
    });
  } finally {
    await checkpoint.close();
  }
  const savedTokenizer = tokenizer && tokenizerFile ? await saveTokenizer(tokenizer, tokenizerFile) : undefined;
  return {
    ...(savedTokenizer ? { tokenizer: savedTokenizer } : {}),
    ...(weighted ? { imatrix: weighted.use } : {}),
    outFile: options.outFile,
    architecture: plan.architecture.name,
    header: plan.header,
    parameters: tensors.reduce((n, t) => n + tensorElements(t.spec), 0),
    bytes,
    tensors: tensors.length,
    sourceBytes,
    seconds: (performance.now() - started) / 1000,
  };
}
