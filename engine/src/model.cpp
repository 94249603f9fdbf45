#include "model.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <utility>

#include "model-limits.h"
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

// Parses the key/value pairs into the header. The keys, their defaults and bounds come from
// model-limits.h (generated from converter/model-header.ts); the checks mirror decodeHeader there, in
// the same order, so that both readers refuse the same files.
ModelHeader parsePairs(const std::map<int32_t, int32_t>& kv, const std::string& path) {
  auto fail = [&](const std::string& what) -> ModelError { return ModelError(path + ": " + what); };
  const auto arch = kv.find(1);
  if (arch == kv.end()) throw fail("header key 1 (arch_type) is missing");
  if (arch->second != static_cast<int32_t>(ArchType::GLM) && arch->second != static_cast<int32_t>(ArchType::GLM4) &&
      arch->second != static_cast<int32_t>(ArchType::GLM4_MOE)) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%x", static_cast<unsigned>(arch->second));
    throw fail(std::string("unsupported arch_type ") + hex);
  }
  std::map<int32_t, int32_t> values;  // every known key, absent ones at their defaults
  for (const HeaderKey& k : kHeaderKeys) {
    const auto it = kv.find(k.id);
    if (it == kv.end()) {
      if (k.required) throw fail("required header key " + std::to_string(k.id) + " (" + k.name + ") is missing");
      values[k.id] = k.absent;
      continue;
    }
    if (k.ranged && (it->second < k.min || it->second > k.max)) {
      throw fail(std::string("header field ") + k.name + " = " + std::to_string(it->second) + " is outside " + std::to_string(k.min) + ".." +
                 std::to_string(k.max));
    }
    values[k.id] = it->second;
  }
  for (const auto& pair : kv) {
    if (!values.count(pair.first)) throw fail("unknown header key " + std::to_string(pair.first));
  }
  auto v = [&](int32_t id) { return values.at(id); };
  ModelHeader h;
  h.version = v(0);
  h.arch = static_cast<ArchType>(v(1));
  h.hiddenAct = v(11);
  h.dim = v(2);
  h.hiddenDim = v(3);
  h.nLayers = v(4);
  h.nHeads = v(5);
  h.nKvHeads = v(6);
  h.weightType = static_cast<FloatType>(v(13));
  h.maxSeqLen = v(10);
  h.vocabSize = v(9);
  h.nExperts = v(7);
  h.nActiveExperts = v(8);
  h.ropeStyle = static_cast<RopeStyle>(v(18));
  h.headDim = v(19);
  h.moeHiddenDim = v(21);
  h.ropeTheta = floatFromBits(v(256));
  h.normEpsilon = floatFromBits(v(257));
  h.ropeDim = v(258);
  h.attentionBias = v(259) != 0;
  h.qkNorm = v(260) != 0;
  h.nSharedExperts = v(261);
  h.firstDenseLayers = v(262);
  h.routedScalingFactor = floatFromBits(v(263));
  h.normTopkProb = v(264) != 0;
  h.nExpertGroups = v(265);
  h.topkGroups = v(266);
  h.mtpLayers = v(300);
  h.outputType = v(267) < 0 ? h.weightType : static_cast<FloatType>(v(267));  // -1: absent

  // What the forward pass divides by, indexes with or cuts into blocks (checkHeader in model-header.ts).
  if (h.nHeads % h.nKvHeads != 0) {
    throw fail("n_kv_heads (" + std::to_string(h.nKvHeads) + ") does not divide n_heads (" + std::to_string(h.nHeads) + ")");
  }
  h.kvGroup = h.nHeads / h.nKvHeads;
  if (h.ropeDim > h.headDim || h.ropeDim % 2 != 0) throw fail("rope_dim (" + std::to_string(h.ropeDim) + ") must be even and within head_dim");
  for (const auto& [name, value] : {std::pair<const char*, float>{"rope_theta", h.ropeTheta}, {"norm_epsilon", h.normEpsilon},
                                    {"routed_scaling_factor", h.routedScalingFactor}}) {
    if (!std::isfinite(value) || value <= 0) throw fail(std::string("header field ") + name + " must be a positive finite number");
  }
  const bool moe = h.arch == ArchType::GLM4_MOE;
  if (moe) {
    if (h.nExperts < 1) throw fail("n_experts must be positive in a glm4moe file");
    if (h.moeHiddenDim < 1) throw fail("moe_hidden_dim must be positive in a glm4moe file");
    if (h.nActiveExperts < 1 || h.nActiveExperts > h.nExperts) throw fail("n_active_experts must be within 1..n_experts");
    if (h.nExperts % h.nExpertGroups != 0 || h.topkGroups > h.nExpertGroups) {
      throw fail("n_expert_groups must divide n_experts, and topk_groups must not exceed it");
    }
    if (h.firstDenseLayers > h.nLayers) throw fail("first_dense_layers exceeds n_layers");
  }
  if (h.mtpLayers > 0 && !moe) throw fail("mtp_layers is only defined for glm4moe files");
  // The MTP layer is a MoE layer.
  const bool denseLayers = !moe || h.firstDenseLayers > 0, moeLayers = moe && (h.firstDenseLayers < h.nLayers || h.mtpLayers > 0);
  if (denseLayers && h.hiddenDim < 1) throw fail("hidden_dim must be positive when the model has dense layers");
  if (h.weightType == FloatType::Q40 || h.weightType == FloatType::Q80) {
    // The row lengths (columns) of the quantized matrices must be whole 32-value blocks. The bounds
    // above keep these products far inside int.
    std::vector<std::pair<const char*, int>> rows = {{"dim", h.dim}, {"n_heads x head_dim", h.qDim()}};
    if (denseLayers) rows.push_back({"hidden_dim", h.hiddenDim});
    if (moeLayers) {
      rows.push_back({"moe_hidden_dim", h.moeHiddenDim});
      rows.push_back({"moe_hidden_dim x n_shared_experts", h.moeHiddenDim * h.nSharedExperts});
    }
    for (const auto& [name, cols] : rows) {
      if (cols % static_cast<int>(kBlockSize) != 0) {
        throw fail(std::string(name) + " (" + std::to_string(cols) + ") is not a multiple of 32, which quantized rows need");
      }
    }
  }
  if ((h.outputType == FloatType::Q40 || h.outputType == FloatType::Q80) && h.dim % static_cast<int>(kBlockSize) != 0) {
    throw fail("dim (" + std::to_string(h.dim) + ") is not a multiple of 32, which the quantized output head needs");
  }
  return h;
}

uint64_t checkedProduct(uint64_t a, uint64_t b) {
  uint64_t out;
  if (__builtin_mul_overflow(a, b, &out)) throw ModelError("a tensor size overflows 64 bits");
  return out;
}

uint64_t checkedSum(uint64_t a, uint64_t b) {
  uint64_t out;
  if (__builtin_add_overflow(a, b, &out)) throw ModelError("a tensor size overflows 64 bits");
  return out;
}

uint64_t tensorBytes(FloatType type, int rows, int cols) {
  return checkedProduct(static_cast<uint64_t>(rows), encodedBytes(type, static_cast<size_t>(cols)));
}

}  // namespace

ModelHeader parseHeader(const uint8_t* pairs, size_t bytes, const std::string& source) {
  if (bytes % 8 != 0) throw ModelError(source + ": header size " + std::to_string(bytes + 8) + " is not 8 + 8 x pairs");
  if (bytes + 8 > kMaxHeaderBytes) {
    throw ModelError(source + ": header size " + std::to_string(bytes + 8) + " exceeds the " + std::to_string(kMaxHeaderBytes) + "-byte limit");
  }
  std::map<int32_t, int32_t> kv;
  for (size_t at = 0; at < bytes; at += 8) {
    int32_t key, value;
    std::memcpy(&key, pairs + at, 4);
    std::memcpy(&value, pairs + at + 4, 4);
    if (!kv.emplace(key, value).second) throw ModelError(source + ": header key " + std::to_string(key) + " appears twice");
  }
  return parsePairs(kv, source);
}

namespace {

void layoutLayer(const ModelHeader& h, int l, LayerWeights& L, const TensorSource& next) {
  const FloatType W = h.weightType, F32 = FloatType::F32;
  auto vec = [&](int n) { return next(F32, n, 1); };
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

// The optional MTP section (docs/model-format.md): its decoder block is laid out as layer n_layers.
void layoutMtp(const ModelHeader& h, MtpWeights& m, const TensorSource& next) {
  m.enorm = next(FloatType::F32, h.dim, 1);
  m.hnorm = next(FloatType::F32, h.dim, 1);
  m.ehProj = next(h.weightType, h.dim, 2 * h.dim);
  layoutLayer(h, h.nLayers, m.layer, next);
  m.sharedHeadNorm = next(FloatType::F32, h.dim, 1);
}

}  // namespace

void layoutTensors(Weights& w, const TensorSource& next) {
  const ModelHeader& h = w.header();
  w.embedding = next(FloatType::F32, h.vocabSize, h.dim);
  w.layers.assign(h.nLayers, LayerWeights{});
  for (int l = 0; l < h.nLayers; l++) layoutLayer(h, l, w.layers[l], next);
  w.outputNorm = next(FloatType::F32, h.dim, 1);
  w.output = next(h.outputType, h.vocabSize, h.dim);
  if (h.mtpLayers > 0) layoutMtp(h, w.mtp, next);
}

uint64_t modelBytes(const ModelHeader& h, size_t headerBytes) {
  uint64_t sum = headerBytes;
  const TensorSource count = [&](FloatType type, int rows, int cols) {
    sum = checkedSum(sum, tensorBytes(type, rows, cols));
    return Tensor{};
  };
  // The embedding and the output: the layout of the same header without layers.
  Weights edges;
  edges.header_ = h;
  edges.header_.nLayers = 0;
  edges.header_.mtpLayers = 0;
  layoutTensors(edges, count);
  if (h.mtpLayers > 0) {
    MtpWeights scratch;
    layoutMtp(h, scratch, count);
  }
  // One layer of each kind, measured once and multiplied by how many there are.
  const int firstMoe = h.arch == ArchType::GLM4_MOE ? std::min(h.firstDenseLayers, h.nLayers) : h.nLayers;
  for (const auto& [first, layers] : {std::pair<int, int>{0, firstMoe}, {firstMoe, h.nLayers - firstMoe}}) {
    if (layers == 0) continue;
    const uint64_t before = sum;
    LayerWeights scratch;
    layoutLayer(h, first, scratch, count);
    sum = checkedSum(before, checkedProduct(sum - before, static_cast<uint64_t>(layers)));
  }
  return sum;
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
    if (headerSize < 8 || (headerSize - 8) % 8 != 0) throw ModelError(path + ": header size " + std::to_string(headerSize) + " is not 8 + 8 x pairs");
    if (static_cast<size_t>(headerSize) > kMaxHeaderBytes) {
      throw ModelError(path + ": header size " + std::to_string(headerSize) + " exceeds the " + std::to_string(kMaxHeaderBytes) + "-byte limit");
    }
    if (static_cast<size_t>(headerSize) > size_) throw ModelError(path + ": header size " + std::to_string(headerSize) + " runs past the end of the file");
    header_ = parseHeader(base + 8, static_cast<size_t>(headerSize) - 8, path);
    headerBytes_ = static_cast<size_t>(headerSize);
    // The size the header implies, computed before anything is allocated per layer or expert.
    const uint64_t expected = modelBytes(header_, headerBytes_);
    if (expected != size_) {
      throw ModelError(path + ": the header describes " + std::to_string(expected) + " bytes but the file has " + std::to_string(size_) + "; " +
                       (expected > size_ ? "it is truncated" : "it has trailing bytes"));
    }

    // Walk the tensors in file order (converter/model-layout.ts); they fit, as the sizes add up.
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
      const size_t bytes = static_cast<size_t>(tensorBytes(type, rows, cols));
      if (bytes > size_ - offset) throw std::logic_error(path + ": the tensor walk disagrees with the size check");
      t.data = base + offset;
      const size_t sample = std::min<size_t>(bytes, 64);
      digest.update(t.data, sample);
      digest.update(t.data + bytes - sample, sample);
      offset += bytes;
      return t;
    });
    identity_ = digest.finish();
  } catch (const std::bad_alloc&) {
    munmap(map_, size_);
    map_ = nullptr;
    throw ModelError(path + ": out of memory while loading the model");
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
