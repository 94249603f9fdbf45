#include "kernels.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels-simd.h"

namespace glm {

namespace {
void quantizeQ80Scalar(const float* x, uint8_t* out, size_t n) {
  for (size_t b = 0; b < n / kBlockSize; b++) {
    const float* v = x + b * kBlockSize;
    float amax = 0.0f;
    for (size_t j = 0; j < kBlockSize; j++) amax = std::fmax(amax, std::fabs(v[j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    uint8_t* block = out + b * kQ80BlockBytes;
    const uint16_t scale = f32ToF16(d);
    std::memcpy(block, &scale, 2);
    int8_t* q = reinterpret_cast<int8_t*>(block + 2);
    for (size_t j = 0; j < kBlockSize; j++) q[j] = static_cast<int8_t>(std::nearbyint(v[j] * id));
  }
}

float dotF32Scalar(const float* a, const float* b, size_t n) {
  float sum = 0.0f;
  for (size_t i = 0; i < n; i++) sum += a[i] * b[i];
  return sum;
}

float dotF16Scalar(const uint16_t* a, const float* b, size_t n) {
  float sum = 0.0f;
  for (size_t i = 0; i < n; i++) sum += f16ToF32(a[i]) * b[i];
  return sum;
}

float dotQ40Q80Scalar(const uint8_t* w, const uint8_t* x, size_t blocks) {
  float sum = 0.0f;
  for (size_t b = 0; b < blocks; b++) {
    const uint8_t* wb = w + b * kQ40BlockBytes;
    const uint8_t* xb = x + b * kQ80BlockBytes;
    uint16_t dw, dx;
    std::memcpy(&dw, wb, 2);
    std::memcpy(&dx, xb, 2);
    const int8_t* q = reinterpret_cast<const int8_t*>(xb + 2);
    int acc = 0;
    for (size_t j = 0; j < kBlockSize / 2; j++) {
      acc += ((wb[2 + j] & 0x0f) - 8) * q[j];
      acc += ((wb[2 + j] >> 4) - 8) * q[j + kBlockSize / 2];
    }
    sum += static_cast<float>(acc) * f16ToF32(dw) * f16ToF32(dx);
  }
  return sum;
}

float dotQ80Q80Scalar(const uint8_t* w, const uint8_t* x, size_t blocks) {
  float sum = 0.0f;
  for (size_t b = 0; b < blocks; b++) {
    const uint8_t* wb = w + b * kQ80BlockBytes;
    const uint8_t* xb = x + b * kQ80BlockBytes;
    uint16_t dw, dx;
    std::memcpy(&dw, wb, 2);
    std::memcpy(&dx, xb, 2);
    const int8_t* qw = reinterpret_cast<const int8_t*>(wb + 2);
    const int8_t* qx = reinterpret_cast<const int8_t*>(xb + 2);
    int acc = 0;
    for (size_t j = 0; j < kBlockSize; j++) acc += qw[j] * qx[j];
    sum += static_cast<float>(acc) * f16ToF32(dw) * f16ToF32(dx);
  }
  return sum;
}

inline float widen(float v) { return v; }
inline float widen(uint16_t v) { return f16ToF32(v); }

template <typename T>
void attentionScoresScalar(const float* q, int heads, const T* keys, size_t stride, int count, int dim, float scale, float* scores) {
  for (int h = 0; h < heads; h++)
    for (int j = 0; j < count; j++) {
      float sum = 0.0f;
      for (int d = 0; d < dim; d++) sum += q[h * dim + d] * widen(keys[j * stride + d]);
      scores[h * count + j] = scale * sum;
    }
}

template <typename T>
void attentionValuesScalar(const float* p, const T* values, size_t stride, int count, int dim, float* out) {
  for (int d = 0; d < dim; d++) out[d] = 0.0f;
  for (int j = 0; j < count; j++)
    for (int d = 0; d < dim; d++) out[d] += p[j] * widen(values[j * stride + d]);
}

template <float (*Dot)(const uint8_t*, const uint8_t*, size_t)>
void matmulScalar(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const QuantizedRow x[], int n, size_t blocks, float* out,
                  size_t outStride) {
  for (int r = rowBegin; r < rowEnd; r++)
    for (int t = 0; t < n; t++) out[t * outStride + r] = Dot(w + r * rowBytes, x[t].blocks, blocks);
}

struct DotKernels {
  float (*f32)(const float*, const float*, size_t);
  float (*f16)(const uint16_t*, const float*, size_t);
  MatmulFn* matmulQ40;
  MatmulFn* matmulQ80;
  ScoresFn<float>* scoresF32;
  ScoresFn<uint16_t>* scoresF16;
  ValuesFn<float>* valuesF32;
  ValuesFn<uint16_t>* valuesF16;
  void (*quantizeQ80)(const float*, uint8_t*, size_t);
  const char* name;
};

// The best path the CPU supports, or a slower one named by GLM_ENGINE_KERNELS (scalar, avx2) so that
// every path can be tested on one machine.
DotKernels chooseKernels() {
  const char* forced = std::getenv("GLM_ENGINE_KERNELS");
  const std::string choice = forced ? forced : "";
  if (vnni::available() && choice != "avx2" && choice != "scalar") {
    return {simd::dotF32, simd::dotF16, vnni::matmulQ40, vnni::matmulQ80, simd::attentionScores<float>, simd::attentionScores<uint16_t>, simd::attentionValues<float>, simd::attentionValues<uint16_t>, simd::quantizeQ80, "avx512-vnni"};
  }
#if defined(__aarch64__)
  if (choice != "scalar") {
    return {neon::dotF32, dotF16Scalar, neon::matmulQ40, neon::matmulQ80, neon::attentionScores<float>, neon::attentionScores<uint16_t>,
            neon::attentionValues<float>, neon::attentionValues<uint16_t>, quantizeQ80Scalar, "neon"};
  }
#endif
  if (simd::available() && choice != "scalar") {
    return {simd::dotF32, simd::dotF16, simd::matmulQ40, simd::matmulQ80, simd::attentionScores<float>, simd::attentionScores<uint16_t>, simd::attentionValues<float>, simd::attentionValues<uint16_t>, simd::quantizeQ80, "avx2"};
  }
  return {dotF32Scalar, dotF16Scalar, matmulScalar<dotQ40Q80Scalar>, matmulScalar<dotQ80Q80Scalar>,
          attentionScoresScalar<float>, attentionScoresScalar<uint16_t>, attentionValuesScalar<float>, attentionValuesScalar<uint16_t>,
          quantizeQ80Scalar, "scalar"};
}

const DotKernels kernels = chooseKernels();

}  // namespace

const char* kernelPath() { return kernels.name; }

void quantizeActivations(const float* x, size_t cols, uint8_t* blocks, float* scales, int32_t* zeroPoint) {
  kernels.quantizeQ80(x, blocks, cols);
  for (size_t b = 0; b < cols / kBlockSize; b++) {
    const uint8_t* block = blocks + b * kQ80BlockBytes;
    uint16_t scale;
    std::memcpy(&scale, block, 2);
    scales[b] = f16ToF32(scale);
    const int8_t* q = reinterpret_cast<const int8_t*>(block + 2);
    for (int lane = 0; lane < 8; lane++) zeroPoint[b * 8 + lane] = -8 * (q[4 * lane] + q[4 * lane + 1] + q[4 * lane + 2] + q[4 * lane + 3]);
  }
}

void matmulRows(FloatType type, const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const float* const x[], const QuantizedRow xq[],
                int n, size_t cols, float* out, size_t outStride) {
  switch (type) {
    case FloatType::Q40:
      kernels.matmulQ40(w, rowBytes, rowBegin, rowEnd, xq, n, cols / kBlockSize, out, outStride);
      return;
    case FloatType::Q80:
      kernels.matmulQ80(w, rowBytes, rowBegin, rowEnd, xq, n, cols / kBlockSize, out, outStride);
      return;
    case FloatType::F32:
      for (int r = rowBegin; r < rowEnd; r++)
        for (int t = 0; t < n; t++) out[t * outStride + r] = kernels.f32(reinterpret_cast<const float*>(w + r * rowBytes), x[t], cols);
      return;
    case FloatType::F16:
      for (int r = rowBegin; r < rowEnd; r++)
        for (int t = 0; t < n; t++) out[t * outStride + r] = kernels.f16(reinterpret_cast<const uint16_t*>(w + r * rowBytes), x[t], cols);
      return;
  }
}

void attentionScores(const float* q, int heads, const uint8_t* keys, FloatType type, size_t stride, int count, int dim, float scale, float* scores) {
  if (type == FloatType::F16) {
    kernels.scoresF16(q, heads, reinterpret_cast<const uint16_t*>(keys), stride, count, dim, scale, scores);
  } else {
    kernels.scoresF32(q, heads, reinterpret_cast<const float*>(keys), stride, count, dim, scale, scores);
  }
}

void attentionValues(const float* p, const uint8_t* values, FloatType type, size_t stride, int count, int dim, float* out) {
  if (type == FloatType::F16) {
    kernels.valuesF16(p, reinterpret_cast<const uint16_t*>(values), stride, count, dim, out);
  } else {
    kernels.valuesF32(p, reinterpret_cast<const float*>(values), stride, count, dim, out);
  }
}

void rmsNorm(const float* x, const float* weight, float* out, int n, float eps) {
  float sum = 0.0f;
  for (int i = 0; i < n; i++) sum += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  for (int i = 0; i < n; i++) out[i] = weight[i] * (x[i] * scale);
}

float ropeAngle(int pos, int i, int ropeDim, float theta) {
  return static_cast<float>(pos) * std::pow(theta, -2.0f * static_cast<float>(i) / static_cast<float>(ropeDim));
}

void rope(float* vectors, int n, int heads, int headDim, int ropeDim, int pos, float theta, bool interleaved) {
  const int half = ropeDim / 2;
  for (int t = 0; t < n; t++) {
    for (int i = 0; i < half; i++) {
      const float angle = ropeAngle(pos + t, i, ropeDim, theta);
      const float c = std::cos(angle), s = std::sin(angle);
      for (int head = 0; head < heads; head++) {
        float* v = vectors + (static_cast<size_t>(t) * heads + head) * headDim;
        const int a = interleaved ? 2 * i : i;
        const int b = interleaved ? 2 * i + 1 : i + half;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * c - x1 * s;
        v[b] = x1 * c + x0 * s;
      }
    }
  }
}

void softmax(float* x, int n) {
  float max = x[0];
  for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
  float sum = 0.0f;
  for (int i = 0; i < n; i++) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  for (int i = 0; i < n; i++) x[i] /= sum;
}

float silu(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace glm
