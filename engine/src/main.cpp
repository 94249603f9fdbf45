// glm-engine: the engine without the TypeScript layer, for runners and worker machines.
//   glm-engine logprobs --model M --tokens 1,2,3 [--top K] [--threads N]
//   glm-engine bench --model M [--prompt-tokens 512] [--gen-tokens 128] [--threads N] [--repeat K] [--json]
//   glm-engine generate --model M --tokens 1,2,3 [--max-tokens 64] [--stop-ids a,b]
//   glm-engine perplexity --model M --tokens-file F [--ctx 512]
//   glm-engine info --model M
//   glm-engine devices
//   glm-engine worker --port P [--host ADDR] [--threads N] [--model M] [--secret-file F] [--insecure] [--idle-timeout SECONDS]
// Every command that runs the model takes --workers host:port,... [--sync q80|f32] [--secret-file F]
// [--experts slice|place] [--net-timeout SECONDS] to run as the root of a tensor-parallel cluster.
// The shared secret comes from GLM_ENGINE_SECRET, --secret-file or --secret (visible in ps).
// Errors go to stderr with a non-zero exit status.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench.h"
#include "cpu/kernels.h"
#include "device.h"
#include "metrics.h"
#include "model.h"
#include "net/worker.h"
#include "session.h"
#include "vulkan/context.h"

namespace {

const char* kUsage =
    "usage:\n"
    "  glm-engine logprobs --model M --tokens 1,2,3 [--top K] [--threads N] [--kv-cache f32|f16]\n"
    "  glm-engine bench --model M [--prompt-tokens 512] [--gen-tokens 128] (shortened to fit the context) [--threads N] [--repeat K] [--kv-cache f32|f16] [--json]\n"
    "  glm-engine generate --model M --tokens 1,2,3 [--max-tokens 64] [--stop-ids a,b] [--threads N]   (greedy)\n"
    "  glm-engine perplexity --model M --tokens-file F [--ctx 512] [--threads N]   (F: ids separated by commas or spaces; ctx at most the context)\n"
    "  glm-engine info --model M\n"
    "  glm-engine worker --port P [--host 0.0.0.0] [--threads N] [--model M] [--secret-file F] [--insecure] [--idle-timeout 10]\n"
    "    (serves roots until killed; without a secret only on a loopback address, unless --insecure)\n"
    "  glm-engine devices   (the Vulkan devices as JSON)\n"
    "device (every command that runs the model, worker included): --device cpu|vulkan|vulkan:N|auto (default auto: the first GPU, else\n"
    "  the CPU; a CPU-type Vulkan device such as lavapipe needs GLM_ENGINE_VULKAN_ALLOW_CPU=1) [--cpu-experts all|N] (on a GPU: the\n"
    "  routed experts of all or the first N MoE layers stay in system memory and run on the CPU)\n"
    "distributed (every command that runs the model): --workers host:port,... [--sync q80|f32] [--secret-file F]\n"
    "  [--experts slice|place] [--net-timeout 30]\n"
    "the shared secret: GLM_ENGINE_SECRET, or --secret-file F (its first line), or --secret S (visible to every local user in ps)\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string command;
  std::map<std::string, std::string> options;

  const std::string& required(const std::string& name) const {
    auto it = options.find(name);
    if (it == options.end()) throw UsageError("missing --" + name);
    return it->second;
  }
  int number(const std::string& name, int fallback) const {
    auto it = options.find(name);
    if (it == options.end()) return fallback;
    char* end = nullptr;
    const long v = std::strtol(it->second.c_str(), &end, 10);
    if (!end || *end || v < 0 || v > 1 << 30) throw UsageError("--" + name + " must be a non-negative integer");
    return static_cast<int>(v);
  }
  bool flag(const std::string& name) const { return options.count(name) > 0; }
};

Args parse(int argc, char** argv) {
  if (argc < 2) throw UsageError("no command");
  Args args;
  args.command = argv[1];
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) throw UsageError("unexpected argument " + a);
    a = a.substr(2);
    if (a == "json" || a == "insecure") {
      args.options[a] = "1";
    } else {
      if (i + 1 >= argc) throw UsageError("--" + a + " needs a value");
      args.options[a] = argv[++i];
    }
  }
  return args;
}

glm::FloatType kvCacheType(const Args& args) {
  auto it = args.options.find("kv-cache");
  if (it == args.options.end() || it->second == "f32") return glm::FloatType::F32;
  if (it->second == "f16") return glm::FloatType::F16;
  throw UsageError("--kv-cache must be f32 or f16");
}

std::string secretOf(const Args& args) {
  if (args.flag("secret") && args.flag("secret-file")) throw UsageError("give --secret or --secret-file, not both");
  if (args.flag("secret")) return args.required("secret");
  if (args.flag("secret-file")) {
    const std::string& path = args.required("secret-file");
    std::ifstream file(path);
    std::string secret;
    if (!file || !std::getline(file, secret)) throw std::runtime_error("--secret-file " + path + ": cannot read a line from it");
    if (!secret.empty() && secret.back() == '\r') secret.pop_back();
    if (secret.empty()) throw std::runtime_error("--secret-file " + path + ": the first line is empty");
    return secret;
  }
  const char* env = std::getenv("GLM_ENGINE_SECRET");
  return env ? env : "";
}

glm::DistributedOptions distributed(const Args& args) {
  glm::DistributedOptions d;
  auto option = [&](const char* name) -> const std::string* {
    auto it = args.options.find(name);
    return it == args.options.end() ? nullptr : &it->second;
  };
  if (const std::string* list = option("workers")) {
    size_t at = 0;
    while (at <= list->size()) {
      const size_t comma = std::min(list->find(',', at), list->size());
      if (comma > at) d.workers.push_back(list->substr(at, comma - at));
      at = comma + 1;
    }
    if (d.workers.empty()) throw UsageError("--workers needs host:port addresses separated by commas");
  }
  if (const std::string* sync = option("sync")) {
    if (*sync != "q80" && *sync != "f32") throw UsageError("--sync must be q80 or f32");
    d.sync = *sync == "f32" ? glm::FloatType::F32 : glm::FloatType::Q80;
  }
  if (const std::string* experts = option("experts")) {
    if (*experts != "slice" && *experts != "place") throw UsageError("--experts must be slice or place");
    d.experts = *experts == "place" ? glm::ExpertSplit::Place : glm::ExpertSplit::Slice;
  }
  d.secret = secretOf(args);
  d.timeoutMs = args.number("net-timeout", 30) * 1000;
  if (d.timeoutMs <= 0) throw UsageError("--net-timeout must be at least 1 second");
  return d;
}

// --device and --cpu-experts, parsed and resolved once per command.
glm::Placement placementOf(const Args& args) {
  auto device = args.options.find("device");
  auto experts = args.options.find("cpu-experts");
  glm::DeviceChoice choice;
  glm::Placement p;
  try {
    choice = glm::parseDevice(device == args.options.end() ? "auto" : device->second);
    if (experts != args.options.end()) p.cpuExpertLayers = glm::parseCpuExperts(experts->second);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--") + e.what());
  }
  p.device = glm::resolveDevice(choice, [](const std::string& line) { std::fprintf(stderr, "glm-engine: %s\n", line.c_str()); });
  return p;
}

int defaultThreads() { return std::max(1u, std::thread::hardware_concurrency()); }

// --threads, or every core. More threads than cores make them wait for each other at every step (decoding
// slows down many times over), so that is said once on stderr.
int threadsOf(const Args& args) {
  const int threads = std::max(1, args.number("threads", defaultThreads()));
  if (threads > defaultThreads()) {
    std::fprintf(stderr, "glm-engine: warning: --threads %d is more than the %d cores here, which slows the engine down sharply; leave it out to use every core\n",
                 threads, defaultThreads());
  }
  return threads;
}

std::vector<int32_t> parseTokens(const std::string& list) {
  std::vector<int32_t> tokens;
  size_t at = 0;
  while (at <= list.size()) {
    const size_t comma = std::min(list.find(',', at), list.size());
    const std::string item = list.substr(at, comma - at);
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end) throw UsageError("--tokens must be comma-separated integers, got \"" + item + "\"");
    tokens.push_back(static_cast<int32_t>(v));
    at = comma + 1;
  }
  return tokens;
}

void logprobs(const Args& args) {
  const glm::Model model(args.required("model"));
  const std::vector<int32_t> tokens = parseTokens(args.required("tokens"));
  const int top = args.number("top", 0);
  glm::Session session(model, threadsOf(args), static_cast<int>(tokens.size()), kvCacheType(args), distributed(args), placementOf(args));
  const int vocab = model.header().vocabSize;
  std::vector<float> logits(tokens.size() * vocab);
  session.evaluate(tokens.data(), static_cast<int>(tokens.size()), logits.data(), true);
  std::printf("{\"positions\":[");
  std::vector<int> order(vocab);
  for (size_t t = 0; t < tokens.size(); t++) {
    const float* l = logits.data() + t * vocab;
    const double max = *std::max_element(l, l + vocab);
    double sum = 0.0;
    for (int i = 0; i < vocab; i++) sum += std::exp(static_cast<double>(l[i]) - max);
    const double logZ = max + std::log(sum);
    std::printf("%s{\"token\":%d,", t ? "," : "", tokens[t]);
    if (top > 0) {
      std::iota(order.begin(), order.end(), 0);
      const int k = std::min(top, vocab);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) { return l[a] > l[b]; });
      std::printf("\"top\":[");
      for (int j = 0; j < k; j++) std::printf("%s{\"id\":%d,\"logprob\":%.9g}", j ? "," : "", order[j], l[order[j]] - logZ);
      std::printf("]}");
    } else {
      std::printf("\"logprobs\":[");
      for (int i = 0; i < vocab; i++) std::printf("%s%.9g", i ? "," : "", l[i] - logZ);
      std::printf("]}");
    }
  }
  std::printf("]}\n");
}

// Greedy continuation of the ids; prints the generated ids as JSON. (Text and sampling live in the
// TypeScript library; this is the engine alone, for runners.)
void generate(const Args& args) {
  const glm::Model model(args.required("model"));
  const std::vector<int32_t> prompt = parseTokens(args.required("tokens"));
  const int maxTokens = args.number("max-tokens", 64);
  std::vector<int32_t> stops;
  if (args.options.count("stop-ids")) stops = parseTokens(args.required("stop-ids"));
  glm::Session session(model, threadsOf(args), static_cast<int>(prompt.size()) + maxTokens, kvCacheType(args),
                       distributed(args), placementOf(args));
  std::vector<float> logits(model.header().vocabSize);
  session.evaluate(prompt.data(), static_cast<int>(prompt.size()), logits.data(), false);
  std::printf("{\"ids\":[");
  for (int g = 0; g < maxTokens; g++) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    std::printf("%s%d", g ? "," : "", next);
    if (std::find(stops.begin(), stops.end(), next) != stops.end() || g + 1 == maxTokens) break;
    session.evaluate(&next, 1, logits.data(), false);
  }
  std::printf("]}\n");
}

void perplexity(const Args& args) {
  const glm::Model model(args.required("model"));
  const std::string file = args.required("tokens-file");
  FILE* f = std::fopen(file.c_str(), "r");
  if (!f) throw std::runtime_error(file + ": cannot open");
  std::vector<int32_t> ids;
  long v;
  int c;
  while (std::fscanf(f, "%ld", &v) == 1) {
    ids.push_back(static_cast<int32_t>(v));
    while ((c = std::fgetc(f)) == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t') {
    }
    if (c != EOF) std::ungetc(c, f);
  }
  const bool clean = std::feof(f);
  std::fclose(f);
  if (!clean) throw std::runtime_error(file + ": expected token ids separated by commas or spaces");
  // --ctx as given, else 512 tokens per chunk or the model's context where shorter (said on stderr).
  const bool given = args.options.count("ctx") > 0;
  glm::Session session(model, threadsOf(args), given ? args.number("ctx", 0) : 512, kvCacheType(args), distributed(args), placementOf(args));
  const int ctx = given ? args.number("ctx", 0) : session.maxSeqLen();
  if (ctx > session.maxSeqLen()) {
    throw std::invalid_argument("--ctx " + std::to_string(ctx) + " is longer than the model's context of " + std::to_string(session.maxSeqLen()) + " tokens");
  }
  if (!given && ctx < 512) std::fprintf(stderr, "glm-engine perplexity: %d tokens per chunk, the model's context (--ctx to choose)\n", ctx);
  const std::vector<glm::ChunkNll> chunks = glm::chunkPerplexity(session, ids, ctx);
  double total = 0.0;
  int predicted = 0;
  std::printf("{\"chunks\":[");
  for (size_t i = 0; i < chunks.size(); i++) {
    std::printf("%s{\"start\":%d,\"tokens\":%d,\"nll\":%.9g}", i ? "," : "", chunks[i].start, chunks[i].tokens, chunks[i].nll);
    total += chunks[i].nll * (chunks[i].tokens - 1);
    predicted += chunks[i].tokens - 1;
  }
  std::printf("],\"predicted\":%d,\"nll\":%.9g,\"perplexity\":%.9g}\n", predicted, total / predicted, std::exp(total / predicted));
}

void bench(const Args& args) {
  const glm::Model model(args.required("model"));
  glm::BenchOptions o;
  if (args.options.count("prompt-tokens")) o.promptTokens = args.number("prompt-tokens", 0);
  if (args.options.count("gen-tokens")) o.genTokens = args.number("gen-tokens", 0);
  o.threads = threadsOf(args);
  o.repeat = args.number("repeat", 3);
  o.kvType = kvCacheType(args);
  o.distributed = distributed(args);
  o.placement = placementOf(args);
  const glm::BenchResult r = glm::runBench(model, o);
  if (r.fittedToContext) {
    std::fprintf(stderr, "glm-engine bench: %d prompt + %d generated tokens, to fit the model's context of %d (--prompt-tokens, --gen-tokens to choose)\n",
                 r.promptTokens, r.genTokens, r.contextLength);
  }
  const double prefill = glm::median(r.prefillTps), decode = glm::median(r.decodeTps);
  if (args.flag("json")) {
    auto list = [](const std::vector<double>& v) {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); i++) s += (i ? "," : "") + std::to_string(v[i]);
      return s + "]";
    };
    auto traffic = [](const std::vector<glm::TokenTraffic>& nodes) {
      std::string s = "[";
      for (size_t k = 0; k < nodes.size(); k++) {
        char item[96];
        std::snprintf(item, sizeof item, "%s{\"sent\":%.1f,\"received\":%.1f}", k ? "," : "", nodes[k].sent, nodes[k].received);
        s += item;
      }
      return s + "]";
    };
    std::printf("{\"prefill_tps\":%.3f,\"decode_tps\":%.3f,\"prefill_tps_all\":%s,\"decode_tps_all\":%s,\"peak_rss_bytes\":%zu,"
                "\"threads\":%d,\"prompt_tokens\":%d,\"gen_tokens\":%d,\"kv_cache\":\"%s\",\"kernels\":\"%s\",\"nodes\":%zu,"
                "\"sync\":\"%s\",\"experts\":\"%s\",\"prefill_bytes_per_token\":%s,\"decode_bytes_per_token\":%s}\n",
                prefill, decode, list(r.prefillTps).c_str(), list(r.decodeTps).c_str(), r.peakRssBytes, r.threads,
                r.promptTokens, r.genTokens, o.kvType == glm::FloatType::F16 ? "f16" : "f32", glm::kernelPath(), o.distributed.workers.size() + 1,
                o.distributed.sync == glm::FloatType::F32 ? "f32" : "q80", o.distributed.experts == glm::ExpertSplit::Place ? "place" : "slice",
                traffic(r.prefillTraffic).c_str(), traffic(r.decodeTraffic).c_str());
  } else {
    std::printf("prefill %d tokens: %.1f tok/s (median of %d)\ndecode %d tokens: %.1f tok/s\nthreads %d, kernels %s, peak RSS %.0f MiB\n",
                r.promptTokens, prefill, o.repeat, r.genTokens, decode, r.threads, glm::kernelPath(), r.peakRssBytes / 1048576.0);
    for (size_t k = 0; k < r.decodeTraffic.size(); k++) {
      std::printf("node %zu: %.0f bytes sent, %.0f received per decoded token\n", k, r.decodeTraffic[k].sent, r.decodeTraffic[k].received);
    }
  }
}

void worker(const Args& args) {
  glm::WorkerOptions o;
  o.port = args.number("port", 9990);
  if (o.port > 65535) throw UsageError("--port must be 0..65535");
  if (args.options.count("host")) o.host = args.required("host");
  o.threads = threadsOf(args);
  if (args.options.count("model")) o.model = args.required("model");
  o.secret = secretOf(args);
  o.insecure = args.flag("insecure");
  o.idleLimitMs = args.number("idle-timeout", 10) * 1000;
  if (o.idleLimitMs <= 0) throw UsageError("--idle-timeout must be at least 1 second");
  o.placement = placementOf(args);
  if (o.placement.device >= 0) {
    std::fprintf(stderr, "glm-engine worker: running on Vulkan device %d (%s)\n", o.placement.device,
                 glm::vulkan::listDevices()[o.placement.device].name.c_str());
  }
  glm::serveWorker(o, [](const std::string& line) {
    std::fprintf(stderr, "glm-engine worker: %s\n", line.c_str());
    std::fflush(stderr);
  });
}

void info(const Args& args) {
  const glm::Model model(args.required("model"));
  const glm::ModelHeader& h = model.header();
  std::printf("{\"arch\":%d,\"weights\":%d,\"dim\":%d,\"layers\":%d,\"heads\":%d,\"kv_heads\":%d,\"head_dim\":%d,\"vocab\":%d,"
              "\"experts\":%d,\"active_experts\":%d,\"bytes\":%zu}\n",
              static_cast<int>(h.arch), static_cast<int>(h.weightType), h.dim, h.nLayers, h.nHeads, h.nKvHeads, h.headDim,
              h.vocabSize, h.nExperts, h.nActiveExperts, model.fileSize());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  try {
    const Args args = parse(argc, argv);
    if (args.command == "logprobs") {
      logprobs(args);
    } else if (args.command == "bench") {
      bench(args);
    } else if (args.command == "generate") {
      generate(args);
    } else if (args.command == "perplexity") {
      perplexity(args);
    } else if (args.command == "worker") {
      worker(args);
    } else if (args.command == "info") {
      info(args);
    } else if (args.command == "devices") {
      std::printf("%s\n", glm::devicesJson().c_str());
    } else {
      throw UsageError("unknown command " + args.command);
    }
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "glm-engine: %s\n%s", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "glm-engine: error: %s\n", e.what());
    return 1;
  }
}
