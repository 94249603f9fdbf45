/**
 * Glm4MoeForCausalLM (GLM-4.5, GLM-4.5-Air, INTELLECT-3): half-split RoPE, optional q/k norm, dense first
 * layers, sigmoid router with a correction bias, routed plus shared experts. The MTP layer stored at index
 * num_hidden_layers is read only for convert --mtp (its nextn.* tensors and its decoder block; a stored
 * embed_tokens / shared_head.head copy is left out, the main model's are used). Experts may be stored one by one (hub checkpoints) or stacked as
 * transformers v5 re-saves them (experts.gate_up_proj [E, 2*Im, H], experts.down_proj [E, H, Im]).
 */
import { ArchType, RopeStyle } from '../model-header.js';
import { layerOf, unknownTensor, whole, type Architecture, type ModelParams, type TensorSource, type CheckpointNames } from './architecture.js';
import { decoderSource, parseDecoderConfig } from './hf-decoder.js';

export const glm4moe: Architecture = {
  name: 'glm4moe',
  hfArchitectures: ['Glm4MoeForCausalLM'],
  parseConfig(config) {
    const p = parseDecoderConfig(config, ArchType.GLM4_MOE, RopeStyle.HalfSplit);
    p.qkNorm = config.bool('use_qk_norm', false);
    p.nExperts = config.int('n_routed_experts');
    p.nActiveExperts = config.int('num_experts_per_tok');
    p.moeHiddenDim = config.int('moe_intermediate_size');
    p.nSharedExperts = config.int('n_shared_experts', undefined, true);
    p.firstDenseLayers = config.int('first_k_dense_replace', undefined, true);
    p.routedScalingFactor = config.number('routed_scaling_factor', 1);
    p.normTopkProb = config.bool('norm_topk_prob', true);
    p.nExpertGroups = config.int('n_group', 1);
    p.topkGroups = config.int('topk_group', 1);
    p.nextnLayers = config.int('num_nextn_predict_layers', 0, true);
    if (p.nActiveExperts > p.nExperts) config.fail('num_experts_per_tok', `${p.nActiveExperts} exceeds n_routed_experts = ${p.nExperts}`);
    if (p.nExperts % p.nExpertGroups !== 0) config.fail('n_group', `${p.nExpertGroups} does not divide n_routed_experts = ${p.nExperts}`);
    if (p.topkGroups > p.nExpertGroups) config.fail('topk_group', `${p.topkGroups} exceeds n_group = ${p.nExpertGroups}`);
    if (p.firstDenseLayers > p.nLayers) config.fail('first_k_dense_replace', `${p.firstDenseLayers} exceeds num_hidden_layers = ${p.nLayers}`);
    return p;
  },
  source(name, p, checkpoint) {
    const { layer, rest } = layerOf(name) ?? { layer: undefined, rest: name };
    const common = decoderSource(name, layer, rest, p, checkpoint, { preFfnNorm: 'post_attention_layernorm.weight' });
    if (common) return common;
    if (layer === undefined) return unknownTensor(name);
    const nextn = /^nextn\.(.+)$/.exec(rest)?.[1];
    if (nextn !== undefined) return nextnSource(`model.layers.${layer}.`, nextn, p) ?? unknownTensor(name);
    return ffnSource(`model.layers.${layer}.mlp.`, rest, p, checkpoint) ?? unknownTensor(name);
  },
};

function nextnSource(prefix: string, rest: string, p: ModelParams): TensorSource | undefined {
  const names: Record<string, [string, number[]]> = {
    'enorm.weight': ['enorm.weight', [p.dim]],
    'hnorm.weight': ['hnorm.weight', [p.dim]],
    'eh_proj.weight': ['eh_proj.weight', [p.dim, 2 * p.dim]],
    'shared_head_norm.weight': ['shared_head.norm.weight', [p.dim]],
  };
  const hit = names[rest];
  return hit ? whole(prefix + hit[0], hit[1]) : undefined;
}

function ffnSource(mlp: string, rest: string, p: ModelParams, checkpoint: CheckpointNames): TensorSource | undefined {
  const dense: Record<string, [string, number[]]> = {
    'ffn_gate.weight': ['gate_proj.weight', [p.hiddenDim, p.dim]],
    'ffn_up.weight': ['up_proj.weight', [p.hiddenDim, p.dim]],
    'ffn_down.weight': ['down_proj.weight', [p.dim, p.hiddenDim]],
    'ffn_gate_inp.weight': ['gate.weight', [p.nExperts, p.dim]],
    'exp_probs_b.bias': ['gate.e_score_correction_bias', [p.nExperts]],
  };
  const shared = p.moeHiddenDim * p.nSharedExperts;
  const sharedExpert: Record<string, [string, number[]]> = {
    'ffn_gate_shexp.weight': ['shared_experts.gate_proj.weight', [shared, p.dim]],
    'ffn_up_shexp.weight': ['shared_experts.up_proj.weight', [shared, p.dim]],
    'ffn_down_shexp.weight': ['shared_experts.down_proj.weight', [p.dim, shared]],
  };
  const hit = dense[rest] ?? sharedExpert[rest];
  if (hit) return whole(mlp + hit[0], hit[1]);

  const expert = /^ffn_(gate|up|down)\.(\d+)\.weight$/.exec(rest);
  if (!expert) return undefined;
  const [, proj, index] = expert as unknown as [string, 'gate' | 'up' | 'down', string];
  const e = Number(index);
  const im = p.moeHiddenDim;
  const single = `${mlp}experts.${e}.${proj}_proj.weight`;
  if (checkpoint.has(single) || !checkpoint.has(`${mlp}experts.gate_up_proj`)) {
    return whole(single, proj === 'down' ? [p.dim, im] : [im, p.dim]);
  }
  if (proj === 'down') return { tensor: `${mlp}experts.down_proj`, shape: [p.nExperts, p.dim, im], rowStart: e * p.dim };
  return { tensor: `${mlp}experts.gate_up_proj`, shape: [p.nExperts, 2 * im, p.dim], rowStart: e * 2 * im + (proj === 'up' ? im : 0) };
}
