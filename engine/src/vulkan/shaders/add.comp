// x[i] += y[i % period]: the residual add (period = count) and a bias on every row (period = width).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) buffer Target { float x[]; };
layout(std430, binding = 1) readonly buffer Addend { float y[]; };
layout(push_constant) uniform Push { uint count, period, groupsX; } p;

void main() {
  const uint i = flatInvocation(p.groupsX);
  if (i >= p.count) return;
  x[i] += y[i % p.period];
}
