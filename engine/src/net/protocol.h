// The root <-> worker protocol. Every message is a frame: an 8-byte header {u16 magic "GL", u8
// protocol version, u8 type, u32 payload length} and the payload, little-endian. A frame of another
// version or magic, or an Error frame, ends the connection with an exception carrying the reason.
//
// Start-up:  worker -> WorkerHello {version, nonce, has model, model identity}
//            root   -> RootHello   {mac, nonce, node index/count, expert split, sync type, KV type,
//                                   context, timeout, model identity, header pairs, send weights}
//            worker -> Accept      {mac}            (or Error: version, secret, model, plan)
//            root   -> Weights*    (the node's slices in file order, when the worker has no model)
//            root   -> Ready;  worker -> Ready
// Each pass: root   -> Forward {pos, n, first, count} + the n input rows (f32)
//            per layer, twice: worker -> Partial; root -> Sum  (n x dim in the sync type)
//            worker -> Logits (its vocabulary rows of the `count` tokens from `first`, see logitsType)
// Idle:      root   -> Ping every second; End when the session closes.
// The macs are HMAC-SHA-256 over both nonces with the shared secret (empty when none), so the secret
// never travels and neither side can replay an old handshake.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../quant.h"
#include "crypto.h"
#include "socket.h"

namespace glm {

constexpr uint8_t kProtocolVersion = 1;
// The version this process speaks: kProtocolVersion, or GLM_ENGINE_PROTOCOL_VERSION (for tests of
// the mismatch error).
uint8_t protocolVersion();

enum class Msg : uint8_t { WorkerHello = 1, RootHello, Accept, Weights, Ready, Forward, Partial, Sum, Logits, Ping, End, Error };
const char* msgName(Msg m);

constexpr size_t kFrameHeaderBytes = 8;

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

  void send(Msg type, const void* payload, size_t bytes, int timeoutMs);
  void send(Msg type, const Writer& w, int timeoutMs) { send(type, w.data().data(), w.data().size(), timeoutMs); }
  // Sends a Ping unless another frame went out in the last heartbeat interval or a send is under way;
  // a failure is left for the next pass to report.
  void heartbeat();
  void sendError(const std::string& message);
  // Receives the next frame other than Ping and returns its type; throws RemoteError for an Error frame.
  Msg receiveAny(std::vector<uint8_t>& payload, int timeoutMs, const char* what);
  // The same for a frame that must be `type`; throws NetError for anything else.
  void receive(Msg type, std::vector<uint8_t>& payload, int timeoutMs, const char* what);
  // The same for a frame whose payload is exactly `bytes` long, read straight into `out`.
  void receiveExact(Msg type, void* out, size_t bytes, int timeoutMs, const char* what);

  // Bytes of all frames but Ping, headers included.
  uint64_t sent() const { return sent_; }
  uint64_t received() const { return received_; }

 private:
  // Reads frame headers up to the next frame other than Ping; returns its type and payload length.
  std::pair<Msg, uint32_t> header(int timeoutMs, const char* what);
  void expect(Msg type, Msg got, const char* what) const;
  Socket socket_;
  std::mutex sending_;
  int64_t lastSendMs_ = 0;
  std::atomic<uint64_t> sent_{0}, received_{0};  // read by the thread that reports traffic
};

struct WorkerHello {
  uint8_t nonce[32];
  bool hasModel = false;
  Digest identity{};  // of the worker's own model file, when it has one
  Writer write() const;
  static WorkerHello read(const std::vector<uint8_t>& payload, const std::string& peer);
};

struct RootHello {
  Digest mac{};
  uint8_t nonce[32];
  uint32_t nodeIndex = 0, nodeCount = 1, expertSplit = 0, syncType = 0, kvType = 0, context = 0, timeoutMs = 0;
  bool sendWeights = true;
  Digest identity{};
  std::string headerPairs;  // the model's header key/value bytes
  Writer write() const;
  static RootHello read(const std::vector<uint8_t>& payload, const std::string& peer);
};

// What each side proves in the handshake.
Digest handshakeMac(const std::string& secret, const char* role, const uint8_t* rootNonce, const uint8_t* workerNonce);

}  // namespace glm
