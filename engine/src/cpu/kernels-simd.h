// The AVX2/FMA/F16C dot products (kernels-avx2.cpp), compiled for x86-64 with GCC or Clang and
// used only when the CPU has those extensions.
#pragma once
#include <cstddef>
#include <cstdint>

namespace glm::simd {

bool available();
float dotF32(const float* a, const float* b, size_t n);
float dotF16(const uint16_t* a, const float* b, size_t n);
float dotQ40Q80(const uint8_t* w, const uint8_t* x, size_t blocks);
float dotQ80Q80(const uint8_t* w, const uint8_t* x, size_t blocks);

}  // namespace glm::simd
