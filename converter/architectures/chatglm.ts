/**
 * ChatGLM remote code (THUDM/glm-4-9b-chat, glm-4-9b): `transformer.*` names, fused query_key_value
 * (q | k | v contiguous row blocks) and dense_h_to_4h ([gate; up]); RMSNorm; rotary over half of
 * kv_channels with interleaved pairs and base 10000 x rope_ratio. Converts to the same GLM graph as
 * GlmForCausalLM. The stored rotary_pos_emb.inv_freq (computed with base 10000) is ignored.
 */
import { ArchType, HiddenAct, RopeStyle } from '../model-header.js';
import { DENSE_DEFAULTS, checkAttention, layerOf, unknownTensor, whole, type Architecture, type ModelParams } from './architecture.js';
import { fusedGateUpSource } from './fused-mlp.js';

export const chatglm: Architecture = {
  name: 'chatglm',
  hfArchitectures: ['ChatGLMModel', 'ChatGLMForConditionalGeneration'],
  parseConfig(config) {
    const requireFlag = (key: string, expected: boolean, why: string) => {
      if (config.has(key) && config.bool(key) !== expected) config.fail(key, `must be ${expected}: ${why}`);
    };
    requireFlag('rmsnorm', true, 'LayerNorm variants of ChatGLM are not supported');
    requireFlag('add_bias_linear', false, 'biases on dense / MLP layers are not supported');
    requireFlag('apply_residual_connection_post_layernorm', false, 'post-norm residuals are not supported');
    requireFlag('post_layer_norm', true, 'a final norm is required');
    const nHeads = config.int('num_attention_heads');
    const headDim = config.int('kv_channels');
    const p: ModelParams = {
      archType: ArchType.GLM,
      hiddenAct: HiddenAct.Silu,
      dim: config.int('hidden_size'),
      hiddenDim: config.int('ffn_hidden_size'),
      nLayers: config.int('num_layers'),
      nHeads,
      nKvHeads: config.bool('multi_query_attention', false) ? config.int('multi_query_group_num') : nHeads,
      headDim,
      vocabSize: config.int('padded_vocab_size'),
      // ChatGLMConfig defaults: seq_length 2048, rope_ratio 1, layernorm_epsilon 1e-5.
      maxSeqLen: config.int('seq_length', 2048),
      ropeStyle: RopeStyle.Interleaved,
      ropeTheta: 10000 * config.number('rope_ratio', 1),
      ropeDim: headDim / 2,
      normEpsilon: config.number('layernorm_epsilon', 1e-5),
      attentionBias: config.bool('add_qkv_bias', false),
      ...DENSE_DEFAULTS,
    };
    if (headDim % 4 !== 0) config.fail('kv_channels', `${headDim} must be a multiple of 4 (rotary over half the head, in pairs)`);
    checkAttention(config, p, { heads: 'num_attention_heads', kvHeads: 'multi_query_group_num' });
    return p;
  },
  source(name, p) {
    const qDim = p.nHeads * p.headDim;
    const kvDim = p.nKvHeads * p.headDim;
    switch (name) {
      case 'token_embd.weight':
        return whole('transformer.embedding.word_embeddings.weight', [p.vocabSize, p.dim]);
      case 'output_norm.weight':
        return whole('transformer.encoder.final_layernorm.weight', [p.dim]);
      case 'output.weight':
        return whole('transformer.output_layer.weight', [p.vocabSize, p.dim]);
    }
    const parsed = layerOf(name);
    if (!parsed) return unknownTensor(name);
    const l = `transformer.encoder.layers.${parsed.layer}.`;
    const qkv = (kind: 'weight' | 'bias', rowStart: number) => ({
      tensor: `${l}self_attention.query_key_value.${kind}`,
      shape: kind === 'weight' ? [qDim + 2 * kvDim, p.dim] : [qDim + 2 * kvDim],
      rowStart,
    });
    switch (parsed.rest) {
      case 'attn_norm.weight':
        return whole(`${l}input_layernorm.weight`, [p.dim]);
      case 'attn_q.weight':
        return qkv('weight', 0);
      case 'attn_k.weight':
        return qkv('weight', qDim);
      case 'attn_v.weight':
        return qkv('weight', qDim + kvDim);
      case 'attn_q.bias':
        return qkv('bias', 0);
      case 'attn_k.bias':
        return qkv('bias', qDim);
      case 'attn_v.bias':
        return qkv('bias', qDim + kvDim);
      case 'attn_output.weight':
        return whole(`${l}self_attention.dense.weight`, [p.dim, qDim]);
      case 'ffn_norm.weight':
        return whole(`${l}post_attention_layernorm.weight`, [p.dim]);
    }
    return fusedGateUpSource(`${l}mlp.`, parsed.rest, p, { gateUp: 'dense_h_to_4h', down: 'dense_4h_to_h' }) ?? unknownTensor(name);
  },
};
