// Prefill and decode speed of a model, measured the same way for the CLI, the addon and glm-engine.
#pragma once
#include <cstddef>
#include <optional>
#include <vector>

#include "device.h"
#include "model.h"
#include "net/cluster.h"

namespace glm {

// Lengths left unset take the defaults, 512 prompt + 128 generated tokens, or where the model's context
// is shorter a quarter of it generated and the rest prompt, so the same command runs on any model.
struct BenchOptions {
  std::optional<int> promptTokens;
  std::optional<int> genTokens;
  int threads = 1;
  int repeat = 3;
  FloatType kvType = FloatType::F32;
  DistributedOptions distributed;
  Placement placement;  // the CPU unless a Vulkan device is given
};

// Bytes per token each node sent and received (node 0 is the root), measured over every repeat.
struct TokenTraffic {
  double sent = 0, received = 0;
};

struct BenchResult {
  int promptTokens = 0, genTokens = 0;  // the lengths measured
  int contextLength = 0;                 // the session's context
  bool fittedToContext = false;          // a default length was shortened to fit it
  std::vector<double> prefillTps;  // one per repeat
  std::vector<double> decodeTps;
  size_t peakRssBytes = 0;
  int threads = 0;
  std::vector<TokenTraffic> prefillTraffic, decodeTraffic;  // empty on one node
};

// Runs `repeat` times: one prefill of promptTokens (deterministic pseudo-random ids), then genTokens
// greedy single-token decodes. Throws std::invalid_argument when the context is too small.
BenchResult runBench(const Model& model, const BenchOptions& options);

double median(std::vector<double> values);
// Peak resident memory of this process (VmHWM on Linux, 0 where unknown).
size_t peakRssBytes();

}  // namespace glm
