// The building blocks the per-architecture graphs are made of: RMSNorm, projections, attention with
// partial RoPE and a KV cache, the dense SwiGLU FFN and the sigmoid-routed MoE. Every block works on a
// batch of n consecutive tokens (prefill) or one (decode), in float32, and splits its work over the
// thread pool. On a node of a tensor-parallel split the same blocks run on the node's slice of the
// weights (net/slice.h) and the partial outputs of attention and FFN are summed across nodes.
#pragma once
#include <cstdint>
#include <vector>

#include "../activation-stats.h"
#include "../cpu/kernels.h"
#include "../model.h"
#include "../thread-pool.h"

namespace glm {

// Where one token of a pass goes: the KV slot of its sequence and its position there. A pass may mix
// tokens of several sequences (batched decoding); each token attends only to its own slot.
struct TokenPlace {
  int slot;
  int pos;
};

// Keys and values of every slot, layer and position, in f32 (exact) or f16 (half the memory and
// traffic). Each slot holds one sequence of up to maxSeqLen tokens.
class KvCache {
 public:
  KvCache(const ModelHeader& h, int maxSeqLen, FloatType type, int slots = 1);
  int maxSeqLen() const { return maxSeqLen_; }
  int slots() const { return slots_; }
  FloatType type() const { return type_; }
  // Bytes the cache of one slot takes.
  static size_t slotBytes(const ModelHeader& h, int maxSeqLen, FloatType type);
  // Stores the key and value rows (kvDim floats each) of one position.
  void store(int layer, TokenPlace at, const float* key, const float* value);
  // The first key / value row of a layer in a slot; rows of consecutive positions are kvDim elements apart.
  const uint8_t* keys(int layer, int slot = 0) const { return row(layer, {slot, 0}, 0); }
  const uint8_t* values(int layer, int slot = 0) const { return row(layer, {slot, 0}, 1); }

 private:
  const uint8_t* row(int layer, TokenPlace at, int which) const;
  int maxSeqLen_;
  int kvDim_;
  int nLayers_;
  int slots_;
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

// The activation matrices a layer works on, n rows of dim each, held wherever the backend keeps them:
// the residual stream and two scratch matrices.
enum class Act { X, A, B };

// The operations the per-architecture graphs are written in; one implementation per backend (CpuBlocks
// below, vulkan::GpuBlocks), so that a graph is the same whatever runs it.
class Blocks {
 public:
  virtual ~Blocks() = default;
  // out[t] = rmsnorm(x[t]) * w for n rows.
  virtual void rmsNorm(Act x, const Tensor& w, Act out, int n) = 0;
  // Self-attention of n tokens, token t at places[t], on the normed input x; writes n x dim to out.
  virtual void attention(int layer, Act x, int n, const TokenPlace* places, Act out) = 0;
  // SwiGLU FFN: out = down(silu(gate x) * up x).
  virtual void ffn(const ExpertWeights& w, Act x, int n, Act out) = 0;
  // GLM-4.5 MoE: routed experts (sigmoid scores, correction bias for selection only, normalised
  // weights times routed_scaling_factor) plus the shared expert.
  virtual void moe(const LayerWeights& layer, Act x, int n, Act out) = 0;
  // x += y over n rows.
  virtual void add(Act x, Act y, int n) = 0;
  // Completes a partial attention or FFN output (n x dim) with the other nodes' parts.
  virtual void reduce(Act out, int n) = 0;
  // Sets X to n rows of dim from the host.
  virtual void load(const float* x, int n) = 0;
  // The logits of rows [first, first + count) of X: output norm, then this node's vocabulary rows.
  virtual void logits(int first, int count, float* out) = 0;
  // Copies rows [first, first + count) of X to the host (the hidden states an MTP draft is fed).
  virtual void residual(int first, int count, float* out) = 0;
  // Sends every later matmul's input to `stats` (null stops); only the CPU blocks collect them.
  virtual void observe(ActivationStats* stats);
};

// Per expert, the tokens routed to it and their weights: routing[e] lists (token, weight).
using Routing = std::vector<std::vector<std::pair<int, float>>>;
Routing routeTokens(const ModelHeader& h, const LayerWeights& layer, const float* logits, int n);

// Matmuls, the SwiGLU FFN and the routed experts on the CPU, over the thread pool: for CpuBlocks, and for
// GpuBlocks' experts kept in system memory (--cpu-experts).
class CpuFfn {
 public:
  explicit CpuFfn(ThreadPool& pool) : pool_(pool) {}
  // out[t][r] = w[r] . x[t]: n rows of w.cols in, n rows of w.rows out.
  void matmul(const Tensor& w, const float* x, int n, float* out);
  // out = down(silu(gate x) * up x).
  void ffn(const ExpertWeights& w, const float* x, int n, float* out);
  // out = the weighted sum of the routed experts' outputs (n rows of dim), over the experts this node
  // holds; each expert runs once on the batch of tokens routed to it.
  void routedExperts(const LayerWeights& layer, const Routing& routing, const float* x, int n, int dim, float* out);
  void observe(ActivationStats* stats) { stats_ = stats; }

 private:
  // One matrix of a grouped matmul: out (m rows of w.rows) = w times rows [first, first + m) of the input.
  struct MatmulJob {
    const Tensor* w;
    int first, m;
    float* out;
  };
  // Every job's matmul in one loop over the pool (one wait for all the experts of a layer, not one
  // each); the input's `rows` rows of `cols` are quantized once. Each row comes out as matmul gives it.
  void groupedMatmul(const std::vector<MatmulJob>& jobs, const float* x, int rows, size_t cols);
  // Prepares n rows of x for quantized weights in the scratch; returns their pointers.
  void quantizeRows(const float* x, int n, size_t cols);

  ThreadPool& pool_;
  ActivationStats* stats_ = nullptr;
  std::vector<const float*> rowPointers_;
  std::vector<QuantizedRow> quantizedRows_;
  // Scratch, grown on demand and reused.
  std::vector<uint8_t> quantized_;
  std::vector<float> quantizedScales_;
  std::vector<int32_t> quantizedZeroPoint_;
  std::vector<float> gate_, up_, expertIn_, expertOut_;
  std::vector<MatmulJob> jobs_;
};

// The blocks on the CPU, split over the thread pool.
class CpuBlocks final : public Blocks {
 public:
  // `collective` is null on a single node.
  CpuBlocks(const Weights& model, ThreadPool& pool, int maxSeqLen, FloatType kvType, Collective* collective = nullptr, int slots = 1)
      : model_(model), h_(model.header()), pool_(pool), cpu_(pool), cache_(model.header(), maxSeqLen, kvType, slots), collective_(collective) {}

  void rmsNorm(Act x, const Tensor& w, Act out, int n) override { rmsNorm(rows(x), w, rows(out), n); }
  void attention(int layer, Act x, int n, const TokenPlace* places, Act out) override { attention(layer, rows(x), n, places, rows(out)); }
  void ffn(const ExpertWeights& w, Act x, int n, Act out) override { cpu_.ffn(w, rows(x), n, rows(out)); }
  void moe(const LayerWeights& layer, Act x, int n, Act out) override { moe(layer, rows(x), n, rows(out)); }
  void add(Act x, Act y, int n) override;
  void reduce(Act out, int n) override {
    if (collective_) collective_->allReduce(rows(out), n);
  }
  void load(const float* x, int n) override;
  void logits(int first, int count, float* out) override;
  void residual(int first, int count, float* out) override;
  void observe(ActivationStats* stats) override { cpu_.observe(stats); }

 private:
  float* rows(Act a) { return a == Act::X ? x_.data() : a == Act::A ? a_.data() : b_.data(); }
  void rmsNorm(const float* x, const Tensor& w, float* out, int n);
  void matmul(const Tensor& w, const float* x, int n, float* out) { cpu_.matmul(w, x, n, out); }
  void attention(int layer, const float* x, int n, const TokenPlace* places, float* out);
  void moe(const LayerWeights& layer, const float* x, int n, float* out);

  const Weights& model_;
  const ModelHeader& h_;
  ThreadPool& pool_;
  CpuFfn cpu_;
  KvCache cache_;
  Collective* collective_;
  std::vector<float> x_, a_, b_;
  // Scratch, grown on demand and reused.
  std::vector<float> q_, k_, v_, att_, routerLogits_, sharedOut_;
};

void addInPlace(float* x, const float* y, size_t n);

}  // namespace glm
