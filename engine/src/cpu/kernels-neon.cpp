// NEON kernels for 64-bit ARM (baseline ARMv8-A, no dot-product extension needed): the quantized
// matmul and attention. Tested under qemu-user against the x86 build (npm run test:arm).
#include "kernels-simd.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include <cstring>

#include "../quant.h"

namespace glm::neon {

namespace {

inline float scaleOf(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return f16ToF32(h);
}

// Exact int32 sum of 32 int8 x int8 products.
inline int32_t dot32(int8x16_t a0, int8x16_t a1, int8x16_t b0, int8x16_t b1) {
  int32x4_t acc = vdupq_n_s32(0);
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a0), vget_low_s8(b0)));
  acc = vpadalq_s16(acc, vmull_s8(vget_high_s8(a0), vget_high_s8(b0)));
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a1), vget_low_s8(b1)));
  acc = vpadalq_s16(acc, vmull_s8(vget_high_s8(a1), vget_high_s8(b1)));
  return vaddvq_s32(acc);
}

template <bool kQ40>
float dotRow(const uint8_t* w, const QuantizedRow& x, size_t blocks) {
  const size_t wBytes = kQ40 ? kQ40BlockBytes : kQ80BlockBytes;
  float sum = 0.0f;
  for (size_t b = 0; b < blocks; b++) {
    const uint8_t* wb = w + b * wBytes;
    const int8_t* q = reinterpret_cast<const int8_t*>(x.blocks + b * kQ80BlockBytes + 2);
    int8x16_t w0, w1;
    if (kQ40) {
      const uint8x16_t packed = vld1q_u8(wb + 2);
      const int8x16_t eight = vdupq_n_s8(8);
      w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0x0f))), eight);  // values 0..15
      w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(packed, 4)), eight);                // values 16..31
    } else {
      w0 = vld1q_s8(reinterpret_cast<const int8_t*>(wb + 2));
      w1 = vld1q_s8(reinterpret_cast<const int8_t*>(wb + 18));
    }
    const int32_t isum = dot32(w0, w1, vld1q_s8(q), vld1q_s8(q + 16));
    sum += static_cast<float>(isum) * (scaleOf(wb) * x.scales[b]);
  }
  return sum;
}

template <bool kQ40>
void matmulQ(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const QuantizedRow x[], int n, size_t blocks, float* out,
             size_t outStride) {
  for (int r = rowBegin; r < rowEnd; r++)
    for (int t = 0; t < n; t++) out[t * outStride + r] = dotRow<kQ40>(w + r * rowBytes, x[t], blocks);
}

inline float32x4_t load4(const float* p) { return vld1q_f32(p); }
inline float32x4_t load4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return f16ToF32(*p); }

}  // namespace

void matmulQ40(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const QuantizedRow x[], int n, size_t blocks, float* out,
               size_t outStride) {
  matmulQ<true>(w, rowBytes, rowBegin, rowEnd, x, n, blocks, out, outStride);
}

void matmulQ80(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const QuantizedRow x[], int n, size_t blocks, float* out,
               size_t outStride) {
  matmulQ<false>(w, rowBytes, rowBegin, rowEnd, x, n, blocks, out, outStride);
}

float dotF32(const float* a, const float* b, size_t n) {
  float32x4_t acc = vdupq_n_f32(0.0f);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) acc = vfmaq_f32(acc, vld1q_f32(a + i), vld1q_f32(b + i));
  float sum = vaddvq_f32(acc);
  for (; i < n; i++) sum += a[i] * b[i];
  return sum;
}

template <typename T>
void attentionScores(const float* q, int heads, const T* keys, size_t stride, int count, int dim, float scale, float* scores) {
  for (int h = 0; h < heads; h++) {
    const float* qh = q + h * dim;
    for (int j = 0; j < count; j++) {
      const T* k = keys + j * stride;
      float32x4_t acc = vdupq_n_f32(0.0f);
      int d = 0;
      for (; d + 4 <= dim; d += 4) acc = vfmaq_f32(acc, vld1q_f32(qh + d), load4(k + d));
      float sum = vaddvq_f32(acc);
      for (; d < dim; d++) sum += qh[d] * load1(k + d);
      scores[h * count + j] = scale * sum;
    }
  }
}

template <typename T>
void attentionValues(const float* p, const T* values, size_t stride, int count, int dim, float* out) {
  int d = 0;
  for (; d + 16 <= dim; d += 16) {
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    for (int j = 0; j < count; j++) {
      const T* v = values + j * stride + d;
      for (int k = 0; k < 4; k++) acc[k] = vfmaq_n_f32(acc[k], load4(v + 4 * k), p[j]);
    }
    for (int k = 0; k < 4; k++) vst1q_f32(out + d + 4 * k, acc[k]);
  }
  for (; d < dim; d++) {
    float sum = 0.0f;
    for (int j = 0; j < count; j++) sum += p[j] * load1(values + j * stride + d);
    out[d] = sum;
  }
}

template void attentionScores<float>(const float*, int, const float*, size_t, int, int, float, float*);
template void attentionScores<uint16_t>(const float*, int, const uint16_t*, size_t, int, int, float, float*);
template void attentionValues<float>(const float*, const float*, size_t, int, int, float*);
template void attentionValues<uint16_t>(const float*, const uint16_t*, size_t, int, int, float*);

}  // namespace glm::neon

#endif
