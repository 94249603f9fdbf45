// Stores n key and value rows (kvDim each, from row `first` of k and v) at positions pos.. of one
// layer's cache, f32 or f16.
#version 450
#extension GL_GOOGLE_include_directive : require
#ifdef CACHE_F16
#extension GL_EXT_shader_16bit_storage : require
#endif
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Keys { float k[]; };
layout(std430, binding = 1) readonly buffer Values { float v[]; };
#ifdef CACHE_F16
layout(std430, binding = 2) writeonly buffer KeyCache { uint16_t kc[]; };
layout(std430, binding = 3) writeonly buffer ValueCache { uint16_t vc[]; };
#define ENCODE(x) uint16_t(f32ToF16(x))
#else
layout(std430, binding = 2) writeonly buffer KeyCache { float kc[]; };
layout(std430, binding = 3) writeonly buffer ValueCache { float vc[]; };
#define ENCODE(x) (x)
#endif
layout(push_constant) uniform Push { uint count, kvDim, pos, groupsX, first; } p;

void main() {
  const uint i = flatInvocation(p.groupsX);
  if (i >= p.count) return;
  kc[p.pos * p.kvDim + i] = ENCODE(k[p.first * p.kvDim + i]);
  vc[p.pos * p.kvDim + i] = ENCODE(v[p.first * p.kvDim + i]);
}
