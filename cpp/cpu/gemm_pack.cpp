// Packing for the blocked GEMM: copies an mc x kc block of op(A) into MR-row panels laid
// out [k][MR], and a kc x nc block of op(B) into NR-column panels laid out [k][NR], so the
// microkernel reads both with unit stride. Transposes are resolved here, one cache block at
// a time; the caller's matrices are never copied whole. Ragged edges are zero-padded, so the
// microkernel always computes a full tile.
#include <algorithm>
#include <cstring>

#include "cpu/gemm_internal.h"

namespace lamina::cpu::gemm_detail {

namespace {

// Copies `rows` strided rows of length `len` (row r, element k at src[r*rs + k*ks]) into
// out[k*W + r]. The two layouts of op(A) and op(B) both reduce to this.
template <class T, int W>
void pack_panel(const T* src, int64_t rs, int64_t ks, int rows, int64_t len, T* out) {
  if (rows == W && ks == 1) {
    // Rows contiguous in k: walk the W rows side by side.
    const T* p[W];
    for (int r = 0; r < W; ++r) p[r] = src + r * rs;
    for (int64_t k = 0; k < len; ++k)
      for (int r = 0; r < W; ++r) out[k * W + r] = p[r][k];
  } else if (rows == W && rs == 1) {
    // The W values of one k are contiguous.
    for (int64_t k = 0; k < len; ++k) std::memcpy(out + k * W, src + k * ks, W * sizeof(T));
  } else {
    for (int64_t k = 0; k < len; ++k) {
      int r = 0;
      for (; r < rows; ++r) out[k * W + r] = src[r * rs + k * ks];
      for (; r < W; ++r) out[k * W + r] = T(0);
    }
  }
}

}  // namespace

template <class T, int NR>
void pack_b(bool trans, const T* B, int64_t ldb, int64_t kc, int64_t nc, T* out);

template <class T, int MR>
void pack_a(bool trans, const T* A, int64_t lda, int64_t mc, int64_t kc, T* out) {
  // op(A) = A^T has the layout of op(B) = B: row k of A holds every panel's values of that k,
  // so it is read once, front to back, instead of once per panel (a panel alone reads 4 MR
  // bytes from each of kc rows lda apart).
  if (trans) return pack_b<T, MR>(false, A, lda, kc, mc, out);
  // op(A)(i,k) = A[i*lda + k].
  for (int64_t i = 0; i < mc; i += MR) {
    int rows = int(std::min<int64_t>(MR, mc - i));
    pack_panel<T, MR>(A + i * lda, lda, 1, rows, kc, out + i * kc);
  }
}

template <class T, int NR>
void pack_b(bool trans, const T* B, int64_t ldb, int64_t kc, int64_t nc, T* out) {
  // op(B)(k,j) = B[k*ldb + j], or B[j*ldb + k] when transposed; a panel "row" is a column j.
  const int64_t js = trans ? ldb : 1, ks = trans ? 1 : ldb;
  if (!trans) {
    // Rows of B are contiguous: read each once, front to back, and deal its NR-wide pieces
    // out to the panels (sequential reads keep the hardware prefetcher streaming).
    const int64_t full = nc / NR;
    constexpr int64_t KB = 8;  // rows per sweep: each panel then receives 8 adjacent rows at once
    for (int64_t k0 = 0; k0 < kc; k0 += KB) {
      const int64_t k1 = std::min(kc, k0 + KB);
      for (int64_t p = 0; p < full; ++p)
        for (int64_t k = k0; k < k1; ++k)
          std::memcpy(out + p * NR * kc + k * NR, B + k * ldb + p * NR, NR * sizeof(T));
    }
    if (full * NR < nc)
      pack_panel<T, NR>(B + full * NR, 1, ldb, int(nc - full * NR), kc, out + full * NR * kc);
    return;
  }
  for (int64_t j = 0; j < nc; j += NR) {
    int cols = int(std::min<int64_t>(NR, nc - j));
    pack_panel<T, NR>(B + j * js, js, ks, cols, kc, out + j * kc);
  }
}

template void pack_a<float, 6>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_a<float, 8>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_a<float, 12>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_a<float, 16>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_a<float, 24>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_a<double, 6>(bool, const double*, int64_t, int64_t, int64_t, double*);
template void pack_b<float, 6>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_b<float, 12>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_b<float, 24>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_b<double, 6>(bool, const double*, int64_t, int64_t, int64_t, double*);
template void pack_b<float, 16>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_b<float, 32>(bool, const float*, int64_t, int64_t, int64_t, float*);
template void pack_b<double, 8>(bool, const double*, int64_t, int64_t, int64_t, double*);

}  // namespace lamina::cpu::gemm_detail
