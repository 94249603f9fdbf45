#include "cluster.h"

#include <algorithm>

namespace glm {

namespace {
constexpr size_t kWeightChunk = 16u << 20;
}

Cluster::Cluster(const Model& model, const DistributedOptions& options, int context, FloatType kvType)
    : options_(options), dim_(model.header().dim), vocab_(model.header().vocabSize) {
  const int nodes = static_cast<int>(options.workers.size()) + 1;
  if (options.sync != FloatType::F32 && options.sync != FloatType::Q80) throw PlanError("the sync type must be q80 or f32");
  if (options.sync == FloatType::Q80 && dim_ % static_cast<int>(kBlockSize) != 0) {
    throw PlanError("q80 sync needs dim (" + std::to_string(dim_) + ") to be a multiple of 32; use --sync f32");
  }
  for (int k = 0; k < nodes; k++) plans_.push_back(planSlices(model.header(), nodes, k, options.experts));
  std::vector<Endpoint> endpoints;
  for (const std::string& w : options.workers) endpoints.push_back(Endpoint::parse(w));
  for (int k = 1; k < nodes; k++) connect(k, endpoints[k - 1], model, context, kvType);
  heartbeat_ = std::thread([this] { heartbeats(); });
}

Cluster::~Cluster() {
  {
    std::lock_guard<std::mutex> lock(stopMutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  for (auto& link : links_) {
    try {
      link->send(Msg::End, nullptr, 0, kHeartbeatMs);
    } catch (const NetError&) {
      // already gone
    }
    link->close();
  }
}

void Cluster::connect(int node, const Endpoint& to, const Model& model, int context, FloatType kvType) {
  const int timeout = options_.timeoutMs;
  auto link = std::make_unique<Link>(Socket::connect(to, std::min(timeout, 10000)));
  std::vector<uint8_t> workerHello, payload;
  link->receive(Msg::WorkerHello, workerHello, timeout, "waiting for the worker's hello", WorkerHello::kBytes);
  const WorkerHello worker = WorkerHello::read(workerHello, link->peer());
  if (worker.hasModel && !sameDigest(worker.identity, model.identity())) {
    link->sendError("the root's model " + model.path() + " differs from this worker's model file");
    throw NetError(link->peer() + ": its model file differs from the root's " + model.path() + " (identity " +
                   hex(worker.identity.data(), 8) + " vs " + hex(model.identity().data(), 8) + "); give it the same file, or none");
  }
  RootHello hello;
  randomBytes(hello.nonce, sizeof hello.nonce);
  hello.nodeIndex = static_cast<uint32_t>(node);
  hello.nodeCount = static_cast<uint32_t>(plans_.size());
  hello.expertSplit = static_cast<uint32_t>(options_.experts);
  hello.syncType = static_cast<uint32_t>(options_.sync);
  hello.kvType = static_cast<uint32_t>(kvType);
  hello.context = static_cast<uint32_t>(context);
  hello.timeoutMs = static_cast<uint32_t>(timeout);
  hello.sendWeights = !worker.hasModel;
  hello.identity = model.identity();
  hello.headerPairs.assign(reinterpret_cast<const char*>(model.headerPairs()), model.headerPairBytes());
  const Writer body = hello.body();
  const Digest mac = handshakeMac(options_.secret, "root", workerHello, body.data().data(), body.data().size());
  std::vector<uint8_t> rootHello(mac.size() + body.data().size());
  std::copy(mac.begin(), mac.end(), rootHello.begin());
  std::copy(body.data().begin(), body.data().end(), rootHello.begin() + mac.size());
  link->send(Msg::RootHello, rootHello.data(), rootHello.size(), timeout);
  link->receive(Msg::Accept, payload, timeout, "waiting for the worker to accept the handshake", 32);
  Digest proof{};
  Reader accept(payload, link->peer() + ": Accept");
  accept.bytes(proof.data(), proof.size());
  accept.end();
  if (!sameDigest(proof, handshakeMac(options_.secret, "worker", workerHello, rootHello.data(), rootHello.size()))) {
    link->sendError("the worker failed to prove the shared secret");
    throw NetError(link->peer() + ": it does not know the shared secret (--secret / GLM_ENGINE_SECRET)");
  }
  const SessionKeys keys = sessionKeys(options_.secret, workerHello, rootHello);
  link->authenticate(keys.rootToWorker, keys.workerToRoot);
  if (hello.sendWeights) streamSlices(*link, model, plans_[node]);
  link->send(Msg::Ready, nullptr, 0, timeout);
  link->receive(Msg::Ready, payload, std::max(timeout, 120000), "waiting for the worker to load its slices");
  links_.push_back(std::move(link));
}

void Cluster::streamSlices(Link& link, const Model& model, const SlicePlan& plan) {
  std::vector<uint8_t> chunk;
  chunk.reserve(kWeightChunk);
  auto flush = [&] {
    link.send(Msg::Weights, chunk.data(), chunk.size(), options_.timeoutMs);
    chunk.clear();
  };
  Weights unused;
  forEachSlice(model, plan, unused, [&](const Tensor& t, const Rect& r, Tensor&) {
    if (r.empty()) return;
    const size_t offset = encodedBytes(t.type, static_cast<size_t>(r.col0)), bytes = encodedBytes(t.type, static_cast<size_t>(r.cols));
    for (int i = 0; i < r.rows; i++) {
      const uint8_t* row = t.row(r.row0 + i) + offset;
      for (size_t done = 0; done < bytes;) {
        if (chunk.size() == kWeightChunk) flush();
        const size_t take = std::min(bytes - done, kWeightChunk - chunk.size());
        chunk.insert(chunk.end(), row + done, row + done + take);
        done += take;
      }
    }
  });
  if (!chunk.empty()) flush();
}

template <typename F>
void Cluster::guarded(F step) {
  if (!failure_.empty()) throw NetError("the cluster stopped after an error and must be reloaded: " + failure_);
  try {
    step();
  } catch (const std::exception& e) {
    failure_ = e.what();
    for (auto& link : links_) link->close();
    throw;
  }
}

void Cluster::begin(const float* x, int n, int pos, int first, int count) {
  guarded([&] {
    Writer w;
    w.u32(static_cast<uint32_t>(pos)).u32(static_cast<uint32_t>(n)).u32(static_cast<uint32_t>(first)).u32(static_cast<uint32_t>(count));
    w.bytes(x, static_cast<size_t>(n) * dim_ * sizeof(float));
    for (auto& link : links_) link->send(Msg::Forward, w, options_.timeoutMs);
  });
}

void Cluster::allReduce(float* values, int n) {
  guarded([&] {
    const size_t count = static_cast<size_t>(n) * dim_, bytes = encodedBytes(options_.sync, count);
    wire_.resize(bytes);
    scratch_.resize(count);
    // Node order is fixed, so every run sums the same way.
    for (auto& link : links_) {
      link->receiveExact(Msg::Partial, wire_.data(), bytes, options_.timeoutMs, "waiting for a worker's partial sum");
      decodeToF32(options_.sync, wire_.data(), scratch_.data(), count);
      addInPlace(values, scratch_.data(), count);
    }
    encodeF32(options_.sync, values, wire_.data(), count);
    for (auto& link : links_) link->send(Msg::Sum, wire_.data(), bytes, options_.timeoutMs);
    // Every node, the root included, continues from the sum as the wire carries it.
    decodeToF32(options_.sync, wire_.data(), values, count);
  });
}

void Cluster::gather(const float* local, int count, float* logits) {
  guarded([&] {
    const FloatType type = logitsType(options_.sync);
    for (int k = 0; k < nodes(); k++) {
      const Range v = plans_[k].vocab;
      const float* rows = local;
      if (k > 0) {
        const size_t values = static_cast<size_t>(count) * v.size();
        wire_.resize(encodedBytes(type, values));
        scratch_.resize(values);
        links_[k - 1]->receiveExact(Msg::Logits, wire_.data(), wire_.size(), options_.timeoutMs, "waiting for a worker's logits");
        decodeToF32(type, wire_.data(), scratch_.data(), values);
        rows = scratch_.data();
      }
      for (int t = 0; t < count; t++) {
        std::copy_n(rows + static_cast<size_t>(t) * v.size(), v.size(), logits + static_cast<size_t>(t) * vocab_ + v.begin);
      }
    }
  });
}

std::vector<NodeTraffic> Cluster::traffic() const {
  std::vector<NodeTraffic> nodes(1);
  for (const auto& link : links_) {
    nodes[0].sent += link->sent();
    nodes[0].received += link->received();
    nodes.push_back({link->received(), link->sent()});
  }
  return nodes;
}

void Cluster::heartbeats() {
  std::unique_lock<std::mutex> lock(stopMutex_);
  while (!stop_.wait_for(lock, std::chrono::milliseconds(kHeartbeatMs / 4), [this] { return stopping_; })) {
    for (auto& link : links_) link->heartbeat();
  }
}

}  // namespace glm
