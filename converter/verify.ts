/**
 * Compares a converted .m file with the checkpoint it came from, tensor by tensor, streaming rows so
 * memory stays bounded: the dequantized values against the source values.
 */
import { open } from 'node:fs/promises';
import { SOURCE_DTYPE_BYTES, SOURCE_DTYPE_IDS, WeightType, encodedBytes, weightTypeName } from './dtypes.js';
import { planConversion } from './convert.js';
import { readModelFile } from './model-file.js';
import { readFully } from './io.js';
import { native } from '../engine/native.js';

export interface TensorError {
  name: string;
  type: string;
  elements: number;
  /** Root mean square of (converted - source). */
  rmse: number;
  maxAbsError: number;
  /** Largest |source| value, to put the errors in scale. */
  maxAbsSource: number;
}

export async function compareWithSource(modelDir: string, modelPath: string, chunkElements = 1 << 20): Promise<TensorError[]> {
  const model = await readModelFile(modelPath);
  const plan = await planConversion(modelDir, model.header.weightType, { mtp: model.header.mtpLayers > 0, outputType: model.header.outputType });
  const engine = native();
  const handle = await open(modelPath, 'r');
  const results: TensorError[] = [];
  try {
    for (const [i, t] of plan.tensors.entries()) {
      const placed = model.tensors[i]!;
      if (placed.name !== t.spec.name) throw new Error(`${modelPath}: tensor ${i} is ${placed.name}, expected ${t.spec.name}`);
      const rowsPerChunk = Math.max(1, Math.floor(chunkElements / t.rowLength));
      const elementBytes = SOURCE_DTYPE_BYTES[t.dtype];
      let sumSquares = 0;
      let maxAbsError = 0;
      let maxAbsSource = 0;
      for (let row = 0; row < t.rows; row += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, t.rows - row);
        const n = rows * t.rowLength;
        const sourceBytes = Buffer.alloc(n * elementBytes);
        await plan.checkpoint.read(t.info, t.sourceOffset + row * t.rowLength * elementBytes, sourceBytes);
        const widened = Buffer.alloc(n * 4);
        await engine.encode(sourceBytes, SOURCE_DTYPE_IDS[t.dtype], widened, WeightType.F32, n, 1);
        const source = new Float32Array(widened.buffer, widened.byteOffset, n);
        const stored = Buffer.alloc(encodedBytes(placed.type, n));
        await readFully(handle, stored, placed.offset + encodedBytes(placed.type, row * t.rowLength), modelPath);
        const converted = engine.decode(stored, placed.type, n);
        for (let k = 0; k < n; k++) {
          const err = Math.abs(converted[k]! - source[k]!);
          sumSquares += err * err;
          if (err > maxAbsError) maxAbsError = err;
          const mag = Math.abs(source[k]!);
          if (mag > maxAbsSource) maxAbsSource = mag;
        }
      }
      const elements = t.rows * t.rowLength;
      results.push({ name: placed.name, type: weightTypeName(placed.type), elements, rmse: Math.sqrt(sumSquares / elements), maxAbsError, maxAbsSource });
    }
  } finally {
    await handle.close();
    await plan.checkpoint.close();
  }
  return results;
}
