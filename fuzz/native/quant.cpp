// libFuzzer target: the native encoders and decoders (quant.h) on arbitrary bytes. Byte 0 picks the
// operation's types; the rest are the values. Properties besides "no crash, no sanitizer report":
// - decoding any bytes as f16/q40/q80 gives, per value, exactly scale x code (q40: code - 8) in f32;
// - encodeSource's SIMD and scalar paths write identical bytes and count the same NaN/inf values,
//   and that count equals the number of non-finite source values;
// - for finite sources, q80 and q40 round trips stay within half a step (q80) or one step (q40) of
//   the source, with the step from the block's fp16 scale.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "quant.h"

namespace {

[[noreturn]] void violated(const std::string& what) {
  std::fprintf(stderr, "property violated: %s\n", what.c_str());
  std::abort();
}

bool same(float a, float b) { return std::memcmp(&a, &b, 4) == 0 || (std::isnan(a) && std::isnan(b)); }

void checkDecode(glm::FloatType type, const uint8_t* src, size_t bytes) {
  const size_t perBlock = type == glm::FloatType::Q40 ? glm::kQ40BlockBytes : glm::kQ80BlockBytes;
  const size_t n = type == glm::FloatType::F16 ? bytes / 2 : bytes / perBlock * glm::kBlockSize;
  if (n == 0) return;
  std::vector<float> out(n);
  glm::decodeToF32(type, src, out.data(), n);
  for (size_t i = 0; i < n; i++) {
    float want;
    if (type == glm::FloatType::F16) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      want = glm::f16ToF32(h);
    } else {
      const uint8_t* block = src + i / glm::kBlockSize * perBlock;
      uint16_t scaleBits;
      std::memcpy(&scaleBits, block, 2);
      const float scale = glm::f16ToF32(scaleBits);
      const size_t j = i % glm::kBlockSize;
      const int code = type == glm::FloatType::Q80 ? static_cast<int8_t>(block[2 + j])
                                                   : (j < 16 ? block[2 + j] & 15 : block[2 + j - 16] >> 4) - 8;
      want = scale * static_cast<float>(code);
    }
    if (!same(out[i], want)) violated("decoded value " + std::to_string(i) + " is not scale x code");
  }
}

void checkEncode(glm::SourceType srcType, glm::FloatType dstType, const uint8_t* src, size_t bytes) {
  const size_t n = bytes / glm::sourceElementBytes(srcType) / glm::kBlockSize * glm::kBlockSize;
  if (n == 0) return;
  std::vector<float> f(n);
  glm::sourceToF32(srcType, src, f.data(), n);
  size_t nonFinite = 0;
  for (float v : f) nonFinite += !std::isfinite(v);
  const size_t out = glm::encodedBytes(dstType, n);
  std::vector<uint8_t> simd(out), scalar(out);
  glm::setSimdEnabled(true);
  const size_t countSimd = glm::encodeSource(srcType, src, dstType, simd.data(), n);
  glm::setSimdEnabled(false);
  const size_t countScalar = glm::encodeSource(srcType, src, dstType, scalar.data(), n);
  glm::setSimdEnabled(true);
  if (countSimd != nonFinite || countScalar != nonFinite) violated("the NaN/inf count differs from the source's");
  if (nonFinite) return;  // the encodings of non-finite values are unspecified (quant.h)
  if (simd != scalar) violated("the SIMD and scalar encoders disagree");
  if (dstType != glm::FloatType::Q40 && dstType != glm::FloatType::Q80) return;
  std::vector<float> back(n);
  glm::decodeToF32(dstType, scalar.data(), back.data(), n);
  const size_t perBlock = dstType == glm::FloatType::Q40 ? glm::kQ40BlockBytes : glm::kQ80BlockBytes;
  for (size_t i = 0; i < n; i++) {
    uint16_t scaleBits;
    std::memcpy(&scaleBits, scalar.data() + i / glm::kBlockSize * perBlock, 2);
    const double step = std::fabs(glm::f16ToF32(scaleBits));
    if (!std::isfinite(step)) continue;  // a block whose range overflows fp16
    // q80: half a step, and the fp16 rounding of the scale over 127 steps; q40 the same over 8; and
    // 128 fp16 subnormal half-ulps where the scale leaves fp16's normal range.
    const double bound = (dstType == glm::FloatType::Q80 ? 0.5 + 127 * 1e-3 : 1.0 + 8 * 1e-3) * step + 128 * 3e-8;
    if (std::fabs(static_cast<double>(back[i]) - f[i]) > bound && std::fabs(f[i]) < 6e4) {
      violated("round trip of value " + std::to_string(i) + " (" + std::to_string(f[i]) + " -> " + std::to_string(back[i]) + ") is off by more than " + std::to_string(bound));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t op = data[0];
  const glm::FloatType types[] = {glm::FloatType::F16, glm::FloatType::Q40, glm::FloatType::Q80};
  if (op & 0x80) {
    checkDecode(types[(op & 3) % 3], data + 1, size - 1);
  } else {
    const glm::SourceType src[] = {glm::SourceType::F32, glm::SourceType::F16, glm::SourceType::BF16};
    const glm::FloatType dst[] = {glm::FloatType::F32, glm::FloatType::F16, glm::FloatType::Q40, glm::FloatType::Q80};
    checkEncode(src[(op & 3) % 3], dst[(op >> 2) & 3], data + 1, size - 1);
  }
  return 0;
}
