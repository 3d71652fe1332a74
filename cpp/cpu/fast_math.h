// For kernels that pick their instruction set per function rather than per file (recurrent,
// attention): their element loops live in a function compiled three times, marked
// LAMINA_TARGET_AVX512, LAMINA_TARGET_AVX2 and plain, chosen at run time
// (LAMINA_PER_ISA_KERNEL). The loops
// call the fast_* math of cpu/vmath.h, and the files build with -fno-trapping-math (see
// CMakeLists.txt), without which GCC does not if-convert the clamps and selects.
#pragma once
#include <type_traits>

#include "cpu/isa.h"
#include "cpu/vmath.h"

#define LAMINA_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define LAMINA_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma,prefer-vector-width=512")))

// Compiles the float instantiation of the function template `name` three times (AVX-512,
// AVX2+FMA, baseline) and defines name_run<T>(args...), which calls the copy the CPU and
// LAMINA_CPU_ISA allow (other T run the template directly). The copies perform the same
// operations in the same order, only on wider vectors, so they give the same results.
#define LAMINA_PER_ISA_KERNEL(name)                                         \
  template <class... A>                                                     \
  LAMINA_TARGET_AVX512 auto name##_avx512(A... a) {                         \
    return name<float>(a...);                                               \
  }                                                                         \
  template <class... A>                                                     \
  LAMINA_TARGET_AVX2 auto name##_avx2(A... a) {                             \
    return name<float>(a...);                                               \
  }                                                                         \
  template <class... A>                                                     \
  auto name##_generic(A... a) {                                             \
    return name<float>(a...);                                               \
  }                                                                         \
  template <class T, class... A>                                            \
  auto name##_run(A... a) {                                                 \
    if constexpr (std::is_same_v<T, float>) {                               \
      if (use_avx512_kernels()) return name##_avx512(a...);                 \
      if (use_avx2_kernels()) return name##_avx2(a...);                     \
      return name##_generic(a...);                                          \
    } else {                                                                \
      return name<T>(a...);                                                 \
    }                                                                       \
  }
// The loop bodies are inlined into both copies, so each is compiled for its target.
#define LAMINA_ALWAYS_INLINE inline __attribute__((always_inline))
