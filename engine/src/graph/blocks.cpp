#include "blocks.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "../cpu/kernels.h"

namespace glm {

size_t KvCache::slotBytes(const ModelHeader& h, int maxSeqLen, FloatType type) {
  return encodedBytes(type, static_cast<size_t>(h.nLayers) * maxSeqLen * h.kvDim() * 2);
}

KvCache::KvCache(const ModelHeader& h, int maxSeqLen, FloatType type, int slots)
    : maxSeqLen_(maxSeqLen), kvDim_(h.kvDim()), nLayers_(h.nLayers), slots_(slots), type_(type) {
  if (type != FloatType::F32 && type != FloatType::F16) throw std::invalid_argument("the KV cache holds f32 or f16");
  if (slots < 1) throw std::invalid_argument("the KV cache needs at least one slot");
  cache_.resize(slotBytes(h, maxSeqLen, type) * slots);
}

const uint8_t* KvCache::row(int layer, TokenPlace at, int which) const {
  const size_t index = (((static_cast<size_t>(at.slot) * nLayers_ + layer) * 2 + which) * maxSeqLen_ + at.pos) * kvDim_;
  return cache_.data() + encodedBytes(type_, index);
}

void KvCache::store(int layer, TokenPlace at, const float* key, const float* value) {
  encodeF32(type_, key, const_cast<uint8_t*>(row(layer, at, 0)), kvDim_);
  encodeF32(type_, value, const_cast<uint8_t*>(row(layer, at, 1)), kvDim_);
}

void addInPlace(float* x, const float* y, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] += y[i];
}

template <typename T>
static T* grow(std::vector<T>& buffer, size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

void CpuBlocks::rmsNorm(const float* x, const Tensor& w, float* out, int n) {
  for (int t = 0; t < n; t++) glm::rmsNorm(x + static_cast<size_t>(t) * w.rows, w.f32(), out + static_cast<size_t>(t) * w.rows, w.rows, h_.normEpsilon);
}

void Blocks::observe(ActivationStats*) {
  throw std::invalid_argument("activation statistics (imatrix) are collected on the CPU backend only; run with --device cpu");
}

// Activation values below which quantizeRows runs on the calling thread.
constexpr size_t kParallelQuantizeValues = 1 << 16;

void CpuFfn::quantizeRows(const float* x, int n, size_t cols) {
  rowPointers_.resize(n);
  quantizedRows_.assign(n, QuantizedRow{nullptr, nullptr, nullptr});
  for (int t = 0; t < n; t++) rowPointers_[t] = x + t * cols;
  uint8_t* blocks = grow(quantized_, quantizedBlockBytes(cols) * n);
  float* scales = grow(quantizedScales_, quantizedScales(cols) * n);
  int32_t* zeroPoint = grow(quantizedZeroPoint_, quantizedZeroPointLanes(cols) * n);
  for (int t = 0; t < n; t++) {
    quantizedRows_[t] = {blocks + t * quantizedBlockBytes(cols), scales + t * quantizedScales(cols), zeroPoint + t * quantizedZeroPointLanes(cols)};
  }
  auto quantize = [&](int begin, int end) {
    for (int t = begin; t < end; t++) {
      quantizeActivations(rowPointers_[t], cols, const_cast<uint8_t*>(quantizedRows_[t].blocks), const_cast<float*>(quantizedRows_[t].scales),
                          const_cast<int32_t*>(quantizedRows_[t].zeroPoint));
    }
  };
  // A few rows (decoding steps) take microseconds: handing them to the pool costs more than it saves,
  // above all on a loaded machine where a worker may not be running.
  if (static_cast<size_t>(n) * cols < kParallelQuantizeValues) {
    quantize(0, n);
  } else {
    pool_.parallelFor(n, quantize);
  }
}

static bool quantized(FloatType t) { return t == FloatType::Q40 || t == FloatType::Q80; }

void CpuFfn::matmul(const Tensor& w, const float* x, int n, float* out) {
  const size_t cols = static_cast<size_t>(w.cols);
  if (stats_) stats_->add(w, x, n);
  if (quantized(w.type)) {
    quantizeRows(x, n, cols);
  } else {
    rowPointers_.resize(n);
    for (int t = 0; t < n; t++) rowPointers_[t] = x + t * cols;
  }
  pool_.parallelFor(
      w.rows,
      [&](int begin, int end) { matmulRows(w.type, w.data, w.rowBytes(), begin, end, rowPointers_.data(), quantizedRows_.data(), n, cols, out, w.rows); },
      4);
}

void CpuFfn::groupedMatmul(const std::vector<MatmulJob>& jobs, const float* x, int rows, size_t cols) {
  if (jobs.empty()) return;
  if (stats_) {
    for (const MatmulJob& job : jobs) stats_->add(*job.w, x + static_cast<size_t>(job.first) * cols, job.m);
  }
  if (quantized(jobs[0].w->type)) {
    quantizeRows(x, rows, cols);
  } else {
    rowPointers_.resize(rows);
    for (int t = 0; t < rows; t++) rowPointers_[t] = x + t * cols;
  }
  // Work items of kRows weight rows of one job, so that the threads share out the experts evenly.
  constexpr int kRows = 16;
  std::vector<std::pair<int, int>> items;  // (job, first row)
  for (size_t j = 0; j < jobs.size(); j++) {
    for (int r = 0; r < jobs[j].w->rows; r += kRows) items.emplace_back(static_cast<int>(j), r);
  }
  pool_.parallelFor(static_cast<int>(items.size()), [&](int begin, int end) {
    for (int i = begin; i < end; i++) {
      const MatmulJob& job = jobs[items[i].first];
      const Tensor& w = *job.w;
      const int r = items[i].second;
      matmulRows(w.type, w.data, w.rowBytes(), r, std::min(r + kRows, w.rows), rowPointers_.data() + job.first, quantizedRows_.data() + job.first, job.m,
                 cols, job.out, w.rows);
    }
  });
}

void CpuBlocks::attention(int layer, const float* x, int n, const TokenPlace* places, float* out) {
  const LayerWeights& L = model_.layers[layer];
  const int qDim = h_.qDim(), kvDim = h_.kvDim(), hd = h_.headDim;
  float* q = grow(q_, static_cast<size_t>(n) * qDim);
  float* k = grow(k_, static_cast<size_t>(n) * kvDim);
  float* v = grow(v_, static_cast<size_t>(n) * kvDim);
  matmul(L.wq, x, n, q);
  matmul(L.wk, x, n, k);
  matmul(L.wv, x, n, v);
  if (h_.attentionBias) {
    for (int t = 0; t < n; t++) {
      addInPlace(q + static_cast<size_t>(t) * qDim, L.bq.f32(), qDim);
      addInPlace(k + static_cast<size_t>(t) * kvDim, L.bk.f32(), kvDim);
      addInPlace(v + static_cast<size_t>(t) * kvDim, L.bv.f32(), kvDim);
    }
  }
  if (h_.qkNorm) {  // per-head RMSNorm after the bias, before RoPE
    for (int i = 0; i < n * h_.nHeads; i++) glm::rmsNorm(q + static_cast<size_t>(i) * hd, L.qNorm.f32(), q + static_cast<size_t>(i) * hd, hd, h_.normEpsilon);
    for (int i = 0; i < n * h_.nKvHeads; i++) glm::rmsNorm(k + static_cast<size_t>(i) * hd, L.kNorm.f32(), k + static_cast<size_t>(i) * hd, hd, h_.normEpsilon);
  }
  const bool interleaved = h_.ropeStyle == RopeStyle::Interleaved;
  int longest = 0;  // every token's keys are stored before any token attends, so a pass is causal within each slot
  for (int t = 0; t < n; t++) {
    glm::rope(q + static_cast<size_t>(t) * qDim, 1, h_.nHeads, hd, h_.ropeDim, places[t].pos, h_.ropeTheta, interleaved);
    glm::rope(k + static_cast<size_t>(t) * kvDim, 1, h_.nKvHeads, hd, h_.ropeDim, places[t].pos, h_.ropeTheta, interleaved);
    cache_.store(layer, places[t], k + static_cast<size_t>(t) * kvDim, v + static_cast<size_t>(t) * kvDim);
    longest = std::max(longest, places[t].pos + 1);
  }

  float* att = grow(att_, static_cast<size_t>(n) * qDim);
  const int group = h_.kvGroup;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // One work item per KV head and token: its query heads read each cached key once. KV-head-major, so
  // each thread gets whole heads over every token and the long causal rows of the last tokens are
  // shared out evenly. On a node whose heads start or end mid-group, the first and last KV heads serve
  // only the node's part of their group.
  pool_.parallelFor(n * h_.nKvHeads, [&](int begin, int end) {
    std::vector<float> scores(static_cast<size_t>(group) * longest);
    for (int item = begin; item < end; item++) {
      const int kvHead = item / n, t = item % n;
      const int lo = std::max(0, kvHead * group - h_.headOffset), hi = std::min(h_.nHeads, (kvHead + 1) * group - h_.headOffset);
      const size_t firstHead = static_cast<size_t>(t) * h_.nHeads + static_cast<size_t>(lo);
      const int visible = places[t].pos + 1;  // causal
      const int slot = places[t].slot;
      const size_t stride = static_cast<size_t>(h_.kvDim());
      const size_t offset = encodedBytes(cache_.type(), static_cast<size_t>(kvHead) * hd);
      attentionScores(q + firstHead * hd, hi - lo, cache_.keys(layer, slot) + offset, cache_.type(), stride, visible, hd, scale, scores.data());
      for (int g = 0; g < hi - lo; g++) {
        float* p = scores.data() + static_cast<size_t>(g) * visible;
        softmax(p, visible);
        attentionValues(p, cache_.values(layer, slot) + offset, cache_.type(), stride, visible, hd, att + (firstHead + g) * hd);
      }
    }
  });
  matmul(L.wo, att, n, out);
}

void CpuFfn::ffn(const ExpertWeights& w, const float* x, int n, float* out) {
  const size_t width = static_cast<size_t>(w.gate.rows);
  float* g = grow(gate_, n * width);
  float* u = grow(up_, n * width);
  matmul(w.gate, x, n, g);
  matmul(w.up, x, n, u);
  for (size_t i = 0; i < n * width; i++) g[i] = silu(g[i]) * u[i];
  matmul(w.down, g, n, out);
}

Routing routeTokens(const ModelHeader& h, const LayerWeights& L, const float* logits, int n) {
  const int experts = h.nExperts;
  Routing routed(experts);
  std::vector<float> scores(experts), choice(experts);
  std::vector<int> order(experts);
  const int perGroup = experts / h.nExpertGroups;
  for (int t = 0; t < n; t++) {
    for (int e = 0; e < experts; e++) {
      scores[e] = 1.0f / (1.0f + std::exp(-logits[static_cast<size_t>(t) * experts + e]));
      choice[e] = scores[e] + L.routerBias.f32()[e];  // the correction bias only steers selection
    }
    if (h.nExpertGroups > 1) {  // keep the topk_groups groups whose two best experts score highest
      std::vector<std::pair<float, int>> groups;
      for (int g = 0; g < h.nExpertGroups; g++) {
        std::vector<float> members(choice.begin() + g * perGroup, choice.begin() + (g + 1) * perGroup);
        std::partial_sort(members.begin(), members.begin() + std::min(2, perGroup), members.end(), std::greater<float>());
        groups.emplace_back(members[0] + (perGroup > 1 ? members[1] : 0.0f), g);
      }
      std::sort(groups.begin(), groups.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
      for (size_t r = h.topkGroups; r < groups.size(); r++) {
        std::fill_n(choice.begin() + groups[r].second * perGroup, perGroup, -INFINITY);
      }
    }
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + h.nActiveExperts, order.end(),
                      [&](int a, int b) { return choice[a] > choice[b] || (choice[a] == choice[b] && a < b); });
    float sum = 0.0f;
    for (int j = 0; j < h.nActiveExperts; j++) sum += scores[order[j]];
    for (int j = 0; j < h.nActiveExperts; j++) {
      float weight = scores[order[j]];
      if (h.normTopkProb) weight /= sum;
      routed[order[j]].emplace_back(t, weight * h.routedScalingFactor);
    }
  }

  return routed;
}

void CpuFfn::routedExperts(const LayerWeights& L, const Routing& routed, const float* x, int n, int dim, float* out) {
  std::fill_n(out, static_cast<size_t>(n) * dim, 0.0f);
  // The tokens of every expert this node holds, gathered expert after expert: rows [first, first + m).
  std::vector<std::pair<int, int>> groups;  // (expert, first row)
  int rows = 0;
  for (size_t e = 0; e < routed.size(); e++) {
    if (routed[e].empty() || L.experts[e].gate.rows == 0) continue;  // not routed to, or held by another node
    groups.emplace_back(static_cast<int>(e), rows);
    rows += static_cast<int>(routed[e].size());
  }
  if (groups.empty()) return;
  const int width = L.experts[groups[0].first].gate.rows;
  float* in = grow(expertIn_, static_cast<size_t>(rows) * dim);
  for (const auto& [e, first] : groups) {
    for (size_t i = 0; i < routed[e].size(); i++) std::copy_n(x + static_cast<size_t>(routed[e][i].first) * dim, dim, in + (first + i) * dim);
  }
  float* g = grow(gate_, static_cast<size_t>(rows) * width);
  float* u = grow(up_, static_cast<size_t>(rows) * width);
  float* y = grow(expertOut_, static_cast<size_t>(rows) * dim);
  // All the experts' gate and up projections in one loop, then all their down projections.
  jobs_.clear();
  for (const auto& [e, first] : groups) {
    const int m = static_cast<int>(routed[e].size());
    jobs_.push_back({&L.experts[e].gate, first, m, g + static_cast<size_t>(first) * width});
    jobs_.push_back({&L.experts[e].up, first, m, u + static_cast<size_t>(first) * width});
  }
  groupedMatmul(jobs_, in, rows, dim);
  for (size_t i = 0; i < static_cast<size_t>(rows) * width; i++) g[i] = silu(g[i]) * u[i];
  jobs_.clear();
  for (const auto& [e, first] : groups) jobs_.push_back({&L.experts[e].down, first, static_cast<int>(routed[e].size()), y + static_cast<size_t>(first) * dim});
  groupedMatmul(jobs_, g, rows, width);
  // In expert order for every token, as each token alone would add them.
  for (const auto& [e, first] : groups) {
    for (size_t i = 0; i < routed[e].size(); i++) {
      float* o = out + static_cast<size_t>(routed[e][i].first) * dim;
      const float* yi = y + (first + i) * dim;
      const float weight = routed[e][i].second;
      for (int d = 0; d < dim; d++) o[d] += weight * yi[d];
    }
  }
}

void CpuBlocks::moe(const LayerWeights& L, const float* x, int n, float* out) {
  const int experts = h_.nExperts, dim = h_.dim;
  float* logits = grow(routerLogits_, static_cast<size_t>(n) * experts);
  matmul(L.router, x, n, logits);  // f32 router: no activation quantization
  cpu_.routedExperts(L, routeTokens(h_, L, logits, n), x, n, dim, out);
  if (L.hasShared) {
    float* y = grow(sharedOut_, static_cast<size_t>(n) * dim);
    cpu_.ffn(L.shared, x, n, y);
    addInPlace(out, y, static_cast<size_t>(n) * dim);
  }
}

void CpuBlocks::add(Act x, Act y, int n) { addInPlace(rows(x), rows(y), static_cast<size_t>(n) * h_.dim); }

void CpuBlocks::load(const float* x, int n) {
  const size_t size = static_cast<size_t>(n) * h_.dim;
  x_.assign(x, x + size);
  a_.resize(size);
  b_.resize(size);
}

void CpuBlocks::logits(int first, int count, float* out) {
  const size_t dim = static_cast<size_t>(h_.dim);
  rmsNorm(x_.data() + first * dim, model_.outputNorm, a_.data(), count);
  matmul(model_.output, a_.data(), count, out);
}

void CpuBlocks::residual(int first, int count, float* out) {
  const size_t dim = static_cast<size_t>(h_.dim);
  std::copy_n(x_.data() + first * dim, count * dim, out);
}

}  // namespace glm
