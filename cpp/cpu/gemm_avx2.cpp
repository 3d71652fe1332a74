// AVX2/FMA GEMM kernels, chosen at run time when the CPU has both (see gemm.cpp); every
// function here carries target("avx2,fma"), so the file builds without -mavx2 and nothing
// from it runs on an older CPU.
//
// microkernel_f32_avx2, version 2: C[6,16] tile (v1 staged edge tiles through a copy).
//   a: 6-row panel packed [kc][6]; b: 16-column panel packed [kc][16], 64-byte aligned.
//   Registers: 12 ymm accumulators (6 rows x 2 x 8 floats) + 2 for b + 1 broadcast of a.
//   Per k: 2 aligned loads, 6 broadcasts, 12 FMAs = 192 FLOP; 2 FMA ports => 6 cycles/k,
//   loads (8 per k) stay under the 2-3 load ports' budget. FMA latency 4-5 cycles is hidden
//   by 12 independent chains. Bytes from L1 per k: 88 for 192 FLOP.
//   Store: alpha, beta (C not read when beta == 0), bias, ReLU or tanh-GELU, fused in
//   registers before the single write of C; tiles cut by the matrix edge use masked
//   loads/stores on the same registers.
// microkernel_f32_avx2_offsets_6x16: the same tile with A rows read in place, element (i, k)
//   at a_rows[i][a_offsets[k]] (the convolution's weight gradient from a zero-padded image,
//   like microkernel_f32_avx512_offsets_8x32): per k one more load, the offset.
// microkernel_f64_avx2: the same scheme as a 6x8 tile of doubles (96 FLOP per k).
// Also here: the unpacked small/matrix-vector path and the B^T packing (8x8 transposes).
#include <immintrin.h>

#include <algorithm>

#include "cpu/gemm_direct.h"
#include "cpu/gemm_internal.h"
#include "cpu/simd_avx2.h"

#define LAMINA_AVX2 __attribute__((target("avx2,fma")))
#define LAMINA_AVX2_INLINE inline __attribute__((always_inline, target("avx2,fma")))
// For the element accessors passed to tile_f32: a lambda does not inherit its enclosing
// function's target.
#define LAMINA_AVX2_LAMBDA __attribute__((always_inline, target("avx2,fma")))

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

// Lanes [0, n) of 8 set (n may be <= 0 or >= 8). Masked loads of unset lanes do not fault.
LAMINA_AVX2_INLINE __m256i lane_mask(int64_t n) {
  n = n < 0 ? 0 : (n > 8 ? 8 : n);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <bool Masked>
LAMINA_AVX2_INLINE __m256 load8(const float* p, __m256i mask) {
  return Masked ? _mm256_maskload_ps(p, mask) : _mm256_loadu_ps(p);
}

// One 8-float slice of a tile row: c = act(alpha * acc + beta * c + bias); Masked touches
// only the lanes in `mask`.
template <bool Masked = false>
LAMINA_AVX2_INLINE void store8(float* c, const float* bias, __m256 acc, const StoreArgs<float>& s,
                               __m256i mask = __m256i()) {
  __m256 v = _mm256_mul_ps(acc, _mm256_set1_ps(s.alpha));
  if (s.beta != 0.0f) v = _mm256_fmadd_ps(_mm256_set1_ps(s.beta), load8<Masked>(c, mask), v);
  if (s.epilogue != Epilogue::None) {
    v = _mm256_add_ps(v, load8<Masked>(bias, mask));
    // max(0, v) returns v when v is NaN, like the scalar path.
    if (s.epilogue == Epilogue::BiasRelu) v = _mm256_max_ps(_mm256_setzero_ps(), v);
    if (s.epilogue == Epilogue::BiasGelu) v = gelu_ps(v);
  }
  if (Masked)
    _mm256_maskstore_ps(c, mask, v);
  else
    _mm256_storeu_ps(c, v);
}


}  // namespace

namespace {

// The tile body; Edge stores only rows [0, mr) and columns [0, nr) (masked stores), so a
// tile cut by the matrix edge needs no staging copy. a_at(k, i) points at A(i, k).
template <bool Edge, class AAt>
LAMINA_AVX2_INLINE void tile_f32(int64_t kc, AAt a_at, const float* b, float* c, int64_t ldc,
                                 const StoreArgs<float>& s, int mr, int nr) {
  for (int i = 0; i < (Edge ? mr : 6); ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#define LAMINA_ROW(i)                                  \
  {                                                    \
    __m256 ai = _mm256_broadcast_ss(a_at(k, i));       \
    c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);        \
    c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);        \
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    LAMINA_ROW(0) LAMINA_ROW(1) LAMINA_ROW(2) LAMINA_ROW(3) LAMINA_ROW(4) LAMINA_ROW(5)
    b += 16;
  }
#undef LAMINA_ROW
  const __m256i m0 = Edge ? lane_mask(nr) : __m256i(), m1 = Edge ? lane_mask(nr - 8) : __m256i();
  const bool right = !Edge || nr > 8;
  const float* bias0 = s.bias;
  const float* bias1 = s.bias && right ? s.bias + 8 : nullptr;
#define LAMINA_STORE(i)                                                     \
  if (!Edge || i < mr) {                                                    \
    store8<Edge>(c + i * ldc, bias0, c##i##0, s, m0);                       \
    if (right) store8<Edge>(c + i * ldc + 8, bias1, c##i##1, s, m1);        \
  }
  LAMINA_STORE(0) LAMINA_STORE(1) LAMINA_STORE(2) LAMINA_STORE(3) LAMINA_STORE(4) LAMINA_STORE(5)
#undef LAMINA_STORE
}

template <bool Masked>
LAMINA_AVX2_INLINE void store4d(double* c, __m256d acc, const StoreArgs<double>& s, __m256i mask) {
  __m256d v = _mm256_mul_pd(acc, _mm256_set1_pd(s.alpha));
  if (s.beta != 0.0) {
    __m256d old = Masked ? _mm256_maskload_pd(c, mask) : _mm256_loadu_pd(c);
    v = _mm256_fmadd_pd(_mm256_set1_pd(s.beta), old, v);
  }
  if (Masked)
    _mm256_maskstore_pd(c, mask, v);
  else
    _mm256_storeu_pd(c, v);
}

// Lanes [0, n) of 4 doubles.
LAMINA_AVX2_INLINE __m256i lane_mask_pd(int64_t n) {
  n = n < 0 ? 0 : (n > 4 ? 4 : n);
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

template <bool Edge>
LAMINA_AVX2_INLINE void tile_f64(int64_t kc, const double* a, const double* b, double* c,
                                 int64_t ldc, const StoreArgs<double>& s, int mr, int nr) {
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
  const __m256i m0 = Edge ? lane_mask_pd(nr) : __m256i(), m1 = Edge ? lane_mask_pd(nr - 4) : __m256i();
  const bool right = !Edge || nr > 4;
#define LAMINA_STORE(i)                                              \
  if (!Edge || i < mr) {                                             \
    store4d<Edge>(c + i * ldc, c##i##0, s, m0);                      \
    if (right) store4d<Edge>(c + i * ldc + 4, c##i##1, s, m1);       \
  }
  LAMINA_STORE(0) LAMINA_STORE(1) LAMINA_STORE(2) LAMINA_STORE(3) LAMINA_STORE(4) LAMINA_STORE(5)
#undef LAMINA_STORE
}

}  // namespace

LAMINA_AVX2 void microkernel_f32_avx2(int64_t kc, const float* a, const float* b, float* c,
                                      int64_t ldc, const StoreArgs<float>& s, int mr, int nr) {
  const auto a_at = [a](int64_t k, int i) LAMINA_AVX2_LAMBDA { return a + k * 6 + i; };
  if (mr == 6 && nr == 16)
    tile_f32<false>(kc, a_at, b, c, ldc, s, mr, nr);
  else
    tile_f32<true>(kc, a_at, b, c, ldc, s, mr, nr);
}

LAMINA_AVX2 void microkernel_f32_avx2_offsets_6x16(int64_t kc, const float* const* a_rows, const int32_t* a_offsets,
                                                   const float* b, float* c, int64_t ldc, const StoreArgs<float>& s,
                                                   int mr, int nr) {
  const float* const row[6] = {a_rows[0], a_rows[1], a_rows[2], a_rows[3], a_rows[4], a_rows[5]};
  const auto a_at = [&row, a_offsets](int64_t k, int i) LAMINA_AVX2_LAMBDA { return row[i] + a_offsets[k]; };
  if (mr == 6 && nr == 16)
    tile_f32<false>(kc, a_at, b, c, ldc, s, mr, nr);
  else
    tile_f32<true>(kc, a_at, b, c, ldc, s, mr, nr);
}

// gemm_f64 has no epilogue, so this kernel implements alpha and beta only.
LAMINA_AVX2 void microkernel_f64_avx2(int64_t kc, const double* a, const double* b, double* c,
                                      int64_t ldc, const StoreArgs<double>& s, int mr, int nr) {
  if (mr == 6 && nr == 8)
    tile_f64<false>(kc, a, b, c, ldc, s, mr, nr);
  else
    tile_f64<true>(kc, a, b, c, ldc, s, mr, nr);
}

namespace {

// Unpacked R x 16 block of C at (i, j), n <= 16 valid columns, when op(B) rows are
// contiguous (b_col == 1): per k, two loads of B, R broadcasts of A, 2R FMAs.
template <int R, bool Masked>
LAMINA_AVX2_INLINE void direct_block(const Direct<float>& d, int64_t i, int64_t j, int64_t n) {
  const __m256i m0 = lane_mask(n), m1 = lane_mask(n - 8);
  __m256 acc[R][2];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  const float* a = d.A + i * d.a_row;
  const float* b = d.B + j;
  for (int64_t k = 0; k < d.K; ++k) {
    const float* bk = b + k * d.b_row;
    __m256 b0 = load8<Masked>(bk, m0), b1 = load8<Masked>(bk + 8, m1);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      __m256 ar = _mm256_broadcast_ss(a + r * d.a_row + k * d.a_col);
      acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
    }
  }
  const float* bias = d.s.bias ? d.s.bias + j : nullptr;
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    float* c = d.C + (i + r) * d.ldc + j;
    store8<Masked>(c, bias, acc[r][0], d.s, m0);
    if (!Masked || n > 8) store8<Masked>(c + 8, bias ? bias + 8 : nullptr, acc[r][1], d.s, m1);
  }
}

template <int R>
LAMINA_AVX2_INLINE void direct_rows(const Direct<float>& d, int64_t i) {
  int64_t j = 0;
  for (; j + 16 <= d.N; j += 16) direct_block<R, false>(d, i, j, 16);
  if (j < d.N) direct_block<R, true>(d, i, j, d.N - j);
}

LAMINA_AVX2_INLINE float hsum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}

// op(A) rows and op(B) columns both contiguous in k: dot products, four columns at a time.
LAMINA_AVX2_INLINE void direct_dots(const Direct<float>& d) {
  const int64_t k8 = d.K & ~int64_t(7);
  const __m256i tail = lane_mask(d.K - k8);
  for (int64_t i = 0; i < d.M; ++i) {
    const float* a = d.A + i * d.a_row;
    float* c = d.C + i * d.ldc;
    for (int64_t j = 0; j < d.N; j += 4) {
      const int cols = int(std::min<int64_t>(4, d.N - j));
      const float* b[4];
      for (int q = 0; q < 4; ++q) b[q] = d.B + (j + (q < cols ? q : 0)) * d.b_col;
      __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
      for (int64_t k = 0; k < k8; k += 8) {
        __m256 ak = _mm256_loadu_ps(a + k);
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) acc[q] = _mm256_fmadd_ps(ak, _mm256_loadu_ps(b[q] + k), acc[q]);
      }
      if (k8 < d.K) {
        __m256 ak = _mm256_maskload_ps(a + k8, tail);
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) acc[q] = _mm256_fmadd_ps(ak, _mm256_maskload_ps(b[q] + k8, tail), acc[q]);
      }
      for (int q = 0; q < cols; ++q) c[j + q] = finish_scalar(hsum(acc[q]), c + j + q, j + q, d.s);
    }
  }
}

}  // namespace


// pack_b for op(B) = B^T (the NR columns of a panel are NR rows of B, each contiguous in k):
// 8 x 8 register transposes instead of NR strided scalar streams. Other cases: pack_b.
template <int NR>
LAMINA_AVX2 void pack_b_f32_avx2(bool trans, const float* B, int64_t ldb, int64_t kc, int64_t nc, float* out) {
  const int64_t full = trans ? nc / NR * NR : 0;
  const int64_t k8 = kc / 8 * 8;
  for (int64_t j = 0; j < full; j += NR) {
    float* panel = out + j * kc;
    for (int64_t k = 0; k < k8; k += 8)
      for (int g = 0; g < NR; g += 8) {
        __m256 r[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(B + (j + g + i) * ldb + k);
        simd::transpose8(r);
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) _mm256_store_ps(panel + (k + c) * NR + g, r[c]);
      }
    for (int64_t k = k8; k < kc; ++k)
      for (int i = 0; i < NR; ++i) panel[k * NR + i] = B[(j + i) * ldb + k];
  }
  if (full < nc) pack_b<float, NR>(trans, trans ? B + full * ldb : B, ldb, kc, nc - full, out + full * kc);
}

// pack_a for op(A) = A (each of a panel's MR rows contiguous in k), 8 k at a time through
// 8 x 8 transposes; column c of a transpose holds the rows' values at k + c.
//   MR = 6: one transpose (2 zero rows). Each 8-wide store spills 2 lanes into the next
//           column's slot, which the next store overwrites; the group's last column is
//           stored with a mask.
//   MR = 12: rows 0-7, then rows 8-11 with 4 zero rows, stored as 8 + 4 lanes.
// Other cases: pack_a.
template <int MR>
LAMINA_AVX2 void pack_a_f32_avx2(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* out) {
  static_assert(MR == 6 || MR == 12);
  const int64_t full = trans ? 0 : mc / MR * MR;
  const int64_t k8 = kc / 8 * 8;
  const __m256i six = lane_mask(6);
  for (int64_t i = 0; i < full; i += MR) {
    float* panel = out + i * kc;
    const float* rows = A + i * lda;
    for (int64_t k = 0; k < k8; k += 8) {
      __m256 r[8];
      if constexpr (MR == 6) {
#pragma GCC unroll 6
        for (int q = 0; q < 6; ++q) r[q] = _mm256_loadu_ps(rows + q * lda + k);
        r[6] = r[7] = _mm256_setzero_ps();
        simd::transpose8(r);
#pragma GCC unroll 7
        for (int c = 0; c < 7; ++c) _mm256_storeu_ps(panel + (k + c) * 6, r[c]);
        _mm256_maskstore_ps(panel + (k + 7) * 6, six, r[7]);
      } else {
        __m256 t[8];
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(rows + q * lda + k);
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) t[q] = _mm256_loadu_ps(rows + (8 + q) * lda + k);
        t[4] = t[5] = t[6] = t[7] = _mm256_setzero_ps();
        simd::transpose8(r);
        simd::transpose8(t);
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
          _mm256_storeu_ps(panel + (k + c) * 12, r[c]);
          _mm_storeu_ps(panel + (k + c) * 12 + 8, _mm256_castps256_ps128(t[c]));
        }
      }
    }
    for (int64_t k = k8; k < kc; ++k)
      for (int q = 0; q < MR; ++q) panel[k * MR + q] = rows[q * lda + k];
  }
  if (full < mc) pack_a<float, MR>(trans, trans ? A + full : A + full * lda, lda, mc - full, kc, out + full * kc);
}

template void pack_a_f32_avx2<6>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_a_f32_avx2<12>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_b_f32_avx2<16>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_b_f32_avx2<32>(bool, const float*, int64_t, int64_t, int64_t, float*);

// Unpacked path: register-blocked intrinsics for the two layouts that have a unit stride to
// vectorize along; the remaining one (both operands transposed) uses the plain loops.
LAMINA_AVX2 void direct_f32_avx2(const Direct<float>& d) {
  const bool dots = d.a_col == 1 && d.b_row == 1;
  if (d.b_col == 1 && (d.N >= 8 || !dots)) {
    if (d.M < 4) {  // matrix-vector like: stream whole rows of op(B) instead of 16-column strips
      for (int64_t i = 0; i < d.M; ++i) direct_row_axpy(d, i);
      return;
    }
    int64_t i = 0;
    for (; i + 4 <= d.M; i += 4) direct_rows<4>(d, i);
    switch (d.M - i) {
      case 3: direct_rows<3>(d, i); break;
      case 2: direct_rows<2>(d, i); break;
      case 1: direct_rows<1>(d, i); break;
    }
  } else if (dots) {
    direct_dots(d);
  } else {
    direct_body(d);
  }
}

LAMINA_AVX2 void direct_f64_avx2(const Direct<double>& d) { direct_body(d); }

}  // namespace lamina::cpu::gemm_detail
