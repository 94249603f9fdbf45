// libFuzzer target: the root's side of a tensor-parallel run (glm::Cluster) fed a worker's bytes over
// loopback TCP, the handshake and then one whole pass (Forward out; per layer two Partial in and Sum
// out; Logits in). Byte 0 picks the worker the harness plays:
//   bit 0 clear: the rest of the input goes to the root raw (hello frames, caps, the MAC check);
//   bit 0 set: an honest-key worker (bit 1: it claims the root's model file, so no weights are sent)
//     that answers the RootHello with a valid Accept, then sends the rest of the input as frames under
//     valid tags, each record {u8 type, u16 length, payload}, so that what an authenticated worker
//     sends during a pass (sizes, types, Error frames, values) is fuzzed past authentication.
// The property besides "no crash, no sanitizer report, no hang": the root refuses with NetError (its
// RemoteError included) or PlanError only. The model is GLM_FUZZ_MODEL, by default a tiny f32 fixture
// from the model loader's seed corpus (quantized ones are too small to split over two nodes).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "model.h"
#include "net/cluster.h"
#include "net/protocol.h"

namespace {

const char kSecret[] = "a fuzzing secret, 32 bytes long.";
std::unique_ptr<glm::Model> model;
const bool verbose = std::getenv("GLM_FUZZ_VERBOSE") != nullptr;  // says why the root refused (for replays)

[[noreturn]] void violated(const std::string& what) {
  std::fprintf(stderr, "property violated: %s\n", what.c_str());
  std::abort();
}

// The worker's part, on the accepted connection `fd`; returns when the root has closed it.
void playWorker(int fd, const uint8_t* data, size_t size) {
  if (!(data[0] & 1)) {
    for (size_t at = 1; at < size;) {
      const ssize_t w = ::send(fd, data + at, size - at, MSG_NOSIGNAL);
      if (w <= 0) break;
      at += static_cast<size_t>(w);
    }
  } else {
    glm::Link link(glm::Socket(::dup(fd), "fuzz worker's root"));
    try {
      glm::WorkerHello hello;
      std::memset(hello.nonce, 0x5a, sizeof hello.nonce);
      hello.hasModel = (data[0] & 2) != 0;
      if (hello.hasModel) hello.identity = model->identity();
      const glm::Writer helloBody = hello.write();
      const std::vector<uint8_t>& workerHello = helloBody.data();
      link.send(glm::Msg::WorkerHello, helloBody, 2000);
      std::vector<uint8_t> rootHello, payload;
      link.receive(glm::Msg::RootHello, rootHello, 2000, "the root's hello", glm::RootHello::kMaxBytes);
      const glm::Digest proof = glm::handshakeMac(kSecret, "worker", workerHello, rootHello.data(), rootHello.size());
      link.send(glm::Msg::Accept, proof.data(), proof.size(), 2000);
      const glm::SessionKeys keys = glm::sessionKeys(kSecret, workerHello, rootHello);
      link.authenticate(keys.workerToRoot, keys.rootToWorker);
      while (link.receiveAny(payload, 2000, "the root's weights") != glm::Msg::Ready) {
      }
      for (size_t at = 1; at + 3 <= size;) {
        const auto type = static_cast<glm::Msg>(data[at]);
        const size_t length = std::min<size_t>(data[at + 1] | (data[at + 2] << 8), size - at - 3);
        link.send(type, data + at + 3, length, 2000);
        at += 3 + length;
      }
    } catch (const glm::NetError&) {
      // the root gave up first: what it said about it is checked on its side
    }
  }
  ::shutdown(fd, SHUT_WR);
  uint8_t sink[4096];
  while (::recv(fd, sink, sizeof sink, 0) > 0) {
  }
  ::close(fd);
}

// One whole pass of one token, as Session drives it.
void runPass(glm::Cluster& cluster) {
  const glm::ModelHeader& h = model->header();
  std::vector<float> x(static_cast<size_t>(h.dim), 0.25f), logits(static_cast<size_t>(h.vocabSize));
  std::vector<float> local(static_cast<size_t>(cluster.plan(0).vocab.size()), 0.5f);
  cluster.begin(x.data(), 1, 0, 0, 1);
  for (int layer = 0; layer < h.nLayers; layer++) {
    cluster.allReduce(x.data(), 1);
    cluster.allReduce(x.data(), 1);
  }
  cluster.gather(local.data(), 1, logits.data());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::signal(SIGPIPE, SIG_IGN);
  const char* path = std::getenv("GLM_FUZZ_MODEL");
  model = std::make_unique<glm::Model>(path ? path : "fuzz/corpus/native-model-loader/glm-f32-bias-qknorm.m");
  glm::planSlices(model->header(), 2, 0, glm::ExpertSplit::Slice);  // a model two nodes cannot share would fuzz nothing past the plan
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (1u << 16)) return 0;
  // A plain listening socket: the harness keeps the raw descriptor, for shutdown and drain.
  const int listening = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (listening < 0 || ::bind(listening, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listening, 1) != 0 ||
      ::getsockname(listening, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    violated("a loopback listener");
  }
  glm::DistributedOptions options;
  options.workers = {"127.0.0.1:" + std::to_string(ntohs(address.sin_port))};
  options.secret = kSecret;
  options.timeoutMs = 2000;
  std::thread worker([&] {
    const int fd = ::accept(listening, nullptr, nullptr);
    if (fd >= 0) playWorker(fd, data, size);
  });
  try {
    glm::Cluster cluster(*model, options, 64, glm::FloatType::F32);
    runPass(cluster);
  } catch (const glm::NetError& e) {
    if (verbose) std::fprintf(stderr, "root: %s\n", e.what());
  } catch (const glm::PlanError& e) {
    if (verbose) std::fprintf(stderr, "root: %s\n", e.what());
  } catch (const std::exception& e) {
    violated(std::string("the root threw something other than NetError or PlanError: ") + e.what());
  }
  ::shutdown(listening, SHUT_RDWR);  // wakes the accept when the root never connected
  worker.join();
  ::close(listening);
  return 0;
}
