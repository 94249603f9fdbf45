// Weight and activation encodings shared by the converter and the engine:
// f32, f16, bf16 sources and the distributed-llama q40 / q80 block formats.
#pragma once
#include <cstddef>
#include <cstdint>

namespace glm {

// Numeric values match distributed-llama's FloatType enum (nn-quants.hpp).
enum class FloatType : int { F32 = 0, F16 = 1, Q40 = 2, Q80 = 3 };
// Element types a safetensors checkpoint may hold.
enum class SourceType : int { F32 = 0, F16 = 1, BF16 = 2 };

constexpr size_t kBlockSize = 32;
constexpr size_t kQ40BlockBytes = 2 + kBlockSize / 2;  // fp16 scale + 16 bytes of nibbles
constexpr size_t kQ80BlockBytes = 2 + kBlockSize;      // fp16 scale + 32 int8

// Bytes needed to store n elements as `type`; n must be a multiple of 32 for q40/q80.
size_t encodedBytes(FloatType type, size_t n);
size_t sourceElementBytes(SourceType type);

// IEEE binary16 conversions; f32 -> f16 rounds to nearest, ties to even (numpy's rule).
uint16_t f32ToF16(float value);
float f16ToF32(uint16_t half);

// Widens n source elements to f32.
void sourceToF32(SourceType type, const uint8_t* src, float* dst, size_t n);

// Encodes n f32 values into `type`. q40/q80 follow distributed-llama's converter exactly:
// float32 arithmetic, fp16 scale rounded to nearest even, q40 zero point 8 with element j in
// the low nibble and j+16 in the high nibble, q80 rounding half to even.
void encodeF32(FloatType type, const float* src, uint8_t* dst, size_t n);

// Decodes n values of `type` back to f32.
void decodeToF32(FloatType type, const uint8_t* src, float* dst, size_t n);

// Source bytes -> encoded bytes: AVX2 for whole blocks where the CPU has it, scalar otherwise.
// Both paths give identical bytes for finite input. Returns the number of NaN and infinite source
// values, which no weight should hold (their encodings are unspecified).
size_t encodeSource(SourceType srcType, const uint8_t* src, FloatType dstType, uint8_t* dst, size_t n);

// Importance-weighted q40 (docs/conversion-guide.md, "Importance matrix"): `rows` rows of `cols` source
// values, cols a multiple of 32, with importance[j] >= 0 the mean square of input column j over
// calibration text. Each element's weight is importance[j] * sqrt(mean of the row's squares + x^2); each
// block keeps, of round-to-nearest (encodeF32's bytes) and the candidates of q40WeightedCandidates, the
// encoding with the least weighted squared error (ties keep round-to-nearest). Same file format; returns
// the count of NaN and infinite source values.
size_t encodeSourceQ40Weighted(SourceType srcType, const uint8_t* src, uint8_t* dst, size_t rows, size_t cols, const float* importance);

// One block of the weighted search: x and its weights w (32 each) -> the 18-byte q40 block.
void encodeQ40BlockWeighted(const float* x, const float* w, uint8_t* out);

// The weighted squared error sum w[j] (x[j] - decoded[j])^2 of a q40 block, in double.
double q40WeightedError(const float* x, const float* w, const uint8_t* block);

// Whether the CPU has F16C (CPUID leaf 1, ECX bit 29), for the x86 SIMD paths. Not through
// __builtin_cpu_supports("f16c"), which clang 14 (the fuzz harnesses' compiler) lacks.
bool cpuHasF16c();

// Turns the SIMD path off (for tests comparing it with the scalar one) or back on where the CPU
// supports it; returns the name of the path now in use.
const char* setSimdEnabled(bool enabled);

}  // namespace glm
