// Portable GEMM kernels: the fallback for CPUs without AVX2/FMA and the baseline the
// AVX2 kernels are tested against. Plain loops over a fixed MR x NR tile, which the
// compiler vectorizes with the baseline instruction set (SSE2 on x86-64).
#include <cmath>

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

template <class T>
void microkernel_generic(int64_t kc, const T* a, const T* b, T* c, int64_t ldc,
                         const StoreArgs<T>& s) {
  constexpr int MR = Tile<T>::MR, NR = Tile<T>::NR;
  T acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const T* ak = a + k * MR;
    const T* bk = b + k * NR;
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += ak[i] * bk[j];
  }
  for (int i = 0; i < MR; ++i) {
    T* ci = c + i * ldc;
    for (int j = 0; j < NR; ++j) ci[j] = finish_scalar(acc[i][j], ci + j, j, s);
  }
}

}  // namespace

void microkernel_f32_generic(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             const StoreArgs<float>& s) {
  microkernel_generic(kc, a, b, c, ldc, s);
}

void microkernel_f64_generic(int64_t kc, const double* a, const double* b, double* c,
                             int64_t ldc, const StoreArgs<double>& s) {
  microkernel_generic(kc, a, b, c, ldc, s);
}

void direct_f32_generic(const Direct<float>& d) { direct_body(d); }
void direct_f64_generic(const Direct<double>& d) { direct_body(d); }

}  // namespace lamina::cpu::gemm_detail
