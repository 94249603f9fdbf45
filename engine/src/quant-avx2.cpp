// AVX2 + F16C encoders: the same results, bit for bit, as the scalar code in quant.cpp (same float32
// operations in the same order, no fused multiply-add), eight values per instruction. Built for any
// x86-64 with GCC or Clang; used only when the CPU reports both extensions at run time.
#include "quant-simd.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC target("avx2,f16c")
#include <immintrin.h>

#include <cstring>

namespace glm {

namespace {

// Eight source values widened to float32.
inline __m256 load8(SourceType type, const uint8_t* src) {
  switch (type) {
    case SourceType::BF16:
      return _mm256_castsi256_ps(
          _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src))), 16));
    case SourceType::F16:
      return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
    case SourceType::F32:
    default:
      return _mm256_loadu_ps(reinterpret_cast<const float*>(src));
  }
}

inline float horizontalMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline float horizontalMin(__m256 v) {
  __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_min_ps(m, _mm_movehl_ps(m, m));
  m = _mm_min_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// Dwords of two packs in element order: see the packing comments below.
inline __m256i packOrder() { return _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); }

void encodeBlockQ40(const __m256 x[4], uint8_t* out) {
  const float gmax = horizontalMax(_mm256_max_ps(_mm256_max_ps(x[0], x[1]), _mm256_max_ps(x[2], x[3]))) + 0.0f;
  const float gmin = horizontalMin(_mm256_min_ps(_mm256_min_ps(x[0], x[1]), _mm256_min_ps(x[2], x[3]))) + 0.0f;
  const float delta = (-gmin > gmax ? gmin : gmax) / -8.0f;
  const float inverse = delta != 0.0f ? 1.0f / delta : 0.0f;
  const uint16_t scale = f32ToF16(delta);
  std::memcpy(out, &scale, 2);
  const __m256 inv = _mm256_set1_ps(inverse), offset = _mm256_set1_ps(8.5f);
  const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(15.0f);
  __m256i q[4];
  for (int k = 0; k < 4; k++) {
    __m256 v = _mm256_add_ps(_mm256_mul_ps(x[k], inv), offset);
    v = _mm256_min_ps(_mm256_max_ps(v, zero), top);
    q[k] = _mm256_cvttps_epi32(v);
  }
  // byte j = code j | code j+16 << 4: elements 0-7 pair with 16-23, 8-15 with 24-31
  const __m256i a = _mm256_or_si256(q[0], _mm256_slli_epi32(q[2], 4));
  const __m256i b = _mm256_or_si256(q[1], _mm256_slli_epi32(q[3], 4));
  // packs interleave 128-bit lanes: dwords come out as a0-3 b0-3 0 0 a4-7 b4-7 0 0
  const __m256i words = _mm256_packus_epi32(a, b);
  const __m256i bytes = _mm256_packus_epi16(words, _mm256_setzero_si256());
  const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, packOrder());
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2), _mm256_castsi256_si128(ordered));
}

void encodeBlockQ80(const __m256 x[4], uint8_t* out) {
  const float gmax = horizontalMax(_mm256_max_ps(_mm256_max_ps(x[0], x[1]), _mm256_max_ps(x[2], x[3]))) + 0.0f;
  const float gmin = horizontalMin(_mm256_min_ps(_mm256_min_ps(x[0], x[1]), _mm256_min_ps(x[2], x[3]))) + 0.0f;
  const float absmax = -gmin > gmax ? -gmin : gmax;
  const float delta = absmax / 127.0f;
  const float inverse = delta != 0.0f ? 1.0f / delta : 0.0f;
  const uint16_t scale = f32ToF16(delta);
  std::memcpy(out, &scale, 2);
  const __m256 inv = _mm256_set1_ps(inverse);
  __m256i q[4];
  for (int k = 0; k < 4; k++) {
    q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(x[k], inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // dwords after the two packs: q0[0-3] q1[0-3] q2[0-3] q3[0-3] q0[4-7] q1[4-7] q2[4-7] q3[4-7]
  const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2), _mm256_permutevar8x32_epi32(bytes, packOrder()));
}

}  // namespace

size_t encodeSourceAvx2(SourceType srcType, const uint8_t* src, FloatType dstType, uint8_t* dst, size_t n,
                        size_t& nonFinite) {
  const size_t srcBytes = sourceElementBytes(srcType);
  const size_t blocks = n / kBlockSize;
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 largest = _mm256_set1_ps(3.40282347e38f);
  for (size_t b = 0; b < blocks; b++) {
    const uint8_t* s = src + b * kBlockSize * srcBytes;
    const __m256 x[4] = {load8(srcType, s), load8(srcType, s + 8 * srcBytes), load8(srcType, s + 16 * srcBytes),
                         load8(srcType, s + 24 * srcBytes)};
    for (int k = 0; k < 4; k++) {  // NaN or infinite: |x| is not <= FLT_MAX
      const __m256 bad = _mm256_cmp_ps(_mm256_and_ps(x[k], magnitude), largest, _CMP_NLE_UQ);
      nonFinite += static_cast<size_t>(__builtin_popcount(_mm256_movemask_ps(bad)));
    }
    switch (dstType) {
      case FloatType::Q40:
        encodeBlockQ40(x, dst + b * kQ40BlockBytes);
        break;
      case FloatType::Q80:
        encodeBlockQ80(x, dst + b * kQ80BlockBytes);
        break;
      case FloatType::F16:
        for (int k = 0; k < 4; k++) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (b * kBlockSize + 8 * k) * 2),
                           _mm256_cvtps_ph(x[k], _MM_FROUND_TO_NEAREST_INT));
        }
        break;
      case FloatType::F32:
        for (int k = 0; k < 4; k++) _mm256_storeu_ps(reinterpret_cast<float*>(dst) + b * kBlockSize + 8 * k, x[k]);
        break;
    }
  }
  return blocks * kBlockSize;
}

bool cpuHasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && cpuHasF16c();
}

}  // namespace glm

#else

namespace glm {
size_t encodeSourceAvx2(SourceType, const uint8_t*, FloatType, uint8_t*, size_t, size_t&) { return 0; }
bool cpuHasAvx2() { return false; }
}  // namespace glm

#endif
