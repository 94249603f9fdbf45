// CPU kernels: matmuls of weight rows with activations, activation quantization, attention, and the
// elementwise operations of a transformer layer. They know nothing of models. AVX-512 VNNI, AVX2 and
// portable versions, chosen at run time; all give the same quantized dot products.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../quant.h"

namespace glm {

// An activation row prepared for matmuls with q40 or q80 weights: q80 blocks as llama.cpp makes them
// for its q4_0 / q8_0 matmuls (d = fp16(amax / 127), q = round-half-even(x * 127 / amax); quantizing
// the same way keeps the two engines comparable), the blocks' scales as f32, and per block eight lanes
// of -8 x (sum of four consecutive q): q40's zero point, folded into an unsigned x signed dot product.
struct QuantizedRow {
  const uint8_t* blocks;
  const float* scales;
  const int32_t* zeroPoint;
};

// Bytes (blocks), floats (scales) and int32 (zero point lanes) one row of `cols` values needs.
inline size_t quantizedBlockBytes(size_t cols) { return cols / kBlockSize * kQ80BlockBytes; }
inline size_t quantizedScales(size_t cols) { return cols / kBlockSize; }
inline size_t quantizedZeroPointLanes(size_t cols) { return cols / kBlockSize * 8; }

void quantizeActivations(const float* x, size_t cols, uint8_t* blocks, float* scales, int32_t* zeroPoint);

// out[t * outStride + r] = row r of w . x[t], for rows [rowBegin, rowEnd) and tokens t < n, where
// w has `cols` values per row (rowBytes bytes), x[t] are f32 rows (for f32 and f16 weights) and xq[t]
// the same rows prepared by quantizeActivations (for q40 and q80 weights). Accumulates in float32; each
// weight block is loaded once for several tokens and rows.
void matmulRows(FloatType type, const uint8_t* w, size_t rowBytes, int rowBegin, int rowEnd, const float* const x[], const QuantizedRow xq[],
                int n, size_t cols, float* out, size_t outStride);

// Attention over `count` cached rows of `type` (f32 or f16), `stride` elements apart: for `heads`
// consecutive query heads sharing those rows, scores[h * count + j] = scale * q_h . keys[j]; then (after
// a softmax by the caller), per head, out = sum_j p[j] * values[j].
void attentionScores(const float* q, int heads, const uint8_t* keys, FloatType type, size_t stride, int count, int dim, float scale, float* scores);
void attentionValues(const float* p, const uint8_t* values, FloatType type, size_t stride, int count, int dim, float* out);

void rmsNorm(const float* x, const float* weight, float* out, int n, float eps);
// Rotary embedding in place of the first ropeDim values of each head of n tokens at positions pos..
// (`heads` rows of headDim per token): pairs (2i, 2i + 1) when interleaved (GLM, GLM-4), else
// (i, i + ropeDim / 2) (GLM-4.5), by the angle (pos + t) * theta^(-2i / ropeDim).
float ropeAngle(int pos, int i, int ropeDim, float theta);
void rope(float* vectors, int n, int heads, int headDim, int ropeDim, int pos, float theta, bool interleaved);
void softmax(float* x, int n);
float silu(float x);

// Which implementation is in use: "avx512-vnni", "avx2" or "scalar".
const char* kernelPath();

}  // namespace glm
