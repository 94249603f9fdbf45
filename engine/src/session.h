// An inference session over a loaded model: the KV cache, the thread pool and the forward pass. With
// workers it is the root (node 0) of a tensor-parallel cluster and holds only its own slice; a
// worker's session holds its slice and is driven by the root (net/worker.h).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "device.h"
#include "graph/blocks.h"
#include "graph/graph.h"
#include "model.h"
#include "net/cluster.h"
#include "net/slice.h"
#include "thread-pool.h"

namespace glm {

namespace vulkan {
class Context;
}

class Session {
 public:
  // maxSeqLen 0: the model's context, capped at kDefaultContext to keep the KV cache modest.
  // kvType: f32 (exact) or f16 keys and values. With distributed.workers set, connects to them
  // (throws PlanError, NetError or RemoteError).
  // placement: the CPU (the default) or a Vulkan device, resolved from --device by device.h.
  Session(const Model& model, int threads, int maxSeqLen, FloatType kvType = FloatType::F32, const DistributedOptions& distributed = {},
          const Placement& placement = {});
  // A worker's part: its slice, the root's context length, and the link that completes partial sums.
  Session(std::unique_ptr<Shard> shard, int threads, int context, FloatType kvType, Collective& link, const Placement& placement = {});
  ~Session();

  static constexpr int kDefaultContext = 4096;

  int position() const { return position_; }
  int maxSeqLen() const { return context_; }
  int threads() const { return pool_.size(); }
  int vocabSize() const { return vocab_; }
  // The weights this node runs (the whole model on one node).
  const Weights& weights() const { return shard_->weights; }
  // Collects every later evaluation's matmul inputs into `stats` (null stops); one node on the CPU only.
  void observe(ActivationStats* stats);
  // The cluster when this session is a root, else null.
  const Cluster* cluster() const { return cluster_.get(); }
  // Forgets the evaluated tokens (the cache is overwritten from position 0).
  void reset() { position_ = 0; }
  // Rewinds to an earlier position, keeping the cache before it (a shared prompt prefix).
  void rewind(int position);

  // Evaluates n tokens at the current position and advances it. Writes the logits of every token
  // (n x vocab) when allLogits, else of the last token only (vocab). Throws std::invalid_argument for
  // ids out of range or a context overflow.
  void evaluate(const int32_t* tokens, int n, float* logits, bool allLogits);

  // A worker's pass: n input rows x (n x dim) at pos; sets logits to those of its vocabulary rows for
  // `count` tokens from `first` (count x its rows). The numbers come from the root and are checked
  // here, unsigned and without overflow; throws std::invalid_argument when they do not fit the context.
  void evaluateSlice(const float* x, uint32_t n, uint32_t pos, uint32_t first, uint32_t count, std::vector<float>& logits);

 private:
  // The layers and this node's vocabulary rows of the tokens [first, first + count) of x_.
  void forward(int n, int pos, int first, int count, float* logits);

  const Model* model_;  // null on a worker
  std::unique_ptr<Shard> shard_;
  std::unique_ptr<Cluster> cluster_;
  int vocab_;
  ThreadPool pool_;
  int context_;
  std::unique_ptr<vulkan::Context> gpu_;  // null on the CPU
  std::unique_ptr<Blocks> blocks_;
  LayerFn layer_;
  int position_ = 0;
  std::vector<float> x_, local_;
};

}  // namespace glm
