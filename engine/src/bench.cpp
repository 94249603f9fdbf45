#include "bench.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "session.h"

namespace glm {

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2.0;
}

size_t peakRssBytes() {
  FILE* status = std::fopen("/proc/self/status", "r");
  if (!status) return 0;
  char line[256];
  size_t kib = 0;
  while (std::fgets(line, sizeof line, status)) {
    if (std::strncmp(line, "VmHWM:", 6) == 0) kib = std::strtoull(line + 6, nullptr, 10);
  }
  std::fclose(status);
  return kib * 1024;
}

BenchResult runBench(const Model& model, const BenchOptions& o) {
  const int context = o.promptTokens + o.genTokens;
  if (o.promptTokens <= 0 || o.genTokens < 0 || o.repeat <= 0) throw std::invalid_argument("bench: prompt tokens and repeat must be positive");
  Session session(model, o.threads, context, o.kvType, o.distributed, o.placement);
  if (session.maxSeqLen() < context) {
    throw std::invalid_argument("bench: " + std::to_string(context) + " tokens exceed the model's context of " + std::to_string(session.maxSeqLen()));
  }
  const int vocab = model.header().vocabSize;
  std::vector<int32_t> prompt(o.promptTokens);
  uint32_t state = 12345;
  for (auto& t : prompt) {
    state = state * 1664525u + 1013904223u;
    t = static_cast<int32_t>((state >> 8) % static_cast<uint32_t>(vocab));
  }
  std::vector<float> logits(vocab);
  BenchResult result;
  result.threads = session.threads();
  using Clock = std::chrono::steady_clock;
  const Cluster* cluster = session.cluster();
  std::vector<NodeTraffic> before;
  // Adds the bytes moved since `before` to `into`, per token.
  auto account = [&](std::vector<TokenTraffic>& into, int tokens) {
    if (!cluster) return;
    const std::vector<NodeTraffic> now = cluster->traffic();
    into.resize(now.size());
    for (size_t k = 0; k < now.size(); k++) {
      into[k].sent += static_cast<double>(now[k].sent - before[k].sent) / tokens / o.repeat;
      into[k].received += static_cast<double>(now[k].received - before[k].received) / tokens / o.repeat;
    }
    before = now;
  };
  for (int r = 0; r < o.repeat; r++) {
    session.reset();
    if (cluster) before = cluster->traffic();
    const auto start = Clock::now();
    session.evaluate(prompt.data(), o.promptTokens, logits.data(), false);
    const double prefill = std::chrono::duration<double>(Clock::now() - start).count();
    account(result.prefillTraffic, o.promptTokens);
    result.prefillTps.push_back(o.promptTokens / prefill);
    if (o.genTokens == 0) continue;
    const auto decodeStart = Clock::now();
    for (int g = 0; g < o.genTokens; g++) {
      const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      session.evaluate(&next, 1, logits.data(), false);
    }
    const double decode = std::chrono::duration<double>(Clock::now() - decodeStart).count();
    account(result.decodeTraffic, o.genTokens);
    result.decodeTps.push_back(o.genTokens / decode);
  }
  result.peakRssBytes = peakRssBytes();
  return result;
}

}  // namespace glm
