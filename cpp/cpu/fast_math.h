// Branch-free exp / sigmoid / tanh for the fused CPU kernels (recurrent gates, attention
// softmax). float uses a Cephes-style polynomial (|rel err| < 2e-7) written so that the
// compiler vectorises the calling loop; double uses libm so that float64 results stay exact
// enough to serve as references.
//
// Kernels that want the vector width put their loops in a function compiled twice:
// once with LAMINA_TARGET_AVX2 and once plain, chosen at run time by has_avx2_fma(). Files
// using these loops build with -fno-trapping-math (see CMakeLists.txt), without which GCC
// will not if-convert the clamps and selects.
#pragma once
#include <cmath>
#include <cstdint>
#include <bit>

#define LAMINA_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define LAMINA_ALWAYS_INLINE inline __attribute__((always_inline))

namespace lamina::cpu {

bool has_avx2_fma();  // cached cpuid query (defined in fast_math.cpp)

LAMINA_ALWAYS_INLINE float fast_exp(float x) {
  const bool underflow = !(x > -87.3f);  // exp(-inf) and masked scores give exactly 0
  x = x > -87.3f ? x : -87.3f;
  x = x < 88.3f ? x : 88.3f;
  // Round x / ln2 to the nearest integer k with the 1.5 * 2^23 trick; k's bits come free.
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const int32_t n = std::bit_cast<int32_t>(shifted) - 0x4B400000;
  const float k = shifted - 12582912.0f;
  const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (n + 127) << 23;
  return underflow ? 0.0f : y * std::bit_cast<float>(bits);
}

LAMINA_ALWAYS_INLINE double fast_exp(double x) { return std::exp(x); }

template <class T>
LAMINA_ALWAYS_INLINE T fast_sigmoid(T x) {
  return T(1) / (T(1) + fast_exp(-x));
}

LAMINA_ALWAYS_INLINE float fast_tanh(float x) {
  // 1 - 2 / (1 + e^{2x}) loses relative accuracy near 0; there the odd series is exact.
  const float x2 = x * x;
  const float series = x * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
  const float viaexp = 1.0f - 2.0f / (1.0f + fast_exp(2.0f * x));
  return x2 < 0.0039f ? series : viaexp;
}

LAMINA_ALWAYS_INLINE double fast_tanh(double x) { return std::tanh(x); }

}  // namespace lamina::cpu
