// GLM-4.5 / GLM-4.5-Air / INTELLECT-3: h = x + Attn(norm(x)); out = h + F(norm(h)), where F is the
// dense FFN for the first layers and the routed + shared experts after them.
#include "graph.h"

namespace glm {

void glm4MoeLayer(Blocks& blocks, const LayerWeights& w, int layer, int n, const TokenPlace* places) {
  blocks.rmsNorm(Act::X, w.attnNorm, Act::A, n);
  blocks.attention(layer, Act::A, n, places, Act::B);
  blocks.reduce(Act::B, n);
  blocks.add(Act::X, Act::B, n);
  blocks.rmsNorm(Act::X, w.ffnNorm, Act::A, n);
  if (w.experts.empty()) {
    blocks.ffn(w.dense, Act::A, n, Act::B);
  } else {
    blocks.moe(w, Act::A, n, Act::B);
  }
  blocks.reduce(Act::B, n);
  blocks.add(Act::X, Act::B, n);
}

}  // namespace glm
