/** Weight types of a .m file (distributed-llama's FloatType ids) and source dtypes of a checkpoint. */
import type { ConvertibleDtype } from './safetensors.js';

export enum WeightType {
  F32 = 0,
  F16 = 1,
  Q40 = 2,
  Q80 = 3,
}

export const WEIGHT_TYPE_NAMES = ['f32', 'f16', 'q40', 'q80'] as const;
export type WeightTypeName = (typeof WEIGHT_TYPE_NAMES)[number];

export const BLOCK_SIZE = 32;

export function weightTypeFromName(name: string): WeightType {
  const index = (WEIGHT_TYPE_NAMES as readonly string[]).indexOf(name.toLowerCase());
  if (index < 0) throw new Error(`unknown weight type "${name}"; expected one of ${WEIGHT_TYPE_NAMES.join(', ')}`);
  return index as WeightType;
}

export function weightTypeName(type: WeightType): WeightTypeName {
  const name = WEIGHT_TYPE_NAMES[type];
  if (!name) throw new Error(`unknown weight type id ${type}`);
  return name;
}

export function isBlockType(type: WeightType): boolean {
  return type === WeightType.Q40 || type === WeightType.Q80;
}

/** Bytes of `elements` values stored as `type` (Q40: 18-byte blocks of 32, Q80: 34-byte blocks of 32). */
export function encodedBytes(type: WeightType, elements: number): number {
  switch (type) {
    case WeightType.F32:
      return elements * 4;
    case WeightType.F16:
      return elements * 2;
    case WeightType.Q40:
      return (elements / BLOCK_SIZE) * 18;
    case WeightType.Q80:
      return (elements / BLOCK_SIZE) * 34;
  }
}

/** Source dtype ids the native encoder takes. */
export const SOURCE_DTYPE_IDS: Readonly<Record<ConvertibleDtype, number>> = { F32: 0, F16: 1, BF16: 2 };
export const SOURCE_DTYPE_BYTES: Readonly<Record<ConvertibleDtype, number>> = { F32: 4, F16: 2, BF16: 2 };
