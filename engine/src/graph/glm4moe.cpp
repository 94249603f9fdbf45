// GLM-4.5 / GLM-4.5-Air / INTELLECT-3: h = x + Attn(norm(x)); out = h + F(norm(h)), where F is the
// dense FFN for the first layers and the routed + shared experts after them.
#include "graph.h"

namespace glm {

void glm4MoeLayer(Blocks& blocks, const LayerWeights& w, int layer, float* x, int n, int pos, LayerScratch s) {
  const size_t size = static_cast<size_t>(n) * w.attnNorm.rows;
  blocks.rmsNorm(x, w.attnNorm, s.a, n);
  blocks.attention(layer, s.a, n, pos, s.b);
  blocks.reduce(s.b, n);
  addInPlace(x, s.b, size);
  blocks.rmsNorm(x, w.ffnNorm, s.a, n);
  if (w.experts.empty()) {
    blocks.ffn(w.dense, s.a, n, s.b);
  } else {
    blocks.moe(w, s.a, n, s.b);
  }
  blocks.reduce(s.b, n);
  addInPlace(x, s.b, size);
}

}  // namespace glm
