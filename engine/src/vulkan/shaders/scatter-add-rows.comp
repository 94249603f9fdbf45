// dst[index[r]] += weight[r] * y[r] for rows of `dim` values: one expert's outputs, weighted, back to
// the tokens routed to it (each token at most once per dispatch).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) buffer Target { float dst[]; };
layout(std430, binding = 1) readonly buffer Rows { float y[]; };
layout(std430, binding = 2) readonly buffer Index { uint index[]; };
layout(std430, binding = 3) readonly buffer Weight { float weight[]; };
layout(push_constant) uniform Push { uint rows, dim, groupsX; } p;

void main() {
  const uint i = flatInvocation(p.groupsX);
  if (i >= p.rows * p.dim) return;
  const uint r = i / p.dim, c = i % p.dim;
  dst[index[r] * p.dim + c] += weight[r] * y[i];
}
