// The graphs' blocks on a Vulkan device: every weight is copied to the device once, activations and
// the KV cache stay there, and a forward pass is recorded as one stream of dispatches, submitted when
// the host needs a result (the MoE routing, a tensor-parallel exchange, the logits). The routed experts
// of the first cpuExpertLayers MoE layers stay in system memory and run on the CPU (--cpu-experts), for
// cards smaller than the model.
#pragma once
#include <map>
#include <memory>
#include <vector>

#include "../graph/blocks.h"
#include "kernels.h"

namespace glm::vulkan {

class GpuBlocks final : public Blocks {
 public:
  // Uploads every tensor of `model` that runs on the device (throws VulkanError when it is short of
  // memory); `pool` runs the experts kept on the CPU.
  // `slots` sequences' KV caches are kept (batched decoding).
  GpuBlocks(const Weights& model, Context& context, ThreadPool& pool, int cpuExpertLayers, int maxSeqLen, FloatType kvType, Collective* collective,
            int slots = 1);

  void rmsNorm(Act x, const Tensor& w, Act out, int n) override;
  void attention(int layer, Act x, int n, const TokenPlace* places, Act out) override;
  void ffn(const ExpertWeights& w, Act x, int n, Act out) override { ffn(w, rows(x), n, rows(out)); }
  void moe(const LayerWeights& layer, Act x, int n, Act out) override;
  void add(Act x, Act y, int n) override;
  void reduce(Act out, int n) override;
  void load(const float* x, int n) override;
  void logits(int first, int count, float* out) override;
  void residual(int first, int count, float* out) override;

 private:
  Buffer& rows(Act a) { return a == Act::X ? *x_ : a == Act::A ? *a_ : *b_; }
  const Matrix& matrix(const Tensor& t);
  const Buffer& vector(const Tensor& t);
  bool expertsOnCpu(int layer) const { return h_.isMoeLayer(layer) && layer - h_.firstDenseLayers < cpuExpertLayers_; }
  void uploadLayer(int layer);
  // The routed experts of a layer on the device: out = their weighted sum for the tokens routed to them.
  void routedExperts(const LayerWeights& L, const Routing& routing, Buffer& x, int n, Buffer& out);
  void ffn(const ExpertWeights& w, Buffer& x, int n, Buffer& out);
  // Grows a scratch buffer to hold `floats` values.
  Buffer& grow(std::unique_ptr<Buffer>& b, size_t floats, const char* what);

  const Weights& model_;
  const ModelHeader& h_;
  Context& context_;
  Kernels kernels_;
  FloatType kvType_;
  Collective* collective_;
  int cpuExpertLayers_;
  CpuFfn cpu_;
  int capacity_ = 0;  // tokens the activation buffers hold
  std::map<const uint8_t*, Matrix> matrices_;
  std::map<const uint8_t*, std::unique_ptr<Buffer>> vectors_;
  std::vector<std::unique_ptr<Buffer>> keys_, values_;  // per slot and layer: [slot * nLayers + layer]
  std::unique_ptr<Buffer> ropeTable_;
  std::unique_ptr<Buffer> x_, a_, b_, q_, k_, v_, att_, gate_, up_, router_, expertIn_, expertOut_, routes_, logits_;
  std::vector<float> host_, hostIn_;
};

}  // namespace glm::vulkan
