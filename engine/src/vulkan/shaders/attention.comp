// Causal attention of one query head of one token per workgroup against one layer's KV cache, with
// grouped-query heads: scores into a scratch row, softmax, then the weighted sum of values. Workgroup
// (h, t) handles query head h of the row first + t (of q and the output) at position pos + t.
#version 450
#extension GL_GOOGLE_include_directive : require
#ifdef CACHE_F16
#extension GL_EXT_shader_16bit_storage : require
#endif
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Queries { float q[]; };
#ifdef CACHE_F16
layout(std430, binding = 1) readonly buffer KeyCache { uint16_t kc[]; };
layout(std430, binding = 2) readonly buffer ValueCache { uint16_t vc[]; };
#define KEY(i) f16ToF32(uint(kc[i]))
#define VALUE(i) f16ToF32(uint(vc[i]))
#else
layout(std430, binding = 1) readonly buffer KeyCache { float kc[]; };
layout(std430, binding = 2) readonly buffer ValueCache { float vc[]; };
#define KEY(i) kc[i]
#define VALUE(i) vc[i]
#endif
layout(std430, binding = 3) buffer Scores { float scores[]; };
layout(std430, binding = 4) writeonly buffer Output { float o[]; };
layout(push_constant) uniform Push { uint heads, headDim, kvDim, group, headOffset, pos, first, scoreStride; float scale; } p;

shared float scratch[WORKGROUP];

void main() {
  const uint head = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
  const uint token = p.first + t;
  const uint lane = gl_LocalInvocationID.x;
  const uint kvOffset = ((head + p.headOffset) / p.group) * p.headDim;
  const uint qBase = (token * p.heads + head) * p.headDim;
  const uint sBase = (t * p.heads + head) * p.scoreStride;
  const uint visible = p.pos + t + 1u;

  float localMax = -1.0 / 0.0;
  for (uint j = lane; j < visible; j += WORKGROUP) {
    float s = 0.0;
    for (uint d = 0u; d < p.headDim; d++) s += q[qBase + d] * KEY(j * p.kvDim + kvOffset + d);
    s = p.scale * s;
    scores[sBase + j] = s;
    localMax = max(localMax, s);
  }
  float top;
  WORKGROUP_REDUCE(scratch, localMax, maxOp, top)
  float localSum = 0.0;
  for (uint j = lane; j < visible; j += WORKGROUP) {
    const float e = exp(scores[sBase + j] - top);
    scores[sBase + j] = e;
    localSum += e;
  }
  float sum;
  WORKGROUP_REDUCE(scratch, localSum, addOp, sum)
  memoryBarrierBuffer();
  barrier();
  for (uint d = lane; d < p.headDim; d += WORKGROUP) {
    float acc = 0.0;
    for (uint j = 0u; j < visible; j++) acc += (scores[sBase + j] / sum) * VALUE(j * p.kvDim + kvOffset + d);
    o[qBase + d] = acc;
  }
}
