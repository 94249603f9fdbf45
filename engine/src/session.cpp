#include "session.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cpu/kernels.h"
#include "vulkan/blocks.h"

namespace glm {

namespace {
int contextOf(const Model& model, int maxSeqLen) {
  const int modelMax = model.header().maxSeqLen;
  if (maxSeqLen <= 0) return std::min(modelMax, Session::kDefaultContext);
  return std::min(modelMax, maxSeqLen);
}

std::unique_ptr<vulkan::Context> contextFor(const Placement& p) { return p.device < 0 ? nullptr : std::make_unique<vulkan::Context>(p.device); }

std::unique_ptr<Blocks> blocksFor(const Weights& w, vulkan::Context* gpu, const Placement& p, ThreadPool& pool, int context, FloatType kvType,
                                  Collective* collective, int slots = 1) {
  if (gpu) return std::make_unique<vulkan::GpuBlocks>(w, *gpu, pool, p.cpuExpertLayers, context, kvType, collective, slots);
  return std::make_unique<CpuBlocks>(w, pool, context, kvType, collective, slots);
}


std::unique_ptr<Cluster> clusterFor(const Model& model, const DistributedOptions& d, int context, FloatType kvType, int slots) {
  if (slots < 1) throw std::invalid_argument("a session needs at least one KV slot, got " + std::to_string(slots));
  if (slots > 1 && !d.workers.empty()) throw std::invalid_argument("batched decoding (several KV slots) does not run with workers yet");
  return d.workers.empty() ? nullptr : std::make_unique<Cluster>(model, d, context, kvType);
}
}  // namespace

Session::Session(const Model& model, int threads, int maxSeqLen, FloatType kvType, const DistributedOptions& distributed, const Placement& placement,
                 bool mtp, int slots)
    : model_(&model),
      shard_(cutShard(model, planSlices(model.header(), static_cast<int>(distributed.workers.size()) + 1, 0, distributed.experts))),
      cluster_(clusterFor(model, distributed, contextOf(model, maxSeqLen), kvType, slots)),
      vocab_(model.header().vocabSize),
      pool_(threads),
      context_(contextOf(model, maxSeqLen)),
      gpu_(contextFor(placement)),
      blocks_(blocksFor(shard_->weights, gpu_.get(), placement, pool_, context_, kvType, cluster_.get(), slots)),
      layer_(layerFunction(model.header().arch)),
      slotPositions_(slots, 0) {
  if (mtp) {
    mtp_ = std::make_unique<MtpDrafter>(model, pool_, context_, kvType);
    hidden_.resize(static_cast<size_t>(context_) * model.header().dim);
  }
}

Session::Session(std::unique_ptr<Shard> shard, int threads, int context, FloatType kvType, Collective& link, const Placement& placement)
    : model_(nullptr),
      shard_(std::move(shard)),
      vocab_(shard_->weights.header().vocabSize),
      pool_(threads),
      context_(context),
      gpu_(contextFor(placement)),
      blocks_(blocksFor(shard_->weights, gpu_.get(), placement, pool_, context_, kvType, &link)),
      layer_(layerFunction(shard_->weights.header().arch)),
      slotPositions_(1, 0) {}

Session::~Session() = default;

void Session::observe(ActivationStats* stats) {
  if (stats && cluster_) throw std::invalid_argument("activation statistics (imatrix) are collected on one node; run without --workers");
  blocks_->observe(stats);
}

void Session::rewind(int position) {
  if (position < 0 || position > position_) throw std::invalid_argument("cannot rewind to position " + std::to_string(position));
  position_ = position;
  // MTP position q needs the token at q + 1, so rows up to position - 2 stay valid.
  mtpTrusted_ = std::min(mtpTrusted_, std::max(0, position - 1));
  mtpPosition_ = mtpTrusted_;
  chainValid_ = false;
}

void Session::checkTokens(const int32_t* tokens, int n, int position) const {
  const ModelHeader& h = model_->header();
  if (n <= 0) throw std::invalid_argument("no tokens to evaluate");
  if (n > context_ - position) {
    throw std::invalid_argument("context overflow: " + std::to_string(position + n) + " tokens exceed the context of " +
                                std::to_string(context_));
  }
  for (int t = 0; t < n; t++) {
    if (tokens[t] < 0 || tokens[t] >= h.vocabSize) {
      throw std::invalid_argument("token id " + std::to_string(tokens[t]) + " at index " + std::to_string(t) +
                                  " is outside the vocabulary (0.." + std::to_string(h.vocabSize - 1) + ")");
    }
  }
}

void Session::evaluate(const int32_t* tokens, int n, float* logits, bool allLogits) {
  if (!model_) throw std::logic_error("a worker's session is driven by its root");
  const ModelHeader& h = model_->header();
  checkTokens(tokens, n, position_);
  const size_t dim = static_cast<size_t>(h.dim);
  x_.resize(n * dim);
  places_.resize(n);
  for (int t = 0; t < n; t++) {
    const float* row = model_->embedding.f32() + static_cast<size_t>(tokens[t]) * dim;
    std::copy_n(row, dim, x_.data() + t * dim);
    places_[t] = {0, position_ + t};
  }
  const int first = allLogits ? 0 : n - 1;
  const int count = n - first;
  blocks_->load(x_.data(), n);
  if (!cluster_) {
    forward(n, first, count, logits);
  } else {
    cluster_->begin(x_.data(), n, position_, first, count);
    local_.resize(static_cast<size_t>(count) * shard_->weights.header().vocabSize);
    forward(n, first, count, local_.data());
    cluster_->gather(local_.data(), count, logits);
  }
  if (mtp_) {
    float* rows = hidden_.data() + static_cast<size_t>(position_) * dim;
    blocks_->residual(0, n, rows);
    for (int t = 0; t < n; t++) rmsNorm(rows + t * dim, shard_->weights.outputNorm.f32(), rows + t * dim, h.dim, h.normEpsilon);
    mtpPosition_ = mtpTrusted_;
    chainValid_ = false;
  }
  position_ += n;
}

void Session::draft(const int32_t* tokens, int n, float* logits) {
  if (!mtp_) throw std::logic_error("this session was opened without the MTP layer");
  const ModelHeader& h = model_->header();
  if (n <= 0) throw std::invalid_argument("no tokens to draft from");
  for (int t = 0; t < n; t++) {
    if (tokens[t] < 0 || tokens[t] >= h.vocabSize) throw std::invalid_argument("draft token id " + std::to_string(tokens[t]) + " is outside the vocabulary");
  }
  const int pos = mtpPosition_;
  if (n > context_ - pos) throw std::invalid_argument("context overflow: MTP position " + std::to_string(pos + n) + " exceeds the context of " + std::to_string(context_));
  const bool chained = pos >= position_;
  if (chained && (n != 1 || !chainValid_)) throw std::invalid_argument("a chained draft is one token right after another draft");
  if (!chained && pos + n > position_) {
    throw std::invalid_argument("MTP rows " + std::to_string(pos) + ".." + std::to_string(pos + n - 1) + " need hidden states past the " +
                                std::to_string(position_) + " evaluated positions");
  }
  const float* hidden = chained ? chainHidden_.data() : hidden_.data() + static_cast<size_t>(pos) * h.dim;
  std::vector<float> next(h.dim);
  mtp_->run(tokens, hidden, n, pos, logits, next.data());
  chainHidden_ = std::move(next);
  chainValid_ = true;
  mtpPosition_ += n;
  if (!chained) mtpTrusted_ = mtpPosition_;
}

int Session::slotPosition(int slot) const {
  if (slot < 0 || slot >= slots()) throw std::invalid_argument("no KV slot " + std::to_string(slot) + " (the session has " + std::to_string(slots()) + ")");
  return slot == 0 ? position_ : slotPositions_[slot];
}

void Session::rewindSlot(int slot, int position) {
  if (position < 0 || position > slotPosition(slot)) {
    throw std::invalid_argument("cannot rewind slot " + std::to_string(slot) + " to position " + std::to_string(position));
  }
  (slot == 0 ? position_ : slotPositions_[slot]) = position;
}

void Session::evaluateSlots(const std::vector<SlotTokens>& entries, float* logits) {
  if (!model_) throw std::logic_error("a worker's session is driven by its root");
  if (cluster_) throw std::invalid_argument("batched decoding does not run with workers yet");
  if (entries.empty()) throw std::invalid_argument("no sequences to evaluate");
  std::vector<bool> seen(slots(), false);
  int n = 0, count = 0;
  for (const SlotTokens& e : entries) {
    const int position = slotPosition(e.slot);
    if (seen[e.slot]) throw std::invalid_argument("KV slot " + std::to_string(e.slot) + " appears twice in one batch");
    seen[e.slot] = true;
    checkTokens(e.tokens, e.n, position);
    n += e.n;
    count += e.allLogits ? e.n : 1;
  }
  // Rows whose logits are wanted go last, in entry order, so that they are one block for the output
  // layer; a row's place in the pass changes nothing in its numbers.
  const size_t dim = static_cast<size_t>(model_->header().dim);
  x_.resize(n * dim);
  places_.resize(n);
  int quiet = 0, loud = n - count;
  for (const SlotTokens& e : entries) {
    const int position = slotPosition(e.slot);
    for (int t = 0; t < e.n; t++) {
      const int row = e.allLogits || t == e.n - 1 ? loud++ : quiet++;
      std::copy_n(model_->embedding.f32() + static_cast<size_t>(e.tokens[t]) * dim, dim, x_.data() + row * dim);
      places_[row] = {e.slot, position + t};
    }
  }
  blocks_->load(x_.data(), n);
  forward(n, n - count, count, logits);
  for (const SlotTokens& e : entries) (e.slot == 0 ? position_ : slotPositions_[e.slot]) += e.n;
}

void Session::evaluateSlice(const float* x, uint32_t n, uint32_t pos, uint32_t first, uint32_t count, std::vector<float>& logits) {
  const uint32_t context = static_cast<uint32_t>(context_);
  // Each bound is subtracted from one already checked, so nothing can wrap.
  if (n == 0 || n > context || pos > context - n || first > n || count > n - first) {
    throw std::invalid_argument("a pass of " + std::to_string(n) + " tokens at position " + std::to_string(pos) + " (logits of " + std::to_string(count) +
                                " from " + std::to_string(first) + ") does not fit the context of " + std::to_string(context));
  }
  blocks_->load(x, static_cast<int>(n));
  places_.resize(n);
  for (uint32_t t = 0; t < n; t++) places_[t] = {0, static_cast<int>(pos + t)};
  logits.resize(static_cast<size_t>(count) * shard_->weights.header().vocabSize);
  forward(static_cast<int>(n), static_cast<int>(first), static_cast<int>(count), logits.data());
}

void Session::forward(int n, int first, int count, float* logits) {
  const Weights& w = shard_->weights;
  for (int l = 0; l < w.header().nLayers; l++) layer_(*blocks_, w.layers[l], l, n, places_.data());
  if (count > 0) blocks_->logits(first, count, logits);
}

void Session::draftGreedy(const int32_t* tokens, int n, int k, int vocabLimit, int32_t* drafts) {
  if (k <= 0) throw std::invalid_argument("draftGreedy needs k >= 1");
  const int limit = std::min(vocabLimit, vocab_);
  if (limit <= 0) throw std::invalid_argument("draftGreedy needs a positive vocabulary limit");
  std::vector<float> logits(vocab_);
  for (int i = 0; i < k; i++) {
    if (i == 0) {
      draft(tokens, n, logits.data());
    } else {
      draft(&drafts[i - 1], 1, logits.data());
    }
    drafts[i] = static_cast<int32_t>(std::max_element(logits.begin(), logits.begin() + limit) - logits.begin());
  }
}

}  // namespace glm
