/**
 * Re-encodes a .m file to another weight type (f32/f16 -> q40/q80/f16, or any -> f32 to dequantize),
 * through the converter's streaming core, and measures what the new encoding lost: per tensor kind, the
 * RMSE and largest |error| of the decoded output against the input values. Norms, biases, the router
 * and the embedding stay f32 (model-layout.ts decides which, as for a conversion).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { SOURCE_DTYPE_BYTES, WeightType, encodedBytes, isBlockType, BLOCK_SIZE, weightTypeName, type WeightTypeName } from '../converter/dtypes.js';
import { InputError } from '../converter/errors.js';
import { encodeHeader, type ModelHeader } from '../converter/model-header.js';
import { readModelFile, type ModelFile } from '../converter/model-file.js';
import { modelTensors, tensorElements } from '../converter/model-layout.js';
import { readFully, writeFully } from '../converter/io.js';
import { streamSettings, streamTensors, writeFileAtomically, type PlannedTensor, type TensorReader } from '../converter/convert.js';
import type { ConvertibleDtype, TensorInfo } from '../converter/safetensors.js';
import { imatrixForConversion } from '../converter/imatrix.js';
import { native } from '../engine/native.js';
import { tokenizerPathFor } from '../tokenizer/load.js';
import type { QuantizationError, QuantizeResults } from './results.js';

export interface QuantizeOptions {
  /** The .m file to re-encode. */
  input: string;
  output: string;
  weights: WeightTypeName;
  /** Encoder threads (default: all cores). */
  threads?: number;
  /** Input bytes streamed so far, of the total. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** Bytes read per chunk (default 8 MiB). */
  chunkBytes?: number;
  /** An importance matrix (GGUF imatrix or legacy .dat) for the weighted q40 encoder; q40 only. */
  imatrix?: string;
  /** The output head's type (default: `weights`). */
  outputType?: WeightTypeName;
}

/**
 * Only a full-precision input may be encoded to a lossy type: re-quantizing q40 to q80 (or to f16)
 * would stack a second rounding on the first and report only the second. A lossy input can only be
 * dequantized to f32, which is exact.
 */
function checkConversion(file: string, from: WeightType, to: WeightType): void {
  if (from === to) throw new InputError(file, `weights are already ${weightTypeName(to)}; nothing to do`);
  if (isBlockType(from) && to !== WeightType.F32) {
    throw new InputError(
      file,
      `weights are ${weightTypeName(from)}, which is already quantized; re-encoding it as ${weightTypeName(to)} would compound the error. ` +
        'Quantize from the f32 or f16 file, or pass --weights f32 to dequantize',
    );
  }
}

/** `blk.3.ffn_gate.5.weight` -> `ffn_gate_exps` (llama.cpp's name for the stacked experts), `blk.0.attn_q.weight` -> `attn_q`. */
export function tensorKind(name: string): string {
  const m = /^(?:blk\.\d+\.)?(.+?)(\.\d+)?\.(?:weight|bias)$/.exec(name);
  if (!m) throw new Error(`internal: unexpected tensor name ${name}`);
  return m[2] ? `${m[1]}_exps` : m[1]!;
}

/** Reads a .m file's tensors as the streaming core expects: f32/f16 bytes as stored, q40/q80 decoded to f32. */
function modelReader(model: ModelFile, handle: FileHandle): TensorReader {
  const placed = new Map(model.tensors.map((t) => [t.name, t]));
  return {
    async read(info: TensorInfo, byteOffset: number, into: Uint8Array): Promise<void> {
      const t = placed.get(info.name)!;
      if (!isBlockType(t.type)) return readFully(handle, into, t.offset + byteOffset, model.path);
      const first = byteOffset / 4;
      const elements = into.length / 4;
      const stored = Buffer.allocUnsafe(encodedBytes(t.type, elements));
      await readFully(handle, stored, t.offset + encodedBytes(t.type, first), model.path);
      const values = native().decode(stored, t.type, elements);
      into.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    },
  };
}

/** The input's tensors planned as the output's: same order and shapes, the output's types. */
function plan(model: ModelFile, header: ModelHeader): PlannedTensor[] {
  const specs = modelTensors(header);
  return specs.map((spec, i) => {
    const source = model.tensors[i]!;
    const rowLength = spec.shape.length > 1 ? spec.shape[spec.shape.length - 1]! : 1;
    if (isBlockType(spec.type) && rowLength % BLOCK_SIZE !== 0) {
      throw new InputError(model.path, `tensor ${spec.name}: row length ${rowLength} is not a multiple of ${BLOCK_SIZE}, which ${weightTypeName(spec.type)} blocks need; use f16 instead`);
    }
    const dtype: ConvertibleDtype = source.type === WeightType.F16 ? 'F16' : 'F32';
    const elements = tensorElements(spec);
    const info: TensorInfo = { name: source.name, dtype, shape: source.shape, file: model.path, offset: source.offset, byteLength: elements * SOURCE_DTYPE_BYTES[dtype] };
    return { spec, info, dtype, rowLength, rows: elements / rowLength, sourceOffset: 0 };
  });
}

/** Sums of squared and largest absolute errors per tensor kind, fed chunk by chunk. */
class ErrorTally {
  private readonly kinds = new Map<string, { tensors: Set<string>; elements: number; sumSquares: number; maxAbs: number }>();

  add(tensor: string, input: Float32Array, output: Float32Array): void {
    const kind = tensorKind(tensor);
    let k = this.kinds.get(kind);
    if (!k) this.kinds.set(kind, (k = { tensors: new Set(), elements: 0, sumSquares: 0, maxAbs: 0 }));
    k.tensors.add(tensor);
    k.elements += input.length;
    let sumSquares = 0;
    let maxAbs = k.maxAbs;
    for (let i = 0; i < input.length; i++) {
      const err = output[i]! - input[i]!;
      sumSquares += err * err;
      if (Math.abs(err) > maxAbs) maxAbs = Math.abs(err);
    }
    k.sumSquares += sumSquares;
    k.maxAbs = maxAbs;
  }

  results(): QuantizationError[] {
    return [...this.kinds].map(([kind, k]) => ({ kind, tensors: k.tensors.size, rmse: Math.sqrt(k.sumSquares / k.elements), maxAbs: k.maxAbs }));
  }
}

/** Copies the .t beside the input to beside the output (as convert writes it), so the new model runs as it is. */
async function copyTokenizer(input: string, output: string, signal: AbortSignal | undefined): Promise<string | undefined> {
  const from = tokenizerPathFor(input);
  const to = tokenizerPathFor(output);
  if (!existsSync(from) || from === to) return undefined;
  const bytes = await readFile(from);
  await writeFileAtomically(to, signal, async (out) => {
    await writeFully(out, bytes);
    return bytes.length;
  });
  return to;
}

export async function quantizeModel(o: QuantizeOptions): Promise<QuantizeResults> {
  const started = performance.now();
  const settings = streamSettings({ weights: o.weights, threads: o.threads, chunkBytes: o.chunkBytes, signal: o.signal, outputType: o.outputType });
  const to = settings.weightType;
  const model = await readModelFile(o.input);
  checkConversion(model.path, model.header.weightType, to);
  const { outputType: _input, ...inputHeader } = model.header;
  const outputHeader: ModelHeader = { ...inputHeader, weightType: to, ...(settings.outputType !== undefined && settings.outputType !== to ? { outputType: settings.outputType } : {}) };
  const tensors = plan(model, outputHeader);
  const weighted = o.imatrix ? await imatrixForConversion(o.imatrix, outputHeader) : undefined;
  // The weight matrices: the tensors a block type would encode (the others are always stored f32).
  const matrices = new Set(modelTensors({ ...model.header, weightType: WeightType.Q40 }).filter((t) => t.type === WeightType.Q40).map((t) => t.name));
  const engine = native();
  const tally = new ErrorTally();
  const hash = createHash('sha256');
  const header = encodeHeader(outputHeader);
  hash.update(header);
  let bytes = 0;
  const handle = await open(model.path, 'r');
  try {
    await writeFileAtomically(o.output, o.signal, async (out) => {
      await writeFully(out, header);
      const streamed = await streamTensors(out, modelReader(model, handle), tensors.map((tensor) => ({ tensor })), header.length, {
        ...settings,
        ...(weighted ? { importance: weighted.importance } : {}),
        ...(o.onProgress ? { onProgress: (p: { bytesDone: number; bytesTotal: number }) => o.onProgress!(p.bytesDone, p.bytesTotal) } : {}),
        onChunk: (t, source, encoded) => {
          hash.update(encoded);
          if (!matrices.has(t.spec.name)) return;
          const elements = source.length / SOURCE_DTYPE_BYTES[t.dtype];
          const input = engine.decode(source, t.dtype === 'F16' ? WeightType.F16 : WeightType.F32, elements);
          tally.add(t.spec.name, input, engine.decode(encoded, t.spec.type, elements));
        },
      });
      bytes = header.length + streamed.bytesWritten;
      return bytes;
    });
  } finally {
    await handle.close();
  }
  const tokenizer = await copyTokenizer(o.input, o.output, o.signal);
  return {
    kind: 'quantize',
    model: o.input,
    output: o.output,
    weights: weightTypeName(to),
    inputWeights: weightTypeName(model.header.weightType),
    errors: tally.results(),
    bytes,
    sha256: hash.digest('hex'),
    ...(tokenizer ? { tokenizer } : {}),
    ...(weighted ? { imatrix: weighted.use } : {}),
    seconds: (performance.now() - started) / 1000,
  };
}
