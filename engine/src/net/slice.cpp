#include "slice.h"

#include <cstring>

namespace glm {

namespace {

Range part(int total, int nodes, int index) {
  return {static_cast<int>(static_cast<int64_t>(total) * index / nodes), static_cast<int>(static_cast<int64_t>(total) * (index + 1) / nodes)};
}

std::string count(int nodes) { return std::to_string(nodes) + (nodes == 1 ? " node" : " nodes"); }

void divisible(int value, const char* field, int nodes) {
  if (value % nodes != 0) throw PlanError(std::string(field) + " (" + std::to_string(value) + ") is not divisible by " + count(nodes));
}

// Quantized rows are cut between 32-value blocks only.
void wholeBlocks(const ModelHeader& h, int columns, const char* what, int nodes) {
  if ((h.weightType == FloatType::Q40 || h.weightType == FloatType::Q80) && columns % static_cast<int>(kBlockSize) != 0) {
    throw PlanError(std::string("with quantized weights each node's share of ") + what + " must be whole 32-value blocks, but " + count(nodes) +
                    " leaves " + std::to_string(columns) + " columns per node");
  }
}

}  // namespace

SlicePlan planSlices(const ModelHeader& h, int nodes, int index, ExpertSplit experts) {
  if (nodes < 1 || index < 0 || index >= nodes) throw PlanError("node " + std::to_string(index) + " of " + count(nodes) + " does not exist");
  SlicePlan p;
  p.nodes = nodes;
  p.index = index;
  p.experts = experts;
  divisible(h.nHeads, "n_heads", nodes);
  if (h.nKvHeads % nodes != 0 && nodes % h.nKvHeads != 0) {
    throw PlanError("n_kv_heads (" + std::to_string(h.nKvHeads) + ") and " + count(nodes) +
                    ": one must divide the other (more nodes than KV heads replicate them)");
  }
  p.heads = part(h.nHeads, nodes, index);
  const int group = h.nHeads / h.nKvHeads;
  p.kvHeads = {p.heads.begin / group, (p.heads.end - 1) / group + 1};
  wholeBlocks(h, p.heads.size() * h.headDim, "the attention output columns (n_heads x head_dim)", nodes);

  const bool dense = h.arch != ArchType::GLM4_MOE || h.firstDenseLayers > 0;
  if (dense) {
    divisible(h.hiddenDim, "hidden_dim", nodes);
    p.ffn = part(h.hiddenDim, nodes, index);
    wholeBlocks(h, p.ffn.size(), "the FFN (hidden_dim)", nodes);
  }
  if (h.arch == ArchType::GLM4_MOE && h.firstDenseLayers < h.nLayers) {
    if (experts == ExpertSplit::Slice) {
      divisible(h.moeHiddenDim, "moe_hidden_dim", nodes);
      p.expertRows = part(h.moeHiddenDim, nodes, index);
      p.expertIds = {0, h.nExperts};
      wholeBlocks(h, p.expertRows.size(), "every expert (moe_hidden_dim)", nodes);
    } else {
      if (h.nExperts < nodes) throw PlanError("n_experts (" + std::to_string(h.nExperts) + ") is fewer than " + count(nodes) + " to place whole experts on");
      p.expertRows = {0, h.moeHiddenDim};
      p.expertIds = part(h.nExperts, nodes, index);
    }
    const int shared = h.moeHiddenDim * h.nSharedExperts;
    if (shared > 0) {
      divisible(shared, "the shared expert's width (moe_hidden_dim x n_shared_experts)", nodes);
      p.shared = part(shared, nodes, index);
      wholeBlocks(h, p.shared.size(), "the shared expert", nodes);
    }
  }
  if (h.vocabSize < nodes) throw PlanError("vocab_size (" + std::to_string(h.vocabSize) + ") is smaller than " + count(nodes));
  p.vocab = part(h.vocabSize, nodes, index);
  return p;
}

ModelHeader localHeader(const ModelHeader& h, const SlicePlan& p) {
  ModelHeader local = h;
  local.nHeads = p.heads.size();
  local.nKvHeads = p.kvHeads.size();
  local.hiddenDim = p.ffn.size();
  local.moeHiddenDim = p.expertRows.size();
  local.vocabSize = p.vocab.size();
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
