// CPU kernels: dot products of weight rows with activations, activation quantization, and the
// elementwise operations of a transformer layer. They know nothing of models. The dot products
// have an AVX2 version chosen at run time and a portable one.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../quant.h"

namespace glm {

// q80 activation blocks as llama.cpp makes them for its q4_0 / q8_0 matmuls: d = fp16(amax / 127),
// q = round-half-even(x * 127 / amax). Quantizing the same way keeps the two engines comparable.
void quantizeActivationsQ80(const float* x, uint8_t* out, size_t n);

// Dot product of one weight row (`type`, `n` values) with activations: f32 for f32 and f16 weights,
// q80 blocks (from quantizeActivationsQ80) for q40 and q80 weights. Accumulates in float32.
float dotRow(FloatType type, const uint8_t* row, const float* x, const uint8_t* xq, size_t n);

// Four dot products of one weight row with four activation rows at once (prefill): the row's blocks
// are decoded once for all four.
void dotRow4(FloatType type, const uint8_t* row, const float* const x[4], const uint8_t* const xq[4], size_t n, float out[4]);

// Plain float32 vectors (attention).
float dot(const float* a, const float* b, size_t n);
// y += a * x
void axpy(float a, const float* x, float* y, size_t n);

void rmsNorm(const float* x, const float* weight, float* out, int n, float eps);
void softmax(float* x, int n);
float silu(float x);

// Which dot-product implementation is in use ("avx2" or "scalar").
const char* kernelPath();

}  // namespace glm
