// GLM (glm-4-9b-chat, glm-4-9b-chat-hf): h = x + Attn(norm(x)); out = h + FFN(norm(h)).
#include "graph.h"

namespace glm {

void glmLayer(Blocks& blocks, const LayerWeights& w, int layer, int n, const TokenPlace* places) {
  blocks.rmsNorm(Act::X, w.attnNorm, Act::A, n);
  blocks.attention(layer, Act::A, n, places, Act::B);
  blocks.reduce(Act::B, n);
  blocks.add(Act::X, Act::B, n);
  blocks.rmsNorm(Act::X, w.ffnNorm, Act::A, n);
  blocks.ffn(w.dense, Act::A, n, Act::B);
  blocks.reduce(Act::B, n);
  blocks.add(Act::X, Act::B, n);
}

}  // namespace glm
