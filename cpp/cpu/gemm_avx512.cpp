// AVX-512 float32 GEMM microkernel, chosen at run time when the CPU has AVX-512F (see
// gemm.cpp); every function carries a target attribute, so the file builds without -mavx512f
// and nothing from it runs on an older CPU. Also here: the unpacked small-size path (8 x 32
// blocks; other layouts fall back to the AVX2 set's loops) and the row-copying packs (op(A) =
// A^T, op(B) = B, with zmm moves); the transposing packs are the AVX2 set's (gemm_avx2.cpp).
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
// microkernel_f32_avx512_rows_8x32: C[8,32] whose B rows are read in place through a table of
//   row offsets from one base (the convolution's forward on a zero-padded image, where each B
//   row is a shifted window of one channel): per k 1 offset load, 2 loads of b, 8 broadcasts, 16
//   FMAs; 64- and 128-channel layers fill whole 8-row tiles. Its 32 columns may straddle
//   output rows, so the store compresses each vector's kept lanes (vcompressps) onto
//   consecutive outputs; no epilogue (StoreArgs' alpha and beta only).
// microkernel_f32_avx512_a_rows_8x32: C[8,32] with op(A) = A read in place (element (i, k) at
//   a[i * lda + k]) and the 12 x 32 kernel's packed B panels: no A packing, and 8-row tiles
//   (64-row products, the LSTM's batch, are whole tiles; 12-row tiles compute 72).
// microkernel_f32_avx512_offsets_8x32: C[8,32] whose A rows are read in place: element (i, k)
//   at a_rows[i][a_offsets[k]] (the convolution's weight gradient, A row i = one kernel tap of
//   one channel of a zero-padded image, k = output position): per k 1 offset load, 2 loads
//   of b, 8 broadcasts, 16 FMAs.
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
// For the element accessors passed to accumulate(): a lambda does not inherit its enclosing
// function's target.
#define LAMINA_AVX512_LAMBDA __attribute__((always_inline, target("avx512f,avx2,fma")))

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

// The loop every kernel here runs: acc[i][v] = sum over k in [0, kc) of A(i, k) * B(k, 16 v ..
// 16 v + 15), in k order from zero (so all of them round the same sums). a_of(k, i) gives
// A(i, k), b_of(k, v) loads the 16 floats of B row k at vector v.
template <int MR, int NV, class AOf, class BOf>
LAMINA_AVX512_INLINE void accumulate(int64_t kc, AOf a_of, BOf b_of, __m512 (&acc)[MR][NV]) {
#pragma GCC unroll 24
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) bv[v] = b_of(k, v);
#pragma GCC unroll 24
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a_of(k, i));
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
}

// Rows [0, mr) and columns [0, nr) of a C[MR, 16 NV] tile through store16 (s.bias at the
// tile's first column); Edge = false: a whole tile (every mask full, constant-folded).
template <int MR, int NV, bool Edge>
LAMINA_AVX512_INLINE void store_tile(const __m512 (&acc)[MR][NV], float* c, int64_t ldc, const StoreArgs<float>& s,
                                     int mr, int nr) {
  __mmask16 mask[NV];
#pragma GCC unroll 3
  for (int v = 0; v < NV; ++v) mask[v] = Edge ? lane_mask(nr - 16 * v) : __mmask16(0xFFFF);
#pragma GCC unroll 24
  for (int i = 0; i < MR; ++i) {
    if (Edge && i >= mr) break;
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v)
      if (!Edge || nr > 16 * v) store16(c + i * ldc + 16 * v, s.bias ? s.bias + 16 * v : nullptr, acc[i][v], s, mask[v]);
  }
}

// Prefetches the rows of C a tile will read and write.
template <int NV>
LAMINA_AVX512_INLINE void prefetch_tile(const float* c, int64_t ldc, int rows) {
  for (int i = 0; i < rows; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * NV - 1), _MM_HINT_T0);
  }
}

// A C[MR, 16 NV] tile of packed panels: a [kc][MR], b [kc][16 NV].
template <int MR, int NV, bool Edge>
LAMINA_AVX512_INLINE void tile(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                               const StoreArgs<float>& s, int mr, int nr) {
  prefetch_tile<NV>(c, ldc, Edge ? mr : MR);
  __m512 acc[MR][NV];
  accumulate<MR, NV>(
      kc, [&](int64_t k, int i) LAMINA_AVX512_LAMBDA { return a[k * MR + i]; },
      [&](int64_t k, int v) LAMINA_AVX512_LAMBDA { return _mm512_load_ps(b + k * 16 * NV + 16 * v); }, acc);
  store_tile<MR, NV, Edge>(acc, c, ldc, s, mr, nr);
}

// Unpacked C[R, 16 NV] block at (i, j) with n valid columns (NV <= 3), op(B) rows contiguous
// (b_col == 1): per k, NV loads of B, R broadcasts of A, R * NV FMAs, like the packed tile,
// so the bits match it for K within one K block.
template <int R, int NV, bool Edge>
LAMINA_AVX512_INLINE void direct_block(const Direct<float>& d, int64_t i, int64_t j, int n) {
  __mmask16 mask[NV];
#pragma GCC unroll 3
  for (int v = 0; v < NV; ++v) mask[v] = Edge ? lane_mask(n - 16 * v) : __mmask16(0xFFFF);
  const float* a = d.A + i * d.a_row;
  const float* b = d.B + j;
  __m512 acc[R][NV];
  accumulate<R, NV>(
      d.K, [&](int64_t k, int r) LAMINA_AVX512_LAMBDA { return a[r * d.a_row + k * d.a_col]; },
      [&](int64_t k, int v) LAMINA_AVX512_LAMBDA {
        const float* bk = b + k * d.b_row + 16 * v;
        return Edge ? _mm512_maskz_loadu_ps(mask[v], bk) : _mm512_loadu_ps(bk);
      },
      acc);
  StoreArgs<float> s = d.s;
  if (s.bias) s.bias += j;
  store_tile<R, NV, Edge>(acc, d.C + i * d.ldc + j, d.ldc, s, R, n);
}

// Columns in 32-wide blocks; a leftover of at most 16 joins the first block (48 wide), so no
// block is a single vector wide, which would load once per R FMAs and run load-bound.
template <int R>
LAMINA_AVX512_INLINE void direct_rows(const Direct<float>& d, int64_t i) {
  const int64_t tail = d.N % 32;
  int64_t j = 0;
  if (tail > 0 && tail <= 16 && d.N > 32) {
    if (tail == 16) direct_block<R, 3, false>(d, i, 0, 48);
    else direct_block<R, 3, true>(d, i, 0, int(32 + tail));
    j = 32 + tail;
  }
  for (; j + 32 <= d.N; j += 32) direct_block<R, 2, false>(d, i, j, 32);
  if (d.N - j > 16) direct_block<R, 2, true>(d, i, j, int(d.N - j));
  else if (j < d.N) direct_block<R, 1, true>(d, i, j, int(d.N - j));
}

// C[MR, 16 NV] with unpacked B rows (row k: the 16 NV floats at b + b_offsets[k], unaligned,
// all readable), stored through a RowPanelStore: vector v of row i keeps the lanes in
// keep[v], packed together from c + i * ldc + offset[v].
template <int MR, int NV, bool Edge>
LAMINA_AVX512_INLINE void tile_rows(int64_t kc, const float* a, const float* b, const int64_t* b_offsets, float* c,
                                    int64_t ldc, const StoreArgs<float>& s, int mr, const RowPanelStore& out) {
  __m512 acc[MR][NV];
  accumulate<MR, NV>(
      kc, [&](int64_t k, int i) LAMINA_AVX512_LAMBDA { return a[k * MR + i]; },
      [&](int64_t k, int v) LAMINA_AVX512_LAMBDA { return _mm512_loadu_ps(b + b_offsets[k] + 16 * v); }, acc);
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) {
    const __mmask16 keep = out.keep[v];
    const __mmask16 stored = lane_mask(__builtin_popcount(keep));
    float* cv = c + out.offset[v];
#pragma GCC unroll 24
    for (int i = 0; i < MR; ++i) {
      if (Edge && i >= mr) break;
      const __m512 packed = keep == 0xFFFF ? acc[i][v] : _mm512_maskz_compress_ps(keep, acc[i][v]);
      store16(cv + i * ldc, nullptr, packed, s, stored);
    }
  }
}

// C[MR, 16 NV] with A read in place: element (i, k) is a[i * lda + k]; b packed. Rows past mr
// repeat the last real row: read, never stored.
template <int MR, int NV, bool Edge>
LAMINA_AVX512_INLINE void tile_a_rows(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
                                      const StoreArgs<float>& s, int mr, int nr) {
  prefetch_tile<NV>(c, ldc, Edge ? mr : MR);
  const float* row[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) row[i] = a + (Edge && i >= mr ? mr - 1 : i) * lda;
  __m512 acc[MR][NV];
  accumulate<MR, NV>(
      kc, [&](int64_t k, int i) LAMINA_AVX512_LAMBDA { return row[i][k]; },
      [&](int64_t k, int v) LAMINA_AVX512_LAMBDA { return _mm512_load_ps(b + k * 16 * NV + 16 * v); }, acc);
  store_tile<MR, NV, Edge>(acc, c, ldc, s, mr, nr);
}

// C[MR, 16 NV] with unpacked A rows: element (i, k) is a_rows[i][a_offsets[k]]; b packed.
template <int MR, int NV, bool Edge>
LAMINA_AVX512_INLINE void tile_offsets(int64_t kc, const float* const* a_rows, const int32_t* a_offsets,
                                       const float* b, float* c, int64_t ldc, const StoreArgs<float>& s, int mr,
                                       int nr) {
  const float* row[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) row[i] = a_rows[i];
  __m512 acc[MR][NV];
  accumulate<MR, NV>(
      kc, [&](int64_t k, int i) LAMINA_AVX512_LAMBDA { return row[i][a_offsets[k]]; },
      [&](int64_t k, int v) LAMINA_AVX512_LAMBDA { return _mm512_load_ps(b + k * 16 * NV + 16 * v); }, acc);
  store_tile<MR, NV, Edge>(acc, c, ldc, s, mr, nr);
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

// Unpacked path: 8 x 32 register blocks when op(B) rows are contiguous and A has at least a
// block's rows; every other layout takes the AVX2 set's loops.
LAMINA_AVX512 void direct_f32_avx512(const Direct<float>& d) {
  if (d.b_col != 1 || d.M < 8) return direct_f32_avx2(d);
  int64_t i = 0;
  for (; i + 8 <= d.M; i += 8) direct_rows<8>(d, i);
  switch (d.M - i) {
    case 7: direct_rows<7>(d, i); break;
    case 6: direct_rows<6>(d, i); break;
    case 5: direct_rows<5>(d, i); break;
    case 4: direct_rows<4>(d, i); break;
    case 3: direct_rows<3>(d, i); break;
    case 2: direct_rows<2>(d, i); break;
    case 1: direct_rows<1>(d, i); break;
  }
}

namespace {

// Rows of a matrix dealt to W-wide panels ([k][W] each), 8 rows a sweep as pack_b does for
// op(B) = B, with zmm moves (masked for a 12-wide row piece); a last panel narrower than W
// goes to pack_b, which zero-pads it.
template <int W>
LAMINA_AVX512_INLINE void pack_rows(const float* B, int64_t ldb, int64_t kc, int64_t nc, float* out) {
  const int64_t full = nc / W;
  const __mmask16 last = lane_mask(W % 16 == 0 ? 16 : W % 16);
  constexpr int kVectors = (W + 15) / 16;
  for (int64_t k0 = 0; k0 < kc; k0 += 8) {
    const int64_t k1 = std::min(kc, k0 + 8);
    for (int64_t p = 0; p < full; ++p)
      for (int64_t k = k0; k < k1; ++k) {
        const float* src = B + k * ldb + p * W;
        float* dst = out + p * W * kc + k * W;
#pragma GCC unroll 2
        for (int v = 0; v + 1 < kVectors; ++v) _mm512_storeu_ps(dst + 16 * v, _mm512_loadu_ps(src + 16 * v));
        _mm512_mask_storeu_ps(dst + 16 * (kVectors - 1), last, _mm512_maskz_loadu_ps(last, src + 16 * (kVectors - 1)));
      }
  }
  if (full * W < nc) pack_b<float, W>(false, B + full * W, ldb, kc, nc - full * W, out + full * W * kc);
}

}  // namespace

LAMINA_AVX512 void pack_a_f32_avx512(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* out) {
  if (trans) return pack_rows<12>(A, lda, kc, mc, out);
  pack_a_f32_avx2<12>(false, A, lda, mc, kc, out);
}

LAMINA_AVX512 void pack_b_f32_avx512(bool trans, const float* B, int64_t ldb, int64_t kc, int64_t nc, float* out) {
  if (!trans) return pack_rows<32>(B, ldb, kc, nc, out);
  pack_b_f32_avx2<32>(true, B, ldb, kc, nc, out);
}

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

LAMINA_AVX512 void microkernel_f32_avx512_rows_8x32(int64_t kc, const float* a, const float* b, const int64_t* b_offsets,
                                                    float* c, int64_t ldc, const StoreArgs<float>& s, int mr,
                                                    const RowPanelStore& out) {
  if (mr == 8)
    tile_rows<8, 2, false>(kc, a, b, b_offsets, c, ldc, s, mr, out);
  else
    tile_rows<8, 2, true>(kc, a, b, b_offsets, c, ldc, s, mr, out);
}

LAMINA_AVX512 void microkernel_f32_avx512_a_rows_8x32(int64_t kc, const float* a, int64_t lda, const float* b,
                                                      float* c, int64_t ldc, const StoreArgs<float>& s, int mr,
                                                      int nr) {
  if (mr == 8 && nr == 32)
    tile_a_rows<8, 2, false>(kc, a, lda, b, c, ldc, s, mr, nr);
  else
    tile_a_rows<8, 2, true>(kc, a, lda, b, c, ldc, s, mr, nr);
}

LAMINA_AVX512 void microkernel_f32_avx512_offsets_8x32(int64_t kc, const float* const* a_rows,
                                                       const int32_t* a_offsets, const float* b, float* c,
                                                       int64_t ldc, const StoreArgs<float>& s, int mr, int nr) {
  if (mr == 8 && nr == 32)
    tile_offsets<8, 2, false>(kc, a_rows, a_offsets, b, c, ldc, s, mr, nr);
  else
    tile_offsets<8, 2, true>(kc, a_rows, a_offsets, b, c, ldc, s, mr, nr);
}

LAMINA_AVX512 void microkernel_f32_avx512_24x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                                const StoreArgs<float>& s, int mr, int nr) {
  microkernel<24, 1>(kc, a, b, c, ldc, s, mr, nr);
}

}  // namespace lamina::cpu::gemm_detail
