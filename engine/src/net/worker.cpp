#include "worker.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "../session.h"
#include "protocol.h"
#include "slice.h"

namespace glm {

namespace {

constexpr size_t kShortSecretBytes = 16;

// The worker's half of the all-reduce: its partial to the root, the sum back.
class RootLink : public Collective {
 public:
  RootLink(Link& link, FloatType sync, int dim, int timeoutMs) : link_(link), sync_(sync), dim_(dim), timeoutMs_(timeoutMs) {}
  void allReduce(float* values, int n) override {
    const size_t count = static_cast<size_t>(n) * dim_, bytes = encodedBytes(sync_, count);
    wire_.resize(bytes);
    encodeF32(sync_, values, wire_.data(), count);
    link_.send(Msg::Partial, wire_.data(), bytes, timeoutMs_);
    link_.receiveExact(Msg::Sum, wire_.data(), bytes, timeoutMs_, "waiting for the root's sum of the partials");
    decodeToF32(sync_, wire_.data(), values, count);
  }

 private:
  Link& link_;
  FloatType sync_;
  int dim_;
  int timeoutMs_;
  std::vector<uint8_t> wire_;
};

std::unique_ptr<Shard> receiveSlices(Link& link, const ModelHeader& h, const SlicePlan& plan, int timeoutMs, size_t& received) {
  auto shard = std::make_unique<Shard>();
  const Weights layout = layoutOf(h);
  std::vector<uint8_t> frame;
  size_t at = 0;
  forEachSlice(layout, plan, shard->weights, [&](const Tensor& t, const Rect& r, Tensor& mine) {
    mine.type = t.type;
    mine.rows = r.rows;
    mine.cols = r.cols;
    if (r.empty()) return;
    size_t need = rectBytes(t, r);
    uint8_t* out = shard->allocate(need);
    mine.data = out;
    received += need;
    while (need > 0) {
      if (at == frame.size()) {
        link.receive(Msg::Weights, frame, timeoutMs, "receiving the model slices");
        at = 0;
      }
      const size_t take = std::min(need, frame.size() - at);
      std::memcpy(out, frame.data() + at, take);
      out += take;
      at += take;
      need -= take;
    }
  });
  if (at != frame.size()) throw NetError(link.peer() + ": the root sent more weight bytes than this node's slices hold");
  return shard;
}

FloatType typeField(uint32_t v, bool allowF16, const char* what) {
  if (v == static_cast<uint32_t>(FloatType::F32) || v == static_cast<uint32_t>(FloatType::Q80) || (allowF16 && v == static_cast<uint32_t>(FloatType::F16))) {
    return static_cast<FloatType>(v);
  }
  throw NetError(std::string("unsupported ") + what + " type " + std::to_string(v));
}

}  // namespace

void serveRoot(Link& link, const Model* own, const WorkerOptions& o, const std::function<void(const std::string&)>& log) {
  // Until the root has proved the secret it gets kHandshakeMs in all and frames of handshake sizes only.
  link.setDeadline(kHandshakeMs);
  WorkerHello mine;
  randomBytes(mine.nonce, sizeof mine.nonce);
  mine.hasModel = own != nullptr;
  if (own) mine.identity = own->identity();
  const std::vector<uint8_t> workerHello = mine.write().data();
  link.send(Msg::WorkerHello, workerHello.data(), workerHello.size(), o.idleLimitMs);
  std::vector<uint8_t> rootHello, payload;
  link.receive(Msg::RootHello, rootHello, o.idleLimitMs, "waiting for the root's hello", RootHello::kMaxBytes);
  const RootHello root = RootHello::read(rootHello, link.peer());
  SlicePlan plan;
  FloatType sync = FloatType::Q80;
  int dim = 0, timeout = 0;
  std::unique_ptr<RootLink> reduce;
  std::unique_ptr<Session> session;
  try {
    const size_t macBytes = root.mac.size();
    if (!sameDigest(root.mac, handshakeMac(o.secret, "root", workerHello, rootHello.data() + macBytes, rootHello.size() - macBytes))) {
      throw NetError("authentication failed: the root's shared secret does not match this worker's (GLM_ENGINE_SECRET / --secret-file)");
    }
    link.setDeadline(0);
    timeout = static_cast<int>(std::min<uint32_t>(std::max<uint32_t>(root.timeoutMs, 1), 86400000));  // 1 ms .. a day
    // A worker with its own file plans from its own header, and the root's must be the same bytes.
    const std::string& pairs = root.headerPairs;
    if (own && (pairs.size() != own->headerPairBytes() || std::memcmp(pairs.data(), own->headerPairs(), pairs.size()) != 0)) {
      throw NetError("the root's model header differs from this worker's " + own->path());
    }
    if (own && !sameDigest(root.identity, own->identity())) throw NetError("the root's model differs from this worker's " + own->path());
    const ModelHeader h = own ? own->header() : parseHeader(reinterpret_cast<const uint8_t*>(pairs.data()), pairs.size(), "the root's model");
    if (root.expertSplit > static_cast<uint32_t>(ExpertSplit::Place)) throw NetError("unknown expert split " + std::to_string(root.expertSplit));
    if (!root.sendWeights && !own) throw NetError("the root sends no slices, but this worker has no model file");
    if (root.context == 0) throw NetError("the root asked for a context of 0 tokens");
    plan = planSlices(h, static_cast<int>(root.nodeCount), static_cast<int>(root.nodeIndex), static_cast<ExpertSplit>(root.expertSplit));
    sync = typeField(root.syncType, false, "sync");
    const FloatType kvType = typeField(root.kvType, true, "KV cache");
    link.send(Msg::Accept, handshakeMac(o.secret, "worker", workerHello, rootHello.data(), rootHello.size()).data(), 32, timeout);
    const SessionKeys keys = sessionKeys(o.secret, workerHello, rootHello);
    link.authenticate(keys.workerToRoot, keys.rootToWorker);
    size_t streamed = 0;
    std::unique_ptr<Shard> shard = root.sendWeights ? receiveSlices(link, h, plan, timeout, streamed) : cutShard(*own, plan);
    link.receive(Msg::Ready, payload, timeout, "waiting for the end of the start-up", 0);
    dim = h.dim;
    reduce = std::make_unique<RootLink>(link, sync, dim, timeout);
    // The KV cache is sized by the context: never more than the model's own.
    const int context = static_cast<int>(std::min<uint32_t>(root.context, static_cast<uint32_t>(h.maxSeqLen)));
    session = std::make_unique<Session>(std::move(shard), o.threads, context, kvType, *reduce, o.placement);
    log(link.peer() + ": node " + std::to_string(plan.index) + " of " + std::to_string(plan.nodes) + ", sync " + (sync == FloatType::Q80 ? "q80" : "f32") +
        (root.sendWeights ? ", " + std::to_string(streamed) + " bytes of slices received" : ", slices cut from " + own->path()));
  } catch (const std::exception& e) {
    link.sendError(e.what());
    throw;
  }
  link.send(Msg::Ready, nullptr, 0, timeout);
  link.allowPings();
  std::vector<float> x, logits;
  std::vector<uint8_t> wire;
  for (;;) {
    const Msg type = link.receiveAny(payload, o.idleLimitMs, "waiting for the root's next pass (heartbeats stopped)");
    if (type == Msg::End) return;
    if (type != Msg::Forward) throw NetError(link.peer() + ": unexpected " + msgName(type) + " between passes");
    Reader r(payload, link.peer() + ": Forward");
    const uint32_t pos = r.u32(), n = r.u32(), first = r.u32(), count = r.u32();
    // The rows must be what n says; the session checks n, pos, first and count against its context.
    if (payload.size() - 16 != static_cast<uint64_t>(n) * static_cast<uint64_t>(dim) * sizeof(float)) {
      throw NetError(link.peer() + ": a Forward of " + std::to_string(payload.size()) + " bytes does not hold " + std::to_string(n) + " rows");
    }
    x.resize(static_cast<size_t>(n) * dim);
    r.bytes(x.data(), x.size() * sizeof(float));
    r.end();
    try {
      session->evaluateSlice(x.data(), n, pos, first, count, logits);
    } catch (const std::invalid_argument& e) {
      link.sendError(e.what());
      throw;
    }
    wire.resize(encodedBytes(logitsType(sync), logits.size()));
    encodeF32(logitsType(sync), logits.data(), wire.data(), logits.size());
    link.send(Msg::Logits, wire.data(), wire.size(), timeout);
  }
}

void serveWorker(const WorkerOptions& o, const std::function<void(const std::string&)>& log) {
  std::unique_ptr<Model> own;
  if (!o.model.empty()) own = std::make_unique<Model>(o.model);
  Listener listener(o.host, o.port);
  if (o.secret.empty() && !listener.loopback()) {
    if (!o.insecure) {
      throw NetError("refusing to listen on " + o.host + " without a shared secret: any machine that reaches it could drive this worker; set "
                     "GLM_ENGINE_SECRET or --secret-file (a long random secret, the same on the root), or pass --insecure on a network you trust");
    }
    log("warning: --insecure: any root that reaches " + o.host + " may use this worker");
  }
  if (!o.secret.empty() && o.secret.size() < kShortSecretBytes) {
    log("warning: the shared secret is shorter than " + std::to_string(kShortSecretBytes) +
        " bytes; a captured handshake lets it be guessed offline (use e.g. `openssl rand -hex 32`)");
  }
  log("listening on " + o.host + ":" + std::to_string(listener.port()));
  // One root at a time, served on its own thread, so that another root is told that this worker is
  // busy instead of waiting for a timeout. A root that just ended its session gets a moment to finish.
  std::mutex mutex;
  std::condition_variable idle;
  bool busy = false;
  auto say = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(mutex);
    log(line);
  };
  std::thread session;
  for (;;) {
    Socket socket = listener.accept();
    {
      std::unique_lock<std::mutex> lock(mutex);
      if (!idle.wait_for(lock, std::chrono::seconds(2), [&] { return !busy; })) {
        lock.unlock();
        Link refused(std::move(socket));
        refused.sendError("this worker is busy serving another root");
        say(refused.peer() + ": refused, busy with another root");
        continue;
      }
      busy = true;
    }
    if (session.joinable()) session.join();
    session = std::thread([&, link = std::make_shared<Link>(std::move(socket))] {
      try {
        serveRoot(*link, own.get(), o, say);
        say(link->peer() + ": session ended; listening again");
      } catch (const std::exception& e) {
        const std::string why = e.what();
        say((why.rfind(link->peer(), 0) == 0 ? why : link->peer() + ": " + why) + "; listening again");
      }
      link->close();
      std::lock_guard<std::mutex> lock(mutex);
      busy = false;
      idle.notify_all();
    });
  }
}

}  // namespace glm
