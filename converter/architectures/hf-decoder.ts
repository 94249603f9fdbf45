/**
 * The `model.layers.N.*` naming shared by transformers' GlmForCausalLM, Glm4ForCausalLM and
 * Glm4MoeForCausalLM: attention, norms, embedding and head. Each architecture adds its own FFN tensors.
 */
import type { ConfigReader } from '../config.js';
import { HiddenAct, RopeStyle, type ArchType } from '../model-header.js';
import {
  DENSE_DEFAULTS,
  checkAttention,
  rotaryDims,
  whole,
  type CheckpointNames,
  type ModelParams,
  type TensorSource,
} from './architecture.js';

/** Config fields every model.layers architecture has; MoE fields start at zero. */
export function parseDecoderConfig(config: ConfigReader, archType: ArchType, ropeStyle: RopeStyle): ModelParams {
  const act = config.json.hidden_act ?? 'silu';
  if (act !== 'silu') config.fail('hidden_act', `${JSON.stringify(act)} is not supported (GLM models use silu)`);
  const nHeads = config.int('num_attention_heads');
  const headDim = config.int('head_dim');
  const p: ModelParams = {
    archType,
    hiddenAct: HiddenAct.Silu,
    dim: config.int('hidden_size'),
    hiddenDim: config.int('intermediate_size'),
    nLayers: config.int('num_hidden_layers'),
    nHeads,
    nKvHeads: config.int('num_key_value_heads', nHeads),
    headDim,
    vocabSize: config.int('vocab_size'),
    maxSeqLen: config.int('max_position_embeddings'),
    ropeStyle,
    ropeTheta: config.ropeNumber('rope_theta'),
    // transformers fills a missing factor with 0.5 for glm and glm4 (and glm4_moe configs carry 0.5).
    ropeDim: rotaryDims(config, headDim, config.ropeNumber('partial_rotary_factor', 0.5), 'partial_rotary_factor'),
    normEpsilon: config.number('rms_norm_eps'),
    attentionBias: config.bool('attention_bias', true),
    ...DENSE_DEFAULTS,
  };
  checkAttention(config, p, { heads: 'num_attention_heads', kvHeads: 'num_key_value_heads' });
  if (config.bool('tie_word_embeddings', false)) p.tiedEmbeddings = true;
  return p;
}

/**
 * Sources of the tensors every model.layers architecture shares, or undefined for an FFN tensor the
 * caller maps itself. `rest` is the output name after `blk.N.`.
 */
export function decoderSource(
  name: string,
  layer: number | undefined,
  rest: string,
  p: ModelParams,
  checkpoint: CheckpointNames,
  names: { preFfnNorm: string },
): TensorSource | undefined {
  const qDim = p.nHeads * p.headDim;
  const kvDim = p.nKvHeads * p.headDim;
  if (layer === undefined) {
    switch (name) {
      case 'token_embd.weight':
        return whole('model.embed_tokens.weight', [p.vocabSize, p.dim]);
      case 'output_norm.weight':
        return whole('model.norm.weight', [p.dim]);
      case 'output.weight':
        // Untied in every GLM release; a tied re-save falls back to the embedding, as transformers does.
        return whole(checkpoint.has('lm_head.weight') || !p.tiedEmbeddings ? 'lm_head.weight' : 'model.embed_tokens.weight', [p.vocabSize, p.dim]);
      default:
        return undefined;
    }
  }
  const l = `model.layers.${layer}.`;
  const attn: Record<string, [string, number[]]> = {
    'attn_norm.weight': ['input_layernorm.weight', [p.dim]],
    'attn_q.weight': ['self_attn.q_proj.weight', [qDim, p.dim]],
    'attn_k.weight': ['self_attn.k_proj.weight', [kvDim, p.dim]],
    'attn_v.weight': ['self_attn.v_proj.weight', [kvDim, p.dim]],
    'attn_q.bias': ['self_attn.q_proj.bias', [qDim]],
    'attn_k.bias': ['self_attn.k_proj.bias', [kvDim]],
    'attn_v.bias': ['self_attn.v_proj.bias', [kvDim]],
    'attn_q_norm.weight': ['self_attn.q_norm.weight', [p.headDim]],
    'attn_k_norm.weight': ['self_attn.k_norm.weight', [p.headDim]],
    'attn_output.weight': ['self_attn.o_proj.weight', [p.dim, qDim]],
    'ffn_norm.weight': [names.preFfnNorm, [p.dim]],
  };
  const hit = attn[rest];
  return hit ? whole(l + hit[0], hit[1]) : undefined;
}
