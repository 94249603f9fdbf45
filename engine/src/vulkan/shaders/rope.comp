// Partial RoPE in place on `vectors` rows of headDim values (token-major, `heads` per token, from token
// `first` of the buffer, at positions pos..), from a
// table of cos/sin per position and pair that the host computes as the CPU engine does. Interleaved
// pairs (2i, 2i + 1) for GLM and GLM-4, half-split pairs (i, i + rot / 2) for GLM-4.5.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) buffer Vectors { float v[]; };
layout(std430, binding = 1) readonly buffer Table { vec2 cosSin[]; };
layout(push_constant) uniform Push { uint vectors, heads, headDim, pairs, pos, interleaved, groupsX, first; } p;

void main() {
  const uint item = flatInvocation(p.groupsX);
  if (item >= p.vectors * p.pairs) return;
  const uint vector = item / p.pairs, i = item % p.pairs;
  const uint token = vector / p.heads;
  const vec2 cs = cosSin[(p.pos + token) * p.pairs + i];
  const uint base = (p.first * p.heads + vector) * p.headDim;
  const uint a = base + (p.interleaved != 0u ? 2u * i : i);
  const uint b = base + (p.interleaved != 0u ? 2u * i + 1u : i + p.pairs);
  const float x0 = v[a], x1 = v[b];
  v[a] = x0 * cs.x - x1 * cs.y;
  v[b] = x1 * cs.x + x0 * cs.y;
}
