// Portable GEMM kernels: the fallback for CPUs without AVX2/FMA and the baseline the
// AVX2 kernels are tested against. Plain loops over a fixed MR x NR tile, which the
// compiler vectorizes with the baseline instruction set (SSE2 on x86-64).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/gemm_direct.h"
#include "cpu/gemm_internal.h"

namespace lamina::cpu::gemm_detail {

float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}

double gelu_tanh(double x) {
  constexpr double kSqrt2OverPi = 0.7978845608028654;
  return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
}

namespace {

// Written with the compiler's generic 16-byte vectors (SSE2 on x86-64, NEON elsewhere).
// Two passes over k, one per half of the tile's columns, so the 6 x 8 floats of
// accumulators (12 vectors) stay in the 16 registers; the full 6 x 16 would spill.
template <class T>
void microkernel_generic(int64_t kc, const T* a, const T* b, T* c, int64_t ldc,
                         const StoreArgs<T>& s, int mr, int nr) {
  typedef T V __attribute__((vector_size(16)));
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR, H = NR / 2, L = 16 / sizeof(T), VH = H / L;
  for (int h = 0; h < nr; h += H) {
    V acc[MR][VH] = {};
    for (int64_t k = 0; k < kc; ++k) {
      const T* ak = a + k * MR;
      V bv[VH];
      std::memcpy(bv, b + k * NR + h, sizeof(bv));
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const V ai = V{} + ak[i];
#pragma GCC unroll 8
        for (int v = 0; v < VH; ++v) acc[i][v] += ai * bv[v];
      }
    }
    alignas(16) T out[MR][H];
    std::memcpy(out, acc, sizeof(out));
    const int cols = std::min(H, nr - h);
    for (int i = 0; i < mr; ++i) {
      T* ci = c + i * ldc + h;
      for (int j = 0; j < cols; ++j) ci[j] = finish_scalar(out[i][j], ci + j, h + j, s);
    }
  }
}

}  // namespace

void microkernel_f32_generic(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             const StoreArgs<float>& s, int mr, int nr) {
  microkernel_generic(kc, a, b, c, ldc, s, mr, nr);
}

void microkernel_f64_generic(int64_t kc, const double* a, const double* b, double* c,
                             int64_t ldc, const StoreArgs<double>& s, int mr, int nr) {
  microkernel_generic(kc, a, b, c, ldc, s, mr, nr);
}

void direct_f32_generic(const Direct<float>& d) { direct_body(d); }
void direct_f64_generic(const Direct<double>& d) { direct_body(d); }

}  // namespace lamina::cpu::gemm_detail
