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
#include "mtp.h"
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
  // mtp: keep every position's hidden state and load the model's MTP layer for draft() (throws
  // ModelError when the file has none). slots: sequences whose KV caches are kept at once (batched
  // decoding, evaluateSlots); slot 0 is the one evaluate() and the MTP drafts work on.
  Session(const Model& model, int threads, int maxSeqLen, FloatType kvType = FloatType::F32, const DistributedOptions& distributed = {},
          const Placement& placement = {}, bool mtp = false, int slots = 1);
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
  void reset() { rewind(0); }
  // Rewinds to an earlier position, keeping the cache before it (a shared prompt prefix).
  void rewind(int position);

  // Evaluates n tokens at the current position and advances it. Writes the logits of every token
  // (n x vocab) when allLogits, else of the last token only (vocab). Throws std::invalid_argument for
  // ids out of range or a context overflow.
  void evaluate(const int32_t* tokens, int n, float* logits, bool allLogits);

  // Speculative decoding (mtp.h). MTP position q pairs the hidden state at q with the token at q + 1;
  // mtpPosition() is how many the MTP cache holds. draft() evaluates n rows from there: tokens[j] is the
  // token after MTP position mtpPosition() + j. Rows below position() take the main model's hidden
  // state; a single row at position() or later is a chained draft and takes the previous row's MTP
  // output. Writes the logits of the last row (vocab). A main evaluate() or rewind() drops chained rows.
  bool hasMtp() const { return mtp_ != nullptr; }
  int mtpPosition() const { return mtpPosition_; }
  void draft(const int32_t* tokens, int n, float* logits);
  // Greedy drafting in one call: draft(tokens), then k - 1 chained drafts, each fed the argmax (over ids
  // below vocabLimit) of the previous; writes the k argmax ids.
  void draftGreedy(const int32_t* tokens, int n, int k, int vocabLimit, int32_t* drafts);

  // A worker's pass: n input rows x (n x dim) at pos; sets logits to those of its vocabulary rows for
  // `count` tokens from `first` (count x its rows). The numbers come from the root and are checked
  // here, unsigned and without overflow; throws std::invalid_argument when they do not fit the context.
  void evaluateSlice(const float* x, uint32_t n, uint32_t pos, uint32_t first, uint32_t count, std::vector<float>& logits);

  // One sequence's part of a batched step: n tokens appended to KV slot `slot`; logits of all of them
  // (n x vocab) when allLogits, else of the last one (vocab).
  struct SlotTokens {
    int slot;
    const int32_t* tokens;
    int n;
    bool allLogits;
  };
  int slots() const { return static_cast<int>(slotPositions_.size()); }
  int slotPosition(int slot) const;
  // Keeps the first `position` tokens of a slot's cache (0 frees it for a new sequence).
  void rewindSlot(int slot, int position);
  // Evaluates the tokens of several sequences (each slot at most once) in one pass, so that every
  // weight matrix is read once for all of them, and advances each slot. Writes the entries' logits one
  // after the other, in entry order. Each sequence's logits are bit for bit those it gets alone: every
  // kernel computes a token's row the same way whatever else is in the pass. Throws
  // std::invalid_argument for a bad slot, a repeated slot, bad ids or a context overflow, before any
  // evaluation.
  void evaluateSlots(const std::vector<SlotTokens>& entries, float* logits);

 private:
  // Checks ids against the vocabulary and `n` more tokens against the room left after `position`.
  void checkTokens(const int32_t* tokens, int n, int position) const;
  // The layers for the n tokens of x_ at places_, and this node's vocabulary rows of the tokens
  // [first, first + count).
  void forward(int n, int first, int count, float* logits);

  const Model* model_;  // null on a worker
  std::unique_ptr<Shard> shard_;
  std::unique_ptr<Cluster> cluster_;
  int vocab_;
  ThreadPool pool_;
  int context_;
  std::unique_ptr<vulkan::Context> gpu_;  // null on the CPU
  std::unique_ptr<Blocks> blocks_;
  LayerFn layer_;
  int position_ = 0;             // slot 0's
  std::vector<int> slotPositions_;  // per slot; entry 0 unused (slot 0's is position_)
  std::vector<TokenPlace> places_;
  std::vector<float> x_, local_;
  // With mtp: the drafter, the final-normed hidden state of every position (context x dim), the MTP
  // rows fed from it (trusted) and the last MTP output, for a chained draft at mtpPosition_.
  std::unique_ptr<MtpDrafter> mtp_;
  std::vector<float> hidden_, chainHidden_;
  int mtpPosition_ = 0, mtpTrusted_ = 0;
  bool chainValid_ = false;
};

}  // namespace glm
