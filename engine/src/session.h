// An inference session over a loaded model: the KV cache, the thread pool and the forward pass.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "graph/blocks.h"
#include "graph/graph.h"
#include "model.h"
#include "thread-pool.h"

namespace glm {

class Session {
 public:
  // maxSeqLen 0: the model's context, capped at kDefaultContext to keep the KV cache modest.
  // kvType: f32 (exact) or f16 keys and values.
  Session(const Model& model, int threads, int maxSeqLen, FloatType kvType = FloatType::F32);

  static constexpr int kDefaultContext = 4096;

  int position() const { return position_; }
  int maxSeqLen() const { return cache_.maxSeqLen(); }
  int threads() const { return pool_.size(); }
  int vocabSize() const { return model_.header().vocabSize; }
  // Forgets the evaluated tokens (the cache is overwritten from position 0).
  void reset() { position_ = 0; }
  // Rewinds to an earlier position, keeping the cache before it (a shared prompt prefix).
  void rewind(int position);

  // Evaluates n tokens at the current position and advances it. Writes the logits of every token
  // (n x vocab) when allLogits, else of the last token only (vocab). Throws std::invalid_argument for
  // ids out of range or a context overflow.
  void evaluate(const int32_t* tokens, int n, float* logits, bool allLogits);

 private:
  const Model& model_;
  ThreadPool pool_;
  KvCache cache_;
  Blocks blocks_;
  LayerFn layer_;
  int position_ = 0;
  std::vector<float> x_, a_, b_;
};

}  // namespace glm
