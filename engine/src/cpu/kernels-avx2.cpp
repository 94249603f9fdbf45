#include "kernels-simd.h"

#include "../quant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#include <cstring>

namespace glm::simd {

namespace {

inline float sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float scaleOf(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return _cvtsh_ss(h);
}

// Signed int8 dot product of 32 pairs, as 8 int32 partial sums turned to float.
inline __m256 dotBytes(__m256i a, __m256i b) {
  const __m256i absA = _mm256_sign_epi8(a, a);
  const __m256i signedB = _mm256_sign_epi8(b, a);
  const __m256i pairs = _mm256_maddubs_epi16(absA, signedB);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

// Decodes 32 q40 weights to int8 in [-8, 7].
inline __m256i q40Codes(const uint8_t* block) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
  return _mm256_sub_epi8(_mm256_and_si256(both, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}

}  // namespace

bool available() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
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

// Weight blocks decoded to int8 and the byte size of a block, for q40 and q80 weights.
template <bool kQ40>
inline __m256i weightCodes(const uint8_t* block) {
  return kQ40 ? q40Codes(block) : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
}
template <bool kQ40>
constexpr size_t weightBlockBytes() {
  return kQ40 ? kQ40BlockBytes : kQ80BlockBytes;
}

// A tile of `rows` weight rows (stride `rowBytes`) against `tokens` activation rows: one accumulator
// per pair, blocks in order. Every tile shape gives each pair the same arithmetic, so a batched
// prefill and token-by-token decoding agree bit for bit.
template <bool kQ40, int rows, int tokens>
inline void dotTile(const uint8_t* w, size_t rowBytes, const uint8_t* const x[], size_t blocks, float* out, size_t outStride) {
  __m256 acc[rows][tokens];
  for (int r = 0; r < rows; r++)
    for (int t = 0; t < tokens; t++) acc[r][t] = _mm256_setzero_ps();
  for (size_t b = 0; b < blocks; b++) {
    __m256i q[tokens];
    float dx[tokens];
    for (int t = 0; t < tokens; t++) {
      const uint8_t* xb = x[t] + b * kQ80BlockBytes;
      q[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 2));
      dx[t] = scaleOf(xb);
    }
    for (int r = 0; r < rows; r++) {
      const uint8_t* wb = w + r * rowBytes + b * weightBlockBytes<kQ40>();
      const __m256i codes = weightCodes<kQ40>(wb);
      const __m256i absW = _mm256_sign_epi8(codes, codes);
      const float dw = scaleOf(wb);
      for (int t = 0; t < tokens; t++) {
        const __m256i pairs = _mm256_maddubs_epi16(absW, _mm256_sign_epi8(q[t], codes));
        const __m256 sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
        acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx[t]), sums, acc[r][t]);
      }
    }
  }
  for (int r = 0; r < rows; r++)
    for (int t = 0; t < tokens; t++) out[t * outStride + r] = sum8(acc[r][t]);
}

float dotQ40Q80(const uint8_t* w, const uint8_t* x, size_t blocks) {
  float out;
  dotTile<true, 1, 1>(w, 0, &x, blocks, &out, 1);
  return out;
}

float dotQ80Q80(const uint8_t* w, const uint8_t* x, size_t blocks) {
  float out;
  dotTile<false, 1, 1>(w, 0, &x, blocks, &out, 1);
  return out;
}

template <bool kQ40>
void matmulQ(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const uint8_t* const x[], int n, size_t blocks, float* out,
             size_t outStride) {
  int r = rowBegin;
  if (n >= 4) {  // prefill is compute-bound: two rows by four tokens reuse each loaded block
    for (; r + 2 <= rowEnd; r += 2) {
      int t = 0;
      for (; t + 4 <= n; t += 4) dotTile<kQ40, 2, 4>(w + r * rowBytes, rowBytes, x + t, blocks, out + t * outStride + r, outStride);
      for (; t < n; t++) dotTile<kQ40, 2, 1>(w + r * rowBytes, rowBytes, x + t, blocks, out + t * outStride + r, outStride);
    }
  }
  // Decode is memory-bound: one row after the other keeps a single sequential stream through the
  // weights, which the hardware prefetcher follows (interleaving rows measured 3x slower).
  for (; r < rowEnd; r++)
    for (int t = 0; t < n; t++) dotTile<kQ40, 1, 1>(w + r * rowBytes, rowBytes, x + t, blocks, out + t * outStride + r, outStride);
}

void matmulQ40(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const uint8_t* const x[], int n, size_t blocks, float* out,
               size_t outStride) {
  matmulQ<true>(w, rowBytes, rowBegin, rowEnd, x, n, blocks, out, outStride);
}

void matmulQ80(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const uint8_t* const x[], int n, size_t blocks, float* out,
               size_t outStride) {
  matmulQ<false>(w, rowBytes, rowBegin, rowEnd, x, n, blocks, out, outStride);
}

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

void axpy(float a, const float* x, float* y, size_t n) {
  const __m256 va = _mm256_set1_ps(a);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; i++) y[i] += a * x[i];
}

}  // namespace glm::simd

#else

namespace glm::simd {
bool available() { return false; }
float dotF32(const float*, const float*, size_t) { return 0.0f; }
float dotF16(const uint16_t*, const float*, size_t) { return 0.0f; }
float dotQ40Q80(const uint8_t*, const uint8_t*, size_t) { return 0.0f; }
float dotQ80Q80(const uint8_t*, const uint8_t*, size_t) { return 0.0f; }
void matmulQ40(const uint8_t*, size_t, int, int, const uint8_t* const*, int, size_t, float*, size_t) {}
void matmulQ80(const uint8_t*, size_t, int, int, const uint8_t* const*, int, size_t, float*, size_t) {}
void axpy(float, const float*, float*, size_t) {}
void quantizeQ80(const float*, uint8_t*, size_t) {}
}  // namespace glm::simd

#endif
