// libFuzzer target: the protocol's frame decoder (glm::Link) on a peer's arbitrary byte stream, over a
// socketpair, before authentication. Byte 0 of the input chooses whether Pings are allowed and where
// the stream is split; the rest is the stream. Properties besides "no crash, no sanitizer report":
// - every refusal is a NetError (RemoteError for an Error frame), never another exception;
// - while a frame is received, no single allocation exceeds the frame's stated length nor the 1 MiB
//   read step (plus a small allowance for error messages);
// - the stream split at the chosen byte, the second part sent only once the decoder has consumed the
//   first, decodes to exactly the same frames and outcome as the stream sent whole.
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "net/protocol.h"

namespace {

std::atomic<bool> tracking{false};
std::atomic<size_t> largest{0};

[[noreturn]] void violated(const std::string& what) {
  std::fprintf(stderr, "property violated: %s\n", what.c_str());
  std::abort();
}

constexpr size_t kAllowance = 4096;  // exception messages, the peer's name
constexpr size_t kReadStep = 1u << 20;

struct Outcome {
  std::vector<std::pair<int, std::vector<uint8_t>>> frames;
  std::string error;
  bool operator==(const Outcome& o) const { return frames == o.frames && error == o.error; }
};

// The stated length of the frame each receiveAny reads, walking the stream as the decoder should.
std::vector<uint32_t> statedLengths(const uint8_t* s, size_t n, bool pings) {
  std::vector<uint32_t> out;
  size_t at = 0;
  while (n - at >= glm::kFrameHeaderBytes) {
    uint32_t length;
    std::memcpy(&length, s + at + 4, 4);
    if (pings && s[at + 3] == static_cast<uint8_t>(glm::Msg::Ping) && length == 0) {
      at += 8;
      continue;
    }
    out.push_back(length);
    if (length > n - at - 8) break;
    at += 8 + length;
  }
  out.push_back(0);
  return out;
}

Outcome decode(const uint8_t* stream, size_t n, bool pings, size_t split) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) violated("socketpair");
  const int reader = fds[0];
  std::atomic<bool> finished{false};  // the decoder stopped (an error): nothing more will be read
  std::thread writer([&, fd = fds[1]] {
    auto put = [&](const uint8_t* p, size_t bytes) {
      while (bytes > 0) {
        const ssize_t w = ::send(fd, p, bytes, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        bytes -= static_cast<size_t>(w);
      }
    };
    put(stream, split);
    // The rest only once the decoder has read the first part, so that it sees the frame cut there.
    for (int queued = 1; queued > 0 && !finished;) {
      if (ioctl(reader, FIONREAD, &queued) != 0) break;
      if (queued > 0) usleep(5);
    }
    put(stream + split, n - split);
    ::close(fd);
  });
  glm::Link link(glm::Socket(reader, "fuzz peer"));
  if (pings) link.allowPings();
  const std::vector<uint32_t> stated = statedLengths(stream, n, pings);
  Outcome out;
  std::vector<uint8_t> payload;
  for (size_t i = 0;; i++) {
    largest = 0;
    tracking = true;
    try {
      const glm::Msg type = link.receiveAny(payload, 2000, "fuzzing");
      tracking = false;
      out.frames.emplace_back(static_cast<int>(type), payload);
    } catch (const glm::NetError& e) {
      tracking = false;
      out.error = e.what();
    } catch (const std::exception& e) {
      violated(std::string("a non-NetError exception: ") + e.what());
    }
    const size_t cap = std::min<size_t>(i < stated.size() ? stated[i] : 0, kReadStep) + kAllowance;
    if (largest > cap) violated("an allocation of " + std::to_string(largest) + " bytes while receiving a frame (cap " + std::to_string(cap) + ")");
    if (!out.error.empty()) break;
  }
  finished = true;
  writer.join();
  return out;
}

}  // namespace

void* operator new(size_t n) {
  if (tracking && n > largest) largest = n;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

// The replaced operators allocate with malloc, which ASan would otherwise report as a mismatch with
// the runtime's own new/delete pairs.
extern "C" const char* __asan_default_options() { return "alloc_dealloc_mismatch=0"; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const bool pings = data[0] & 1;
  const uint8_t* stream = data + 3;
  const size_t n = size - 3;
  const size_t split = n ? (data[1] | data[2] << 8) % (n + 1) : 0;
  const Outcome whole = decode(stream, n, pings, n);
  const Outcome cut = decode(stream, n, pings, split);
  if (!(whole == cut)) violated("the stream split at byte " + std::to_string(split) + " decodes differently: " + whole.error + " / " + cut.error);
  return 0;
}
