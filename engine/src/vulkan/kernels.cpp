#include "kernels.h"

#include <algorithm>
#include <cmath>

#include "../cpu/kernels.h"

namespace glm::vulkan {

namespace {

constexpr uint32_t kWorkgroup = 64;        // local_size_x of every shader (shaders/common.glsl)
constexpr uint32_t kTokensPerGroup = 8;    // TOKENS of the matmul shaders
constexpr uint32_t kMaxGroups = 65535;     // the smallest maxComputeWorkGroupCount a device may have
constexpr size_t kScoreBudget = 64u << 20;  // attention scratch per dispatch

// A 2-D grid of `groups` workgroups: (x, y) with x <= 65,535; x is also the shaders' groupsX.
struct Grid {
  uint32_t x, y;
};
Grid grid(size_t groups) {
  const uint32_t x = static_cast<uint32_t>(std::min<size_t>(std::max<size_t>(groups, 1), kMaxGroups));
  return {x, static_cast<uint32_t>((groups + x - 1) / x)};
}
Grid elementGrid(size_t count) { return grid((count + kWorkgroup - 1) / kWorkgroup); }

Shader matmulShader(FloatType type) {
  switch (type) {
    case FloatType::F32:
      return Shader::MatmulF32;
    case FloatType::F16:
      return Shader::MatmulF16;
    case FloatType::Q40:
      return Shader::MatmulQ40;
    case FloatType::Q80:
      return Shader::MatmulQ80;
  }
  throw std::logic_error("unknown weight type");
}

uint32_t u32(size_t v) { return static_cast<uint32_t>(v); }

}  // namespace

Matrix uploadMatrix(Context& context, FloatType type, const uint8_t* data, int rows, int cols, const std::string& what, size_t maxChunkBytes) {
  Matrix m;
  m.type = type;
  m.rows = rows;
  m.cols = cols;
  const size_t rowBytes = encodedBytes(type, static_cast<size_t>(cols));
  const size_t limit = maxChunkBytes ? std::min(maxChunkBytes, context.maxBinding()) : context.maxBinding();
  if (rowBytes > limit) throw VulkanError(what + ": one row of " + std::to_string(rowBytes) + " bytes exceeds the device's binding limit");
  const int perChunk = static_cast<int>(std::min<size_t>(limit / rowBytes, static_cast<size_t>(rows)));
  for (int first = 0; first < rows; first += perChunk) {
    Matrix::Chunk chunk;
    chunk.first = first;
    chunk.rows = std::min(perChunk, rows - first);
    const size_t bytes = static_cast<size_t>(chunk.rows) * rowBytes;
    chunk.buffer = context.allocate(bytes, what);
    context.upload(*chunk.buffer, 0, data + static_cast<size_t>(first) * rowBytes, bytes);
    m.chunks.push_back(std::move(chunk));
  }
  return m;
}

std::vector<float> ropeTable(int maxSeqLen, int ropeDim, float theta) {
  const int half = ropeDim / 2;
  std::vector<float> table(static_cast<size_t>(maxSeqLen) * half * 2);
  for (int pos = 0; pos < maxSeqLen; pos++) {
    for (int i = 0; i < half; i++) {
      const float angle = ropeAngle(pos, i, ropeDim, theta);  // the CPU's angles, so both rotate alike
      table[(static_cast<size_t>(pos) * half + i) * 2] = std::cos(angle);
      table[(static_cast<size_t>(pos) * half + i) * 2 + 1] = std::sin(angle);
    }
  }
  return table;
}

Buffer& Kernels::scratch(std::unique_ptr<Buffer>& buffer, size_t bytes, const char* what) {
  if (!buffer || buffer->bytes < bytes) {
    context_.flush();  // recorded dispatches may still use the old buffer
    buffer.reset();
    buffer = context_.allocate(std::max<size_t>(bytes, 1 << 16), what);
  }
  return *buffer;
}

void Kernels::matmul(const Matrix& w, const Buffer& x, int n, Buffer& out) {
  const size_t cols = static_cast<size_t>(w.cols);
  const Shader shader = matmulShader(w.type);
  const bool quantized = w.type == FloatType::Q40 || w.type == FloatType::Q80;
  Buffer* quants = nullptr;
  Buffer* scales = nullptr;
  if (quantized) {
    const size_t blocks = static_cast<size_t>(n) * cols / kBlockSize;
    quants = &scratch(quants_, blocks * kBlockSize, "the quantized activations");
    scales = &scratch(scales_, blocks * sizeof(float), "the activation scales");
    const Grid g = elementGrid(blocks);
    const uint32_t push[] = {u32(blocks), g.x};
    context_.dispatch(Shader::QuantizeQ80, {{&x, 0, blocks * kBlockSize * sizeof(float)}, {quants, 0, blocks * kBlockSize}, {scales, 0, blocks * sizeof(float)}},
                      push, sizeof push, g.x, g.y);
  }
  const uint32_t tokenGroups = (static_cast<uint32_t>(n) + kTokensPerGroup - 1) / kTokensPerGroup;
  for (const Matrix::Chunk& chunk : w.chunks) {
    const Grid g = grid(static_cast<size_t>(chunk.rows));
    const uint32_t push[] = {u32(chunk.rows), u32(cols), u32(n), u32(chunk.first), u32(w.rows), g.x};
    if (quantized) {
      context_.dispatch(shader, {{chunk.buffer.get()}, {quants, 0, static_cast<size_t>(n) * cols}, {scales, 0, static_cast<size_t>(n) * cols / kBlockSize * 4}, {&out}},
                        push, sizeof push, g.x, g.y, tokenGroups);
    } else {
      context_.dispatch(shader, {{chunk.buffer.get()}, {&x, 0, static_cast<size_t>(n) * cols * sizeof(float)}, {&out}}, push, sizeof push, g.x, g.y, tokenGroups);
    }
  }
}

void Kernels::rmsNorm(const Buffer& x, const Buffer& weight, Buffer& out, int rows, int dim, float eps) {
  const Grid g = grid(static_cast<size_t>(rows));
  struct {
    uint32_t rows, dim;
    float eps;
    uint32_t groupsX;
  } push{u32(rows), u32(dim), eps, g.x};
  context_.dispatch(Shader::RmsNorm, {{&x}, {&weight}, {&out}}, &push, sizeof push, g.x, g.y);
}

void Kernels::rope(Buffer& v, const Buffer& table, int vectors, int heads, int headDim, int ropeDim, int pos, bool interleaved, int first) {
  const uint32_t pairs = u32(ropeDim / 2);
  const Grid g = elementGrid(static_cast<size_t>(vectors) * pairs);
  const uint32_t push[] = {u32(vectors), u32(heads), u32(headDim), pairs, u32(pos), interleaved ? 1u : 0u, g.x, u32(first)};
  context_.dispatch(Shader::Rope, {{&v}, {&table}}, push, sizeof push, g.x, g.y);
}

void Kernels::storeKv(const Buffer& k, const Buffer& v, Buffer& keyCache, Buffer& valueCache, FloatType cacheType, int n, int kvDim, int pos, int first) {
  const size_t count = static_cast<size_t>(n) * kvDim;
  const Grid g = elementGrid(count);
  const uint32_t push[] = {u32(count), u32(kvDim), u32(pos), g.x, u32(first)};
  context_.dispatch(cacheType == FloatType::F16 ? Shader::KvStoreF16 : Shader::KvStoreF32, {{&k}, {&v}, {&keyCache}, {&valueCache}}, push, sizeof push, g.x, g.y);
}

void Kernels::attention(const Buffer& q, const Buffer& keyCache, const Buffer& valueCache, FloatType cacheType, Buffer& out, int n, int pos, int heads,
                        int headDim, int kvDim, int group, int headOffset, int first) {
  const size_t stride = static_cast<size_t>(pos) + n;  // the longest causal row
  const size_t perToken = static_cast<size_t>(heads) * stride * sizeof(float);
  const size_t budget = std::min(kScoreBudget, context_.maxBinding());
  const int tokensPerDispatch = static_cast<int>(std::max<size_t>(1, std::min<size_t>(budget / perToken, kMaxGroups)));
  Buffer& scores = scratch(scores_, perToken * std::min(tokensPerDispatch, n), "the attention scores");
  const float scale = 1.0f / std::sqrt(static_cast<float>(headDim));
  const Shader shader = cacheType == FloatType::F16 ? Shader::AttentionF16 : Shader::AttentionF32;
  for (int done = 0; done < n; done += tokensPerDispatch) {
    const int count = std::min(tokensPerDispatch, n - done);
    struct {
      uint32_t heads, headDim, kvDim, group, headOffset, pos, first, scoreStride;
      float scale;
    } push{u32(heads), u32(headDim), u32(kvDim), u32(group), u32(headOffset), u32(pos + done), u32(first + done), u32(stride), scale};
    context_.dispatch(shader, {{&q}, {&keyCache}, {&valueCache}, {&scores}, {&out}}, &push, sizeof push, u32(heads), u32(count));
  }
}

void Kernels::siluMul(Buffer& gate, const Buffer& up, size_t count) {
  const Grid g = elementGrid(count);
  const uint32_t push[] = {u32(count), g.x};
  context_.dispatch(Shader::SiluMul, {{&gate}, {&up}}, push, sizeof push, g.x, g.y);
}

void Kernels::add(Buffer& x, const Buffer& y, size_t count, size_t period) {
  const Grid g = elementGrid(count);
  const uint32_t push[] = {u32(count), u32(period), g.x};
  context_.dispatch(Shader::Add, {{&x}, {&y}}, push, sizeof push, g.x, g.y);
}

void Kernels::gatherRows(const Buffer& src, const Binding& index, Buffer& dst, int rows, int dim) {
  const Grid g = elementGrid(static_cast<size_t>(rows) * dim);
  const uint32_t push[] = {u32(rows), u32(dim), g.x};
  context_.dispatch(Shader::GatherRows, {{&src}, index, {&dst}}, push, sizeof push, g.x, g.y);
}

void Kernels::scatterAddRows(Buffer& dst, const Buffer& y, const Binding& index, const Binding& weight, int rows, int dim) {
  const Grid g = elementGrid(static_cast<size_t>(rows) * dim);
  const uint32_t push[] = {u32(rows), u32(dim), g.x};
  context_.dispatch(Shader::ScatterAddRows, {{&dst}, {&y}, index, weight}, push, sizeof push, g.x, g.y);
}

}  // namespace glm::vulkan
