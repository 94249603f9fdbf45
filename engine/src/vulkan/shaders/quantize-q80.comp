// Activations to q80, one 32-value block per invocation, exactly as the CPU engine quantizes them:
// d = amax / 127 rounded to f16, q = round-half-even(x * 127 / amax). Output: the int8 values four to
// a word and the scale as f32.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Input { float x[]; };
layout(std430, binding = 1) writeonly buffer Quants { uint xq[]; };
layout(std430, binding = 2) writeonly buffer Scales { float xs[]; };
layout(push_constant) uniform Push { uint blocks, groupsX; } p;

void main() {
  const uint b = flatInvocation(p.groupsX);
  if (b >= p.blocks) return;
  float amax = 0.0;
  for (uint j = 0u; j < 32u; j++) amax = max(amax, abs(x[b * 32u + j]));
  const float inverse = amax != 0.0 ? 127.0 / amax : 0.0;
  xs[b] = f16ToF32(f32ToF16(amax / 127.0));
  for (uint i = 0u; i < 8u; i++) {
    uint word = 0u;
    for (uint c = 0u; c < 4u; c++) word |= (uint(int(roundEven(x[b * 32u + 4u * i + c] * inverse))) & 0xffu) << (8u * c);
    xq[b * 8u + i] = word;
  }
}
