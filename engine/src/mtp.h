// GLM-4.5's multi-token-prediction (next-n) layer as a draft model for speculative decoding. Row j of a
// pass pairs a hidden state h (the main model's final-normed state at position p, or this layer's own
// output when drafts are chained) with the embedding e of the token at p + 1 and predicts the token at
// p + 2: x = eh_proj([enorm(e); hnorm(h)]), one MoE decoder layer at RoPE position p, then shared_head's
// norm and the main model's output head. It runs whole on the node that samples (the root of a cluster),
// with its own one-layer KV cache, so drafting costs no network round trip.
#pragma once
#include <cstdint>
#include <vector>

#include "graph/blocks.h"
#include "model.h"
#include "thread-pool.h"

namespace glm {

class MtpDrafter {
 public:
  // `model` must hold the MTP section (header().mtpLayers == 1); throws ModelError otherwise.
  MtpDrafter(const Model& model, ThreadPool& pool, int context, FloatType kvType);

  // Evaluates n rows at MTP positions pos..pos+n-1: tokens[j] with hidden row j (n x dim). Writes the
  // logits of the last row (vocab) and its shared_head-normed output, the hidden state of a chained draft (dim).
  void run(const int32_t* tokens, const float* hidden, int n, int pos, float* logits, float* nextHidden);

 private:
  const Model& model_;
  Weights layer_;  // a one-layer model: the MTP block, shared_head's norm, the main output head
  CpuFfn ffn_;
  CpuBlocks blocks_;
  std::vector<float> joined_, x_, residual_;
  std::vector<TokenPlace> places_;
};

}  // namespace glm
