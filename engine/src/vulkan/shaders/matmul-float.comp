// out[t][rowBase + r] = w[r] . x[t] for the rows of one weight chunk and up to TOKENS tokens per
// workgroup: each weight row is read once for all of them. f32 or f16 weights, f32 activations.
#version 450
#extension GL_GOOGLE_include_directive : require
#ifdef WEIGHT_F16
#extension GL_EXT_shader_16bit_storage : require
#endif
#include "common.glsl"
#define TOKENS 8u

#ifdef WEIGHT_F16
layout(std430, binding = 0) readonly buffer Weights { uint16_t w[]; };
#define WEIGHT(i) f16ToF32(uint(w[i]))
#else
layout(std430, binding = 0) readonly buffer Weights { float w[]; };
#define WEIGHT(i) w[i]
#endif
layout(std430, binding = 1) readonly buffer Input { float x[]; };
layout(std430, binding = 2) buffer Output { float y[]; };
layout(push_constant) uniform Push { uint rows, cols, n, rowBase, outStride, groupsX; } p;

shared float partial[WORKGROUP * TOKENS];

void main() {
  const uint row = flatGroup(p.groupsX);
  if (row >= p.rows) return;  // the whole workgroup leaves together
  const uint first = gl_WorkGroupID.z * TOKENS;
  const uint count = min(TOKENS, p.n - first);
  const uint lane = gl_LocalInvocationID.x;
  float acc[TOKENS];
  for (uint k = 0u; k < TOKENS; k++) acc[k] = 0.0;
  for (uint i = lane; i < p.cols; i += WORKGROUP) {
    const float weight = WEIGHT(row * p.cols + i);
    for (uint k = 0u; k < count; k++) acc[k] += weight * x[(first + k) * p.cols + i];
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
