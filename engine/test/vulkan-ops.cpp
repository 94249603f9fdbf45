// glm-vulkan-ops: runs every GPU kernel and the CPU kernel it mirrors on the same random data and prints,
// per case, the largest difference and the largest reference magnitude as JSON lines; the tolerances
// live in test/external/vulkan-ops.test.ts. Shapes are odd on purpose: inner dimensions that are
// multiples of 32 but not of 64 (352), token counts that are not multiples of the shaders' tiles,
// grouped-query heads with a slice starting mid-group, and a matrix split over several bindings.
//   glm-vulkan-ops [--device vulkan|vulkan:N]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../src/cpu/kernels.h"
#include "../src/device.h"
#include "../src/vulkan/kernels.h"

using namespace glm;

namespace {

std::mt19937 rng(1234);

std::vector<float> randomRows(size_t count, float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(count);
  for (float& x : v) x = normal(rng);
  return v;
}

void report(const std::string& op, const std::string& shape, const std::vector<float>& gpu, const std::vector<float>& cpu) {
  double maxDiff = 0.0, maxRef = 0.0;
  for (size_t i = 0; i < cpu.size(); i++) {
    const double d = std::fabs(static_cast<double>(gpu[i]) - cpu[i]);
    maxDiff = std::isnan(d) ? INFINITY : std::max(maxDiff, d);
    maxRef = std::max(maxRef, std::fabs(static_cast<double>(cpu[i])));
  }
  std::printf("{\"op\":\"%s\",\"shape\":\"%s\",\"values\":%zu,\"max_diff\":%.9g,\"max_ref\":%.9g}\n", op.c_str(), shape.c_str(), cpu.size(), maxDiff, maxRef);
  std::fflush(stdout);
}

struct Gpu {
  vulkan::Context& context;
  vulkan::Kernels kernels;

  std::unique_ptr<vulkan::Buffer> upload(const void* data, size_t bytes) {
    auto b = context.allocate(bytes, "test data");
    context.upload(*b, 0, data, bytes);
    return b;
  }
  std::unique_ptr<vulkan::Buffer> upload(const std::vector<float>& v) { return upload(v.data(), v.size() * sizeof(float)); }
  std::vector<float> read(const vulkan::Buffer& b, size_t count) {
    context.flush();
    std::vector<float> v(count);
    context.download(b, 0, v.data(), count * sizeof(float));
    return v;
  }
};

const char* typeName(FloatType t) { return t == FloatType::F32 ? "f32" : t == FloatType::F16 ? "f16" : t == FloatType::Q40 ? "q40" : "q80"; }

void matmulCase(Gpu& gpu, FloatType type, int rows, int cols, int n, int rowsPerChunk) {
  const std::vector<float> source = randomRows(static_cast<size_t>(rows) * cols, 0.1f);
  const size_t rowBytes = encodedBytes(type, cols);
  std::vector<uint8_t> weights(rowBytes * rows);
  encodeF32(type, source.data(), weights.data(), source.size());
  const std::vector<float> x = randomRows(static_cast<size_t>(n) * cols);

  std::vector<float> cpu(static_cast<size_t>(n) * rows);
  std::vector<const float*> xs(n);
  std::vector<uint8_t> blocks(quantizedBlockBytes(cols) * n);
  std::vector<float> scales(quantizedScales(cols) * n);
  std::vector<int32_t> zero(quantizedZeroPointLanes(cols) * n);
  std::vector<QuantizedRow> xq(n, QuantizedRow{nullptr, nullptr, nullptr});
  for (int t = 0; t < n; t++) {
    xs[t] = x.data() + static_cast<size_t>(t) * cols;
    quantizeActivations(xs[t], cols, blocks.data() + t * quantizedBlockBytes(cols), scales.data() + t * quantizedScales(cols),
                        zero.data() + t * quantizedZeroPointLanes(cols));
    xq[t] = {blocks.data() + t * quantizedBlockBytes(cols), scales.data() + t * quantizedScales(cols), zero.data() + t * quantizedZeroPointLanes(cols)};
  }
  matmulRows(type, weights.data(), rowBytes, 0, rows, xs.data(), xq.data(), n, cols, cpu.data(), rows);

  const vulkan::Matrix w = vulkan::uploadMatrix(gpu.context, type, weights.data(), rows, cols, "test weights", rowsPerChunk * rowBytes);
  auto xb = gpu.upload(x);
  auto out = gpu.context.allocate(cpu.size() * sizeof(float), "test output");
  gpu.kernels.matmul(w, *xb, n, *out);
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols) + " n=" + std::to_string(n) + " chunks=" + std::to_string(w.chunks.size());
  report(std::string("matmul_") + typeName(type), shape, gpu.read(*out, cpu.size()), cpu);
}

void rmsNormCase(Gpu& gpu, int rows, int dim) {
  const std::vector<float> x = randomRows(static_cast<size_t>(rows) * dim), w = randomRows(dim);
  std::vector<float> cpu(x.size());
  for (int r = 0; r < rows; r++) rmsNorm(x.data() + static_cast<size_t>(r) * dim, w.data(), cpu.data() + static_cast<size_t>(r) * dim, dim, 1e-5f);
  auto xb = gpu.upload(x), wb = gpu.upload(w);
  gpu.kernels.rmsNorm(*xb, *wb, *xb, rows, dim, 1e-5f);  // in place, as the q/k norms run
  report("rms_norm", std::to_string(rows) + "x" + std::to_string(dim), gpu.read(*xb, cpu.size()), cpu);
}

void ropeCase(Gpu& gpu, bool interleaved) {
  const int n = 5, heads = 3, headDim = 64, ropeDim = 32, pos = 7;
  const float theta = 10000.0f;
  const std::vector<float> v = randomRows(static_cast<size_t>(n) * heads * headDim);
  std::vector<float> cpu = v;
  rope(cpu.data(), n, heads, headDim, ropeDim, pos, theta, interleaved);
  auto vb = gpu.upload(v);
  auto table = gpu.upload(vulkan::ropeTable(pos + n, ropeDim, theta));
  gpu.kernels.rope(*vb, *table, n * heads, heads, headDim, ropeDim, pos, interleaved);
  report(interleaved ? "rope_interleaved" : "rope_half_split", "n=5 heads=3 head_dim=64 rope_dim=32 pos=7", gpu.read(*vb, cpu.size()), cpu);
}

// n new tokens at pos (the cache already holds pos rows); `heads` query heads of a slice whose first
// head sits `headOffset` into its KV head's group.
void attentionCase(Gpu& gpu, FloatType cacheType, int n, int pos, int heads, int kvHeads, int group, int headOffset) {
  const int headDim = 64, kvDim = kvHeads * headDim, total = pos + n;
  const std::vector<float> keys = randomRows(static_cast<size_t>(total) * kvDim), values = randomRows(static_cast<size_t>(total) * kvDim);
  const std::vector<float> q = randomRows(static_cast<size_t>(n) * heads * headDim);
  // the CPU's view of the cache, encoded as the cache holds it
  std::vector<uint8_t> kc(encodedBytes(cacheType, keys.size())), vc(encodedBytes(cacheType, values.size()));
  encodeF32(cacheType, keys.data(), kc.data(), keys.size());
  encodeF32(cacheType, values.data(), vc.data(), values.size());
  std::vector<float> cpu(q.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(headDim));
  for (int t = 0; t < n; t++) {
    for (int h = 0; h < heads; h++) {
      const int kvHead = (h + headOffset) / group, visible = pos + t + 1;
      std::vector<float> scores(visible);
      const size_t offset = encodedBytes(cacheType, static_cast<size_t>(kvHead) * headDim);
      const size_t at = (static_cast<size_t>(t) * heads + h) * headDim;
      attentionScores(q.data() + at, 1, kc.data() + offset, cacheType, kvDim, visible, headDim, scale, scores.data());
      softmax(scores.data(), visible);
      attentionValues(scores.data(), vc.data() + offset, cacheType, kvDim, visible, headDim, cpu.data() + at);
    }
  }
  // The GPU cache gets the first pos rows through the store kernel in one call and the new rows in another.
  const size_t cacheBytes = encodedBytes(cacheType, keys.size());
  auto keyCache = gpu.context.allocate(cacheBytes, "test key cache"), valueCache = gpu.context.allocate(cacheBytes, "test value cache");
  auto k0 = gpu.upload(keys.data(), static_cast<size_t>(pos) * kvDim * 4), v0 = gpu.upload(values.data(), static_cast<size_t>(pos) * kvDim * 4);
  gpu.kernels.storeKv(*k0, *v0, *keyCache, *valueCache, cacheType, pos, kvDim, 0);
  auto k1 = gpu.upload(keys.data() + static_cast<size_t>(pos) * kvDim, static_cast<size_t>(n) * kvDim * 4);
  auto v1 = gpu.upload(values.data() + static_cast<size_t>(pos) * kvDim, static_cast<size_t>(n) * kvDim * 4);
  gpu.kernels.storeKv(*k1, *v1, *keyCache, *valueCache, cacheType, n, kvDim, pos);
  auto qb = gpu.upload(q);
  auto out = gpu.context.allocate(q.size() * 4, "test attention output");
  gpu.kernels.attention(*qb, *keyCache, *valueCache, cacheType, *out, n, pos, heads, headDim, kvDim, group, headOffset);
  const std::string shape = "n=" + std::to_string(n) + " pos=" + std::to_string(pos) + " heads=" + std::to_string(heads) + " kv_heads=" +
                            std::to_string(kvHeads) + " head_offset=" + std::to_string(headOffset);
  report(std::string("attention_") + typeName(cacheType), shape, gpu.read(*out, cpu.size()), cpu);
}

void elementwiseCases(Gpu& gpu) {
  const size_t rows = 3, width = 352, count = rows * width;
  const std::vector<float> g = randomRows(count), u = randomRows(count), bias = randomRows(width);
  std::vector<float> cpu(count);
  for (size_t i = 0; i < count; i++) cpu[i] = silu(g[i]) * u[i];
  auto gb = gpu.upload(g), ub = gpu.upload(u);
  gpu.kernels.siluMul(*gb, *ub, count);
  report("silu_mul", "3x352", gpu.read(*gb, count), cpu);

  for (size_t i = 0; i < count; i++) cpu[i] = g[i] + bias[i % width];
  auto xb = gpu.upload(g), bb = gpu.upload(bias);
  gpu.kernels.add(*xb, *bb, count, width);
  report("add_bias", "3x352", gpu.read(*xb, count), cpu);

  // Two of three rows gathered, weighted and added back to rows 2 and 0.
  const std::vector<uint32_t> index = {2, 0};
  const std::vector<float> weight = {0.25f, -1.5f};
  std::vector<float> expect = u;
  for (size_t r = 0; r < index.size(); r++)
    for (size_t c = 0; c < width; c++) expect[index[r] * width + c] += weight[r] * g[index[r] * width + c];
  auto src = gpu.upload(g), ib = gpu.upload(index.data(), index.size() * 4), wb = gpu.upload(weight), target = gpu.upload(u);
  auto gathered = gpu.context.allocate(index.size() * width * 4, "test rows");
  gpu.kernels.gatherRows(*src, {ib.get()}, *gathered, 2, static_cast<int>(width));
  gpu.kernels.scatterAddRows(*target, *gathered, {ib.get()}, {wb.get()}, 2, static_cast<int>(width));
  report("gather_scatter_add", "2 of 3 rows x 352", gpu.read(*target, count), expect);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string device = "vulkan";
    for (int i = 1; i + 1 < argc; i += 2) {
      if (std::strcmp(argv[i], "--device") == 0) device = argv[i + 1];
    }
    const int index = resolveDevice(parseDevice(device), [](const std::string&) {});
    if (index < 0) throw std::invalid_argument("glm-vulkan-ops needs a Vulkan device");
    vulkan::Context context(index);
    std::fprintf(stderr, "glm-vulkan-ops: %s (%s)\n", context.info().name.c_str(), context.info().type.c_str());
    Gpu gpu{context, vulkan::Kernels(context)};
    for (FloatType type : {FloatType::F32, FloatType::F16, FloatType::Q80, FloatType::Q40}) {
      matmulCase(gpu, type, 37, 352, 1, 37);   // decode
      matmulCase(gpu, type, 37, 352, 11, 37);  // prefill: a full tile of 8 tokens and a partial one
      matmulCase(gpu, type, 50, 352, 3, 12);   // split over five bindings
    }
    rmsNormCase(gpu, 7, 352);
    rmsNormCase(gpu, 12, 64);
    ropeCase(gpu, true);
    ropeCase(gpu, false);
    for (FloatType cache : {FloatType::F32, FloatType::F16}) {
      attentionCase(gpu, cache, 1, 9, 6, 2, 3, 0);   // decode, GQA 3:1
      attentionCase(gpu, cache, 70, 3, 4, 4, 1, 0);  // prefill longer than a workgroup
      attentionCase(gpu, cache, 4, 5, 2, 2, 3, 2);   // a slice starting mid-group
    }
    elementwiseCases(gpu);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "glm-vulkan-ops: error: %s\n", e.what());
    return 1;
  }
}
