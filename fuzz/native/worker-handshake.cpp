// libFuzzer target: the worker's side of the handshake (glm::serveRoot, no model file of its own) fed a
// root's bytes over a socketpair. Byte 0, bit 0 set: the harness plays an honest-key root, reads the
// WorkerHello and sends the rest of the input (at most 64 KiB + 100 bytes) as a RootHello body under a
// valid MAC, so that the header pairs, plan, types and context the root claims are fuzzed past
// authentication; bit 0 clear: the input goes to the worker raw (frames, caps, the MAC check). The
// property besides "no crash, no sanitizer report, no hang": the worker refuses with NetError,
// ModelError or PlanError only.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "model.h"
#include "net/protocol.h"
#include "net/slice.h"
#include "net/worker.h"

namespace {

const char kSecret[] = "a fuzzing secret, 32 bytes long.";

[[noreturn]] void violated(const std::string& what) {
  std::fprintf(stderr, "property violated: %s\n", what.c_str());
  std::abort();
}

void sendAll(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

bool recvAll(int fd, void* data, size_t n) {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > glm::RootHello::kMaxBytes) return 0;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) violated("socketpair");
  glm::WorkerOptions options;
  options.secret = kSecret;
  options.idleLimitMs = 2000;
  std::thread worker([&, fd = fds[0]] {
    glm::Link link(glm::Socket(fd, "fuzz root"));
    try {
      glm::serveRoot(link, nullptr, options, [](const std::string&) {});
    } catch (const glm::NetError&) {
    } catch (const glm::ModelError&) {
    } catch (const glm::PlanError&) {
    } catch (const std::exception& e) {
      violated(std::string("the worker threw something other than NetError, ModelError or PlanError: ") + e.what());
    }
  });
  const int root = fds[1];
  if (data[0] & 1) {
    uint8_t head[glm::kFrameHeaderBytes];
    std::vector<uint8_t> hello(glm::WorkerHello::kBytes);
    if (recvAll(root, head, sizeof head) && recvAll(root, hello.data(), hello.size())) {
      const glm::Digest mac = glm::handshakeMac(kSecret, "root", hello, data + 1, size - 1);
      std::vector<uint8_t> frame(glm::kFrameHeaderBytes);
      const uint16_t magic = 0x4C47;
      const uint32_t length = static_cast<uint32_t>(mac.size() + size - 1);
      std::memcpy(frame.data(), &magic, 2);
      frame[2] = glm::kProtocolVersion;
      frame[3] = static_cast<uint8_t>(glm::Msg::RootHello);
      std::memcpy(frame.data() + 4, &length, 4);
      frame.insert(frame.end(), mac.begin(), mac.end());
      frame.insert(frame.end(), data + 1, data + size);
      sendAll(root, frame.data(), frame.size());
    }
  } else {
    sendAll(root, data + 1, size - 1);
  }
  ::shutdown(root, SHUT_WR);
  uint8_t sink[4096];
  while (::recv(root, sink, sizeof sink, 0) > 0) {
  }
  worker.join();
  ::close(root);
  return 0;
}
