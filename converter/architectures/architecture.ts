/** What each checkpoint architecture module provides, and the checks all of them share. */
import type { ConfigReader } from '../config.js';
import type { ModelHeader } from '../model-header.js';

/** A model header before the weight type is chosen, plus what only the converter needs to know. */
export type ModelParams = Omit<ModelHeader, 'weightType' | 'version'> & {
  /** The checkpoint may omit the output head and reuse the embedding. */
  tiedEmbeddings?: boolean;
  /** num_nextn_predict_layers: MTP layers the checkpoint stores after num_hidden_layers (convert --mtp keeps one). */
  nextnLayers?: number;
};

/**
 * Where an output tensor's values come from: rows [rowStart, rowStart + rows) of checkpoint tensor
 * `tensor`, seen as a matrix [shape[0] x ... , last dim] (a vector is a column of 1-element rows).
 * Fused checkpoint tensors (query_key_value, gate_up_proj, stacked experts) are read as row ranges.
 */
export interface TensorSource {
  readonly tensor: string;
  /** The shape the checkpoint tensor must have. */
  readonly shape: readonly number[];
  readonly rowStart: number;
}

export interface CheckpointNames {
  has(name: string): boolean;
}

export interface Architecture {
  /** Short name used in messages and by the fixture command. */
  readonly name: string;
  /** config.json `architectures` values this module converts. */
  readonly hfArchitectures: readonly string[];
  parseConfig(config: ConfigReader): ModelParams;
  /** The checkpoint source of output tensor `name` (a name from modelTensors). */
  source(name: string, params: ModelParams, checkpoint: CheckpointNames): TensorSource;
}

/** The MoE and q/k-norm fields of a dense model. */
export const DENSE_DEFAULTS = {
  qkNorm: false,
  nExperts: 0,
  nActiveExperts: 0,
  moeHiddenDim: 0,
  nSharedExperts: 0,
  firstDenseLayers: 0,
  routedScalingFactor: 1,
  normTopkProb: false,
  nExpertGroups: 1,
  topkGroups: 1,
  mtpLayers: 0,
} as const satisfies Partial<ModelParams>;

export function whole(tensor: string, shape: readonly number[]): TensorSource {
  return { tensor, shape, rowStart: 0 };
}

/** Splits `blk.N.rest` into N and rest. */
export function layerOf(name: string): { layer: number; rest: string } | undefined {
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  return m ? { layer: Number(m[1]), rest: m[2]! } : undefined;
}

export function unknownTensor(name: string): never {
  throw new Error(`internal: no checkpoint source for output tensor ${name}`);
}

/** Rotary dims from partial_rotary_factor; must give an even count no larger than head_dim. */
export function rotaryDims(config: ConfigReader, headDim: number, factor: number, field: string): number {
  const dims = headDim * factor;
  if (!Number.isInteger(dims) || dims <= 0 || dims > headDim || dims % 2 !== 0) {
    config.fail(field, `${factor} x head_dim ${headDim} = ${dims} is not an even number of rotary dims within the head`);
  }
  return dims;
}

/** Cross-field checks common to every architecture; the field names are those of `config`. */
export function checkAttention(config: ConfigReader, p: ModelParams, fields: { heads: string; kvHeads: string }): void {
  if (p.nHeads % p.nKvHeads !== 0) {
    config.fail(fields.kvHeads, `${p.nKvHeads} does not divide ${fields.heads} = ${p.nHeads}`);
  }
}
