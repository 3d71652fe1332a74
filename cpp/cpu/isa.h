// Run-time choice of instruction set for the elementwise and reduction kernels.
//
// The kernel files listed in CMakeLists.txt (LAMINA_ISA_KERNELS) are compiled twice: for
// baseline x86-64 and with AVX2+FMA. Each copy defines its entry points in its own
// namespace (kernels_generic / kernels_avx2) and instantiates the loop templates of
// loops.h / reduce_loops.h in its own inline namespace, so the copies share no symbol.
// cpu/dispatch.cpp holds the one public entry point per kernel, which checks the CPU once.
#pragma once

#ifndef LAMINA_CPU_ISA
#define LAMINA_CPU_ISA generic
#endif
#define LAMINA_ISA_CAT2(a, b) a##b
#define LAMINA_ISA_CAT(a, b) LAMINA_ISA_CAT2(a, b)
// Namespace of a dual-compiled kernel file's entry points.
#define LAMINA_KERNELS LAMINA_ISA_CAT(kernels_, LAMINA_CPU_ISA)
// Inline namespace of the loop templates included by kernel files.
#define LAMINA_LOOPS LAMINA_ISA_CAT(loops_, LAMINA_CPU_ISA)

// Declares the public dispatcher `name` and its two compiled variants.
#define LAMINA_DUAL_KERNEL(name, params)      \
  void name params;                           \
  namespace kernels_generic { void name params; } \
  namespace kernels_avx2 { void name params; }

#include <cstdlib>
#include <cstring>

namespace lamina::cpu {
// The widest instruction set LAMINA_CPU_ISA (generic|avx2, read by the caller once) allows:
// 0 = baseline, 1 = AVX2+FMA, 2 = no cap. The one reader of the variable, inline so that the
// standalone GEMM test, which builds without dispatch.cpp, shares it.
inline int isa_cap_from_environment() {
  const char* cap = std::getenv("LAMINA_CPU_ISA");
  if (cap && std::strcmp(cap, "generic") == 0) return 0;
  if (cap && std::strcmp(cap, "avx2") == 0) return 1;
  return 2;
}

// AVX2 and FMA usable (CPU and OS), checked once; LAMINA_CPU_ISA=generic in the
// environment forces the baseline kernels (tests use it to check both paths agree).
bool use_avx2_kernels();
// AVX-512F usable as well, for the kernels that have an AVX-512 copy (the matrix kernels,
// and the per-function copies of fast_math.h); LAMINA_CPU_ISA=avx2 or generic turns it off.
bool use_avx512_kernels();
}  // namespace lamina::cpu
