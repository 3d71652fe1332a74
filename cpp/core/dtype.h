// Element types, their sizes and names, numpy-style promotion, and the half-precision
// storage types (converted to float32 for arithmetic).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "core/errors.h"

namespace lamina {

enum class DType : uint8_t { Bool, UInt8, Int32, Int64, Float16, BFloat16, Float32, Float64 };
constexpr int kNumDTypes = 8;

struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

inline float bits_to_float(uint32_t b) { float f; std::memcpy(&f, &b, 4); return f; }
inline uint32_t float_to_bits(float f) { uint32_t b; std::memcpy(&b, &f, 4); return b; }

inline float to_float(BFloat16 h) { return bits_to_float(uint32_t(h.bits) << 16); }
inline BFloat16 to_bfloat16(float f) {
  uint32_t b = float_to_bits(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return BFloat16{uint16_t((b >> 16) | 0x40)};  // quiet NaN
  b += 0x7fffu + ((b >> 16) & 1u);  // round to nearest even
  return BFloat16{uint16_t(b >> 16)};
}
float to_float(Half h);
Half to_half(float f);

size_t dtype_size(DType t);
const char* dtype_name(DType t);
DType dtype_from_name(const std::string& name);  // throws TypeError
inline bool is_floating(DType t) { return t >= DType::Float16; }
inline bool is_integral(DType t) { return t == DType::UInt8 || t == DType::Int32 || t == DType::Int64; }
// numpy promotion for two tensors (float16 + bfloat16 -> float32, uint8 + int32 -> int32).
DType promote_types(DType a, DType b);

template <class T> struct dtype_of;
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<Half> { static constexpr DType value = DType::Float16; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::BFloat16; };
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };

// Calls fn(T{}) with T the C++ type of `t`. Arithmetic kernels only see the "compute"
// types (bool, uint8, int32, int64, float, double); half types are widened first.
template <class Fn>
decltype(auto) visit_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::Bool: return fn(bool{});
    case DType::UInt8: return fn(uint8_t{});
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    case DType::Float16: return fn(Half{});
    case DType::BFloat16: return fn(BFloat16{});
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
  }
  throw TypeError("unknown dtype");
}

template <class Fn>
decltype(auto) visit_compute_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::Bool: return fn(bool{});
    case DType::UInt8: return fn(uint8_t{});
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    default: break;
  }
  throw TypeError(std::string("dtype ") + dtype_name(t) + " has no arithmetic kernels; cast it first");
}

}  // namespace lamina
