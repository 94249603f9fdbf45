#include "kernels-simd.h"

#include "../quant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#include <cstring>

namespace glm::simd {

#include "simd-common.inc"

bool available() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuHasF16c();
}

float dotF32(const float* a, const float* b, size_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  float sum = sum8(_mm256_add_ps(acc0, acc1));
  for (; i < n; i++) sum += a[i] * b[i];
  return sum;
}

float dotF16(const uint16_t* a, const float* b, size_t n) {
  __m256 acc = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 w = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    acc = _mm256_fmadd_ps(w, _mm256_loadu_ps(b + i), acc);
  }
  float sum = sum8(acc);
  for (; i < n; i++) sum += _cvtsh_ss(a[i]) * b[i];
  return sum;
}

#define GLM_INT8_DOT(absW, signedX) _mm256_madd_epi16(_mm256_maddubs_epi16(absW, signedX), _mm256_set1_epi16(1))
#define GLM_U8_DOT(bias, u, s) _mm256_add_epi32(bias, GLM_INT8_DOT(u, s))
#include "quant-tile.inc"
#undef GLM_U8_DOT
#undef GLM_INT8_DOT

void quantizeQ80(const float* x, uint8_t* out, size_t n) {
  const __m256 signBit = _mm256_set1_ps(-0.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (size_t b = 0; b < n / kBlockSize; b++) {
    const float* v = x + b * kBlockSize;
    __m256 p[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
      p[k] = _mm256_loadu_ps(v + 8 * k);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(signBit, p[k]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float max = _mm_cvtss_f32(m);
    const float d = max / 127.0f;
    const __m256 id = _mm256_set1_ps(max != 0.0f ? 127.0f / max : 0.0f);
    uint8_t* block = out + b * kQ80BlockBytes;
    const uint16_t scale = f32ToF16(d);
    std::memcpy(block, &scale, 2);
    __m256i q[4];
    for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(p[k], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(block + 2), _mm256_permutevar8x32_epi32(bytes, order));
  }
}

// Eight cached values (f32, or f16 as uint16_t) widened to f32.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return _cvtsh_ss(*p); }

// Up to four query heads against each key row: the row is loaded once for all of them (they share it
// under grouped-query attention). Each head's arithmetic is that of a single head.
template <typename T, int heads>
void scoresForHeads(const float* q, const T* keys, size_t stride, int count, int dim, float scale, float* scores) {
  for (int j = 0; j < count; j++) {
    const T* k = keys + j * stride;
    __m256 even[heads], odd[heads];
    for (int h = 0; h < heads; h++) even[h] = odd[h] = _mm256_setzero_ps();
    int d = 0;
    for (; d + 16 <= dim; d += 16) {
      const __m256 k0 = load8(k + d), k1 = load8(k + d + 8);
      for (int h = 0; h < heads; h++) {
        even[h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * dim + d), k0, even[h]);
        odd[h] = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * dim + d + 8), k1, odd[h]);
      }
    }
    for (int h = 0; h < heads; h++) {
      float sum = sum8(_mm256_add_ps(even[h], odd[h]));
      for (int e = d; e < dim; e++) sum += q[h * dim + e] * load1(k + e);
      scores[h * count + j] = scale * sum;
    }
  }
}

template <typename T>
void attentionScores(const float* q, int heads, const T* keys, size_t stride, int count, int dim, float scale, float* scores) {
  int h = 0;
  for (; h + 4 <= heads; h += 4) scoresForHeads<T, 4>(q + h * dim, keys, stride, count, dim, scale, scores + h * count);
  for (; h + 2 <= heads; h += 2) scoresForHeads<T, 2>(q + h * dim, keys, stride, count, dim, scale, scores + h * count);
  for (; h < heads; h++) scoresForHeads<T, 1>(q + h * dim, keys, stride, count, dim, scale, scores + h * count);
}

template <typename T>
void attentionValues(const float* p, const T* values, size_t stride, int count, int dim, float* out) {
  int d = 0;
  // 64 output values at a time stay in eight registers while the rows stream by.
  for (; d + 64 <= dim; d += 64) {
    __m256 acc[8];
    for (int k = 0; k < 8; k++) acc[k] = _mm256_setzero_ps();
    for (int j = 0; j < count; j++) {
      const __m256 w = _mm256_set1_ps(p[j]);
      const T* v = values + j * stride + d;
      for (int k = 0; k < 8; k++) acc[k] = _mm256_fmadd_ps(w, load8(v + 8 * k), acc[k]);
    }
    for (int k = 0; k < 8; k++) _mm256_storeu_ps(out + d + 8 * k, acc[k]);
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

}  // namespace glm::simd

#else

namespace glm::simd {
bool available() { return false; }
float dotF32(const float*, const float*, size_t) { return 0.0f; }
float dotF16(const uint16_t*, const float*, size_t) { return 0.0f; }
void matmulQ40(const uint8_t*, size_t, int, int, const QuantizedRow*, int, size_t, float*, size_t) {}
void matmulQ80(const uint8_t*, size_t, int, int, const QuantizedRow*, int, size_t, float*, size_t) {}
template <typename T>
void attentionScores(const float*, int, const T*, size_t, int, int, float, float*) {}
template <typename T>
void attentionValues(const float*, const T*, size_t, int, int, float*) {}
template void attentionScores<float>(const float*, int, const float*, size_t, int, int, float, float*);
template void attentionScores<uint16_t>(const float*, int, const uint16_t*, size_t, int, int, float, float*);
template void attentionValues<float>(const float*, const float*, size_t, int, int, float*);
template void attentionValues<uint16_t>(const float*, const uint16_t*, size_t, int, int, float*);
void quantizeQ80(const float*, uint8_t*, size_t) {}
}  // namespace glm::simd

#endif
