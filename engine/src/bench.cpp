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

namespace {

constexpr int kDefaultPromptTokens = 512, kDefaultGenTokens = 128;

// The lengths to measure: those given, the rest from the defaults fitted to `context` (see BenchOptions).
void chooseLengths(const BenchOptions& o, int context, BenchResult& r) {
  if (o.promptTokens && o.genTokens) {
    r.promptTokens = *o.promptTokens;
    r.genTokens = *o.genTokens;
  } else if (o.promptTokens) {
    r.promptTokens = *o.promptTokens;
    r.genTokens = std::max(0, std::min(kDefaultGenTokens, context - r.promptTokens));
  } else if (o.genTokens) {
    r.genTokens = *o.genTokens;
    r.promptTokens = std::min(kDefaultPromptTokens, context - r.genTokens);
  } else if (kDefaultPromptTokens + kDefaultGenTokens <= context) {
    r.promptTokens = kDefaultPromptTokens;
    r.genTokens = kDefaultGenTokens;
  } else {
    r.genTokens = context / 4;
    r.promptTokens = context - r.genTokens;
  }
  r.fittedToContext = (!o.promptTokens && r.promptTokens != kDefaultPromptTokens) || (!o.genTokens && r.genTokens != kDefaultGenTokens);
}

}  // namespace

BenchResult runBench(const Model& model, const BenchOptions& o) {
  if ((o.promptTokens && *o.promptTokens <= 0) || (o.genTokens && *o.genTokens < 0) || o.repeat <= 0) {
    throw std::invalid_argument("bench: prompt tokens and repeat must be positive");
  }
  BenchResult result;
  const int available = model.header().maxSeqLen;
  chooseLengths(o, available, result);
  const int context = result.promptTokens + result.genTokens;
  if (result.promptTokens <= 0 || context > available) {
    throw std::invalid_argument("bench: " + std::to_string(result.promptTokens) + " prompt + " + std::to_string(result.genTokens) +
                                " generated tokens exceed the model's context of " + std::to_string(available) +
                                " (choose --prompt-tokens and --gen-tokens that fit, or leave them out)");
  }
  result.contextLength = available;
  Session session(model, o.threads, context, o.kvType, o.distributed, o.placement);
  const int vocab = model.header().vocabSize;
  std::vector<int32_t> prompt(result.promptTokens);
  uint32_t state = 12345;
  for (auto& t : prompt) {
    state = state * 1664525u + 1013904223u;
    t = static_cast<int32_t>((state >> 8) % static_cast<uint32_t>(vocab));
  }
  std::vector<float> logits(vocab);
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
    session.evaluate(prompt.data(), result.promptTokens, logits.data(), false);
    const double prefill = std::chrono::duration<double>(Clock::now() - start).count();
    account(result.prefillTraffic, result.promptTokens);
    result.prefillTps.push_back(result.promptTokens / prefill);
    if (result.genTokens == 0) continue;
    const auto decodeStart = Clock::now();
    for (int g = 0; g < result.genTokens; g++) {
      const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      session.evaluate(&next, 1, logits.data(), false);
    }
    const double decode = std::chrono::duration<double>(Clock::now() - decodeStart).count();
    account(result.decodeTraffic, result.genTokens);
    result.decodeTps.push_back(result.genTokens / decode);
  }
  result.peakRssBytes = peakRssBytes();
  return result;
}

}  // namespace glm
