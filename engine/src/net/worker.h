// `glm-engine worker`: listens for a root, serves it until it ends the session or fails, then listens
// again. Without a model file it receives its slices from the root at every start; with one (the
// same file as the root's, checked by identity) it cuts them itself.
#pragma once
#include <functional>
#include <string>

#include "../device.h"

namespace glm {

class Link;
class Model;

struct WorkerOptions {
  std::string host = "0.0.0.0";
  int port = 9990;  // 0: any free port
  int threads = 1;
  std::string model;   // optional own copy of the model file
  std::string secret;  // empty: accept any root, and only on a loopback address unless insecure
  bool insecure = false;
  // A root not heard from (not even its heartbeat, every second) for this long is dropped.
  int idleLimitMs = 10000;
  Placement placement;  // the CPU unless a Vulkan device is given
};

// Serves one root on an accepted link: the handshake, the slices, then passes until the root ends
// the session (returns) or fails (throws). `own` is the worker's model file, or null. Apart from
// serveWorker, the fuzz harness of the handshake (fuzz/native/worker-handshake.cpp) calls it.
void serveRoot(Link& link, const Model* own, const WorkerOptions& options, const std::function<void(const std::string&)>& log);

// Never returns unless it cannot listen (NetError). `log` receives one line per event.
void serveWorker(const WorkerOptions& options, const std::function<void(const std::string&)>& log);

}  // namespace glm
