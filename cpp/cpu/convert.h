// Value conversion between element types, half types included; float to integer
// conversion saturates NaN/out-of-range to avoid undefined behaviour.
#pragma once
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/dtype.h"

namespace lamina::cpu {

template <class T> inline double widen(T v) { return double(v); }
template <> inline double widen(Half v) { return double(to_float(v)); }
template <> inline double widen(BFloat16 v) { return double(to_float(v)); }

template <class Out, class In>
inline Out convert(In v) {
  if constexpr (std::is_same_v<Out, In>) {
    return v;
  } else if constexpr (std::is_same_v<Out, Half>) {
    return to_half(float(widen(v)));
  } else if constexpr (std::is_same_v<Out, BFloat16>) {
    return to_bfloat16(float(widen(v)));
  } else if constexpr (std::is_same_v<In, Half> || std::is_same_v<In, BFloat16>) {
    return convert<Out>(to_float(v));
  } else if constexpr (std::is_same_v<Out, bool>) {
    return v != In(0);
  } else if constexpr (std::is_integral_v<Out> && std::is_floating_point_v<In>) {
    if (!(v == v)) return Out(0);
    if (v <= In(std::numeric_limits<Out>::min())) return std::numeric_limits<Out>::min();
    if (v >= In(std::numeric_limits<Out>::max())) return std::numeric_limits<Out>::max();
    return Out(v);
  } else {
    return Out(v);
  }
}

}  // namespace lamina::cpu
