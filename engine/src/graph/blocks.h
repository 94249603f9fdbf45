// The building blocks the per-architecture graphs are made of: RMSNorm, projections, attention with
// partial RoPE and a KV cache, the dense SwiGLU FFN and the sigmoid-routed MoE. Every block works on a
// batch of n consecutive tokens (prefill) or one (decode), in float32, and splits its work over the
// thread pool. On a node of a tensor-parallel split the same blocks run on the node's slice of the
// weights (net/slice.h) and the partial outputs of attention and FFN are summed across nodes.
#pragma once
#include <cstdint>
#include <vector>

#include "../model.h"
#include "../thread-pool.h"

namespace glm {

// Keys and values of every layer and position, in f32 (exact) or f16 (half the memory and traffic).
class KvCache {
 public:
  KvCache(const ModelHeader& h, int maxSeqLen, FloatType type);
  int maxSeqLen() const { return maxSeqLen_; }
  FloatType type() const { return type_; }
  // Stores the key and value rows (kvDim floats each) of one position.
  void store(int layer, int pos, const float* key, const float* value);
  // The first key / value row of a layer; rows of consecutive positions are kvDim elements apart.
  const uint8_t* keys(int layer) const { return row(layer, 0, 0); }
  const uint8_t* values(int layer) const { return row(layer, 0, 1); }

 private:
  const uint8_t* row(int layer, int pos, int which) const;
  int maxSeqLen_;
  int kvDim_;
  FloatType type_;
  std::vector<uint8_t> cache_;
};

// Sums the partial outputs (n rows of dim) of every node in place, so that each node ends with the
// same values.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual void allReduce(float* values, int n) = 0;
};

class Blocks {
 public:
  // `collective` is null on a single node.
  Blocks(const Weights& model, ThreadPool& pool, KvCache& cache, Collective* collective = nullptr)
      : model_(model), h_(model.header()), pool_(pool), cache_(cache), collective_(collective) {}

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
  // Completes a partial attention or FFN output (n x dim) with the other nodes' parts.
  void reduce(float* out, int n) {
    if (collective_) collective_->allReduce(out, n);
  }

 private:
  const Weights& model_;
  const ModelHeader& h_;
  ThreadPool& pool_;
  KvCache& cache_;
  Collective* collective_;
  // Scratch, grown on demand and reused.
  std::vector<uint8_t> quantized_;
  std::vector<float> quantizedScales_;
  std::vector<int32_t> quantizedZeroPoint_;
  std::vector<float> q_, k_, v_, att_, gate_, up_, routerLogits_, expertIn_, expertOut_;
};

void addInPlace(float* x, const float* y, size_t n);

}  // namespace glm
