#include "mtp.h"

#include <algorithm>

#include "cpu/kernels.h"
#include "graph/graph.h"

namespace glm {

namespace {
Weights mtpAsModel(const Model& model) {
  if (model.header().mtpLayers < 1) throw ModelError(model.path() + ": has no MTP layer (convert the checkpoint with --mtp to keep it)");
  Weights w;
  w.header_ = model.header();
  w.header_.nLayers = 1;
  w.header_.firstDenseLayers = 0;
  w.header_.mtpLayers = 0;
  w.embedding = model.embedding;
  w.layers = {model.mtp.layer};
  w.outputNorm = model.mtp.sharedHeadNorm;
  w.output = model.output;
  return w;
}
}  // namespace

MtpDrafter::MtpDrafter(const Model& model, ThreadPool& pool, int context, FloatType kvType)
    : model_(model), layer_(mtpAsModel(model)), ffn_(pool), blocks_(layer_, pool, context, kvType) {}

void MtpDrafter::run(const int32_t* tokens, const float* hidden, int n, int pos, float* logits, float* nextHidden) {
  const ModelHeader& h = model_.header();
  const size_t dim = static_cast<size_t>(h.dim);
  joined_.resize(static_cast<size_t>(n) * 2 * dim);
  for (int j = 0; j < n; j++) {
    // [enorm(embedding); hnorm(hidden)]: the order eh_proj's columns were trained in.
    float* row = joined_.data() + static_cast<size_t>(j) * 2 * dim;
    rmsNorm(model_.embedding.f32() + static_cast<size_t>(tokens[j]) * dim, model_.mtp.enorm.f32(), row, h.dim, h.normEpsilon);
    rmsNorm(hidden + static_cast<size_t>(j) * dim, model_.mtp.hnorm.f32(), row + dim, h.dim, h.normEpsilon);
  }
  x_.resize(static_cast<size_t>(n) * dim);
  ffn_.matmul(model_.mtp.ehProj, joined_.data(), n, x_.data());
  blocks_.load(x_.data(), n);
  places_.resize(n);
  for (int j = 0; j < n; j++) places_[j] = {0, pos + j};
  glm4MoeLayer(blocks_, layer_.layers[0], 0, n, places_.data());
  blocks_.logits(n - 1, 1, logits);
  residual_.resize(dim);
  blocks_.residual(n - 1, 1, residual_.data());
  rmsNorm(residual_.data(), model_.mtp.sharedHeadNorm.f32(), nextHidden, h.dim, h.normEpsilon);
}

}  // namespace glm
