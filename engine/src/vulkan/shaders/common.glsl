// Shared by every shader: 64 invocations per workgroup (a multiple of every subgroup size in use, so
// nothing depends on it), and the flat index of a workgroup dispatched as a 2-D grid (x at most 65,535).
layout(local_size_x = 64) in;
#define WORKGROUP 64u

uint flatGroup(uint groupsX) { return gl_WorkGroupID.x + gl_WorkGroupID.y * groupsX; }
uint flatInvocation(uint groupsX) { return flatGroup(groupsX) * WORKGROUP + gl_LocalInvocationID.x; }

// f32 -> f16 bits, rounding to nearest even as the CPU engine does (packHalf2x16 leaves the rounding
// to the implementation).
uint f32ToF16(float value) {
  uint x = floatBitsToUint(value);
  uint sign = (x >> 16) & 0x8000u;
  uint e = (x >> 23) & 0xffu;
  uint m = x & 0x7fffffu;
  if (e == 0xffu) return sign | 0x7c00u | (m != 0u ? 0x200u : 0u);
  int exponent = int(e) - 112;
  if (exponent >= 31) return sign | 0x7c00u;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    m |= 0x800000u;
    uint shift = uint(14 - exponent);
    uint h = m >> shift;
    uint rest = m & ((1u << shift) - 1u);
    uint halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (h & 1u) != 0u)) h++;
    return sign | h;
  }
  uint h = sign | (uint(exponent) << 10) | (m >> 13);
  uint rest = m & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) != 0u)) h++;  // a carry into the exponent is right
  return h;
}

float f16ToF32(uint bits) { return unpackHalf2x16(bits).x; }

// Sums `value` over the workgroup through `scratch` (WORKGROUP floats); every invocation gets the sum.
#define WORKGROUP_REDUCE(scratch, value, op, result)                          \
  scratch[gl_LocalInvocationID.x] = value;                                    \
  barrier();                                                                  \
  for (uint s_ = WORKGROUP / 2u; s_ > 0u; s_ >>= 1u) {                        \
    if (gl_LocalInvocationID.x < s_) {                                        \
      scratch[gl_LocalInvocationID.x] =                                       \
          op(scratch[gl_LocalInvocationID.x], scratch[gl_LocalInvocationID.x + s_]); \
    }                                                                         \
    barrier();                                                                \
  }                                                                           \
  result = scratch[0];                                                        \
  barrier();
float addOp(float a, float b) { return a + b; }
float maxOp(float a, float b) { return max(a, b); }
