// What the kernel families share: the strided indexer that maps a linear output index to an
// operand's element offset (broadcast dims have stride 0), device types for Lamina's dtypes,
// conversions between them, and the host helpers launchers use (grid sizes, dtype visits).
// Host code of a .cu file includes the core headers it needs before this one.
#pragma once
#include <math.h>  // float overloads of exp, log, ... in the global namespace on the emulator

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "simt/portable.cuh"

namespace lamina::cuda::device {

constexpr int kMaxDims = 8;

// Shape and strides (in elements) of one operand, aligned with the output's shape.
struct Indexer {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  __device__ __forceinline__ int64_t offset(int64_t linear) const {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t i = linear % shape[d];
      linear /= shape[d];
      off += i * strides[d];
    }
    return off;
  }
};

template <class T>
struct IsHalfType : std::false_type {};
template <>
struct IsHalfType<__half> : std::true_type {};
template <>
struct IsHalfType<__nv_bfloat16> : std::true_type {};

// Value conversion between any two element types, through float for the half types; bool
// results are "nonzero", like numpy; float to integer saturates (NaN gives 0).
template <class To, class From>
__device__ __forceinline__ To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, __half>) {
    return convert<To>(__half2float(v));
  } else if constexpr (std::is_same_v<From, __nv_bfloat16>) {
    return convert<To>(__bfloat162float(v));
  } else if constexpr (std::is_same_v<To, __half>) {
    return __float2half(float(v));
  } else if constexpr (std::is_same_v<To, __nv_bfloat16>) {
    return __float2bfloat16(float(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    // Saturating, NaN to 0, as the CPU's convert (a plain cast is undefined out of range).
    if (!(v == v)) return To(0);
    if (v <= From(std::numeric_limits<To>::min())) return std::numeric_limits<To>::min();
    if (v >= From(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return To(v);
  } else {
    return To(v);
  }
}

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
// NaN wins, so a row holding NaN gives NaN (as the CPU kernels do).
template <class T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const T o = __shfl_xor_sync(0xffffffffu, v, offset);
    v = (o > v || o != o) ? o : v;
  }
  return v;
}

// Sum (or max) over the block; blockDim.x a multiple of 32, `scratch` 33 shared slots,
// reached by every thread of the block.
template <bool kMax, class T>
__device__ __forceinline__ T block_reduce(T v, T* scratch) {
  v = kMax ? warp_max(v) : warp_sum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = lane < warps ? scratch[lane] : (kMax ? scratch[0] : T(0));
    w = kMax ? warp_max(w) : warp_sum(w);
    if (lane == 0) scratch[32] = w;
  }
  __syncthreads();
  const T result = scratch[32];
  __syncthreads();  // the next call reuses scratch
  return result;
}

// Exactly rounded float32/float64 arithmetic that is never contracted into an FMA, for
// kernels that reproduce a host computation bit for bit (the host side builds with
// -ffp-contract=off or has no FMA).
template <class T>
__device__ __forceinline__ T add_rn(T a, T b) {
  if constexpr (std::is_same_v<T, float>) return __fadd_rn(a, b);
  else return __dadd_rn(a, b);
}
template <class T>
__device__ __forceinline__ T sub_rn(T a, T b) {
  if constexpr (std::is_same_v<T, float>) return __fsub_rn(a, b);
  else return __dsub_rn(a, b);
}
template <class T>
__device__ __forceinline__ T mul_rn(T a, T b) {
  if constexpr (std::is_same_v<T, float>) return __fmul_rn(a, b);
  else return __dmul_rn(a, b);
}
template <class T>
__device__ __forceinline__ T div_rn(T a, T b) {
  if constexpr (std::is_same_v<T, float>) return __fdiv_rn(a, b);
  else return __ddiv_rn(a, b);
}
template <class T>
__device__ __forceinline__ T sqrt_rn(T a) {
  if constexpr (std::is_same_v<T, float>) return __fsqrt_rn(a);
  else return __dsqrt_rn(a);
}

}  // namespace lamina::cuda::device

namespace lamina::cuda {

// The indexer of `t` broadcast to `out_shape` (trailing-aligned, size-1 dims get stride 0).
inline device::Indexer make_indexer(const Tensor& t, const Shape& out_shape, const char* op) {
  check<ValueError>(out_shape.size() <= size_t(device::kMaxDims), op, ": CUDA kernels take at most ",
                    device::kMaxDims, " dimensions, got ", out_shape.size());
  device::Indexer ix;
  ix.ndim = int(out_shape.size());
  const int lead = int(out_shape.size()) - int(t.ndim());
  for (int d = 0; d < ix.ndim; ++d) {
    ix.shape[d] = out_shape[size_t(d)];
    const int td = d - lead;
    ix.strides[d] = (td < 0 || t.shape()[size_t(td)] == 1) ? 0 : t.strides()[size_t(td)];
  }
  return ix;
}

// Blocks of `threads` covering n elements, capped so the grid-stride loop takes the rest.
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return unsigned(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

// Calls fn(T{}) with the device element type of `t`.
template <class Fn>
decltype(auto) visit_device_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::Bool: return fn(bool{});
    case DType::UInt8: return fn(uint8_t{});
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    case DType::Float16: return fn(__half{});
    case DType::BFloat16: return fn(__nv_bfloat16{});
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
  }
  throw TypeError("unknown dtype");
}

// Calls fn(T{}) for a float32 or float64 `dtype`; other dtypes are a TypeError naming `op`.
template <class Fn>
decltype(auto) visit_float_dtype(DType dtype, const char* op, Fn&& fn) {
  if (dtype == DType::Float32) return fn(float{});
  if (dtype == DType::Float64) return fn(double{});
  throw TypeError(std::string(op) + ": the CUDA kernel expects float32 or float64, got " + dtype_name(dtype));
}

// The data pointer of an optional tensor (nullptr when undefined).
template <class T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace lamina::cuda
