// One decoder layer of each architecture, composed from the shared blocks. `x` holds the residual
// stream of n tokens (n x dim) and is updated in place; `a` and `b` are n x dim scratch rows.
#pragma once
#include "blocks.h"

namespace glm {

struct LayerScratch {
  float* a;
  float* b;
};

using LayerFn = void (*)(Blocks& blocks, const LayerWeights& w, int layer, float* x, int n, int pos, LayerScratch s);

// ChatGLM / GlmForCausalLM: pre-norm attention and FFN.
void glmLayer(Blocks& blocks, const LayerWeights& w, int layer, float* x, int n, int pos, LayerScratch s);
// Glm4ForCausalLM: the same with sandwich norms on the attention and FFN outputs.
void glm4Layer(Blocks& blocks, const LayerWeights& w, int layer, float* x, int n, int pos, LayerScratch s);
// Glm4MoeForCausalLM: pre-norm attention, then the dense FFN (first layers) or the MoE.
void glm4MoeLayer(Blocks& blocks, const LayerWeights& w, int layer, float* x, int n, int pos, LayerScratch s);

LayerFn layerFunction(ArchType arch);

}  // namespace glm
