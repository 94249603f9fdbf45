// GLM-4-0414: sandwich norms. h = x + norm_post_attn(Attn(norm_in(x))); out = h + norm_post_ffn(FFN(norm_ffn(h))).
#include "graph.h"

namespace glm {

void glm4Layer(Blocks& blocks, const LayerWeights& w, int layer, float* x, int n, int pos, LayerScratch s) {
  const size_t size = static_cast<size_t>(n) * w.attnNorm.rows;
  blocks.rmsNorm(x, w.attnNorm, s.a, n);
  blocks.attention(layer, s.a, n, pos, s.b);
  blocks.reduce(s.b, n);
  blocks.rmsNorm(s.b, w.postAttnNorm, s.a, n);
  addInPlace(x, s.a, size);
  blocks.rmsNorm(x, w.ffnNorm, s.a, n);
  blocks.ffn(w.dense, s.a, n, s.b);
  blocks.reduce(s.b, n);
  blocks.rmsNorm(s.b, w.postFfnNorm, s.a, n);
  addInPlace(x, s.a, size);
}

}  // namespace glm
