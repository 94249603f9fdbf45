#include "quant.h"

#include "quant-simd.h"

#include <cmath>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <cstring>
#include <stdexcept>
#include <vector>

namespace glm {

size_t encodedBytes(FloatType type, size_t n) {
  switch (type) {
    case FloatType::F32: return n * 4;
    case FloatType::F16: return n * 2;
    case FloatType::Q40: return n / kBlockSize * kQ40BlockBytes;
    case FloatType::Q80: return n / kBlockSize * kQ80BlockBytes;
  }
  throw std::invalid_argument("unknown float type");
}

size_t sourceElementBytes(SourceType type) {
  return type == SourceType::F32 ? 4 : 2;
}

static inline uint32_t bitsOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

static inline float floatOf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32ToF16(float value) {
  const uint32_t x = bitsOf(value);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t mag = x & 0x7fffffffu;
  if (mag >= 0x7f800000u) {  // inf stays inf, nan stays a quiet nan
    return sign | 0x7c00u | (mag > 0x7f800000u ? 0x0200u : 0u);
  }
  if (mag >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds past the largest half
  if (mag < 0x38800000u) {                        // below 2^-14: a subnormal half or zero
    if (mag < 0x33000000u) return sign;           // below 2^-25 rounds to zero (2^-25 itself ties to 0)
    const uint32_t exponent = mag >> 23;
    const uint32_t mantissa = (mag & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // value in units of 2^-24
    uint32_t q = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u))) q++;
    return sign | static_cast<uint16_t>(q);
  }
  const uint32_t rebased = mag - 0x38000000u;  // exponent bias 127 -> 15
  uint32_t q = rebased >> 13;
  const uint32_t rest = rebased & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (q & 1u))) q++;  // a carry into the exponent is correct
  return sign | static_cast<uint16_t>(q);
}

float f16ToF32(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return floatOf(sign | 0x7f800000u | (mantissa << 13));
  return floatOf(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

// A 16-bit value at any address: callers pass byte arrays at any offset (a Node Buffer's subarray).
static inline uint16_t u16At(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

void sourceToF32(SourceType type, const uint8_t* src, float* dst, size_t n) {
  switch (type) {
    case SourceType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case SourceType::BF16:
      for (size_t i = 0; i < n; i++) {
        const uint32_t bits = static_cast<uint32_t>(u16At(src + 2 * i)) << 16;
        std::memcpy(dst + i, &bits, 4);
      }
      return;
    case SourceType::F16:
      for (size_t i = 0; i < n; i++) dst[i] = f16ToF32(u16At(src + 2 * i));
      return;
  }
  throw std::invalid_argument("unknown source type");
}

// Largest and smallest value of a block; a zero extreme is made +0 so that the result does not depend
// on which of several +-0 values a scan meets first (scalar and SIMD scans meet them in different orders).
static inline void blockRange(const float* x, float& gmax, float& gmin) {
  gmax = x[0];
  gmin = x[0];
  for (size_t i = 1; i < kBlockSize; i++) {
    gmax = x[i] > gmax ? x[i] : gmax;
    gmin = x[i] < gmin ? x[i] : gmin;
  }
  gmax += 0.0f;
  gmin += 0.0f;
}

// Clamps to [0, 15] the way the SIMD path does (max, then min; NaN becomes 0).
static inline float clampCode(float v) {
  v = v > 0.0f ? v : 0.0f;
  return v < 15.0f ? v : 15.0f;
}

static void encodeQ40Block(const float* x, uint8_t* out) {
  float gmax, gmin;
  blockRange(x, gmax, gmin);
  // The signed extreme maps to -8; a tie in magnitude keeps the positive value. An all-zero block
  // gets 0 / -8 = -0 as its scale (fp16 0x8000), exactly as distributed-llama's numpy converter.
  const float delta = (-gmin > gmax ? gmin : gmax) / -8.0f;
  const float inverse = delta != 0.0f ? 1.0f / delta : 0.0f;
  const uint16_t scale = f32ToF16(delta);
  std::memcpy(out, &scale, 2);
  uint8_t* nibbles = out + 2;
  for (size_t j = 0; j < kBlockSize / 2; j++) {
    const float lo = clampCode(x[j] * inverse + 8.5f);
    const float hi = clampCode(x[j + kBlockSize / 2] * inverse + 8.5f);
    nibbles[j] = static_cast<uint8_t>(static_cast<int>(lo) | (static_cast<int>(hi) << 4));
  }
}

// Rounds half to even and clamps to -8..7. Clamping first keeps |v| small, where adding and
// subtracting 1.5 x 2^23 rounds exactly as nearbyint does in the default mode, without its library
// call (the build has no -ffast-math, so the pair is not folded away).
static inline float q40Level(float v) {
  v = v < -8.0f ? -8.0f : v > 7.0f ? 7.0f : v;
  return (v + 12582912.0f) - 12582912.0f;
}

double q40WeightedError(const float* x, const float* w, const uint8_t* block) {
  float decoded[kBlockSize];
  decodeToF32(FloatType::Q40, block, decoded, kBlockSize);
  double error = 0.0;
  for (size_t j = 0; j < kBlockSize; j++) {
    const double e = static_cast<double>(x[j]) - decoded[j];
    error += w[j] * e * e;
  }
  return error;
}

void encodeQ40BlockWeighted(const float* x, const float* w, uint8_t* out) {
  encodeQ40Block(x, out);
  float gmax, gmin;
  blockRange(x, gmax, gmin);
  const float extreme = -gmin > gmax ? gmin : gmax;
  double weightSum = 0.0;
  for (size_t j = 0; j < kBlockSize; j++) weightSum += w[j];
  if (extreme == 0.0f || !(weightSum > 0.0)) return;  // nothing to weigh: round-to-nearest stays
  double bestError = q40WeightedError(x, w, out);
  float bestScale = 0.0f;
  float levels[kBlockSize], best[kBlockSize];
  // Candidates: the extreme mapped to -(8 + 0.1 is) for is = -9..9, levels rounded to nearest, the
  // weighted least-squares scale of those levels rounded to fp16 (as stored), then the levels
  // re-rounded to that scale (never a larger error for it).
  for (int is = -9; is <= 9; is++) {
    const float inverse = -(8.0f + 0.1f * static_cast<float>(is)) / extreme;
    double sumXl = 0.0, sumLl = 0.0;
    for (size_t j = 0; j < kBlockSize; j++) {
      const float l = q40Level(x[j] * inverse);
      sumXl += static_cast<double>(w[j]) * x[j] * l;
      sumLl += static_cast<double>(w[j]) * l * l;
    }
    if (!(sumLl > 0.0)) continue;
    const float scale = f16ToF32(f32ToF16(static_cast<float>(sumXl / sumLl)));
    if (scale == 0.0f || !std::isfinite(scale)) continue;
    double error = 0.0;
    for (size_t j = 0; j < kBlockSize; j++) {
      levels[j] = q40Level(x[j] / scale);  // a division, not a product with 1/scale: nearest levels exactly
      const double e = static_cast<double>(x[j]) - static_cast<double>(scale * levels[j]);
      error += w[j] * e * e;
    }
    if (error < bestError) {
      bestError = error;
      bestScale = scale;
      std::memcpy(best, levels, sizeof best);
    }
  }
  if (bestScale == 0.0f) return;
  const uint16_t scale = f32ToF16(bestScale);
  std::memcpy(out, &scale, 2);
  for (size_t j = 0; j < kBlockSize / 2; j++) {
    const int lo = static_cast<int>(best[j]) + 8, hi = static_cast<int>(best[j + kBlockSize / 2]) + 8;
    out[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

size_t encodeSourceQ40Weighted(SourceType srcType, const uint8_t* src, uint8_t* dst, size_t rows, size_t cols, const float* importance) {
  if (cols % kBlockSize != 0) throw std::invalid_argument("q40 rows must hold whole 32-value blocks");
  std::vector<float> row(cols), weight(cols);
  const size_t srcBytes = sourceElementBytes(srcType), rowBytes = encodedBytes(FloatType::Q40, cols);
  size_t nonFinite = 0;
  for (size_t r = 0; r < rows; r++) {
    sourceToF32(srcType, src + r * cols * srcBytes, row.data(), cols);
    double sumSquares = 0.0;
    for (size_t j = 0; j < cols; j++) {
      nonFinite += !(std::fabs(row[j]) <= 3.40282347e38f);
      sumSquares += static_cast<double>(row[j]) * row[j];
    }
    const float meanSquare = static_cast<float>(sumSquares / static_cast<double>(cols));
    for (size_t j = 0; j < cols; j++) weight[j] = importance[j] * std::sqrt(meanSquare + row[j] * row[j]);
    for (size_t b = 0; b < cols / kBlockSize; b++) {
      encodeQ40BlockWeighted(row.data() + b * kBlockSize, weight.data() + b * kBlockSize, dst + r * rowBytes + b * kQ40BlockBytes);
    }
  }
  return nonFinite;
}

// A rounded q80 code as the SIMD path makes it (cvtps_epi32, then saturating packs): NaN and values
// beyond int32 become -128, others saturate to int8. A plain cast of those is undefined behaviour.
static inline int8_t q80Code(float v) {
  if (!(v >= -2147483648.0f && v < 2147483648.0f)) return -128;
  return static_cast<int8_t>(v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v);
}

static void encodeQ80Block(const float* x, uint8_t* out) {
  float gmax, gmin;
  blockRange(x, gmax, gmin);
  // Ties keep gmax, so an all-zero block gets +0 as its scale (numpy's where(-gmin > gmax, -gmin, gmax)).
  const float absmax = -gmin > gmax ? -gmin : gmax;
  const float delta = absmax / 127.0f;
  const float inverse = delta != 0.0f ? 1.0f / delta : 0.0f;
  const uint16_t scale = f32ToF16(delta);
  std::memcpy(out, &scale, 2);
  int8_t* q = reinterpret_cast<int8_t*>(out + 2);
  for (size_t j = 0; j < kBlockSize; j++) {
    q[j] = q80Code(std::nearbyint(x[j] * inverse));  // default rounding: half to even
  }
}

void encodeF32(FloatType type, const float* src, uint8_t* dst, size_t n) {
  switch (type) {
    case FloatType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case FloatType::F16:
      for (size_t i = 0; i < n; i++) {
        const uint16_t h = f32ToF16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case FloatType::Q40:
      for (size_t b = 0; b < n / kBlockSize; b++) encodeQ40Block(src + b * kBlockSize, dst + b * kQ40BlockBytes);
      return;
    case FloatType::Q80:
      for (size_t b = 0; b < n / kBlockSize; b++) encodeQ80Block(src + b * kBlockSize, dst + b * kQ80BlockBytes);
      return;
  }
  throw std::invalid_argument("unknown float type");
}

void decodeToF32(FloatType type, const uint8_t* src, float* dst, size_t n) {
  switch (type) {
    case FloatType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case FloatType::F16:
      for (size_t i = 0; i < n; i++) dst[i] = f16ToF32(u16At(src + 2 * i));
      return;
    case FloatType::Q40:
      for (size_t b = 0; b < n / kBlockSize; b++) {
        const uint8_t* block = src + b * kQ40BlockBytes;
        uint16_t scale;
        std::memcpy(&scale, block, 2);
        const float d = f16ToF32(scale);
        float* out = dst + b * kBlockSize;
        for (size_t j = 0; j < kBlockSize / 2; j++) {
          out[j] = static_cast<float>((block[2 + j] & 0x0f) - 8) * d;
          out[j + kBlockSize / 2] = static_cast<float>((block[2 + j] >> 4) - 8) * d;
        }
      }
      return;
    case FloatType::Q80:
      for (size_t b = 0; b < n / kBlockSize; b++) {
        const uint8_t* block = src + b * kQ80BlockBytes;
        uint16_t scale;
        std::memcpy(&scale, block, 2);
        const float d = f16ToF32(scale);
        const int8_t* q = reinterpret_cast<const int8_t*>(block + 2);
        for (size_t j = 0; j < kBlockSize; j++) dst[b * kBlockSize + j] = static_cast<float>(q[j]) * d;
      }
      return;
  }
  throw std::invalid_argument("unknown float type");
}

bool cpuHasF16c() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax, ebx, ecx, edx;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
#else
  return false;
#endif
}

static bool simdEnabled = cpuHasAvx2();

const char* setSimdEnabled(bool enabled) {
  simdEnabled = enabled && cpuHasAvx2();
  return simdEnabled ? "avx2" : "scalar";
}

size_t encodeSource(SourceType srcType, const uint8_t* src, FloatType dstType, uint8_t* dst, size_t n) {
  size_t nonFinite = 0;
  size_t done = simdEnabled ? encodeSourceAvx2(srcType, src, dstType, dst, n, nonFinite) : 0;
  // The rest (or everything, without SIMD): widen a few thousand elements at a time into a buffer
  // that stays in L1/L2, then encode.
  constexpr size_t chunk = kBlockSize * 256;
  float scratch[chunk];
  const size_t srcBytes = sourceElementBytes(srcType);
  for (; done < n; done += chunk) {
    const size_t count = n - done < chunk ? n - done : chunk;
    sourceToF32(srcType, src + done * srcBytes, scratch, count);
    for (size_t i = 0; i < count; i++) nonFinite += !(std::fabs(scratch[i]) <= 3.40282347e38f);
    encodeF32(dstType, scratch, dst + encodedBytes(dstType, done), count);
  }
  return nonFinite;
}

}  // namespace glm
