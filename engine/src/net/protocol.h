// The root <-> worker protocol. Every message is a frame: an 8-byte header {u16 magic "GL", u8
// protocol version, u8 type, u32 payload length} and the payload, little-endian; after the handshake
// a 16-byte tag follows each payload (below). A frame of another version or magic, or an Error frame,
// ends the connection with an exception carrying the reason.
//
// Start-up:  worker -> WorkerHello {nonce, has model, model identity}
//            root   -> RootHello   {mac, nonce, node index/count, expert split, sync type, KV type,
//                                   context, timeout, model identity, header pairs, send weights}
//            worker -> Accept      {mac}            (or Error: version, secret, model, plan)
//            root   -> Weights*    (the node's slices in file order, when the worker has no model)
//            root   -> Ready;  worker -> Ready
// Each pass: root   -> Forward {pos, n, first, count} + the n input rows (f32)
//            per layer, twice: worker -> Partial; root -> Sum  (n x dim in the sync type)
//            worker -> Logits (its vocabulary rows of the `count` tokens from `first`, see logitsType)
// Idle:      root   -> Ping every second; End when the session closes.
//
// Authentication (docs/distributed.md): the root's mac is HMAC-SHA-256 under the shared secret of
// "root", the WorkerHello payload and the rest of the RootHello; the worker's of "worker", the
// WorkerHello and the whole RootHello. So each side proves the secret over the whole transcript,
// with both fresh nonces in it, and every RootHello field is checked before the worker uses it. Both
// then derive a session key from the secret and that transcript, and every later frame in either
// direction carries HMAC-SHA-256(direction key, sequence number | frame header | payload) cut to 16
// bytes: a frame that is altered, injected, replayed, reordered or reflected ends the session.
// Nothing is encrypted. Before the root's mac is checked the worker accepts only frames of the sizes
// a handshake needs, no Pings, and gives the whole handshake kHandshakeMs.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../model-limits.h"
#include "../quant.h"
#include "crypto.h"
#include "socket.h"

namespace glm {

constexpr uint8_t kProtocolVersion = 2;
// The version this process speaks: kProtocolVersion, or GLM_ENGINE_PROTOCOL_VERSION (for tests of
// the mismatch error).
uint8_t protocolVersion();

enum class Msg : uint8_t { WorkerHello = 1, RootHello, Accept, Weights, Ready, Forward, Partial, Sum, Logits, Ping, End, Error };
const char* msgName(Msg m);

constexpr size_t kFrameHeaderBytes = 8;
constexpr size_t kTagBytes = 16;
// The largest payload of any frame, and of an Error frame in every phase.
constexpr uint32_t kMaxPayload = 1u << 30;
constexpr uint32_t kMaxErrorBytes = 4096;
// From a worker's accept to the root's verified proof of the secret.
constexpr int kHandshakeMs = 10000;

// How the workers' logits travel: f16 with q80 sync (half the bytes, well inside the error q80 sums
// already bring), f32 with f32 sync (exact).
inline FloatType logitsType(FloatType sync) { return sync == FloatType::Q80 ? FloatType::F16 : FloatType::F32; }
constexpr int kHeartbeatMs = 1000;

// A worker's error sent to the root, or the root's to a worker.
class RemoteError : public NetError {
 public:
  using NetError::NetError;
};

// Little-endian payload building and checked parsing.
class Writer {
 public:
  Writer& u32(uint32_t v);
  Writer& bytes(const void* data, size_t n);
  Writer& str(const std::string& s);
  const std::vector<uint8_t>& data() const { return data_; }

 private:
  std::vector<uint8_t> data_;
};

class Reader {
 public:
  Reader(const std::vector<uint8_t>& data, std::string what) : data_(data), what_(std::move(what)) {}
  uint32_t u32();
  void bytes(void* out, size_t n);
  std::string str();
  void end();

 private:
  const std::vector<uint8_t>& data_;
  size_t at_ = 0;
  std::string what_;
};

// One framed connection. Sends are serialized by a mutex (the root's heartbeat thread shares it).
class Link {
 public:
  explicit Link(Socket socket) : socket_(std::move(socket)) {}
  const std::string& peer() const { return socket_.peer(); }
  void close() {
    std::lock_guard<std::mutex> lock(sending_);
    socket_.close();
  }

  // From now on every receive must finish by `ms` from now (0: no such deadline).
  void setDeadline(int ms) { socket_.setDeadline(ms); }
  // Pings are refused until the handshake is over.
  void allowPings() { pingsAllowed_ = true; }
  // Tags every later frame sent with sendKey and requires a valid tag under receiveKey on every later
  // frame received (sequence numbers from 0 in each direction).
  void authenticate(const Digest& sendKey, const Digest& receiveKey);

  void send(Msg type, const void* payload, size_t bytes, int timeoutMs);
  void send(Msg type, const Writer& w, int timeoutMs) { send(type, w.data().data(), w.data().size(), timeoutMs); }
  // Sends a Ping unless another frame went out in the last heartbeat interval or a send is under way;
  // a failure is left for the next pass to report.
  void heartbeat();
  void sendError(const std::string& message);
  // Receives the next frame other than Ping and returns its type; throws RemoteError for an Error frame.
  Msg receiveAny(std::vector<uint8_t>& payload, int timeoutMs, const char* what);
  // The same for a frame that must be `type` and at most maxBytes long; throws NetError for anything
  // else before reading its payload.
  void receive(Msg type, std::vector<uint8_t>& payload, int timeoutMs, const char* what, uint32_t maxBytes = kMaxPayload);
  // The same for a frame whose payload is exactly `bytes` long, read straight into `out`.
  void receiveExact(Msg type, void* out, size_t bytes, int timeoutMs, const char* what);

  // Bytes of all frames but Ping, headers included.
  uint64_t sent() const { return sent_; }
  uint64_t received() const { return received_; }

 private:
  // Reads frame headers up to the next frame other than Ping; returns its type and payload length.
  std::pair<Msg, uint32_t> header(int timeoutMs, const char* what);
  void expect(Msg type, Msg got, const char* what) const;
  // A received frame's payload (in bounded steps, so that a declared length costs memory only as
  // its bytes arrive) and its tag.
  void readPayload(std::vector<uint8_t>& payload, uint32_t length, int timeoutMs, const char* what);
  void readBody(void* out, size_t bytes, int timeoutMs, const char* what);
  void endFrame(int timeoutMs, const char* what);
  Socket socket_;
  std::mutex sending_;
  int64_t lastSendMs_ = 0;
  bool pingsAllowed_ = false;
  bool authenticated_ = false;
  Digest sendKey_{}, receiveKey_{};
  uint64_t sendSequence_ = 0, receiveSequence_ = 0;
  std::unique_ptr<HmacSha256> receiving_;  // the tag of the frame being received
  std::vector<uint8_t> outgoing_;          // a small frame, header to tag, sent in one call
  std::atomic<uint64_t> sent_{0}, received_{0};  // read by the thread that reports traffic
};

struct WorkerHello {
  static constexpr uint32_t kBytes = 68;
  uint8_t nonce[32];
  bool hasModel = false;
  Digest identity{};  // of the worker's own model file, when it has one
  Writer write() const;
  static WorkerHello read(const std::vector<uint8_t>& payload, const std::string& peer);
};

struct RootHello {
  static constexpr uint32_t kMaxBytes = 132 + kMaxHeaderBytes;
  Digest mac{};
  uint8_t nonce[32];
  uint32_t nodeIndex = 0, nodeCount = 1, expertSplit = 0, syncType = 0, kvType = 0, context = 0, timeoutMs = 0;
  bool sendWeights = true;
  Digest identity{};
  std::string headerPairs;  // the model's header key/value bytes
  // The payload after the mac, which the mac covers.
  Writer body() const;
  static RootHello read(const std::vector<uint8_t>& payload, const std::string& peer);
};

// What each side proves in the handshake: the root over the WorkerHello payload and the RootHello
// body, the worker over the WorkerHello and the whole RootHello payload.
Digest handshakeMac(const std::string& secret, const char* role, const std::vector<uint8_t>& workerHello, const uint8_t* rootHello, size_t rootHelloBytes);

// The session's frame keys, from the secret and the whole handshake (WorkerHello and RootHello payloads).
struct SessionKeys {
  Digest rootToWorker, workerToRoot;
};
SessionKeys sessionKeys(const std::string& secret, const std::vector<uint8_t>& workerHello, const std::vector<uint8_t>& rootHello);

}  // namespace glm
