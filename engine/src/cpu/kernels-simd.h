// The AVX2/FMA/F16C dot products (kernels-avx2.cpp), compiled for x86-64 with GCC or Clang and
// used only when the CPU has those extensions.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace glm::simd {

bool available();
float dotF32(const float* a, const float* b, size_t n);
float dotF16(const uint16_t* a, const float* b, size_t n);
// Rows [rowBegin, rowEnd) of a quantized matrix against n prepared activation rows x[0..n).
void matmulQ40(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const QuantizedRow x[], int n, size_t blocks, float* out,
               size_t outStride);
void matmulQ80(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const QuantizedRow x[], int n, size_t blocks, float* out,
               size_t outStride);
template <typename T>
void attentionScores(const float* q, int heads, const T* keys, size_t stride, int count, int dim, float scale, float* scores);
template <typename T>
void attentionValues(const float* p, const T* values, size_t stride, int count, int dim, float* out);
void quantizeQ80(const float* x, uint8_t* out, size_t n);

}  // namespace glm::simd

// The quantized dot products and matmuls again with AVX-512 VNNI (kernels-vnni.cpp).
namespace glm::vnni {

bool available();
void matmulQ40(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const QuantizedRow x[], int n, size_t blocks, float* out,
               size_t outStride);
void matmulQ80(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const QuantizedRow x[], int n, size_t blocks, float* out,
               size_t outStride);

}  // namespace glm::vnni

#if defined(__aarch64__)
// NEON (kernels-neon.cpp), the path on 64-bit ARM.
namespace glm::neon {

float dotF32(const float* a, const float* b, size_t n);
void matmulQ40(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const QuantizedRow x[], int n, size_t blocks, float* out,
               size_t outStride);
void matmulQ80(const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const QuantizedRow x[], int n, size_t blocks, float* out,
               size_t outStride);
template <typename T>
void attentionScores(const float* q, int heads, const T* keys, size_t stride, int count, int dim, float scale, float* scores);
template <typename T>
void attentionValues(const float* p, const T* values, size_t stride, int count, int dim, float* out);

}  // namespace glm::neon
#endif
