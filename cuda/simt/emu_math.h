// Numeric types and intrinsics of CUDA device code, for the host compiler. __half and
// __nv_bfloat16 are storage types only: kernels convert explicitly, which keeps their
// arithmetic in fp32 on both builds. They declare no constructor: GCC guards a thread_local
// (a __shared__ array here) of a type with a user-declared one, and the fibers of a block
// would race on that guard. Conversions follow the toolkit (round to nearest even,
// canonical NaN 0x7fff). The fast-math intrinsics use the host libm, so results can differ
// from the device in the last bits.
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

class __half {
  uint16_t bits_;
  friend unsigned short __half_as_ushort(__half h);
  friend __half __ushort_as_half(unsigned short bits);
};

class __nv_bfloat16 {
  uint16_t bits_;
  friend unsigned short __bfloat16_as_ushort(__nv_bfloat16 h);
  friend __nv_bfloat16 __ushort_as_bfloat16(unsigned short bits);
};

inline unsigned short __half_as_ushort(__half h) { return h.bits_; }
inline __half __ushort_as_half(unsigned short bits) {
  __half h;
  h.bits_ = bits;
  return h;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.bits_; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short bits) {
  __nv_bfloat16 h;
  h.bits_ = bits;
  return h;
}

// CUDA's vector types, with their alignment (what makes a float4 load one 16-byte access).
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(unsigned u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline int __float_as_int(float f) { return int(__float_as_uint(f)); }
inline float __int_as_float(int i) { return __uint_as_float(unsigned(i)); }

namespace lamina::simt::emu {

inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu,
                 mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in fp32
    const float magnitude = float(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return __uint_as_float(sign | 0x7f800000u | mantissa << 13);
  return __uint_as_float(sign | (exponent + 112) << 23 | mantissa << 13);
}

inline uint16_t float_to_half_bits(float f) {
  const uint32_t u = __float_as_uint(f), sign = (u >> 16) & 0x8000u, magnitude = u & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return 0x7fff;
  if (magnitude >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // at or past 65520: infinity
  if (magnitude >= 0x38800000u) {  // normal half: round the mantissa at bit 13, to even
    const uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
    return uint16_t(sign | (rounded - 0x38000000u) >> 13);
  }
  // Subnormal half: a multiple of 2^-24. Scaling by 2^24 is exact, and nearbyintf rounds to
  // even in the default rounding mode (1024 carries into the smallest normal, as it should).
  return uint16_t(sign | uint32_t(nearbyintf(__uint_as_float(magnitude) * 0x1p24f)));
}

inline float bf16_bits_to_float(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }

inline uint16_t float_to_bf16_bits(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace lamina::simt::emu

inline __half __float2half(float f) {
  return __ushort_as_half(lamina::simt::emu::float_to_half_bits(f));
}
inline float __half2float(__half h) {
  return lamina::simt::emu::half_bits_to_float(__half_as_ushort(h));
}
inline __nv_bfloat16 __float2bfloat16(float f) {
  return __ushort_as_bfloat16(lamina::simt::emu::float_to_bf16_bits(f));
}
inline float __bfloat162float(__nv_bfloat16 h) {
  return lamina::simt::emu::bf16_bits_to_float(__bfloat16_as_ushort(h));
}

// Round-to-nearest arithmetic that nvcc never contracts into an FMA: kernels that must
// reproduce a host computation bit for bit (optimizer updates, random draws) use these.
// The emulator's host build does not contract across them either (no FMA in its ISA).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return sqrt(a); }

inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x ? __builtin_clz(unsigned(x)) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x) {
  x = (x >> 1 & 0x55555555u) | (x & 0x55555555u) << 1;
  x = (x >> 2 & 0x33333333u) | (x & 0x33333333u) << 2;
  x = (x >> 4 & 0x0f0f0f0fu) | (x & 0x0f0f0f0fu) << 4;
  return __builtin_bswap32(x);
}

// Device code has min/max overloads for every arithmetic type.
template <class T, class U>
  requires std::is_arithmetic_v<T> && std::is_arithmetic_v<U>
inline std::common_type_t<T, U> min(T a, U b) {
  return a < b ? a : b;
}
template <class T, class U>
  requires std::is_arithmetic_v<T> && std::is_arithmetic_v<U>
inline std::common_type_t<T, U> max(T a, U b) {
  return a < b ? b : a;
}
