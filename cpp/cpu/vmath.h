// Branch-free float32 exp/tanh/sigmoid/erf/log/log1p made only of arithmetic and bit operations, so
// that the compiler vectorizes the loops that call them (libm's expf/tanhf are scalar
// calls). Accuracy: a few ulp over the whole float range; NaN and +-inf propagate as in
// libm. Two helpers for callers that never need denormal results, exp_normal (sigmoid, tanh)
// and exp_nonpositive (shifted softmax scores), flush them to 0 instead. float64 kernels keep
// using libm: they serve references and gradient checks.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/isa.h"

namespace lamina::cpu {
inline namespace LAMINA_LOOPS {
namespace vmath {

__attribute__((always_inline)) inline float from_bits(int32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// e^x = 2^n * e^r with n = round(x / ln2), |r| <= ln2 / 2, e^r by its degree-6 Taylor
// polynomial (truncation error < 2e-7 relative). 2^n is applied as two factors so that
// results down to the denormal range keep their value.
__attribute__((always_inline)) inline float exp(float x) {
  const float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float xc = x > 88.8f ? 88.8f : (x < -104.0f ? -104.0f : x);
  float t = xc * kLog2e + kRound;
  float n = t - kRound;
  int32_t ni = int32_t(n);
  float r = xc - n * kLn2Hi - n * kLn2Lo;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
  int32_t half = ni >> 1;
  float s1 = from_bits((half + 127) << 23), s2 = from_bits((ni - half + 127) << 23);
  float y = p * s1 * s2;
  y = x > 88.72283935546875f ? __builtin_inff() : y;
  y = x < -103.972084f ? 0.0f : y;  // below half the smallest denormal
  return x != x ? x : y;
}

__attribute__((always_inline)) inline int32_t to_bits(float f) {
  int32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// log x = e ln2 + log m with x = 2^e m, m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s) with
// s = (m - 1) / (m + 1), |s| <= 0.172, by its series up to s^9 (truncation < 3e-9
// relative). m - 1 is exact there, so results near x = 1 keep their relative accuracy.
// Denormal inputs are scaled by 2^23 first.
__attribute__((always_inline)) inline float log(float x) {
  const float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f, kSqrt2 = 1.41421356f;
  const bool denormal = x < 1.17549435e-38f;
  const float xs = denormal ? x * 8388608.0f : x;
  const int32_t bits = to_bits(xs);
  float e = float(((bits >> 23) & 0xff) - 127) - (denormal ? 23.0f : 0.0f);
  float m = from_bits((bits & 0x007fffff) | 0x3f800000);
  const bool high = m > kSqrt2;
  m = high ? 0.5f * m : m;
  e = high ? e + 1.0f : e;
  const float s = (m - 1.0f) / (m + 1.0f), z = s * s;
  const float log_m = 2.0f * s * (1.0f + z * (1.0f / 3 + z * (1.0f / 5 + z * (1.0f / 7 + z * (1.0f / 9)))));
  float y = (e * kLn2Lo + log_m) + e * kLn2Hi;
  y = x == __builtin_inff() ? x : y;
  y = x == 0.0f ? -__builtin_inff() : y;
  y = x < 0.0f ? __builtin_nanf("") : y;
  return x != x ? x : y;
}

// log1p x = log(w) * x / (w - 1) with w = 1 + x rounded: the factor corrects the rounding
// of w (Goldberg's form), so tiny x keep full relative accuracy.
__attribute__((always_inline)) inline float log1p(float x) {
  const float w = 1.0f + x, d = w - 1.0f;
  float y = d == 0.0f ? x : log(w) * (x / d);
  return x == __builtin_inff() ? x : y;
}

// log(1 + u) for u in [0, 1] (the softplus term log1p(e^-|x|)): with k = [u > sqrt(2) - 1],
// log(1 + u) = k ln2 + 2 atanh(s), s = (u - k) / (u + 2 + k), |s| <= 0.172; no rounding of
// 1 + u enters s, so tiny u keep full relative accuracy. Cheaper than log1p (no exponent
// split, no special values): one division and a short polynomial. NaN propagates.
__attribute__((always_inline)) inline float log1p_unit(float u) {
  const float k = u > 0.41421356f ? 1.0f : 0.0f;
  const float s = (u - k) / (u + 2.0f + k), z = s * s;
  const float atanh2 = 2.0f * s * (1.0f + z * (1.0f / 3 + z * (1.0f / 5 + z * (1.0f / 7 + z * (1.0f / 9)))));
  return k * 0.693147181f + atanh2;
}

// exp for sigmoid, tanh and exp_nonpositive, which need it only where e^x is a normal float
// or beyond: the same reduction and polynomial as exp(), with x clamped to [-87.3, 88.7]
// (NaN kept) and 2^n as one factor, n in [-126, 128]; n = 128 gives +inf, as e^x overflows
// there. Without exp()'s denormal scaling and its three selects: 16 operations instead of 27.
__attribute__((always_inline)) inline float exp_normal(float x) {
  const float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;
  float xc = x > 88.7f ? 88.7f : x;
  xc = xc < -87.3f ? -87.3f : xc;
  float n = (xc * kLog2e + kRound) - kRound;
  float r = xc - n * kLn2Hi - n * kLn2Lo;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
  return p * from_bits((int32_t(n) + 127) << 23);
}

// e^x for x <= 0 (softmax's and attention's shifted scores): exp_normal's path, results
// below 2^-126 (x < -87.3) flushed to 0, which a sum of at least 1 does not see. -inf gives
// 0, NaN propagates. 18 operations against exp()'s 27.
__attribute__((always_inline)) inline float exp_nonpositive(float x) {
  const float y = exp_normal(x);
  return x < -87.3f ? 0.0f : y;
}

// 1 / (1 + e^-x); 0 below x = -88.4 (true values under 4e-39, denormals), as before with
// exp()'s overflow to +inf there. NaN propagates through exp_normal.
__attribute__((always_inline)) inline float sigmoid(float x) { return 1.0f / (1.0f + exp_normal(-x)); }

// tanh: odd polynomial near 0 (where 1 - 2/(e^2x + 1) cancels), the exp form elsewhere
// (e^2|x| = +inf beyond 44.35 gives exactly +-1). NaN takes the exp form and stays NaN.
__attribute__((always_inline)) inline float tanh(float x) {
  float ax = x < 0 ? -x : x;
  float x2 = x * x;
  float small = x * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315 + x2 * (62.0f / 2835)))));
  float big = 1.0f - 2.0f / (exp_normal(2.0f * ax) + 1.0f);
  big = x < 0 ? -big : big;
  return ax < 0.25f ? small : big;
}

// erf: x * P(x^2) / Q(x^2) on [-4, 4] (the rational fit XLA and Eigen use), where erf
// reaches 1 in float32; within 4e-7 absolute and relative of the true value. Clamping keeps
// +-inf finite before the division; NaN propagates.
__attribute__((always_inline)) inline float erf(float x) {
  float xc = x > 4.0f ? 4.0f : (x < -4.0f ? -4.0f : x);
  float x2 = xc * xc;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  float y = xc * p / q;
  return x != x ? x : y;
}

}  // namespace vmath

// Type-generic forms for kernels templated on the element type: float32 takes the
// vectorizable forms above, float64 keeps libm. Forced inline: a call left in an element
// loop would keep it from vectorizing.
template <class T>
__attribute__((always_inline)) inline T fast_exp(T x) {
  if constexpr (std::is_same_v<T, float>) return vmath::exp(x);
  else return std::exp(x);
}
template <class T>
__attribute__((always_inline)) inline T fast_log(T x) {
  if constexpr (std::is_same_v<T, float>) return vmath::log(x);
  else return std::log(x);
}
template <class T>
__attribute__((always_inline)) inline T fast_log1p(T x) {
  if constexpr (std::is_same_v<T, float>) return vmath::log1p(x);
  else return std::log1p(x);
}
// log(1 + u) for u in [0, 1] only.
template <class T>
__attribute__((always_inline)) inline T fast_log1p_unit(T u) {
  if constexpr (std::is_same_v<T, float>) return vmath::log1p_unit(u);
  else return std::log1p(u);
}
template <class T>
__attribute__((always_inline)) inline T fast_exp_nonpositive(T x) {
  if constexpr (std::is_same_v<T, float>) return vmath::exp_nonpositive(x);
  else return std::exp(x);
}
template <class T>
__attribute__((always_inline)) inline T fast_tanh(T x) {
  if constexpr (std::is_same_v<T, float>) return vmath::tanh(x);
  else return std::tanh(x);
}
template <class T>
__attribute__((always_inline)) inline T fast_erf(T x) {
  if constexpr (std::is_same_v<T, float>) return vmath::erf(x);
  else return std::erf(x);
}
// GELU (erf form) and g * GELU'(x), written once for the unary and binary kernels and their
// AVX-512 copies (same files), so all round alike.
template <class T>
__attribute__((always_inline)) inline T gelu_erf(T x) {
  return T(0.5) * x * (T(1) + fast_erf(x * T(0.7071067811865476)));
}
template <class T>
__attribute__((always_inline)) inline T gelu_erf_grad(T g, T x) {
  const T cdf = T(0.5) * (T(1) + fast_erf(x * T(0.7071067811865476)));
  return g * (cdf + x * T(0.3989422804014327) * fast_exp_nonpositive(T(-0.5) * x * x));  // pdf = e^(-x^2/2) / sqrt(2 pi)
}
template <class T>
__attribute__((always_inline)) inline T fast_sigmoid(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return vmath::sigmoid(x);
  } else {
    if (x >= 0) return T(1) / (T(1) + std::exp(-x));
    T e = std::exp(x);
    return e / (T(1) + e);
  }
}

}  // namespace LAMINA_LOOPS
}  // namespace lamina::cpu
