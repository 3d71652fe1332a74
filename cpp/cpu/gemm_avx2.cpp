// AVX2/FMA GEMM kernels, chosen at run time when the CPU has both (see gemm.cpp); every
// function here carries target("avx2,fma"), so the file builds without -mavx2 and nothing
// from it runs on an older CPU.
//
// microkernel_f32_avx2, version 1: C[6,16] tile.
//   a: 6-row panel packed [kc][6]; b: 16-column panel packed [kc][16], 64-byte aligned.
//   Registers: 12 ymm accumulators (6 rows x 2 x 8 floats) + 2 for b + 1 broadcast of a.
//   Per k: 2 aligned loads, 6 broadcasts, 12 FMAs = 192 FLOP; 2 FMA ports => 6 cycles/k,
//   loads (8 per k) stay under the 2-3 load ports' budget. FMA latency 4-5 cycles is hidden
//   by 12 independent chains. Bytes from L1 per k: 88 for 192 FLOP.
//   Store: alpha, beta (C not read when beta == 0), bias, ReLU or tanh-GELU, fused in
//   registers before the single write of C.
// microkernel_f64_avx2: the same scheme as a 6x8 tile of doubles (96 FLOP per k).
#include <immintrin.h>

#include "cpu/gemm_direct.h"
#include "cpu/gemm_internal.h"

#define LAMINA_AVX2 __attribute__((target("avx2,fma")))
#define LAMINA_AVX2_INLINE inline __attribute__((always_inline, target("avx2,fma")))

namespace lamina::cpu::gemm_detail {

namespace {

// exp(x) for x in [-87, 88] (inputs are clamped): 2^n * p(r) with r = x - n*ln2 split in
// two parts, p the degree-6 Taylor polynomial; |r| <= ln2/2 gives ~1 ulp.
LAMINA_AVX2_INLINE __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// 0.5 x (1 + tanh(u)) == x * sigmoid(2u) == x / (1 + exp(-2u)), u = sqrt(2/pi)(x + 0.044715 x^3).
LAMINA_AVX2_INLINE __m256 gelu_ps(__m256 x) {
  const __m256 c1 = _mm256_set1_ps(-2.0f * 0.7978845608028654f);
  const __m256 c3 = _mm256_set1_ps(-2.0f * 0.7978845608028654f * 0.044715f);
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 minus_2u = _mm256_mul_ps(x, _mm256_fmadd_ps(c3, x2, c1));
  __m256 t = exp_ps(minus_2u);
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), t));
}

// One 8-float slice of a tile row: c = act(alpha * acc + beta * c + bias).
LAMINA_AVX2_INLINE void store8(float* c, const float* bias, __m256 acc, const StoreArgs<float>& s) {
  __m256 v = _mm256_mul_ps(acc, _mm256_set1_ps(s.alpha));
  if (s.beta != 0.0f) v = _mm256_fmadd_ps(_mm256_set1_ps(s.beta), _mm256_loadu_ps(c), v);
  if (s.epilogue != Epilogue::None) {
    v = _mm256_add_ps(v, _mm256_loadu_ps(bias));
    // max(0, v) returns v when v is NaN, like the scalar path.
    if (s.epilogue == Epilogue::BiasRelu) v = _mm256_max_ps(_mm256_setzero_ps(), v);
    if (s.epilogue == Epilogue::BiasGelu) v = gelu_ps(v);
  }
  _mm256_storeu_ps(c, v);
}

LAMINA_AVX2_INLINE void store4d(double* c, __m256d acc, const StoreArgs<double>& s) {
  __m256d v = _mm256_mul_pd(acc, _mm256_set1_pd(s.alpha));
  if (s.beta != 0.0) v = _mm256_fmadd_pd(_mm256_set1_pd(s.beta), _mm256_loadu_pd(c), v);
  _mm256_storeu_pd(c, v);
}

}  // namespace

LAMINA_AVX2 void microkernel_f32_avx2(int64_t kc, const float* a, const float* b, float* c,
                                      int64_t ldc, const StoreArgs<float>& s) {
  for (int i = 0; i < 6; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#define LAMINA_ROW(i)                              \
  {                                                \
    __m256 ai = _mm256_broadcast_ss(a + i);        \
    c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);    \
    c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);    \
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    LAMINA_ROW(0) LAMINA_ROW(1) LAMINA_ROW(2) LAMINA_ROW(3) LAMINA_ROW(4) LAMINA_ROW(5)
    a += 6;
    b += 16;
  }
#undef LAMINA_ROW
  const float* bias = s.bias;
  store8(c + 0 * ldc, bias, c00, s), store8(c + 0 * ldc + 8, bias + 8, c01, s);
  store8(c + 1 * ldc, bias, c10, s), store8(c + 1 * ldc + 8, bias + 8, c11, s);
  store8(c + 2 * ldc, bias, c20, s), store8(c + 2 * ldc + 8, bias + 8, c21, s);
  store8(c + 3 * ldc, bias, c30, s), store8(c + 3 * ldc + 8, bias + 8, c31, s);
  store8(c + 4 * ldc, bias, c40, s), store8(c + 4 * ldc + 8, bias + 8, c41, s);
  store8(c + 5 * ldc, bias, c50, s), store8(c + 5 * ldc + 8, bias + 8, c51, s);
}

LAMINA_AVX2 void microkernel_f64_avx2(int64_t kc, const double* a, const double* b, double* c,
                                      int64_t ldc, const StoreArgs<double>& s) {
  __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
  __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
  __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
  __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
  __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
  __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
#define LAMINA_ROW(i)                              \
  {                                                \
    __m256d ai = _mm256_broadcast_sd(a + i);       \
    c##i##0 = _mm256_fmadd_pd(ai, b0, c##i##0);    \
    c##i##1 = _mm256_fmadd_pd(ai, b1, c##i##1);    \
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256d b0 = _mm256_load_pd(b), b1 = _mm256_load_pd(b + 4);
    LAMINA_ROW(0) LAMINA_ROW(1) LAMINA_ROW(2) LAMINA_ROW(3) LAMINA_ROW(4) LAMINA_ROW(5)
    a += 6;
    b += 8;
  }
#undef LAMINA_ROW
  if (s.epilogue != Epilogue::None) {  // not reachable from gemm_f64; kept correct anyway
    alignas(32) double acc[6][8];
    __m256d rows[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int i = 0; i < 6; ++i) {
      _mm256_store_pd(acc[i], rows[i][0]);
      _mm256_store_pd(acc[i] + 4, rows[i][1]);
      for (int j = 0; j < 8; ++j) c[i * ldc + j] = finish_scalar(acc[i][j], c + i * ldc + j, j, s);
    }
    return;
  }
  store4d(c + 0 * ldc, c00, s), store4d(c + 0 * ldc + 4, c01, s);
  store4d(c + 1 * ldc, c10, s), store4d(c + 1 * ldc + 4, c11, s);
  store4d(c + 2 * ldc, c20, s), store4d(c + 2 * ldc + 4, c21, s);
  store4d(c + 3 * ldc, c30, s), store4d(c + 3 * ldc + 4, c31, s);
  store4d(c + 4 * ldc, c40, s), store4d(c + 4 * ldc + 4, c41, s);
  store4d(c + 5 * ldc, c50, s), store4d(c + 5 * ldc + 4, c51, s);
}

LAMINA_AVX2 void direct_f32_avx2(const Direct<float>& d) { direct_body(d); }
LAMINA_AVX2 void direct_f64_avx2(const Direct<double>& d) { direct_body(d); }

}  // namespace lamina::cpu::gemm_detail
