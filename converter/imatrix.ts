/**
 * Importance matrices (imatrix): per weight matrix, the sum of squares of each input column's activations
 * over calibration text and the tokens seen, per expert for the routed experts. Written in llama.cpp's
 * GGUF imatrix format (`<name>.in_sum2` [cols, mats] and `<name>.counts` [1, mats], llama.cpp's tensor
 * names, so files are interchangeable); llama.cpp's legacy .dat format is read too. The converter turns an
 * entry into one importance vector per .m tensor (see importanceFor and docs/conversion-guide.md).
 */
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { GgmlType, GgufType, encodeGgufHeader, gguf, placeGgufTensors, readGguf, type GgufValue } from './gguf-format.js';
import { InputError } from './errors.js';
import { readFully, writeFully } from './io.js';
import { ArchType, type ModelHeader } from './model-header.js';
import { modelTensors } from './model-layout.js';
import { WeightType } from './dtypes.js';
import { writeFileAtomically, type PlannedTensor } from './convert.js';

export interface ImatrixEntry {
  /** llama.cpp's tensor name, e.g. `blk.3.ffn_down_exps.weight`. */
  readonly name: string;
  /** Values per matrix (the weight's input columns). */
  readonly cols: number;
  /** Matrices: the experts of a stacked `_exps` tensor, else 1. */
  readonly mats: number;
  /** Sums of x^2, matrix-major (mats x cols). For a legacy .dat file: per-matrix means (its counts are all 1). */
  readonly sumSquares: Float32Array;
  /** Tokens each matrix saw. */
  readonly counts: Float32Array;
}

export interface ImportanceMatrix {
  /** The file it was read from, for errors. */
  readonly file: string;
  readonly format: 'gguf' | 'dat';
  /** Calibration text names (imatrix.datasets). */
  readonly datasets: readonly string[];
  readonly chunkCount: number;
  readonly chunkSize: number;
  readonly entries: ReadonlyMap<string, ImatrixEntry>;
}

/** Where a .m tensor's importance lives: llama.cpp's entry name and the matrix (expert) inside it. */
export function imatrixSlot(header: ModelHeader, tensor: string): { name: string; mat: number } {
  const expert = /^(blk\.\d+\.ffn_(?:gate|up|down))\.(\d+)\.weight$/.exec(tensor);
  if (expert) return { name: `${expert[1]}_exps.weight`, mat: Number(expert[2]) };
  // chatglm and glm4 GGUF files fuse gate and up into one ffn_up (they share their input).
  const gate = /^(blk\.\d+\.)ffn_gate\.weight$/.exec(tensor);
  if (gate && header.archType !== ArchType.GLM4_MOE) return { name: `${gate[1]}ffn_up.weight`, mat: 0 };
  return { name: tensor, mat: 0 };
}

/** The entries a model's weight matrices read (name -> columns and matrices), as the collector writes them. */
export function imatrixLayout(header: ModelHeader): Map<string, { cols: number; mats: number }> {
  const layout = new Map<string, { cols: number; mats: number }>();
  for (const t of modelTensors({ ...header, weightType: WeightType.Q40 })) {
    if (t.type !== WeightType.Q40) continue;
    const slot = imatrixSlot(header, t.name);
    const cols = t.shape[1]!;
    const known = layout.get(slot.name);
    layout.set(slot.name, { cols, mats: Math.max(known?.mats ?? 0, slot.mat + 1) });
  }
  return layout;
}

/** One collected matrix, as the engine returns it (engine/src/activation-stats.h). */
export interface CollectedStats {
  /** The .m tensor name. */
  readonly name: string;
  readonly sumSquares: Float64Array;
  readonly tokens: number;
}

/** Gathers the engine's per-tensor statistics into llama.cpp's entries (experts stacked, fused gate/up once). */
export function imatrixFromStats(header: ModelHeader, stats: readonly CollectedStats[], meta: { datasets: string[]; chunkCount: number; chunkSize: number }): ImportanceMatrix {
  const layout = imatrixLayout(header);
  const entries = new Map<string, { cols: number; mats: number; sumSquares: Float32Array; counts: Float32Array }>();
  for (const s of stats) {
    const slot = imatrixSlot(header, s.name);
    const shape = layout.get(slot.name);
    if (!shape || shape.cols !== s.sumSquares.length) throw new Error(`internal: collected ${s.name} (${s.sumSquares.length} columns) has no place in the imatrix layout`);
    if (slot.name !== s.name && !slot.name.endsWith('_exps.weight')) continue; // the fused ffn_up keeps up's sums: gate's are the same
    let e = entries.get(slot.name);
    if (!e) entries.set(slot.name, (e = { ...shape, sumSquares: new Float32Array(shape.cols * shape.mats), counts: new Float32Array(shape.mats) }));
    e.sumSquares.set(s.sumSquares, slot.mat * shape.cols);
    e.counts[slot.mat] = s.tokens;
  }
  const sorted = new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, e]) => [name, { name, ...e }]));
  return { file: '', format: 'gguf', ...meta, entries: sorted };
}

function checkFinite(file: string, entry: string, field: string, values: Float32Array, min = 0): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v) || v < min) throw new InputError(file, `imatrix tensor ${entry}.${field} holds ${v} at index ${i}; sums and counts must be finite and >= 0`);
  }
}

/** Writes llama.cpp's GGUF imatrix file through a temporary name. */
export async function writeImatrix(path: string, m: Pick<ImportanceMatrix, 'datasets' | 'chunkCount' | 'chunkSize' | 'entries'>): Promise<void> {
  const metadata = new Map<string, GgufValue>([
    ['general.type', gguf.str('imatrix')],
    ['imatrix.datasets', gguf.strings(m.datasets)],
    ['imatrix.chunk_count', gguf.u32(m.chunkCount)],
    ['imatrix.chunk_size', gguf.u32(m.chunkSize)],
  ]);
  const data: Float32Array[] = [];
  const tensors: { name: string; ne: number[]; type: GgmlType }[] = [];
  for (const e of m.entries.values()) {
    checkFinite(path, e.name, 'in_sum2', e.sumSquares);
    checkFinite(path, e.name, 'counts', e.counts);
    tensors.push({ name: `${e.name}.counts`, ne: [1, e.mats], type: GgmlType.F32 }, { name: `${e.name}.in_sum2`, ne: [e.cols, e.mats], type: GgmlType.F32 });
    data.push(e.counts, e.sumSquares);
  }
  const placed = placeGgufTensors(tensors);
  const header = encodeGgufHeader(metadata, placed);
  await writeFileAtomically(path, undefined, async (out) => {
    await writeFully(out, header);
    let at = 0;
    for (let i = 0; i < placed.length; i++) {
      const pad = placed[i]!.offset - at;
      if (pad > 0) await writeFully(out, Buffer.alloc(pad));
      const values = data[i]!;
      await writeFully(out, Buffer.from(values.buffer, values.byteOffset, values.byteLength));
      at = placed[i]!.offset + placed[i]!.bytes;
    }
    return header.length + at;
  });
}

const stringsOf = (v: GgufValue | undefined): string[] => (v?.type === GgufType.ARRAY ? v.value.map(String) : v?.type === GgufType.STRING ? [v.value] : []);

async function readGgufImatrix(path: string): Promise<ImportanceMatrix> {
  let file;
  try {
    file = await readGguf(path);
  } catch (e) {
    throw new InputError(path, (e as Error).message.replace(`${path}: `, ''));
  }
  const type = file.metadata.get('general.type');
  if (type?.value !== 'imatrix') throw new InputError(path, `general.type is ${type ? JSON.stringify(type.value) : 'missing'}, not "imatrix": this GGUF file is not an importance matrix`);
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const handle = await open(path, 'r');
  const entries = new Map<string, ImatrixEntry>();
  try {
    const values = async (name: string): Promise<Float32Array> => {
      const t = byName.get(name)!;
      if (t.type !== GgmlType.F32) throw new InputError(path, `imatrix tensor ${name} has ggml type ${t.type}; F32 expected`);
      const bytes = Buffer.alloc(t.bytes);
      await readFully(handle, bytes, file.dataOffset + t.offset, path);
      return new Float32Array(bytes.buffer, bytes.byteOffset, t.bytes / 4);
    };
    for (const t of file.tensors) {
      const m = /^(.+)\.(in_sum2|counts|in_sum)$/.exec(t.name);
      if (!m) throw new InputError(path, `tensor ${t.name} is not an imatrix tensor (<name>.in_sum2, <name>.counts)`);
      if (m[2] !== 'in_sum2') continue;
      const name = m[1]!;
      const counts = byName.get(`${name}.counts`);
      if (!counts) throw new InputError(path, `imatrix tensor ${t.name} has no ${name}.counts`);
      const [cols = 0, mats = 1] = t.ne;
      if (t.ne.length > 2 || counts.ne.length > 2 || counts.ne[0] !== 1 || (counts.ne[1] ?? 1) !== mats) {
        throw new InputError(path, `imatrix entry ${name}: in_sum2 has shape [${t.ne}] but counts [${counts.ne}]; expected [cols, mats] and [1, mats]`);
      }
      const entry: ImatrixEntry = { name, cols, mats, sumSquares: await values(t.name), counts: await values(`${name}.counts`) };
      checkFinite(path, name, 'in_sum2', entry.sumSquares);
      checkFinite(path, name, 'counts', entry.counts);
      entries.set(name, entry);
    }
    for (const t of file.tensors) {
      const m = /^(.+)\.counts$/.exec(t.name);
      if (m && !byName.has(`${m[1]}.in_sum2`)) throw new InputError(path, `imatrix tensor ${t.name} has no ${m[1]}.in_sum2`);
    }
  } finally {
    await handle.close();
  }
  const u32 = (key: string): number => Number(file.metadata.get(key)?.value ?? 0);
  return { file: path, format: 'gguf', datasets: stringsOf(file.metadata.get('imatrix.datasets')), chunkCount: u32('imatrix.chunk_count'), chunkSize: u32('imatrix.chunk_size'), entries };
}

/**
 * llama.cpp's legacy .dat: int32 n_entries; per entry int32 name length, name, int32 ncall, int32 nval,
 * nval float32 values (mean x^2 times ncall); then optionally int32 chunks and a length-prefixed dataset
 * name. The values carry no per-expert counts: each matrix counts as seen (count 1, value the mean).
 */
function parseDat(path: string, b: Buffer): ImportanceMatrix {
  let at = 0;
  const need = (n: number, what: string): void => {
    if (at + n > b.length) throw new InputError(path, `legacy imatrix ends inside ${what} (offset ${at}, file of ${b.length} bytes)`);
  };
  const i32 = (what: string): number => {
    need(4, what);
    const v = b.readInt32LE(at);
    at += 4;
    return v;
  };
  const count = i32('the entry count');
  if (count < 0 || count > 1 << 20) throw new InputError(path, `legacy imatrix declares ${count} entries`);
  const entries = new Map<string, ImatrixEntry>();
  for (let i = 0; i < count; i++) {
    const nameLength = i32(`entry ${i}'s name length`);
    if (nameLength <= 0 || nameLength > 4096) throw new InputError(path, `entry ${i} has a name length of ${nameLength}`);
    need(nameLength, `entry ${i}'s name`);
    const name = b.toString('utf8', at, at + nameLength);
    at += nameLength;
    const ncall = i32(`${name}'s ncall`);
    const nval = i32(`${name}'s value count`);
    if (nval <= 0 || ncall <= 0) throw new InputError(path, `imatrix entry ${name} has ncall ${ncall} and ${nval} values; both must be positive`);
    need(nval * 4, `${name}'s values`);
    const means = new Float32Array(nval);
    for (let j = 0; j < nval; j++) means[j] = b.readFloatLE(at + 4 * j) / ncall;
    at += nval * 4;
    checkFinite(path, name, 'values', means);
    if (entries.has(name)) throw new InputError(path, `imatrix entry ${name} appears twice`);
    // Matrices are not recorded: importanceFor splits the values by the model tensor's columns.
    entries.set(name, { name, cols: nval, mats: 1, sumSquares: means, counts: new Float32Array([1]) });
  }
  let chunkCount = 0;
  const datasets: string[] = [];
  if (at + 4 <= b.length) {
    chunkCount = i32('the chunk count');
    if (at + 4 <= b.length) {
      const length = i32('the dataset name length');
      need(Math.max(0, length), 'the dataset name');
      datasets.push(b.toString('utf8', at, at + length));
      at += Math.max(0, length);
    }
  }
  return { file: path, format: 'dat', datasets, chunkCount, chunkSize: 0, entries };
}

/** Reads a GGUF imatrix or a legacy .dat (told apart by the GGUF magic). */
export async function readImatrix(path: string): Promise<ImportanceMatrix> {
  const handle = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new InputError(path, `cannot open the imatrix (${e.code ?? e.message})`);
  });
  let bytes: Buffer;
  try {
    const size = (await handle.stat()).size;
    const magic = Buffer.alloc(Math.min(4, size));
    await readFully(handle, magic, 0, path);
    if (magic.toString('latin1') === 'GGUF') return await readGgufImatrix(path);
    bytes = Buffer.alloc(size);
    await readFully(handle, bytes, 0, path);
  } finally {
    await handle.close();
  }
  return parseDat(path, bytes);
}

/**
 * Checks an imatrix against a model before anything is written: every entry the model's matrices read must
 * have their column count and (for expert stacks) their expert count. Entries for tensors the model lacks
 * (an MTP layer, output.weight, token_embd) are ignored. Returns the number of matrices that find an entry.
 */
export function checkImatrix(m: ImportanceMatrix, header: ModelHeader): { matched: number; missing: string[] } {
  const missing: string[] = [];
  let matched = 0;
  for (const [name, want] of imatrixLayout(header)) {
    const e = m.entries.get(name);
    if (!e) {
      missing.push(name);
      continue;
    }
    matched++;
    if (m.format === 'dat') {
      if (e.sumSquares.length !== want.cols * want.mats) {
        throw new InputError(m.file, `imatrix entry ${name} holds ${e.sumSquares.length} values; the model's tensor needs ${want.mats} x ${want.cols}`);
      }
    } else if (e.cols !== want.cols || e.mats !== want.mats) {
      throw new InputError(m.file, `imatrix entry ${name} has shape [${e.cols}, ${e.mats}] (columns, matrices); the model's tensor needs [${want.cols}, ${want.mats}]`);
    }
  }
  return { matched, missing };
}

/**
 * The importance vector (mean x^2 per input column) for one .m tensor, or undefined to keep
 * round-to-nearest (no entry, or an entry that saw no tokens at all). An expert that saw no tokens gets the
 * pooled mean of its stack (all experts' sums over all their tokens): gate and up read the same normed
 * hidden state for every expert, so the pool is the best estimate there; for down it is the layer's
 * average, still better than no weighting and never zero weights.
 */
export function importanceFor(m: ImportanceMatrix, header: ModelHeader, tensor: string, cols: number): Float32Array | undefined {
  const slot = imatrixSlot(header, tensor);
  const e = m.entries.get(slot.name);
  if (!e) return undefined;
  const mats = m.format === 'dat' ? e.sumSquares.length / cols : e.mats;
  const counts = m.format === 'dat' ? new Float32Array(mats).fill(1) : e.counts;
  if (!Number.isInteger(mats) || slot.mat >= mats || (m.format === 'gguf' && e.cols !== cols)) {
    throw new InputError(m.file, `imatrix entry ${slot.name} does not fit tensor ${tensor} (${cols} columns, matrix ${slot.mat})`);
  }
  const out = new Float32Array(cols);
  const count = counts[slot.mat]!;
  if (count > 0) {
    for (let j = 0; j < cols; j++) out[j] = e.sumSquares[slot.mat * cols + j]! / count;
    return out;
  }
  let total = 0;
  for (let k = 0; k < mats; k++) total += counts[k]!;
  if (total === 0) return undefined;
  for (let k = 0; k < mats; k++) for (let j = 0; j < cols; j++) out[j]! += e.sumSquares[k * cols + j]!;
  for (let j = 0; j < cols; j++) out[j]! /= total;
  return out;
}

/** Which imatrix made a file, for results, model cards and manifests. */
export interface ImatrixUse {
  /** The imatrix file's name. */
  file: string;
  /** Its calibration text(s). */
  datasets: string[];
  chunks: number;
  chunkSize: number;
  /** The model's matrix entries it covered, and those it lacked (quantized round-to-nearest). */
  matched: number;
  missing: number;
}

/**
 * Reads and checks an imatrix for a q40 conversion of `header` and returns the encoder's importance source.
 * The output head keeps round-to-nearest: llama.cpp's collector skips it by default, and its README
 * advises against weighting it.
 */
export async function imatrixForConversion(path: string, header: ModelHeader): Promise<{ importance: (t: PlannedTensor) => Float32Array | undefined; use: ImatrixUse }> {
  if (header.weightType !== WeightType.Q40) throw new InputError(path, 'an imatrix weights the q40 scale search; pass --weights q40 with --imatrix');
  const m = await readImatrix(path);
  const { matched, missing } = checkImatrix(m, header);
  if (matched === 0) throw new InputError(path, `no imatrix entry matches a tensor of this model (first expected: ${missing[0] ?? 'none'}); was it made for another model?`);
  return {
    importance: (t) => importanceFor(m, header, t.spec.name, t.rowLength),
    use: { file: basename(m.file), datasets: [...m.datasets], chunks: m.chunkCount, chunkSize: m.chunkSize, matched, missing: missing.length },
  };
}
