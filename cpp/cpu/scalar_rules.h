// Python/numpy scalar rules shared by the CPU kernels (cpu/binary.cpp) and the CUDA kernels
// (cuda/kernels/elementwise.cu), so the two backends cannot drift apart: floor division and
// modulo with Python's signs, integer division by zero giving 0, wrapping integer powers.
#pragma once
#include <cmath>
#include <type_traits>

#include "cpu/isa.h"

#if defined(__CUDACC__)
#define LAMINA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LAMINA_HOST_DEVICE inline
#endif

namespace lamina::cpu {
inline namespace LAMINA_LOOPS {

// Integer division and modulo follow Python (floor) semantics; division by zero gives 0
// rather than a hardware trap, and INT_MIN / -1 wraps.
template <class T>
LAMINA_HOST_DEVICE T floor_div(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    // numpy's npy_divmod: consistent with py_mod (a == b * q + r), e.g. -1 // inf == -1.
    if (b == 0) return a / b;
    T mod = std::fmod(a, b);
    T div = (a - mod) / b;
    if (mod != 0 && ((b < 0) != (mod < 0))) div -= T(1);
    if (div == 0) return std::copysign(T(0), a / b);
    T q = std::floor(div);
    return div - q > T(0.5) ? q + T(1) : q;
  } else if constexpr (std::is_same_v<T, bool>) {
    return b ? a : false;
  } else {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return T(0 - static_cast<std::make_unsigned_t<T>>(a));
      T q = a / b;
      if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
      return q;
    } else {
      return a / b;
    }
  }
}

template <class T>
LAMINA_HOST_DEVICE T py_mod(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (b == 0) return std::fmod(a, b);
    T r = std::fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
  } else if constexpr (std::is_same_v<T, bool>) {
    return false;
  } else {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return 0;
      T r = a % b;
      if (r != 0 && ((r < 0) != (b < 0))) r += b;
      return r;
    } else {
      return a % b;
    }
  }
}

template <class T>
LAMINA_HOST_DEVICE T int_pow(T base, T exp) {
  if constexpr (std::is_same_v<T, bool>) {
    return base || !exp;
  } else {
    if constexpr (std::is_signed_v<T>) {
      if (exp < 0) return base == 1 ? 1 : (base == -1 ? ((exp & 1) ? -1 : 1) : 0);
    }
    using U = std::make_unsigned_t<T>;
    U result = 1, b = U(base);
    for (T e = exp; e > 0; e >>= 1) {
      if (e & 1) result *= b;
      b *= b;
    }
    return T(result);
  }
}

}  // namespace LAMINA_LOOPS
}  // namespace lamina::cpu
