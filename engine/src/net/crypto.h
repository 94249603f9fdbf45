// SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104): the model fingerprint, the handshake's proof of
// the shared secret and the session's frame tags. Written here so that the engine keeps needing nothing beyond a C++ toolchain
// (`npm install` builds it; glm-engine is cross-compiled statically); checked against Node's crypto.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace glm {

using Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t bytes);
  Digest finish();

 private:
  void block(const uint8_t* p);
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

// HMAC-SHA-256 fed in pieces (a frame's header, payload and sequence number without copying them).
class HmacSha256 {
 public:
  HmacSha256(const void* key, size_t keyBytes);
  void update(const void* data, size_t bytes) { inner_.update(data, bytes); }
  Digest finish();

 private:
  uint8_t block_[64] = {};
  Sha256 inner_;
};

Digest hmacSha256(const std::string& key, const void* data, size_t bytes);
// Compares in time independent of where the digests differ.
bool sameDigest(const Digest& a, const Digest& b);
// Bytes from the system's random source (/dev/urandom).
void randomBytes(uint8_t* out, size_t n);
std::string hex(const uint8_t* bytes, size_t n);

}  // namespace glm
