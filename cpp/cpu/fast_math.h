// Branch-free exp / sigmoid / tanh for the fused CPU kernels (recurrent gates, attention
// softmax). float uses the branch-free forms of cpu/vmath.h so that the compiler vectorises
// the calling loop; double uses libm so that float64 results stay exact enough to serve as
// references.
//
// Kernels that want the vector width put their loops in a function compiled twice:
// once with LAMINA_TARGET_AVX2 and once plain, chosen at run time by use_avx2_kernels(). Files
// using these loops build with -fno-trapping-math (see CMakeLists.txt), without which GCC
// will not if-convert the clamps and selects.
#pragma once
#include <cmath>
#include <cstdint>
#include <bit>

#include "cpu/isa.h"
#include "cpu/vmath.h"

#define LAMINA_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define LAMINA_ALWAYS_INLINE inline __attribute__((always_inline))

namespace lamina::cpu {

LAMINA_ALWAYS_INLINE float fast_exp(float x) { return vmath::exp(x); }

LAMINA_ALWAYS_INLINE double fast_exp(double x) { return std::exp(x); }

template <class T>
LAMINA_ALWAYS_INLINE T fast_sigmoid(T x) {
  return T(1) / (T(1) + fast_exp(-x));
}

LAMINA_ALWAYS_INLINE float fast_tanh(float x) { return vmath::tanh(x); }

LAMINA_ALWAYS_INLINE double fast_tanh(double x) { return std::tanh(x); }

}  // namespace lamina::cpu
