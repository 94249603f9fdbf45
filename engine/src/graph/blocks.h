// The building blocks the per-architecture graphs are made of: RMSNorm, projections, attention with
// partial RoPE and a KV cache, the dense SwiGLU FFN and the sigmoid-routed MoE. Every block works on a
// batch of n consecutive tokens (prefill) or one (decode), in float32, and splits its work over the
// thread pool. A tensor-parallel split will slice the same blocks by heads, rows and experts.
#pragma once
#include <cstdint>
#include <vector>

#include "../model.h"
#include "../thread-pool.h"

namespace glm {

class KvCache {
 public:
  KvCache(const ModelHeader& h, int maxSeqLen);
  int maxSeqLen() const { return maxSeqLen_; }
  float* keys(int layer, int pos) { return data(layer, pos, 0); }
  float* values(int layer, int pos) { return data(layer, pos, 1); }

 private:
  float* data(int layer, int pos, int which);
  int maxSeqLen_;
  int kvDim_;
  std::vector<float> cache_;
};

class Blocks {
 public:
  Blocks(const Model& model, ThreadPool& pool, KvCache& cache) : model_(model), h_(model.header()), pool_(pool), cache_(cache) {}

  // out[t] = rmsnorm(x[t]) * w for n rows of dim values.
  void rmsNorm(const float* x, const Tensor& w, float* out, int n);
  // out[t][r] = w[r] . x[t]: n rows of w.cols in, n rows of w.rows out.
  void matmul(const Tensor& w, const float* x, int n, float* out);
  // Self-attention of n tokens at positions pos.. on the normed input x; writes n x dim to out.
  void attention(int layer, const float* x, int n, int pos, float* out);
  // SwiGLU FFN: out = down(silu(gate x) * up x).
  void ffn(const ExpertWeights& w, const float* x, int n, float* out);
  // GLM-4.5 MoE: routed experts (sigmoid scores, correction bias for selection only, normalised
  // weights times routed_scaling_factor) plus the shared expert.
  void moe(const LayerWeights& layer, const float* x, int n, float* out);

 private:
  void rope(float* vectors, int n, int pos, int heads);

  const Model& model_;
  const ModelHeader& h_;
  ThreadPool& pool_;
  KvCache& cache_;
  // Scratch, grown on demand and reused.
  std::vector<uint8_t> quantized_;
  std::vector<float> q_, k_, v_, att_, gate_, up_, routerLogits_, expertIn_, expertOut_;
};

void addInPlace(float* x, const float* y, size_t n);

}  // namespace glm
