#include "session.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace glm {

namespace {
int contextOf(const Model& model, int maxSeqLen) {
  const int modelMax = model.header().maxSeqLen;
  if (maxSeqLen <= 0) return std::min(modelMax, Session::kDefaultContext);
  return std::min(modelMax, maxSeqLen);
}
}  // namespace

Session::Session(const Model& model, int threads, int maxSeqLen, FloatType kvType)
    : model_(model),
      pool_(threads),
      cache_(model.header(), contextOf(model, maxSeqLen), kvType),
      blocks_(model, pool_, cache_),
      layer_(layerFunction(model.header().arch)) {}

void Session::rewind(int position) {
  if (position < 0 || position > position_) throw std::invalid_argument("cannot rewind to position " + std::to_string(position));
  position_ = position;
}

void Session::evaluate(const int32_t* tokens, int n, float* logits, bool allLogits) {
  const ModelHeader& h = model_.header();
  if (n <= 0) throw std::invalid_argument("no tokens to evaluate");
  if (position_ + n > cache_.maxSeqLen()) {
    throw std::invalid_argument("context overflow: " + std::to_string(position_ + n) + " tokens exceed the context of " +
                                std::to_string(cache_.maxSeqLen()));
  }
  for (int t = 0; t < n; t++) {
    if (tokens[t] < 0 || tokens[t] >= h.vocabSize) {
      throw std::invalid_argument("token id " + std::to_string(tokens[t]) + " at index " + std::to_string(t) +
                                  " is outside the vocabulary (0.." + std::to_string(h.vocabSize - 1) + ")");
    }
  }
  const size_t dim = static_cast<size_t>(h.dim);
  x_.resize(n * dim);
  a_.resize(n * dim);
  b_.resize(n * dim);
  for (int t = 0; t < n; t++) {
    const float* row = model_.embedding.f32() + static_cast<size_t>(tokens[t]) * dim;
    std::copy_n(row, dim, x_.data() + t * dim);
  }
  for (int l = 0; l < h.nLayers; l++) layer_(blocks_, model_.layers[l], l, x_.data(), n, position_, {a_.data(), b_.data()});

  const int first = allLogits ? 0 : n - 1;
  const int count = n - first;
  blocks_.rmsNorm(x_.data() + first * dim, model_.outputNorm, a_.data(), count);
  blocks_.matmul(model_.output, a_.data(), count, logits);
  position_ += n;
}

}  // namespace glm
