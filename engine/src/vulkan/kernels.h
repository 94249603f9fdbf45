// The GPU kernels of a transformer layer, recorded on a Context: matmuls of weight matrices kept on the
// device (split by whole rows into chunks that each fit one binding) with activations, RMSNorm, RoPE,
// the KV cache and attention, and the elementwise operations. They mirror cpu/kernels.h and know
// nothing of models; activations are f32 rows in device buffers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../quant.h"
#include "context.h"

namespace glm::vulkan {

// A weight matrix on the device: rows [first, first + rows) of the chunk's buffer.
struct Matrix {
  struct Chunk {
    std::unique_ptr<Buffer> buffer;
    int first = 0;
    int rows = 0;
  };
  FloatType type = FloatType::F32;
  int rows = 0, cols = 0;
  std::vector<Chunk> chunks;
};

// Copies `rows` x `cols` weights of `type` (rowBytes apart) to the device; chunks hold at most
// `maxChunkBytes` (the device's binding limit unless smaller is asked, as the tests do).
Matrix uploadMatrix(Context& context, FloatType type, const uint8_t* data, int rows, int cols, const std::string& what, size_t maxChunkBytes = 0);

class Kernels {
 public:
  explicit Kernels(Context& context) : context_(context) {}
  Context& context() { return context_; }

  // out[t][r] = w[r] . x[t] for n tokens (out is n x w.rows, x is n x w.cols). q40 and q80 weights
  // take activations quantized to q80 the way the CPU quantizes them.
  void matmul(const Matrix& w, const Buffer& x, int n, Buffer& out);
  // out = rmsnorm(x) * weight over `rows` rows of dim (out may be x).
  void rmsNorm(const Buffer& x, const Buffer& weight, Buffer& out, int rows, int dim, float eps);
  // Rotates `vectors` rows of headDim values (heads per token, tokens from row `first` of v, at positions
  // pos..) in place by the cos/sin table (ropeTable), pairs interleaved or half-split.
  void rope(Buffer& v, const Buffer& table, int vectors, int heads, int headDim, int ropeDim, int pos, bool interleaved, int first = 0);
  // Stores n key and value rows of kvDim (from row `first` of k and v) at positions pos.. of one layer's cache (f32 or f16).
  void storeKv(const Buffer& k, const Buffer& v, Buffer& keyCache, Buffer& valueCache, FloatType cacheType, int n, int kvDim, int pos, int first = 0);
  // Causal attention for n tokens at pos.. of `heads` query heads (q and out: rows from `first`, each
  // heads x headDim); query head h reads KV head (h + headOffset) / group.
  void attention(const Buffer& q, const Buffer& keyCache, const Buffer& valueCache, FloatType cacheType, Buffer& out, int n, int pos, int heads,
                 int headDim, int kvDim, int group, int headOffset, int first = 0);
  void siluMul(Buffer& gate, const Buffer& up, size_t count);
  // x[i] += y[i % period].
  void add(Buffer& x, const Buffer& y, size_t count, size_t period);
  // dst[r] = src[index[r]] and dst[index[r]] += weight[r] * y[r] for rows of dim; index holds uint32.
  void gatherRows(const Buffer& src, const Binding& index, Buffer& dst, int rows, int dim);
  void scatterAddRows(Buffer& dst, const Buffer& y, const Binding& index, const Binding& weight, int rows, int dim);

 private:
  Buffer& scratch(std::unique_ptr<Buffer>& buffer, size_t bytes, const char* what);

  Context& context_;
  std::unique_ptr<Buffer> quants_, scales_, scores_;
};

// cos and sin of position p times frequency i for every position below maxSeqLen and pair i < ropeDim / 2,
// computed as the CPU engine computes them, as (cos, sin) float pairs.
std::vector<float> ropeTable(int maxSeqLen, int ropeDim, float theta);

}  // namespace glm::vulkan
