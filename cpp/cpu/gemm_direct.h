// The unpacked GEMM path, written once as plain loops and compiled twice: by
// gemm_generic.cpp for any x86-64, and inside an AVX2/FMA target function by gemm_avx2.cpp.
// Used for small products (packing would cost more than it saves) and for matrix-vector
// shapes (M == 1 or N == 1), where packing is pure overhead. Everything here is
// always_inline and file-local, so each includer gets its own copy built for its target.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/gemm_internal.h"

namespace lamina::cpu::gemm_detail {
namespace {

#define LAMINA_GEMM_INLINE inline __attribute__((always_inline))

// Final value of C(i,j) from the accumulated dot product.
template <class T>
LAMINA_GEMM_INLINE T finish_scalar(T acc, const T* c, int64_t j, const StoreArgs<T>& s) {
  T v = s.alpha * acc;
  if (s.beta != T(0)) v += s.beta * *c;
  switch (s.epilogue) {
    case Epilogue::None: return v;
    case Epilogue::Bias: return v + s.bias[j];
    case Epilogue::BiasRelu: v += s.bias[j]; return v < T(0) ? T(0) : v;  // keeps NaN
    case Epilogue::BiasGelu: return gelu_tanh(v + s.bias[j]);
  }
  return v;
}

// C(i, j0:j0+nb) for one row: op(B) rows are contiguous in j, so stream them.
// Four k steps per pass keep the accumulator traffic to a quarter.
template <class T>
LAMINA_GEMM_INLINE void direct_row_axpy(const Direct<T>& d, int64_t i) {
  constexpr int64_t JB = 256;
  T acc[JB];
  const T* a = d.A + i * d.a_row;
  for (int64_t j0 = 0; j0 < d.N; j0 += JB) {
    const int64_t nb = std::min(JB, d.N - j0);
    for (int64_t j = 0; j < nb; ++j) acc[j] = T(0);
    const T* b = d.B + j0;
    int64_t k = 0;
    for (; k + 4 <= d.K; k += 4) {
      const T a0 = a[k * d.a_col], a1 = a[(k + 1) * d.a_col];
      const T a2 = a[(k + 2) * d.a_col], a3 = a[(k + 3) * d.a_col];
      const T* b0 = b + k * d.b_row;
      const T* b1 = b0 + d.b_row;
      const T* b2 = b1 + d.b_row;
      const T* b3 = b2 + d.b_row;
      for (int64_t j = 0; j < nb; ++j)
        acc[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
    }
    for (; k < d.K; ++k) {
      const T ak = a[k * d.a_col];
      const T* bk = b + k * d.b_row;
      for (int64_t j = 0; j < nb; ++j) acc[j] += ak * bk[j];
    }
    T* c = d.C + i * d.ldc + j0;
    for (int64_t j = 0; j < nb; ++j) c[j] = finish_scalar(acc[j], c + j, j0 + j, d.s);
  }
}

// One dot product over k with eight partial sums (breaks the FMA latency chain and lets
// the compiler use one vector register when both strides are 1).
template <class T, bool Unit>
LAMINA_GEMM_INLINE T direct_dot(const T* a, int64_t as, const T* b, int64_t bs, int64_t K) {
  if (Unit) as = bs = 1;
  T p[8] = {};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8)
    for (int u = 0; u < 8; ++u) p[u] += a[(k + u) * as] * b[(k + u) * bs];
  T sum = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
  for (; k < K; ++k) sum += a[k * as] * b[k * bs];
  return sum;
}

template <class T, bool Unit>
LAMINA_GEMM_INLINE void direct_rows_dot(const Direct<T>& d) {
  for (int64_t i = 0; i < d.M; ++i) {
    const T* a = d.A + i * d.a_row;
    T* c = d.C + i * d.ldc;
    for (int64_t j = 0; j < d.N; ++j) {
      T acc = direct_dot<T, Unit>(a, d.a_col, d.B + j * d.b_col, d.b_row, d.K);
      c[j] = finish_scalar(acc, c + j, j, d.s);
    }
  }
}

template <class T>
LAMINA_GEMM_INLINE void direct_body(const Direct<T>& d) {
  if (d.b_col == 1 && d.N >= 8) {
    for (int64_t i = 0; i < d.M; ++i) direct_row_axpy(d, i);
  } else if (d.a_col == 1 && d.b_row == 1) {
    direct_rows_dot<T, true>(d);
  } else {
    direct_rows_dot<T, false>(d);
  }
}

#undef LAMINA_GEMM_INLINE

}  // namespace
}  // namespace lamina::cpu::gemm_detail
