// The instruction-set specific kernels: AVX2/FMA/F16C (kernels-avx2.cpp) and AVX-512 VNNI
// (kernels-vnni.cpp) for x86-64 with GCC or Clang, NEON (kernels-neon.cpp) for aarch64. kernels.cpp
// picks among them at run time.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace glm {

// Rows [rowBegin, rowEnd) of a quantized matrix against n prepared activation rows x[0..n).
using MatmulFn = void(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const QuantizedRow x[], int n, size_t blocks,
                      float* out, size_t outStride);
template <typename T>
using ScoresFn = void(const float* q, int heads, const T* keys, size_t stride, int count, int dim, float scale, float* scores);
template <typename T>
using ValuesFn = void(const float* p, const T* values, size_t stride, int count, int dim, float* out);

}  // namespace glm

namespace glm::simd {

bool available();
float dotF32(const float* a, const float* b, size_t n);
float dotF16(const uint16_t* a, const float* b, size_t n);
MatmulFn matmulQ40, matmulQ80;
template <typename T>
ScoresFn<T> attentionScores;
template <typename T>
ValuesFn<T> attentionValues;
void quantizeQ80(const float* x, uint8_t* out, size_t n);

}  // namespace glm::simd

namespace glm::vnni {

bool available();
MatmulFn matmulQ40, matmulQ80;

}  // namespace glm::vnni

#if defined(__aarch64__)
namespace glm::neon {

float dotF32(const float* a, const float* b, size_t n);
MatmulFn matmulQ40, matmulQ80;
template <typename T>
ScoresFn<T> attentionScores;
template <typename T>
ValuesFn<T> attentionValues;

}  // namespace glm::neon
#endif
