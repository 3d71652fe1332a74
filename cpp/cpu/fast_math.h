// For kernels that pick their instruction set per function rather than per file (recurrent,
// attention): their element loops live in a function compiled twice, once marked
// LAMINA_TARGET_AVX2 and once plain, chosen at run time by use_avx2_kernels(). The loops
// call the fast_* math of cpu/vmath.h, and the files build with -fno-trapping-math (see
// CMakeLists.txt), without which GCC does not if-convert the clamps and selects.
#pragma once
#include "cpu/isa.h"
#include "cpu/vmath.h"

#define LAMINA_TARGET_AVX2 __attribute__((target("avx2,fma")))
// The loop bodies are inlined into both copies, so each is compiled for its target.
#define LAMINA_ALWAYS_INLINE inline __attribute__((always_inline))
