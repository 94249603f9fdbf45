#include "slice.h"

#include <cstring>

namespace glm {

namespace {

std::string count(int nodes) { return std::to_string(nodes) + (nodes == 1 ? " node" : " nodes"); }

// Node `index`'s share of `total`, in whole units of `grain` (32-value blocks where quantized rows are
// cut by columns); shares differ by at most one unit. Every node must get at least one unit.
Range part(int total, int grain, int nodes, int index, const char* field) {
  const int units = total / grain;
  if (total % grain != 0 || units < nodes) {
    throw PlanError(std::string(field) + " (" + std::to_string(total) + ") cannot give each of " + count(nodes) + " a share" +
                    (grain > 1 ? " of whole " + std::to_string(grain) + "-value blocks (quantized weights)" : ""));
  }
  return {static_cast<int>(static_cast<int64_t>(units) * index / nodes) * grain, static_cast<int>(static_cast<int64_t>(units) * (index + 1) / nodes) * grain};
}

}  // namespace

SlicePlan planSlices(const ModelHeader& h, int nodes, int index, ExpertSplit experts) {
  if (nodes < 1 || index < 0 || index >= nodes) throw PlanError("node " + std::to_string(index) + " of " + count(nodes) + " does not exist");
  SlicePlan p;
  p.nodes = nodes;
  p.index = index;
  p.experts = experts;
  const bool quantized = h.weightType == FloatType::Q40 || h.weightType == FloatType::Q80;
  const int grain = quantized ? static_cast<int>(kBlockSize) : 1;
  // Query heads are split evenly; a node reads every KV head its query heads use, so a KV head whose
  // group spans two nodes is replicated on both (and on every node when there are more nodes than KV heads).
  p.heads = part(h.nHeads, 1, nodes, index, "n_heads");
  const int group = h.nHeads / h.nKvHeads;
  p.kvHeads = {p.heads.begin / group, (p.heads.end - 1) / group + 1};
  for (int k = 0; k < nodes && quantized; k++) {
    const int columns = part(h.nHeads, 1, nodes, k, "n_heads").size() * h.headDim;
    if (columns % static_cast<int>(kBlockSize) != 0) {
      throw PlanError("with quantized weights each node's columns of the attention output must be whole 32-value blocks, but " + count(nodes) + " give node " +
                      std::to_string(k) + " " + std::to_string(columns) + " (its heads x head_dim " + std::to_string(h.headDim) + ")");
    }
  }
  const bool dense = h.arch != ArchType::GLM4_MOE || h.firstDenseLayers > 0;
  if (dense) p.ffn = part(h.hiddenDim, grain, nodes, index, "hidden_dim");
  if (h.arch == ArchType::GLM4_MOE && h.firstDenseLayers < h.nLayers) {
    if (experts == ExpertSplit::Slice) {
      p.expertRows = part(h.moeHiddenDim, grain, nodes, index, "moe_hidden_dim");
      p.expertIds = {0, h.nExperts};
    } else {
      p.expertRows = {0, h.moeHiddenDim};
      p.expertIds = part(h.nExperts, 1, nodes, index, "n_experts");
    }
    const int shared = h.moeHiddenDim * h.nSharedExperts;
    if (shared > 0) p.shared = part(shared, grain, nodes, index, "the shared expert's width (moe_hidden_dim x n_shared_experts)");
  }
  p.vocab = part(h.vocabSize, 1, nodes, index, "vocab_size");
  return p;
}

ModelHeader localHeader(const ModelHeader& h, const SlicePlan& p) {
  ModelHeader local = h;
  local.nHeads = p.heads.size();
  local.nKvHeads = p.kvHeads.size();
  local.hiddenDim = p.ffn.size();
  local.moeHiddenDim = p.expertRows.size();
  local.vocabSize = p.vocab.size();
  local.kvGroup = h.nHeads / h.nKvHeads;
  local.headOffset = p.heads.begin - p.kvHeads.begin * local.kvGroup;
  local.mtpLayers = 0;  // the MTP layer drafts on the root, whole (mtp.h)
  return local;
}

void forEachSlice(const Weights& full, const SlicePlan& p, Weights& local, const std::function<void(const Tensor&, const Rect&, Tensor&)>& fn) {
  const ModelHeader& h = full.header();
  local.header_ = localHeader(h, p);
  local.layers.assign(full.layers.size(), LayerWeights{});
  const int hd = h.headDim;
  auto whole = [&](const Tensor& t, Tensor& mine) { fn(t, Rect{0, t.rows, 0, t.cols}, mine); };
  auto rows = [&](const Tensor& t, Range r, Tensor& mine) { fn(t, Rect{r.begin, r.size(), 0, t.cols}, mine); };
  auto cols = [&](const Tensor& t, Range c, Tensor& mine) { fn(t, Rect{0, t.rows, c.begin, c.size()}, mine); };
  auto ffn = [&](const ExpertWeights& w, Range r, ExpertWeights& mine) {
    rows(w.gate, r, mine.gate);
    rows(w.up, r, mine.up);
    cols(w.down, r, mine.down);
  };
  const Range q{p.heads.begin * hd, p.heads.end * hd}, kv{p.kvHeads.begin * hd, p.kvHeads.end * hd};
  rows(full.embedding, p.index == 0 ? Range{0, h.vocabSize} : Range{}, local.embedding);
  for (size_t l = 0; l < full.layers.size(); l++) {
    const LayerWeights& F = full.layers[l];
    LayerWeights& L = local.layers[l];
    whole(F.attnNorm, L.attnNorm);
    rows(F.wq, q, L.wq);
    rows(F.wk, kv, L.wk);
    rows(F.wv, kv, L.wv);
    if (h.attentionBias) {
      rows(F.bq, q, L.bq);
      rows(F.bk, kv, L.bk);
      rows(F.bv, kv, L.bv);
    }
    if (h.qkNorm) {
      whole(F.qNorm, L.qNorm);
      whole(F.kNorm, L.kNorm);
    }
    cols(F.wo, q, L.wo);
    if (h.arch == ArchType::GLM4) whole(F.postAttnNorm, L.postAttnNorm);
    whole(F.ffnNorm, L.ffnNorm);
    if (!F.experts.empty()) {
      whole(F.router, L.router);
      whole(F.routerBias, L.routerBias);
      L.experts.resize(F.experts.size());
      for (int e = 0; e < static_cast<int>(F.experts.size()); e++) {
        const bool held = e >= p.expertIds.begin && e < p.expertIds.end;
        ffn(F.experts[e], held ? p.expertRows : Range{}, L.experts[e]);
      }
      if (F.hasShared) {
        L.hasShared = true;
        ffn(F.shared, p.shared, L.shared);
      }
    } else {
      ffn(F.dense, p.ffn, L.dense);
    }
    if (h.arch == ArchType::GLM4) whole(F.postFfnNorm, L.postFfnNorm);
  }
  whole(full.outputNorm, local.outputNorm);
  rows(full.output, p.vocab, local.output);
}

size_t rectBytes(const Tensor& t, const Rect& r) { return static_cast<size_t>(r.rows) * encodedBytes(t.type, static_cast<size_t>(r.cols)); }

uint8_t* Shard::allocate(size_t bytes) {
  storage.emplace_back(new uint8_t[bytes]);
  return storage.back().get();
}

std::unique_ptr<Shard> cutShard(const Model& model, const SlicePlan& plan) {
  auto shard = std::make_unique<Shard>();
  forEachSlice(model, plan, shard->weights, [&](const Tensor& t, const Rect& r, Tensor& mine) {
    mine.type = t.type;
    mine.rows = r.rows;
    mine.cols = r.cols;
    if (r.empty()) return;
    if (r.cols == t.cols) {  // whole rows: a view of the mapping
      mine.data = t.row(r.row0);
      return;
    }
    uint8_t* out = shard->allocate(rectBytes(t, r));
    const size_t offset = encodedBytes(t.type, static_cast<size_t>(r.col0)), bytes = mine.rowBytes();
    for (int i = 0; i < r.rows; i++) std::memcpy(out + i * bytes, t.row(r.row0 + i) + offset, bytes);
    mine.data = out;
  });
  return shard;
}

Weights layoutOf(const ModelHeader& h) {
  Weights w;
  w.header_ = h;
  layoutTensors(w, [](FloatType type, int rows, int cols) {
    Tensor t;
    t.type = type;
    t.rows = rows;
    t.cols = cols;
    return t;
  });
  return w;
}

}  // namespace glm
