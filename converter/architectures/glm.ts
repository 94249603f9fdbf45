/** GlmForCausalLM (THUDM/glm-4-9b-chat-hf): split q/k/v with biases, fused gate_up_proj, two norms per layer. */
import { ArchType, RopeStyle } from '../model-header.js';
import { layerOf, unknownTensor, type Architecture } from './architecture.js';
import { decoderSource, parseDecoderConfig } from './hf-decoder.js';
import { fusedGateUpSource } from './fused-mlp.js';

export const glm: Architecture = {
  name: 'glm',
  hfArchitectures: ['GlmForCausalLM'],
  parseConfig: (config) => parseDecoderConfig(config, ArchType.GLM, RopeStyle.Interleaved),
  source(name, p, checkpoint) {
    const { layer, rest } = layerOf(name) ?? { layer: undefined, rest: name };
    return (
      decoderSource(name, layer, rest, p, checkpoint, { preFfnNorm: 'post_attention_layernorm.weight' }) ??
      (layer !== undefined ? fusedGateUpSource(`model.layers.${layer}.mlp.`, rest, p, { gateUp: 'gate_up_proj', down: 'down_proj' }) : undefined) ??
      unknownTensor(name)
    );
  },
};
