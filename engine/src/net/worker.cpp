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

void serveRoot(Link& link, const Model* own, const WorkerOptions& o, const std::function<void(const std::string&)>& log) {
  WorkerHello mine;
  randomBytes(mine.nonce, sizeof mine.nonce);
  mine.hasModel = own != nullptr;
  if (own) mine.identity = own->identity();
  link.send(Msg::WorkerHello, mine.write(), o.idleLimitMs);
  std::vector<uint8_t> payload;
  link.receive(Msg::RootHello, payload, o.idleLimitMs, "waiting for the root's hello");
  const RootHello root = RootHello::read(payload, link.peer());
  const int timeout = static_cast<int>(std::min<uint32_t>(std::max<uint32_t>(root.timeoutMs, 1), 86400000));  // 1 ms .. a day
  SlicePlan plan;
  FloatType sync = FloatType::Q80;
  int dim = 0;
  std::unique_ptr<RootLink> reduce;
  std::unique_ptr<Session> session;
  try {
    if (!sameDigest(root.mac, handshakeMac(o.secret, "root", root.nonce, mine.nonce))) {
      throw NetError("authentication failed: the root's shared secret does not match this worker's (--secret / GLM_ENGINE_SECRET)");
    }
    const ModelHeader h = parseHeader(reinterpret_cast<const uint8_t*>(root.headerPairs.data()), root.headerPairs.size(), "the root's model");
    if (own && !sameDigest(root.identity, own->identity())) throw NetError("the root's model differs from this worker's " + own->path());
    if (root.expertSplit > static_cast<uint32_t>(ExpertSplit::Place)) throw NetError("unknown expert split " + std::to_string(root.expertSplit));
    if (!root.sendWeights && !own) throw NetError("the root sends no slices, but this worker has no model file");
    plan = planSlices(h, static_cast<int>(root.nodeCount), static_cast<int>(root.nodeIndex), static_cast<ExpertSplit>(root.expertSplit));
    sync = typeField(root.syncType, false, "sync");
    const FloatType kvType = typeField(root.kvType, true, "KV cache");
    link.send(Msg::Accept, handshakeMac(o.secret, "worker", root.nonce, mine.nonce).data(), 32, timeout);
    size_t streamed = 0;
    std::unique_ptr<Shard> shard = root.sendWeights ? receiveSlices(link, h, plan, timeout, streamed) : cutShard(*own, plan);
    link.receive(Msg::Ready, payload, timeout, "waiting for the end of the start-up");
    dim = h.dim;
    reduce = std::make_unique<RootLink>(link, sync, dim, timeout);
    session = std::make_unique<Session>(std::move(shard), o.threads, static_cast<int>(root.context), kvType, *reduce, o.placement);
    log(link.peer() + ": node " + std::to_string(plan.index) + " of " + std::to_string(plan.nodes) + ", sync " + (sync == FloatType::Q80 ? "q80" : "f32") +
        (root.sendWeights ? ", " + std::to_string(streamed) + " bytes of slices received" : ", slices cut from " + own->path()));
  } catch (const std::exception& e) {
    link.sendError(e.what());
    throw;
  }
  link.send(Msg::Ready, nullptr, 0, timeout);
  const int vocabRows = plan.vocab.size();
  std::vector<float> x, logits;
  std::vector<uint8_t> wire;
  for (;;) {
    const Msg type = link.receiveAny(payload, o.idleLimitMs, "waiting for the root's next pass (heartbeats stopped)");
    if (type == Msg::End) return;
    if (type != Msg::Forward) throw NetError(link.peer() + ": unexpected " + msgName(type) + " between passes");
    Reader r(payload, link.peer() + ": Forward");
    const int pos = static_cast<int>(r.u32()), n = static_cast<int>(r.u32()), first = static_cast<int>(r.u32()), count = static_cast<int>(r.u32());
    if (n <= 0 || first < 0 || count < 0 || first + count > n || payload.size() != 16 + static_cast<size_t>(n) * dim * sizeof(float)) {
      throw NetError(link.peer() + ": malformed Forward message");
    }
    x.resize(static_cast<size_t>(n) * dim);
    r.bytes(x.data(), x.size() * sizeof(float));
    r.end();
    logits.resize(static_cast<size_t>(count) * vocabRows);
    try {
      session->evaluateSlice(x.data(), n, pos, first, count, logits.data());
    } catch (const std::invalid_argument& e) {
      link.sendError(e.what());
      throw;
    }
    wire.resize(encodedBytes(logitsType(sync), logits.size()));
    encodeF32(logitsType(sync), logits.data(), wire.data(), logits.size());
    link.send(Msg::Logits, wire.data(), wire.size(), timeout);
  }
}

}  // namespace

void serveWorker(const WorkerOptions& o, const std::function<void(const std::string&)>& log) {
  std::unique_ptr<Model> own;
  if (!o.model.empty()) own = std::make_unique<Model>(o.model);
  Listener listener(o.host, o.port);
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
