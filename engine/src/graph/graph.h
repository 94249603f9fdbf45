// One decoder layer of each architecture, composed from the shared blocks: Act::X holds the residual
// stream of n tokens (n x dim) and is updated in place; Act::A and Act::B are n x dim scratch rows.
// Token t sits at places[t] (its sequence's KV slot and position).
#pragma once
#include "blocks.h"

namespace glm {

using LayerFn = void (*)(Blocks& blocks, const LayerWeights& w, int layer, int n, const TokenPlace* places);

// ChatGLM / GlmForCausalLM: pre-norm attention and FFN.
void glmLayer(Blocks& blocks, const LayerWeights& w, int layer, int n, const TokenPlace* places);
// Glm4ForCausalLM: the same with sandwich norms on the attention and FFN outputs.
void glm4Layer(Blocks& blocks, const LayerWeights& w, int layer, int n, const TokenPlace* places);
// Glm4MoeForCausalLM: pre-norm attention, then the dense FFN (first layers) or the MoE.
void glm4MoeLayer(Blocks& blocks, const LayerWeights& w, int layer, int n, const TokenPlace* places);

LayerFn layerFunction(ArchType arch);

}  // namespace glm
