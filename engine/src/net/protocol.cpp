#include "protocol.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace glm {

namespace {
constexpr uint16_t kMagic = 0x4C47;  // "GL"
// Frames up to this size go out in one call (header, payload and tag), so that TCP_NODELAY sends the
// small per-layer frames as one segment.
constexpr size_t kCoalesceBytes = 64u << 10;
// A received payload grows by at most this much before its bytes are there.
constexpr size_t kReadStep = 1u << 20;

void sequenceBytes(uint64_t sequence, uint8_t out[8]) {
  for (int i = 0; i < 8; i++) out[i] = static_cast<uint8_t>(sequence >> (8 * i));
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

uint8_t protocolVersion() {
  const char* forced = std::getenv("GLM_ENGINE_PROTOCOL_VERSION");
  return forced ? static_cast<uint8_t>(std::atoi(forced)) : kProtocolVersion;
}

const char* msgName(Msg m) {
  static const char* names[] = {"?", "WorkerHello", "RootHello", "Accept", "Weights", "Ready", "Forward", "Partial", "Sum", "Logits", "Ping", "End", "Error"};
  const auto i = static_cast<size_t>(m);
  return i < sizeof names / sizeof *names ? names[i] : "unknown";
}

Writer& Writer::u32(uint32_t v) { return bytes(&v, 4); }
Writer& Writer::bytes(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  data_.insert(data_.end(), p, p + n);
  return *this;
}
Writer& Writer::str(const std::string& s) { return u32(static_cast<uint32_t>(s.size())).bytes(s.data(), s.size()); }

void Reader::bytes(void* out, size_t n) {
  if (n > data_.size() - at_) throw NetError(what_ + " is truncated");
  std::memcpy(out, data_.data() + at_, n);
  at_ += n;
}
uint32_t Reader::u32() {
  uint32_t v;
  bytes(&v, 4);
  return v;
}
std::string Reader::str() {
  const uint32_t n = u32();
  if (n > data_.size() - at_) throw NetError(what_ + " is truncated");
  std::string s(reinterpret_cast<const char*>(data_.data() + at_), n);
  at_ += n;
  return s;
}
void Reader::end() {
  if (at_ != data_.size()) throw NetError(what_ + " has " + std::to_string(data_.size() - at_) + " unexpected trailing bytes");
}

void Link::authenticate(const Digest& sendKey, const Digest& receiveKey) {
  std::lock_guard<std::mutex> lock(sending_);
  sendKey_ = sendKey;
  receiveKey_ = receiveKey;
  sendSequence_ = receiveSequence_ = 0;
  authenticated_ = true;
}

void Link::send(Msg type, const void* payload, size_t bytes, int timeoutMs) {
  if (bytes > kMaxPayload) throw NetError(peer() + ": a " + msgName(type) + " message of " + std::to_string(bytes) + " bytes is too large");
  uint8_t head[kFrameHeaderBytes];
  const uint16_t magic = kMagic;
  const uint32_t length = static_cast<uint32_t>(bytes);
  std::memcpy(head, &magic, 2);
  head[2] = protocolVersion();
  head[3] = static_cast<uint8_t>(type);
  std::memcpy(head + 4, &length, 4);
  std::lock_guard<std::mutex> lock(sending_);
  Digest tag{};
  if (authenticated_) {
    uint8_t sequence[8];
    sequenceBytes(sendSequence_++, sequence);
    HmacSha256 mac(sendKey_.data(), sendKey_.size());
    mac.update(sequence, sizeof sequence);
    mac.update(head, sizeof head);
    mac.update(payload, bytes);
    tag = mac.finish();
  }
  const size_t tagBytes = authenticated_ ? kTagBytes : 0;
  const std::string what = std::string("sending ") + msgName(type);
  if (bytes <= kCoalesceBytes) {
    const uint8_t* p = static_cast<const uint8_t*>(payload);
    outgoing_.assign(head, head + sizeof head);
    outgoing_.insert(outgoing_.end(), p, p + bytes);
    outgoing_.insert(outgoing_.end(), tag.data(), tag.data() + tagBytes);
    socket_.sendAll(outgoing_.data(), outgoing_.size(), timeoutMs, what.c_str());
  } else {
    socket_.sendAll(head, sizeof head, timeoutMs, what.c_str());
    socket_.sendAll(payload, bytes, timeoutMs, what.c_str());
    if (tagBytes) socket_.sendAll(tag.data(), tagBytes, timeoutMs, what.c_str());
  }
  lastSendMs_ = nowMs();
  if (type != Msg::Ping) sent_ += sizeof head + bytes + tagBytes;
}

void Link::heartbeat() {
  std::unique_lock<std::mutex> lock(sending_, std::try_to_lock);
  if (!lock.owns_lock() || !socket_.open() || nowMs() - lastSendMs_ < kHeartbeatMs) return;
  lock.unlock();
  try {
    send(Msg::Ping, nullptr, 0, kHeartbeatMs);
  } catch (const NetError&) {
    // the next pass reports the lost worker
  }
}

void Link::sendError(const std::string& message) {
  try {
    send(Msg::Error, message.data(), std::min<size_t>(message.size(), kMaxErrorBytes), kHeartbeatMs);
  } catch (const NetError&) {
    // the peer is gone already; nothing more to tell it
  }
}

std::pair<Msg, uint32_t> Link::header(int timeoutMs, const char* what) {
  for (;;) {
    uint8_t head[kFrameHeaderBytes];
    socket_.recvAll(head, sizeof head, timeoutMs, what);
    uint16_t magic;
    uint32_t length;
    std::memcpy(&magic, head, 2);
    std::memcpy(&length, head + 4, 4);
    if (magic != kMagic) throw NetError(peer() + ": not a glm-engine peer (bad frame magic) while " + what);
    const Msg got = static_cast<Msg>(head[3]);
    if (head[2] != protocolVersion()) {
      throw NetError(peer() + " speaks protocol version " + std::to_string(head[2]) + " but this process speaks version " +
                     std::to_string(protocolVersion()) + "; run the same glm-engine release on every node");
    }
    if (length > kMaxPayload) throw NetError(peer() + ": frame of " + std::to_string(length) + " bytes is too large");
    if (authenticated_) {
      uint8_t sequence[8];
      sequenceBytes(receiveSequence_++, sequence);
      receiving_ = std::make_unique<HmacSha256>(receiveKey_.data(), receiveKey_.size());
      receiving_->update(sequence, sizeof sequence);
      receiving_->update(head, sizeof head);
    }
    if (got == Msg::Ping) {
      if (!pingsAllowed_) throw NetError(peer() + ": a Ping before the handshake ended while " + what);
      if (length != 0) throw NetError(peer() + ": a Ping with a payload while " + what);
      endFrame(timeoutMs, what);
      continue;
    }
    received_ += sizeof head + length + (authenticated_ ? kTagBytes : 0);
    if (got == Msg::Error) {
      if (length > kMaxErrorBytes) throw NetError(peer() + ": an Error message of " + std::to_string(length) + " bytes (at most " + std::to_string(kMaxErrorBytes) + ")");
      std::string message(length, '\0');
      readBody(message.data(), length, timeoutMs, what);
      endFrame(timeoutMs, what);
      throw RemoteError(peer() + ": " + message);
    }
    return {got, length};
  }
}

void Link::readBody(void* out, size_t bytes, int timeoutMs, const char* what) {
  if (!bytes) return;
  socket_.recvAll(out, bytes, timeoutMs, what);
  if (authenticated_) receiving_->update(out, bytes);
}

void Link::readPayload(std::vector<uint8_t>& payload, uint32_t length, int timeoutMs, const char* what) {
  payload.clear();
  while (payload.size() < length) {
    const size_t at = payload.size(), step = std::min<size_t>(kReadStep, length - at);
    payload.resize(at + step);
    readBody(payload.data() + at, step, timeoutMs, what);
  }
  endFrame(timeoutMs, what);
}

void Link::endFrame(int timeoutMs, const char* what) {
  if (!authenticated_) return;
  uint8_t tag[kTagBytes];
  socket_.recvAll(tag, sizeof tag, timeoutMs, what);
  const Digest expected = receiving_->finish();
  uint8_t diff = 0;
  for (size_t i = 0; i < kTagBytes; i++) diff |= tag[i] ^ expected[i];
  if (diff != 0) throw NetError(peer() + ": a frame failed authentication (altered, injected or out of order) while " + what);
}

void Link::expect(Msg type, Msg got, const char* what) const {
  if (got != type) throw NetError(peer() + ": expected " + msgName(type) + " but got " + msgName(got) + " while " + what);
}

Msg Link::receiveAny(std::vector<uint8_t>& payload, int timeoutMs, const char* what) {
  const auto [type, length] = header(timeoutMs, what);
  readPayload(payload, length, timeoutMs, what);
  return type;
}

void Link::receive(Msg type, std::vector<uint8_t>& payload, int timeoutMs, const char* what, uint32_t maxBytes) {
  const auto [got, length] = header(timeoutMs, what);
  expect(type, got, what);
  if (length > maxBytes) {
    throw NetError(peer() + ": a " + msgName(type) + " of " + std::to_string(length) + " bytes (at most " + std::to_string(maxBytes) + ") while " + what);
  }
  readPayload(payload, length, timeoutMs, what);
}

void Link::receiveExact(Msg type, void* out, size_t bytes, int timeoutMs, const char* what) {
  const auto [got, length] = header(timeoutMs, what);
  expect(type, got, what);
  if (length != bytes) {
    throw NetError(peer() + ": " + msgName(type) + " of " + std::to_string(length) + " bytes, expected " + std::to_string(bytes) + " while " + what);
  }
  readBody(out, bytes, timeoutMs, what);
  endFrame(timeoutMs, what);
}

Writer WorkerHello::write() const {
  Writer w;
  w.bytes(nonce, 32).u32(hasModel).bytes(identity.data(), 32);
  return w;
}

WorkerHello WorkerHello::read(const std::vector<uint8_t>& payload, const std::string& peer) {
  Reader r(payload, peer + ": WorkerHello");
  WorkerHello h;
  r.bytes(h.nonce, 32);
  h.hasModel = r.u32() != 0;
  r.bytes(h.identity.data(), 32);
  r.end();
  return h;
}

Writer RootHello::body() const {
  Writer w;
  w.bytes(nonce, 32);
  for (uint32_t v : {nodeIndex, nodeCount, expertSplit, syncType, kvType, context, timeoutMs, static_cast<uint32_t>(sendWeights)}) w.u32(v);
  w.bytes(identity.data(), 32).str(headerPairs);
  return w;
}

RootHello RootHello::read(const std::vector<uint8_t>& payload, const std::string& peer) {
  Reader r(payload, peer + ": RootHello");
  RootHello h;
  r.bytes(h.mac.data(), 32);
  r.bytes(h.nonce, 32);
  for (uint32_t* v : {&h.nodeIndex, &h.nodeCount, &h.expertSplit, &h.syncType, &h.kvType, &h.context, &h.timeoutMs}) *v = r.u32();
  h.sendWeights = r.u32() != 0;
  r.bytes(h.identity.data(), 32);
  h.headerPairs = r.str();
  r.end();
  return h;
}

Digest handshakeMac(const std::string& secret, const char* role, const std::vector<uint8_t>& workerHello, const uint8_t* rootHello, size_t rootHelloBytes) {
  HmacSha256 mac(secret.data(), secret.size());
  mac.update(role, std::strlen(role));
  mac.update(workerHello.data(), workerHello.size());
  mac.update(rootHello, rootHelloBytes);
  return mac.finish();
}

SessionKeys sessionKeys(const std::string& secret, const std::vector<uint8_t>& workerHello, const std::vector<uint8_t>& rootHello) {
  const Digest session = handshakeMac(secret, "session", workerHello, rootHello.data(), rootHello.size());
  const std::string key(session.begin(), session.end());
  const char toWorker[] = "root->worker", toRoot[] = "worker->root";
  return {hmacSha256(key, toWorker, sizeof toWorker - 1), hmacSha256(key, toRoot, sizeof toRoot - 1)};
}

}  // namespace glm
