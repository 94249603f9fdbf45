// GLM-4-0414: sandwich norms. h = x + norm_post_attn(Attn(norm_in(x))); out = h + norm_post_ffn(FFN(norm_ffn(h))).
#include "graph.h"

namespace glm {

void glm4Layer(Blocks& blocks, const LayerWeights& w, int layer, int n, const TokenPlace* places) {
  blocks.rmsNorm(Act::X, w.attnNorm, Act::A, n);
  blocks.attention(layer, Act::A, n, places, Act::B);
  blocks.reduce(Act::B, n);
  blocks.rmsNorm(Act::B, w.postAttnNorm, Act::A, n);
  blocks.add(Act::X, Act::A, n);
  blocks.rmsNorm(Act::X, w.ffnNorm, Act::A, n);
  blocks.ffn(w.dense, Act::A, n, Act::B);
  blocks.reduce(Act::B, n);
  blocks.rmsNorm(Act::B, w.postFfnNorm, Act::A, n);
  blocks.add(Act::X, Act::A, n);
}

}  // namespace glm
