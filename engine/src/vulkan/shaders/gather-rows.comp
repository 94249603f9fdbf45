// dst[r] = src[index[r]] for rows of `dim` values: the tokens routed to one expert.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Source { float src[]; };
layout(std430, binding = 1) readonly buffer Index { uint index[]; };
layout(std430, binding = 2) writeonly buffer Target { float dst[]; };
layout(push_constant) uniform Push { uint rows, dim, groupsX; } p;

void main() {
  const uint i = flatInvocation(p.groupsX);
  if (i >= p.rows * p.dim) return;
  const uint r = i / p.dim, c = i % p.dim;
  dst[i] = src[index[r] * p.dim + c];
}
