// Integer arithmetic that wraps around on overflow, as numpy's does: plain signed overflow
// is undefined behaviour in C++. Floating-point types pass through unchanged.
#pragma once
#include <type_traits>

#include "cpu/isa.h"

namespace lamina::cpu {
inline namespace LAMINA_LOOPS {

template <class T>
using WrapAs = std::conditional_t<std::is_integral_v<T> && std::is_signed_v<T>, std::make_unsigned<T>,
                                  std::type_identity<T>>;

template <class T>
inline T wrapping_add(T a, T b) {
  using U = typename WrapAs<T>::type;
  return T(U(a) + U(b));
}
template <class T>
inline T wrapping_sub(T a, T b) {
  using U = typename WrapAs<T>::type;
  return T(U(a) - U(b));
}
template <class T>
inline T wrapping_mul(T a, T b) {
  using U = typename WrapAs<T>::type;
  return T(U(a) * U(b));
}

}  // namespace LAMINA_LOOPS
}  // namespace lamina::cpu
