// The quantized matmul with AVX-512 VNNI (256-bit vectors): one vpdpbusd replaces the AVX2 path's
// maddubs + madd pair. Same results as kernels-avx2.cpp; chosen at run time where the CPU has it.
#include "kernels-simd.h"

#include "../quant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")
#include <immintrin.h>

#include <cstring>

namespace glm::vnni {

#include "simd-common.inc"

#define GLM_INT8_DOT(absW, signedX) _mm256_dpbusd_epi32(_mm256_setzero_si256(), absW, signedX)
#define GLM_U8_DOT(bias, u, s) _mm256_dpbusd_epi32(bias, u, s)
#include "quant-tile.inc"
#undef GLM_U8_DOT
#undef GLM_INT8_DOT

bool available() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuHasF16c() &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

}  // namespace glm::vnni

#else

namespace glm::vnni {
bool available() { return false; }
void matmulQ40(const uint8_t*, size_t, int, int, const QuantizedRow*, int, size_t, float*, size_t) {}
void matmulQ80(const uint8_t*, size_t, int, int, const QuantizedRow*, int, size_t, float*, size_t) {}
}  // namespace glm::vnni

#endif
