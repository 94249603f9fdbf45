// SHA-256 and HMAC-SHA-256 from OpenSSL: the model fingerprint and the handshake's proof of the shared
// secret. The addon takes OpenSSL from the Node process; glm-engine links libcrypto.
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
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t bytes);
  Digest finish();

 private:
  void* ctx_;
};

Digest hmacSha256(const std::string& key, const void* data, size_t bytes);
// Compares in time independent of where the digests differ.
bool sameDigest(const Digest& a, const Digest& b);
// Bytes from the system's random source.
void randomBytes(uint8_t* out, size_t n);
std::string hex(const uint8_t* bytes, size_t n);

}  // namespace glm
