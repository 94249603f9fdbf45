// A .m model file mapped into memory: the header (docs/model-format.md) and typed views of every
// tensor, in the order the format defines. Loading validates everything a forward pass relies on
// and throws ModelError with a message naming the file.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant.h"

namespace glm {

class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ArchType : int32_t { GLM = 0xABCD10, GLM4 = 0xABCD11, GLM4_MOE = 0xABCD12 };
enum class RopeStyle : int32_t { Interleaved = 0, HalfSplit = 1 };

struct ModelHeader {
  int32_t version = 0;
  ArchType arch = ArchType::GLM;
  FloatType weightType = FloatType::F32;
  FloatType outputType = FloatType::F32;  // the output head: weightType unless output_float_type says otherwise
  int32_t hiddenAct = 1;
  int32_t dim = 0, hiddenDim = 0, nLayers = 0, nHeads = 0, nKvHeads = 0, headDim = 0;
  int32_t vocabSize = 0, maxSeqLen = 0;
  RopeStyle ropeStyle = RopeStyle::Interleaved;
  float ropeTheta = 10000.0f;
  int32_t ropeDim = 0;
  float normEpsilon = 1e-5f;
  bool attentionBias = false, qkNorm = false;
  int32_t nExperts = 0, nActiveExperts = 0, moeHiddenDim = 0, nSharedExperts = 0, firstDenseLayers = 0;
  float routedScalingFactor = 1.0f;
  bool normTopkProb = false;
  int32_t nExpertGroups = 1, topkGroups = 1;
  // GLM-4.5's MTP (next-n) layers in the optional section after the output head: 0 or 1.
  int32_t mtpLayers = 0;
  // Query heads per KV head, and where this node's first query head sits in its KV head's group:
  // nHeads / nKvHeads and 0 for a whole model; a node's slice may start mid-group (net/slice.h).
  int32_t kvGroup = 1, headOffset = 0;

  int qDim() const { return nHeads * headDim; }
  int kvDim() const { return nKvHeads * headDim; }
  bool isMoeLayer(int layer) const { return arch == ArchType::GLM4_MOE && layer >= firstDenseLayers; }
};

// A weight matrix [rows x cols] (or a vector: rows = n, cols = 1) inside the mapped file.
struct Tensor {
  const uint8_t* data = nullptr;
  FloatType type = FloatType::F32;
  int rows = 0;
  int cols = 0;
  const float* f32() const { return reinterpret_cast<const float*>(data); }
  size_t rowBytes() const { return encodedBytes(type, static_cast<size_t>(cols)); }
  const uint8_t* row(int r) const { return data + static_cast<size_t>(r) * rowBytes(); }
};

struct ExpertWeights {
  Tensor gate, up, down;
};

struct LayerWeights {
  Tensor attnNorm, wq, wk, wv, bq, bk, bv, qNorm, kNorm, wo, postAttnNorm, ffnNorm, postFfnNorm;
  // Dense FFN (gate, up, down), or the MoE router, correction bias, experts and shared expert.
  ExpertWeights dense;
  Tensor router, routerBias;
  std::vector<ExpertWeights> experts;
  ExpertWeights shared;
  bool hasShared = false;
};

// The MTP (next-n) layer: x = ehProj([enorm(embedding(t + 1)); hnorm(hidden(t))]), a MoE decoder layer,
// then sharedHeadNorm before the main model's output head.
struct MtpWeights {
  Tensor enorm, hnorm, ehProj, sharedHeadNorm;
  LayerWeights layer;
};

// The header and every tensor of a model, or of one node's slice of it (then the header's head, FFN,
// expert and vocabulary counts are the node's own and absent tensors have no data).
struct Weights {
  ModelHeader header_;
  const ModelHeader& header() const { return header_; }

  Tensor embedding;
  std::vector<LayerWeights> layers;
  Tensor outputNorm, output;
  // Present when header().mtpLayers is 1 (in a whole model only: node slices never carry it).
  MtpWeights mtp;
};

// Parses the header's key/value pairs (the bytes after magic and header size); `source` names the
// file or peer in errors.
ModelHeader parseHeader(const uint8_t* pairs, size_t bytes, const std::string& source);

// Gives a tensor of the layout its place: called with (type, rows, cols).
using TensorSource = std::function<Tensor(FloatType, int, int)>;

// Calls next(type, rows, cols) for every tensor in file order (docs/model-format.md) and stores the
// results in w, whose header must be set.
void layoutTensors(Weights& w, const TensorSource& next);

// The file size a header of headerBytes implies (header included), in time independent of n_layers;
// throws ModelError if it overflows 64 bits (the header's bounds rule that out).
uint64_t modelBytes(const ModelHeader& h, size_t headerBytes);

class Model : public Weights {
 public:
  // Maps and validates `path`; throws ModelError.
  explicit Model(const std::string& path);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::string& path() const { return path_; }
  size_t fileSize() const { return size_; }
  // The header's key/value bytes, as the file holds them.
  const uint8_t* headerPairs() const { return static_cast<const uint8_t*>(map_) + 8; }
  size_t headerPairBytes() const { return headerBytes_ - 8; }
  // A SHA-256 of the header, the file size and the first and last bytes of every tensor: cheap, and
  // different for another model or another conversion of it.
  const std::array<uint8_t, 32>& identity() const { return identity_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  size_t headerBytes_ = 0;
  std::array<uint8_t, 32> identity_{};
};

}  // namespace glm
