// out[t][rowBase + r] = w[r] . x[t] for q40 or q80 weight rows and activations quantized to q80 by
// quantize-q80.comp (int8 values four to a word, f32 scales). Integer dot products per 32-value block,
// scaled as the CPU engine scales them: sum += float(dot) * weight scale * activation scale.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_shader_16bit_storage : require
#include "common.glsl"
#define TOKENS 8u

#ifdef WEIGHT_Q40
#define BLOCK_HALVES 9u   // f16 scale + 16 bytes: element j in the low nibble of byte j, j + 16 in the high
#else
#define BLOCK_HALVES 17u  // f16 scale + 32 int8
#endif

layout(std430, binding = 0) readonly buffer Weights { uint16_t w[]; };
layout(std430, binding = 1) readonly buffer Quants { uint xq[]; };
layout(std430, binding = 2) readonly buffer Scales { float xs[]; };
layout(std430, binding = 3) buffer Output { float y[]; };
layout(push_constant) uniform Push { uint rows, cols, n, rowBase, outStride, groupsX; } p;

shared float partial[WORKGROUP * TOKENS];

void main() {
  const uint row = flatGroup(p.groupsX);
  if (row >= p.rows) return;
  const uint first = gl_WorkGroupID.z * TOKENS;
  const uint count = min(TOKENS, p.n - first);
  const uint lane = gl_LocalInvocationID.x;
  const uint blocks = p.cols / 32u;
  float acc[TOKENS];
  for (uint k = 0u; k < TOKENS; k++) acc[k] = 0.0;
  for (uint b = lane; b < blocks; b += WORKGROUP) {
    const uint base = (row * blocks + b) * BLOCK_HALVES;
    const float scale = f16ToF32(uint(w[base]));
    int q[32];
#ifdef WEIGHT_Q40
    for (uint j = 0u; j < 8u; j++) {
      const uint pair = uint(w[base + 1u + j]);
      q[2u * j] = int(pair & 15u) - 8;
      q[2u * j + 1u] = int((pair >> 8) & 15u) - 8;
      q[2u * j + 16u] = int((pair >> 4) & 15u) - 8;
      q[2u * j + 17u] = int(pair >> 12) - 8;
    }
#else
    for (uint j = 0u; j < 16u; j++) {
      const int pair = int(uint(w[base + 1u + j]));
      q[2u * j] = bitfieldExtract(pair, 0, 8);
      q[2u * j + 1u] = bitfieldExtract(pair, 8, 8);
    }
#endif
    for (uint k = 0u; k < count; k++) {
      const uint block = (first + k) * blocks + b;
      int dot = 0;
      for (uint i = 0u; i < 8u; i++) {
        const int word = int(xq[block * 8u + i]);
        dot += q[4u * i] * bitfieldExtract(word, 0, 8) + q[4u * i + 1u] * bitfieldExtract(word, 8, 8) +
               q[4u * i + 2u] * bitfieldExtract(word, 16, 8) + q[4u * i + 3u] * bitfieldExtract(word, 24, 8);
      }
      acc[k] += float(dot) * scale * xs[block];
    }
  }
  for (uint k = 0u; k < TOKENS; k++) partial[k * WORKGROUP + lane] = acc[k];
  barrier();
  for (uint s = WORKGROUP / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (uint k = 0u; k < count; k++) partial[k * WORKGROUP + lane] += partial[k * WORKGROUP + lane + s];
    }
    barrier();
  }
  if (lane < count) y[(first + lane) * p.outStride + p.rowBase + row] = partial[lane * WORKGROUP];
}
