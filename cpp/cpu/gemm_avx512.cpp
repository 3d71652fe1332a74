// AVX-512 float32 GEMM microkernel, chosen at run time when the CPU has AVX-512F (see
// gemm.cpp); every function carries a target attribute, so the file builds without -mavx512f
// and nothing from it runs on an older CPU. The packs (AVX2 transposes, gemm_avx2.cpp) and
// the unpacked small-size path are shared with the AVX2 set.
//
// microkernel_f32_avx512, version 1: C[12,32] tile (the GEMM's).
//   a: 12-row panel packed [kc][12]; b: 32-column panel packed [kc][32], 64-byte aligned.
//   Registers: 24 zmm accumulators (12 rows x 2 x 16 floats) + 2 for b + broadcasts of a.
//   Per k: 2 aligned loads, 12 broadcasts, 24 FMAs = 768 FLOP; 2 FMA ports => 12 cycles/k,
//   4x the AVX2 tile's work per k for 1.5x its cycles. Bytes from L1 per k: 176 for 768 FLOP
//   (AVX2: 88 for 192). Measured alone from L1 on this machine: ~210 GFLOP/s per core, the
//   FMA-loop peak (a 14 x 32 tile measured 2% more, but wastes 12% of a 128-row product).
// microkernel_f32_avx512_24x16 / _16x16: C[24,16] / C[16,16] for the convolution's
//   16-position column panels (conv.cpp): per k 1 load of b, 24 (16) broadcasts and FMAs;
//   25 loads per 12 FMA cycles keep the two load ports just behind (~95% of the FMA peak at
//   best); the 16-row tile fits channel counts that are multiples of 16 but not of 24.
// microkernel_f32_avx512_6x32: C[6,32] for the convolution's gradients, whose A panels are
//   6 rows (conv.cpp): 12 accumulators, per k 2 loads of b, 6 broadcasts, 12 FMAs (6 cycles).
//   Store: the AVX2 kernel's epilogue (alpha, beta, bias, ReLU, tanh-GELU) on 16 lanes, the
//   same operations in the same order, so results are bit-identical to the AVX2 kernel; edges
//   use AVX-512 lane masks.
#include <immintrin.h>

#include "cpu/gemm_internal.h"

// GCC 12's AVX-512 intrinsics pass a self-initialized "undefined" vector as the unused
// merge source of unmasked operations, which -Wmaybe-uninitialized reports at every use.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define LAMINA_AVX512_INLINE inline __attribute__((always_inline, target("avx512f,avx2,fma")))

namespace lamina::cpu::gemm_detail {

namespace {

// gemm_avx2.cpp's exp: same clamp, split of ln2, polynomial and exponent construction.
LAMINA_AVX512_INLINE __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

LAMINA_AVX512_INLINE __m512 gelu_ps(__m512 x) {
  const __m512 c1 = _mm512_set1_ps(-2.0f * 0.7978845608028654f);
  const __m512 c3 = _mm512_set1_ps(-2.0f * 0.7978845608028654f * 0.044715f);
  __m512 x2 = _mm512_mul_ps(x, x);
  __m512 minus_2u = _mm512_mul_ps(x, _mm512_fmadd_ps(c3, x2, c1));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_ps(minus_2u)));
}

// Lanes [0, n) of 16 (n may be <= 0 or >= 16).
LAMINA_AVX512_INLINE __mmask16 lane_mask(int n) {
  return n <= 0 ? __mmask16(0) : n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
}

// One 16-float slice of a tile row: c = act(alpha * acc + beta * c + bias) on the lanes in
// `mask`; masked-off lanes are neither read nor written.
LAMINA_AVX512_INLINE void store16(float* c, const float* bias, __m512 acc, const StoreArgs<float>& s,
                                  __mmask16 mask) {
  __m512 v = _mm512_mul_ps(acc, _mm512_set1_ps(s.alpha));
  if (s.beta != 0.0f) v = _mm512_fmadd_ps(_mm512_set1_ps(s.beta), _mm512_maskz_loadu_ps(mask, c), v);
  if (s.epilogue != Epilogue::None) {
    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias));
    // max(0, v) returns v when v is NaN, like the scalar path.
    if (s.epilogue == Epilogue::BiasRelu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
    if (s.epilogue == Epilogue::BiasGelu) v = gelu_ps(v);
  }
  _mm512_mask_storeu_ps(c, mask, v);
}

// A C[MR, 16 NV] tile; Edge = false: a whole tile (every mask full, constant-folded).
template <int MR, int NV, bool Edge>
LAMINA_AVX512_INLINE void tile(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                               const StoreArgs<float>& s, int mr, int nr) {
  const int rows = Edge ? mr : MR;
  for (int i = 0; i < rows; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * NV - 1), _MM_HINT_T0);
  }
  __m512 acc[MR][NV];
#pragma GCC unroll 24
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 24
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += MR;
    b += 16 * NV;
  }
  __mmask16 mask[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) mask[v] = Edge ? lane_mask(nr - 16 * v) : __mmask16(0xFFFF);
#pragma GCC unroll 24
  for (int i = 0; i < MR; ++i) {
    if (Edge && i >= mr) break;
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v)
      if (!Edge || nr > 16 * v) store16(c + i * ldc + 16 * v, s.bias ? s.bias + 16 * v : nullptr, acc[i][v], s, mask[v]);
  }
}

template <int MR, int NV>
LAMINA_AVX512_INLINE void microkernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                      const StoreArgs<float>& s, int mr, int nr) {
  if (mr == MR && nr == 16 * NV)
    tile<MR, NV, false>(kc, a, b, c, ldc, s, mr, nr);
  else
    tile<MR, NV, true>(kc, a, b, c, ldc, s, mr, nr);
}

}  // namespace

#define LAMINA_AVX512 __attribute__((target("avx512f,avx2,fma")))

LAMINA_AVX512 void microkernel_f32_avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                          const StoreArgs<float>& s, int mr, int nr) {
  microkernel<12, 2>(kc, a, b, c, ldc, s, mr, nr);
}

LAMINA_AVX512 void microkernel_f32_avx512_6x32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                               const StoreArgs<float>& s, int mr, int nr) {
  microkernel<6, 2>(kc, a, b, c, ldc, s, mr, nr);
}

LAMINA_AVX512 void microkernel_f32_avx512_16x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                                const StoreArgs<float>& s, int mr, int nr) {
  microkernel<16, 1>(kc, a, b, c, ldc, s, mr, nr);
}

LAMINA_AVX512 void microkernel_f32_avx512_24x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                                const StoreArgs<float>& s, int mr, int nr) {
  microkernel<24, 1>(kc, a, b, c, ldc, s, mr, nr);
}

}  // namespace lamina::cpu::gemm_detail
