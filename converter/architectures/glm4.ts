/** Glm4ForCausalLM (GLM-4-9B-0414, GLM-4-32B-0414): Glm plus sandwich norms around attention and MLP. */
import { ArchType, RopeStyle } from '../model-header.js';
import { layerOf, unknownTensor, whole, type Architecture } from './architecture.js';
import { decoderSource, parseDecoderConfig } from './hf-decoder.js';
import { fusedGateUpSource } from './fused-mlp.js';

export const glm4: Architecture = {
  name: 'glm4',
  hfArchitectures: ['Glm4ForCausalLM'],
  parseConfig: (config) => parseDecoderConfig(config, ArchType.GLM4, RopeStyle.Interleaved),
  source(name, p, checkpoint) {
    const { layer, rest } = layerOf(name) ?? { layer: undefined, rest: name };
    const common = decoderSource(name, layer, rest, p, checkpoint, { preFfnNorm: 'post_attention_layernorm.weight' });
    if (common) return common;
    if (layer === undefined) return unknownTensor(name);
    const l = `model.layers.${layer}.`;
    // post_attention_layernorm is the pre-MLP norm (a historical name); the sandwich norms are these two.
    if (rest === 'post_attention_norm.weight') return whole(`${l}post_self_attn_layernorm.weight`, [p.dim]);
    if (rest === 'post_ffw_norm.weight') return whole(`${l}post_mlp_layernorm.weight`, [p.dim]);
    return fusedGateUpSource(`${l}mlp.`, rest, p, { gateUp: 'gate_up_proj', down: 'down_proj' }) ?? unknownTensor(name);
  },
};
