// out[r] = w * x[r] / sqrt(mean(x[r]^2) + eps), one row per workgroup (in place when out is x).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Input { float x[]; };
layout(std430, binding = 1) readonly buffer Weight { float w[]; };
layout(std430, binding = 2) buffer Output { float y[]; };
layout(push_constant) uniform Push { uint rows, dim; float eps; uint groupsX; } p;

shared float scratch[WORKGROUP];

void main() {
  const uint row = flatGroup(p.groupsX);
  if (row >= p.rows) return;
  const uint base = row * p.dim;
  float sum = 0.0;
  for (uint i = gl_LocalInvocationID.x; i < p.dim; i += WORKGROUP) sum += x[base + i] * x[base + i];
  float total;
  WORKGROUP_REDUCE(scratch, sum, addOp, total)
  const float scale = 1.0 / sqrt(total / float(p.dim) + p.eps);
  for (uint i = gl_LocalInvocationID.x; i < p.dim; i += WORKGROUP) y[base + i] = w[i] * (x[base + i] * scale);
}
