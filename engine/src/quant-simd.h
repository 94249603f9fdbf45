// Instruction-set specific encoders, chosen at run time by quant.cpp.
#pragma once
#include "quant.h"

namespace glm {

// Encodes the leading whole 32-element blocks of n values, adding the count of NaN and infinite
// values to nonFinite; returns how many values it encoded (0 where the build has no such path).
size_t encodeSourceAvx2(SourceType srcType, const uint8_t* src, FloatType dstType, uint8_t* dst, size_t n,
                        size_t& nonFinite);
bool cpuHasAvx2();

}  // namespace glm
