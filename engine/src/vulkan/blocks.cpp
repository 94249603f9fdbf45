#include "blocks.h"

#include <algorithm>
#include <cstring>

namespace glm::vulkan {

namespace {
// Entries of a routing table segment: 64 uint32 = 256 bytes, the largest storage-buffer offset
// alignment Vulkan allows, so every segment can be bound on its own.
constexpr size_t kSegment = 64;
size_t padded(size_t n) { return (n + kSegment - 1) / kSegment * kSegment; }

// Calls f(first, end) for each stretch of rows at consecutive positions of one slot (a sequence's tokens).
template <typename F>
void forEachRun(const TokenPlace* places, int n, F f) {
  for (int first = 0, end; first < n; first = end) {
    for (end = first + 1; end < n && places[end].slot == places[first].slot && places[end].pos == places[end - 1].pos + 1;) end++;
    f(first, end);
  }
}
}  // namespace

GpuBlocks::GpuBlocks(const Weights& model, Context& context, ThreadPool& pool, int cpuExpertLayers, int maxSeqLen, FloatType kvType,
                     Collective* collective, int slots)
    : model_(model),
      h_(model.header()),
      context_(context),
      kernels_(context),
      kvType_(kvType),
      collective_(collective),
      cpuExpertLayers_(cpuExpertLayers),
      cpu_(pool) {
  for (int l = 0; l < h_.nLayers; l++) uploadLayer(l);
  vector(model.outputNorm);
  matrix(model.output);
  const size_t cacheBytes = encodedBytes(kvType, static_cast<size_t>(maxSeqLen) * h_.kvDim());
  if (cacheBytes > context.maxBinding()) {
    throw VulkanError("one layer's KV cache (" + std::to_string(cacheBytes >> 20) + " MiB at a context of " + std::to_string(maxSeqLen) +
                      ") exceeds the device's binding limit of " + std::to_string(context.maxBinding() >> 20) + " MiB: use a shorter context or --kv-cache f16");
  }
  for (int l = 0; l < h_.nLayers * slots; l++) {
    keys_.push_back(context.allocate(cacheBytes, "the KV cache"));
    values_.push_back(context.allocate(cacheBytes, "the KV cache"));
  }
  const std::vector<float> table = ropeTable(maxSeqLen, h_.ropeDim, h_.ropeTheta);
  ropeTable_ = context.allocate(table.size() * sizeof(float), "the RoPE table");
  context.upload(*ropeTable_, 0, table.data(), table.size() * sizeof(float));
}

void GpuBlocks::uploadLayer(int layer) {
  const LayerWeights& L = model_.layers[layer];
  for (const Tensor* t : {&L.attnNorm, &L.bq, &L.bk, &L.bv, &L.qNorm, &L.kNorm, &L.postAttnNorm, &L.ffnNorm, &L.postFfnNorm}) {
    if (t->data) vector(*t);
  }
  for (const Tensor* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.router}) {
    if (t->data) matrix(*t);
  }
  auto expert = [&](const ExpertWeights& e) {
    for (const Tensor* t : {&e.gate, &e.up, &e.down}) {
      if (t->data && t->rows > 0) matrix(*t);
    }
  };
  expert(L.dense);
  if (!expertsOnCpu(layer)) {
    for (const ExpertWeights& e : L.experts) expert(e);
  }
  if (L.hasShared) expert(L.shared);
}

const Matrix& GpuBlocks::matrix(const Tensor& t) {
  auto it = matrices_.find(t.data);
  if (it != matrices_.end()) return it->second;
  return matrices_.emplace(t.data, uploadMatrix(context_, t.type, t.data, t.rows, t.cols, "the model's weights")).first->second;
}

const Buffer& GpuBlocks::vector(const Tensor& t) {
  auto it = vectors_.find(t.data);
  if (it != vectors_.end()) return *it->second;
  const size_t bytes = static_cast<size_t>(t.rows) * t.cols * sizeof(float);
  auto b = context_.allocate(bytes, "the model's norms and biases");
  context_.upload(*b, 0, t.data, bytes);
  return *vectors_.emplace(t.data, std::move(b)).first->second;
}

Buffer& GpuBlocks::grow(std::unique_ptr<Buffer>& b, size_t floats, const char* what) {
  const size_t bytes = std::max<size_t>(floats, 1) * sizeof(float);
  if (!b || b->bytes < bytes) {
    context_.flush();  // dispatches recorded so far may use the old buffer
    b.reset();
    b = context_.allocate(bytes, what);
  }
  return *b;
}

void GpuBlocks::load(const float* x, int n) {
  const size_t size = static_cast<size_t>(n) * h_.dim;
  grow(x_, size, "the activations");
  grow(a_, size, "the activations");
  grow(b_, size, "the activations");
  context_.upload(*x_, 0, x, size * sizeof(float));
}

void GpuBlocks::rmsNorm(Act x, const Tensor& w, Act out, int n) { kernels_.rmsNorm(rows(x), vector(w), rows(out), n, w.rows, h_.normEpsilon); }

void GpuBlocks::add(Act x, Act y, int n) {
  const size_t count = static_cast<size_t>(n) * h_.dim;
  kernels_.add(rows(x), rows(y), count, count);
}

void GpuBlocks::attention(int layer, Act x, int n, const TokenPlace* places, Act out) {
  const LayerWeights& L = model_.layers[layer];
  const int qDim = h_.qDim(), kvDim = h_.kvDim(), hd = h_.headDim;
  Buffer& q = grow(q_, static_cast<size_t>(n) * qDim, "the queries");
  Buffer& k = grow(k_, static_cast<size_t>(n) * kvDim, "the keys");
  Buffer& v = grow(v_, static_cast<size_t>(n) * kvDim, "the values");
  Buffer& att = grow(att_, static_cast<size_t>(n) * qDim, "the attention output");
  kernels_.matmul(matrix(L.wq), rows(x), n, q);
  kernels_.matmul(matrix(L.wk), rows(x), n, k);
  kernels_.matmul(matrix(L.wv), rows(x), n, v);
  if (h_.attentionBias) {
    kernels_.add(q, vector(L.bq), static_cast<size_t>(n) * qDim, qDim);
    kernels_.add(k, vector(L.bk), static_cast<size_t>(n) * kvDim, kvDim);
    kernels_.add(v, vector(L.bv), static_cast<size_t>(n) * kvDim, kvDim);
  }
  if (h_.qkNorm) {  // per-head RMSNorm after the bias, before RoPE
    kernels_.rmsNorm(q, vector(L.qNorm), q, n * h_.nHeads, hd, h_.normEpsilon);
    kernels_.rmsNorm(k, vector(L.kNorm), k, n * h_.nKvHeads, hd, h_.normEpsilon);
  }
  const bool interleaved = h_.ropeStyle == RopeStyle::Interleaved;
  auto cache = [&](int row) { return static_cast<size_t>(places[row].slot) * h_.nLayers + layer; };
  forEachRun(places, n, [&](int first, int end) {
    const int m = end - first, pos = places[first].pos;
    kernels_.rope(q, *ropeTable_, m * h_.nHeads, h_.nHeads, hd, h_.ropeDim, pos, interleaved, first);
    kernels_.rope(k, *ropeTable_, m * h_.nKvHeads, h_.nKvHeads, hd, h_.ropeDim, pos, interleaved, first);
    kernels_.storeKv(k, v, *keys_[cache(first)], *values_[cache(first)], kvType_, m, kvDim, pos, first);
  });
  // Every token's keys are stored before any attends, as on the CPU.
  forEachRun(places, n, [&](int first, int end) {
    kernels_.attention(q, *keys_[cache(first)], *values_[cache(first)], kvType_, att, end - first, places[first].pos, h_.nHeads, hd, kvDim, h_.kvGroup,
                       h_.headOffset, first);
  });
  kernels_.matmul(matrix(L.wo), att, n, rows(out));
}

void GpuBlocks::ffn(const ExpertWeights& w, Buffer& x, int n, Buffer& out) {
  const size_t count = static_cast<size_t>(n) * w.gate.rows;
  Buffer& g = grow(gate_, count, "the FFN activations");
  Buffer& u = grow(up_, count, "the FFN activations");
  kernels_.matmul(matrix(w.gate), x, n, g);
  kernels_.matmul(matrix(w.up), x, n, u);
  kernels_.siluMul(g, u, count);
  kernels_.matmul(matrix(w.down), g, n, out);
}

void GpuBlocks::moe(const LayerWeights& L, Act x, int n, Act out) {
  const int experts = h_.nExperts, dim = h_.dim;
  const int layer = static_cast<int>(&L - model_.layers.data());
  // The router runs on the device; the choice of experts (a few hundred values per token) on the host.
  Buffer& logits = grow(router_, static_cast<size_t>(n) * experts, "the router logits");
  kernels_.matmul(matrix(L.router), rows(x), n, logits);
  host_.resize(static_cast<size_t>(n) * experts);
  context_.flush();
  context_.download(logits, 0, host_.data(), host_.size() * sizeof(float));
  const Routing routing = routeTokens(h_, L, host_.data(), n);
  if (expertsOnCpu(layer)) {
    const size_t count = static_cast<size_t>(n) * dim;
    hostIn_.resize(count);
    host_.resize(count);
    context_.download(rows(x), 0, hostIn_.data(), count * sizeof(float));
    cpu_.routedExperts(L, routing, hostIn_.data(), n, dim, host_.data());
    context_.upload(rows(out), 0, host_.data(), count * sizeof(float));
  } else {
    routedExperts(L, routing, rows(x), n, rows(out));
  }
  if (L.hasShared) {
    Buffer& y = grow(expertOut_, static_cast<size_t>(n) * dim, "the expert outputs");
    ffn(L.shared, rows(x), n, y);
    kernels_.add(rows(out), y, static_cast<size_t>(n) * dim, static_cast<size_t>(n) * dim);
  }
}

void GpuBlocks::routedExperts(const LayerWeights& L, const Routing& routing, Buffer& x, int n, Buffer& out) {
  const int dim = h_.dim;
  // One table for the layer: per expert, its tokens' rows then their weights, each in its own segment.
  std::vector<uint32_t> table;
  std::vector<std::pair<size_t, size_t>> segments;  // (expert, first entry)
  for (size_t e = 0; e < routing.size(); e++) {
    const auto& tokens = routing[e];
    if (tokens.empty() || L.experts[e].gate.rows == 0) continue;  // not routed to, or held by another node
    const size_t at = table.size(), m = padded(tokens.size());
    table.resize(at + 2 * m);
    for (size_t i = 0; i < tokens.size(); i++) {
      table[at + i] = static_cast<uint32_t>(tokens[i].first);
      std::memcpy(&table[at + m + i], &tokens[i].second, sizeof(float));
    }
    segments.emplace_back(e, at);
  }
  Buffer& routes = grow(routes_, std::max<size_t>(table.size(), 1), "the routing table");
  if (!table.empty()) context_.upload(routes, 0, table.data(), table.size() * sizeof(uint32_t));
  host_.assign(static_cast<size_t>(n) * dim, 0.0f);
  context_.upload(out, 0, host_.data(), host_.size() * sizeof(float));
  for (const auto& [e, at] : segments) {
    const int m = static_cast<int>(routing[e].size());
    const size_t bytes = static_cast<size_t>(m) * sizeof(uint32_t);
    const Binding index{&routes, at * sizeof(uint32_t), bytes};
    const Binding weight{&routes, (at + padded(m)) * sizeof(uint32_t), bytes};
    Buffer& in = grow(expertIn_, static_cast<size_t>(m) * dim, "the expert inputs");
    Buffer& y = grow(expertOut_, static_cast<size_t>(m) * dim, "the expert outputs");
    kernels_.gatherRows(x, index, in, m, dim);
    ffn(L.experts[e], in, m, y);
    kernels_.scatterAddRows(out, y, index, weight, m, dim);
  }
}

void GpuBlocks::reduce(Act out, int n) {
  if (!collective_) return;
  // Partial sums go through the host to the other nodes and back.
  const size_t count = static_cast<size_t>(n) * h_.dim;
  host_.resize(count);
  context_.flush();
  context_.download(rows(out), 0, host_.data(), count * sizeof(float));
  collective_->allReduce(host_.data(), n);
  context_.upload(rows(out), 0, host_.data(), count * sizeof(float));
}

void GpuBlocks::logits(int first, int count, float* out) {
  const int dim = h_.dim, vocab = model_.output.rows;
  std::vector<uint32_t> index(static_cast<size_t>(count));
  for (int i = 0; i < count; i++) index[i] = static_cast<uint32_t>(first + i);
  Buffer& routes = grow(routes_, index.size(), "the routing table");
  context_.upload(routes, 0, index.data(), index.size() * sizeof(uint32_t));
  kernels_.gatherRows(*x_, {&routes, 0, index.size() * sizeof(uint32_t)}, *a_, count, dim);
  kernels_.rmsNorm(*a_, vector(model_.outputNorm), *a_, count, dim, h_.normEpsilon);
  // Tokens at a time whose logits fit one binding (a long prompt's n x vocab may not).
  const int perPass = static_cast<int>(std::max<size_t>(1, std::min<size_t>(count, context_.maxBinding() / (static_cast<size_t>(vocab) * sizeof(float)))));
  Buffer& result = grow(logits_, static_cast<size_t>(perPass) * vocab, "the logits");
  Buffer& rows = grow(expertIn_, static_cast<size_t>(perPass) * dim, "the output rows");
  for (int done = 0; done < count; done += perPass) {
    const int m = std::min(perPass, count - done);
    const Buffer* input = a_.get();
    if (done > 0) {  // later passes start mid-buffer: copy their rows to the start of another one
      for (int i = 0; i < m; i++) index[i] = static_cast<uint32_t>(done + i);
      context_.upload(routes, 0, index.data(), static_cast<size_t>(m) * sizeof(uint32_t));
      kernels_.gatherRows(*a_, {&routes, 0, static_cast<size_t>(m) * sizeof(uint32_t)}, rows, m, dim);
      input = &rows;
    }
    kernels_.matmul(matrix(model_.output), *input, m, result);
    context_.flush();
    context_.download(result, 0, out + static_cast<size_t>(done) * vocab, static_cast<size_t>(m) * vocab * sizeof(float));
  }
}

void GpuBlocks::residual(int first, int count, float* out) {
  const size_t dim = static_cast<size_t>(h_.dim);
  context_.download(*x_, first * dim * sizeof(float), out, count * dim * sizeof(float));
}

}  // namespace glm::vulkan
