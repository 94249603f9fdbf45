// The graphs' blocks on a Vulkan device: every weight is copied to the device once, activations and
// the KV cache stay there, and a forward pass is recorded as one stream of dispatches, submitted when
// the host needs a result (the MoE routing, a tensor-parallel exchange, the logits).
#pragma once
#include <map>
#include <memory>
#include <vector>

#include "../graph/blocks.h"
#include "kernels.h"

namespace glm::vulkan {

class GpuBlocks final : public Blocks {
 public:
  // Uploads every tensor of `model` (throws VulkanError when the device is short of memory).
  GpuBlocks(const Weights& model, Context& context, int maxSeqLen, FloatType kvType, Collective* collective);

  void rmsNorm(Act x, const Tensor& w, Act out, int n) override;
  void attention(int layer, Act x, int n, int pos, Act out) override;
  void ffn(const ExpertWeights& w, Act x, int n, Act out) override { ffn(w, rows(x), n, rows(out)); }
  void moe(const LayerWeights& layer, Act x, int n, Act out) override;
  void add(Act x, Act y, int n) override;
  void reduce(Act out, int n) override;
  void load(const float* x, int n) override;
  void logits(int first, int count, float* out) override;

 private:
  Buffer& rows(Act a) { return a == Act::X ? *x_ : a == Act::A ? *a_ : *b_; }
  const Matrix& matrix(const Tensor& t);
  const Buffer& vector(const Tensor& t);
  void uploadLayer(const LayerWeights& L);
  void ffn(const ExpertWeights& w, Buffer& x, int n, Buffer& out);
  // Grows a scratch buffer to hold `floats` values.
  Buffer& grow(std::unique_ptr<Buffer>& b, size_t floats, const char* what);

  const Weights& model_;
  const ModelHeader& h_;
  Context& context_;
  Kernels kernels_;
  FloatType kvType_;
  Collective* collective_;
  int capacity_ = 0;  // tokens the activation buffers hold
  std::map<const uint8_t*, Matrix> matrices_;
  std::map<const uint8_t*, std::unique_ptr<Buffer>> vectors_;
  std::vector<std::unique_ptr<Buffer>> keys_, values_;  // per layer
  std::unique_ptr<Buffer> ropeTable_;
  std::unique_ptr<Buffer> x_, a_, b_, q_, k_, v_, att_, gate_, up_, router_, expertIn_, expertOut_, routes_, logits_;
  std::vector<float> host_;
};

}  // namespace glm::vulkan
