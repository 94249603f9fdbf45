/** `inspect`: a .m file's header and tensor table, as text or as one JSON object. */
import { weightTypeName } from './dtypes.js';
import { ARCH_NAMES, HEADER_KEYS, HiddenAct, RopeStyle, type ModelHeader } from './model-header.js';
import { readModelFile, type ModelFile } from './model-file.js';

export interface InspectReport {
  file: string;
  fileSize: number;
  headerSize: number;
  architecture: string;
  weights: string;
  parameters: number;
  header: ModelHeader;
  tensors: { name: string; type: string; shape: number[]; offset: number; bytes: number }[];
}

export async function inspectModel(path: string): Promise<InspectReport> {
  return reportOf(await readModelFile(path));
}

export function reportOf(model: ModelFile): InspectReport {
  return {
    file: model.path,
    fileSize: model.fileSize,
    headerSize: model.headerSize,
    architecture: ARCH_NAMES[model.header.archType],
    weights: weightTypeName(model.header.weightType),
    parameters: model.parameters,
    header: model.header,
    tensors: model.tensors.map((t) => ({ name: t.name, type: weightTypeName(t.type), shape: [...t.shape], offset: t.offset, bytes: t.bytes })),
  };
}

/** The shortest decimal that reads back as the same float32 (1e-5, not 0.0000099999997). */
function shortestF32(value: number): string {
  for (let digits = 1; digits < 9; digits++) {
    const text = String(Number(value.toPrecision(digits)));
    if (Math.fround(Number(text)) === value) return text;
  }
  return String(value);
}

function headerValue(field: keyof ModelHeader, value: unknown): string {
  const kind = HEADER_KEYS.find((k) => k.field === field)?.kind;
  if (kind === 'f32') return shortestF32(value as number);
  if (field === 'hiddenAct') return value === HiddenAct.Silu ? 'silu' : 'gelu';
  if (field === 'archType') return `0x${(value as number).toString(16)} (${ARCH_NAMES[value as ModelHeader['archType']]})`;
  if (field === 'weightType' || field === 'outputType') return weightTypeName(value as ModelHeader['weightType']);
  if (field === 'ropeStyle') return value === RopeStyle.HalfSplit ? 'half-split' : 'interleaved';
  return String(value);
}

export function formatReport(r: InspectReport): string {
  const lines = [
    `${r.file}: ${r.architecture}, ${r.weights} weights, ${(r.parameters / 1e6).toFixed(2)}M parameters, ${r.fileSize} bytes (header ${r.headerSize})`,
    '',
    'header:',
    ...HEADER_KEYS.filter((k) => !k.sameAs || r.header[k.field] !== undefined).map((k) => `  ${String(k.id).padStart(3)} ${k.field.padEnd(20)} ${headerValue(k.field, r.header[k.field])}`),
    '',
  ];
  const rows = r.tensors.map((t) => [t.name, t.type, `[${t.shape.join(', ')}]`, String(t.offset), String(t.bytes)]);
  const titles = ['tensor', 'type', 'shape', 'offset', 'bytes'];
  const widths = titles.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const format = (row: string[]) => row.map((cell, i) => (i >= 3 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  lines.push(format(titles), ...rows.map(format), '', `${r.tensors.length} tensors; header + tensors = ${r.fileSize} bytes = file size`);
  return lines.join('\n');
}
