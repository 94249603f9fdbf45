// The SwiGLU gate in place: g = silu(g) * u.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) buffer Gate { float g[]; };
layout(std430, binding = 1) readonly buffer Up { float u[]; };
layout(push_constant) uniform Push { uint count, groupsX; } p;

void main() {
  const uint i = flatInvocation(p.groupsX);
  if (i >= p.count) return;
  const float x = g[i];
  g[i] = (x / (1.0 + exp(-x))) * u[i];
}
