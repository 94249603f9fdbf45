#include "model.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "net/crypto.h"

namespace glm {

namespace {

constexpr int32_t kMagic = 0x0A00ABCD;
constexpr int32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian int32: a llama.cpp file

float floatFromBits(int32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Parses the key/value pairs into the header; mirrors HEADER_KEYS in converter/model-header.ts.
ModelHeader parsePairs(const std::map<int32_t, int32_t>& kv, const std::string& path) {
  auto fail = [&](const std::string& what) -> ModelError { return ModelError(path + ": " + what); };
  std::map<int32_t, int32_t> rest = kv;
  auto take = [&](int32_t key, const char* name, const int32_t* absent) -> int32_t {
    auto it = rest.find(key);
    if (it == rest.end()) {
      if (!absent) throw fail("required header key " + std::to_string(key) + " (" + name + ") is missing");
      return *absent;
    }
    const int32_t v = it->second;
    rest.erase(it);
    return v;
  };
  const int32_t zero = 0, one = 1, silu = 1;
  ModelHeader h;
  h.version = take(0, "version", &zero);
  const int32_t arch = take(1, "arch_type", nullptr);
  if (arch != static_cast<int32_t>(ArchType::GLM) && arch != static_cast<int32_t>(ArchType::GLM4) &&
      arch != static_cast<int32_t>(ArchType::GLM4_MOE)) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", static_cast<unsigned>(arch));
    throw fail(std::string("unsupported arch_type ") + hex);
  }
  h.arch = static_cast<ArchType>(arch);
  h.hiddenAct = take(11, "hidden_act", &silu);
  h.dim = take(2, "dim", nullptr);
  h.hiddenDim = take(3, "hidden_dim", nullptr);
  h.nLayers = take(4, "n_layers", nullptr);
  h.nHeads = take(5, "n_heads", nullptr);
  h.nKvHeads = take(6, "n_kv_heads", nullptr);
  const int32_t weights = take(13, "weights_float_type", nullptr);
  if (weights < 0 || weights > 3) throw fail("unknown weights_float_type " + std::to_string(weights));
  h.weightType = static_cast<FloatType>(weights);
  h.maxSeqLen = take(10, "max_seq_len", nullptr);
  h.vocabSize = take(9, "vocab_size", nullptr);
  h.nExperts = take(7, "n_experts", &zero);
  h.nActiveExperts = take(8, "n_active_experts", &zero);
  h.ropeStyle = static_cast<RopeStyle>(take(18, "rope_type", &zero));
  h.headDim = take(19, "head_dim", nullptr);
  h.moeHiddenDim = take(21, "moe_hidden_dim", &zero);
  h.ropeTheta = floatFromBits(take(256, "rope_theta", nullptr));
  h.normEpsilon = floatFromBits(take(257, "norm_epsilon", nullptr));
  h.ropeDim = take(258, "rope_dim", nullptr);
  h.attentionBias = take(259, "attention_bias", &zero) != 0;
  h.qkNorm = take(260, "qk_norm", &zero) != 0;
  h.nSharedExperts = take(261, "n_shared_experts", &zero);
  h.firstDenseLayers = take(262, "first_dense_layers", &zero);
  const int32_t unitScale = 0x3f800000;  // 1.0f
  h.routedScalingFactor = floatFromBits(take(263, "routed_scaling_factor", &unitScale));
  h.normTopkProb = take(264, "norm_topk_prob", &zero) != 0;
  h.nExpertGroups = take(265, "n_expert_groups", &one);
  h.topkGroups = take(266, "topk_groups", &one);
  if (!rest.empty()) throw fail("unknown header key " + std::to_string(rest.begin()->first));

  // What the forward pass divides by or indexes with.
  auto positive = [&](int32_t v, const char* name) {
    if (v <= 0) throw fail(std::string("header field ") + name + " must be positive, got " + std::to_string(v));
  };
  positive(h.dim, "dim");
  positive(h.nLayers, "n_layers");
  positive(h.nHeads, "n_heads");
  positive(h.nKvHeads, "n_kv_heads");
  positive(h.headDim, "head_dim");
  positive(h.vocabSize, "vocab_size");
  positive(h.maxSeqLen, "max_seq_len");
  if (h.nHeads % h.nKvHeads != 0) throw fail("n_kv_heads does not divide n_heads");
  h.kvGroup = h.nHeads / h.nKvHeads;
  if (h.ropeDim <= 0 || h.ropeDim > h.headDim || h.ropeDim % 2 != 0) throw fail("rope_dim must be even and within head_dim");
  if (h.hiddenAct != 1) throw fail("only silu (hidden_act 1) is supported");
  if (h.arch == ArchType::GLM4_MOE) {
    positive(h.nExperts, "n_experts");
    positive(h.moeHiddenDim, "moe_hidden_dim");
    if (h.nActiveExperts <= 0 || h.nActiveExperts > h.nExperts) throw fail("n_active_experts must be within 1..n_experts");
    if (h.nExpertGroups <= 0 || h.nExperts % h.nExpertGroups != 0 || h.topkGroups <= 0 || h.topkGroups > h.nExpertGroups) {
      throw fail("expert groups do not divide the experts");
    }
    if (h.firstDenseLayers < 0 || h.firstDenseLayers > h.nLayers) throw fail("first_dense_layers out of range");
  }
  if (h.firstDenseLayers < h.nLayers || h.arch != ArchType::GLM4_MOE) positive(h.hiddenDim, "hidden_dim");
  return h;
}

}  // namespace

ModelHeader parseHeader(const uint8_t* pairs, size_t bytes, const std::string& source) {
  if (bytes % 8 != 0) throw ModelError(source + ": header size " + std::to_string(bytes + 8) + " is invalid");
  std::map<int32_t, int32_t> kv;
  for (size_t at = 0; at < bytes; at += 8) {
    int32_t key, value;
    std::memcpy(&key, pairs + at, 4);
    std::memcpy(&value, pairs + at + 4, 4);
    if (!kv.emplace(key, value).second) throw ModelError(source + ": header key " + std::to_string(key) + " appears twice");
  }
  return parsePairs(kv, source);
}

void layoutTensors(Weights& w, const std::function<Tensor(FloatType, int, int)>& next) {
  const ModelHeader& h = w.header();
  const FloatType W = h.weightType, F32 = FloatType::F32;
  auto vec = [&](int n) { return next(F32, n, 1); };
  w.embedding = next(F32, h.vocabSize, h.dim);
  w.layers.assign(h.nLayers, LayerWeights{});
  for (int l = 0; l < h.nLayers; l++) {
    LayerWeights& L = w.layers[l];
    L.attnNorm = vec(h.dim);
    L.wq = next(W, h.qDim(), h.dim);
    L.wk = next(W, h.kvDim(), h.dim);
    L.wv = next(W, h.kvDim(), h.dim);
    if (h.attentionBias) {
      L.bq = vec(h.qDim());
      L.bk = vec(h.kvDim());
      L.bv = vec(h.kvDim());
    }
    if (h.qkNorm) {
      L.qNorm = vec(h.headDim);
      L.kNorm = vec(h.headDim);
    }
    L.wo = next(W, h.dim, h.qDim());
    if (h.arch == ArchType::GLM4) L.postAttnNorm = vec(h.dim);
    L.ffnNorm = vec(h.dim);
    if (h.isMoeLayer(l)) {
      L.router = next(F32, h.nExperts, h.dim);
      L.routerBias = vec(h.nExperts);
      L.experts.resize(h.nExperts);
      for (auto& e : L.experts) {
        e.gate = next(W, h.moeHiddenDim, h.dim);
        e.up = next(W, h.moeHiddenDim, h.dim);
        e.down = next(W, h.dim, h.moeHiddenDim);
      }
      if (h.nSharedExperts > 0) {
        const int shared = h.moeHiddenDim * h.nSharedExperts;
        L.hasShared = true;
        L.shared.gate = next(W, shared, h.dim);
        L.shared.up = next(W, shared, h.dim);
        L.shared.down = next(W, h.dim, shared);
      }
    } else {
      L.dense.gate = next(W, h.hiddenDim, h.dim);
      L.dense.up = next(W, h.hiddenDim, h.dim);
      L.dense.down = next(W, h.dim, h.hiddenDim);
    }
    if (h.arch == ArchType::GLM4) L.postFfnNorm = vec(h.dim);
  }
  w.outputNorm = vec(h.dim);
  w.output = next(W, h.vocabSize, h.dim);
}

Model::Model(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw ModelError(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    throw ModelError(path + ": cannot stat");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw ModelError(path + ": file is " + std::to_string(size_) + " bytes, too short for a model header");
  }
  map_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw ModelError(path + ": cannot map the file into memory");
  }
  try {
    const uint8_t* base = static_cast<const uint8_t*>(map_);
    int32_t magic, headerSize;
    std::memcpy(&magic, base, 4);
    std::memcpy(&headerSize, base + 4, 4);
    if (magic == kGgufMagic) {
      throw ModelError(path + ": this is a GGUF file (llama.cpp's format); the engine reads distributed-llama .m files, which `glm-dllama convert` writes");
    }
    if (magic != kMagic) throw ModelError(path + ": bad magic; not a model file");
    if (headerSize < 8 || (headerSize - 8) % 8 != 0 || static_cast<size_t>(headerSize) > size_) {
      throw ModelError(path + ": header size " + std::to_string(headerSize) + " is invalid");
    }
    header_ = parseHeader(base + 8, static_cast<size_t>(headerSize) - 8, path);
    headerBytes_ = static_cast<size_t>(headerSize);

    // Walk the tensors in file order (converter/model-layout.ts), checking they fit.
    size_t offset = headerBytes_;
    Sha256 digest;
    digest.update(base, headerBytes_);
    const uint64_t fileSize = size_;
    digest.update(&fileSize, sizeof fileSize);
    layoutTensors(*this, [&](FloatType type, int rows, int cols) {
      Tensor t;
      t.type = type;
      t.rows = rows;
      t.cols = cols;
      if ((type == FloatType::Q40 || type == FloatType::Q80) && cols % static_cast<int>(kBlockSize) != 0) {
        throw ModelError(path + ": a quantized row of " + std::to_string(cols) + " values is not whole blocks");
      }
      const size_t bytes = static_cast<size_t>(rows) * encodedBytes(type, static_cast<size_t>(cols));
      if (offset + bytes > size_) {
        throw ModelError(path + ": the tensors run past the end of the file (" + std::to_string(size_) + " bytes); it is truncated");
      }
      t.data = base + offset;
      const size_t sample = std::min<size_t>(bytes, 64);
      digest.update(t.data, sample);
      digest.update(t.data + bytes - sample, sample);
      offset += bytes;
      return t;
    });
    identity_ = digest.finish();
    if (offset != size_) {
      throw ModelError(path + ": the header describes " + std::to_string(offset) + " bytes but the file has " +
                       std::to_string(size_) + "; it has trailing bytes");
    }
  } catch (...) {
    munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

Model::~Model() {
  if (map_) munmap(map_, size_);
}

}  // namespace glm
