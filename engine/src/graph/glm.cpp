// GLM (glm-4-9b-chat, glm-4-9b-chat-hf): h = x + Attn(norm(x)); out = h + FFN(norm(h)).
#include "graph.h"

namespace glm {

void glmLayer(Blocks& blocks, const LayerWeights& w, int layer, float* x, int n, int pos, LayerScratch s) {
  const size_t size = static_cast<size_t>(n) * w.attnNorm.rows;
  blocks.rmsNorm(x, w.attnNorm, s.a, n);
  blocks.attention(layer, s.a, n, pos, s.b);
  blocks.reduce(s.b, n);
  addInPlace(x, s.b, size);
  blocks.rmsNorm(x, w.ffnNorm, s.a, n);
  blocks.ffn(w.dense, s.a, n, s.b);
  blocks.reduce(s.b, n);
  addInPlace(x, s.b, size);
}

}  // namespace glm
