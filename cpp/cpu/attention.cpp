// Scaled-dot-product attention on the CPU, flash-attention style.
//
// attention_forward, version 2. First the key and value tiles of every head are packed
// once for the GEMM microkernel (ReusedMatrix; version 1 repacked each of them for every
// block of queries, 8 times over at Lq = 512). Then one task per (head, block of kBlockQ
// queries):
//   for each block of kBlockK keys (only those a causal mask leaves visible):
//     S = scale * Q_blk K_blk^T            GEMM, kBlockQ x kBlockK scores
//     S += mask / S = -inf where masked
//     online softmax per row: m' = max(m, max S), P = exp(S - m'), l = l e^{m-m'} + sum P,
//     O = O e^{m-m'} + P V_blk             GEMM into the output rows
//   O /= l, lse = m + log l.
// Memory: O(kBlockQ * kBlockK) scratch per thread instead of Lq * Lk per head, plus the
// packed copies of K and V (the size of K and V).
// FLOPs: 2 * Lq * Lk * (D + Dv) per head (halved by causal), as for the plain product.
//
// attention_backward, version 2. One task per head (so dK/dV need no atomics). The head's
// query and dO blocks are packed once; for each key block its K, K^T and V^T are packed
// once; then for each query block: recompute S and P = exp(S - lse), then
//   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),  dQ += scale dS K,
//   dK += scale dS^T Q  (five GEMMs per tile, 2.5x the forward's FLOPs).
#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "core/parallel.h"
#include "cpu/fast_math.h"
#include "cpu/gemm.h"

namespace lamina::cpu {

namespace {

// 128 x 128 score tiles: 64-row query blocks ran 5-8% slower (twice the GEMM calls, each
// packing its operands; measured at d = 32 and 64). A tile of scores is 64 KB in float32.
constexpr int64_t kBlockQ = 128, kBlockK = 128;

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else gemm_f64(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// ---- row kernels (vectorised; AVX-512 / AVX2 / baseline copies chosen at run time) --------

// Row reductions on 32-byte GCC vectors: one register in the AVX2 and AVX-512 copies (64-byte
// vectors were expanded element by element in the AVX2 copy, -Wvector-operation-performance),
// two in the baseline one, and the same partial sums per lane in every copy, folded in a
// fixed order, so all of them round alike. (Written with arrays of 8 partial results GCC
// kept them scalar: the row maximum alone was 8.9% of the forward.)
template <class T>
struct Row {
  typedef T Vec __attribute__((vector_size(32)));
  static constexpr int64_t W = 32 / sizeof(T);
  // By reference: a vector returned by value would make the baseline build warn about the
  // AVX calling convention, although every call is inlined.
  static LAMINA_ALWAYS_INLINE void load(Vec& v, const T* p) { std::memcpy(&v, p, sizeof v); }
  static LAMINA_ALWAYS_INLINE T fold(const Vec& acc) {
    T r = 0;
    for (int64_t u = 0; u < W; ++u) r += acc[u];
    return r;
  }
};

// `x > m ? x : m` skips NaN scores: they reach the output through exp and the sum instead.
template <class T>
LAMINA_ALWAYS_INLINE T row_max(const T* __restrict s, int64_t n) {
  using R = Row<T>;
  const T lowest = -std::numeric_limits<T>::infinity();
  T r = lowest;
  int64_t j = 0;
  if (n >= R::W) {
    typename R::Vec m, x;
    R::load(m, s);
    for (j = R::W; j + R::W <= n; j += R::W) {
      R::load(x, s + j);
      m = x > m ? x : m;
    }
    for (int64_t u = 0; u < R::W; ++u) r = m[u] > r ? m[u] : r;
  }
  for (; j < n; ++j) r = s[j] > r ? s[j] : r;
  return r;
}

// s = exp(s - shift); returns the sum.
template <class T>
LAMINA_ALWAYS_INLINE T exp_shift_sum(T* __restrict s, int64_t n, T shift) {
  using R = Row<T>;
  for (int64_t j = 0; j < n; ++j) s[j] = fast_exp_nonpositive(s[j] - shift);
  typename R::Vec acc = {}, x;
  int64_t j = 0;
  for (; j + R::W <= n; j += R::W) {
    R::load(x, s + j);
    acc += x;
  }
  T r = R::fold(acc);
  for (; j < n; ++j) r += s[j];
  return r;
}

template <class T>
LAMINA_ALWAYS_INLINE T dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  using R = Row<T>;
  typename R::Vec acc = {}, x, y;
  int64_t j = 0;
  for (; j + R::W <= n; j += R::W) {
    R::load(x, a + j);
    R::load(y, b + j);
    acc += x * y;
  }
  T r = R::fold(acc);
  for (; j < n; ++j) r += a[j] * b[j];
  return r;
}

// p = exp(s - lse) in place, ds = p * (dp - di) in place of dp.
template <class T>
LAMINA_ALWAYS_INLINE void softmax_grad_row(T* __restrict s, T* __restrict dp, int64_t n, T lse, T di) {
  for (int64_t j = 0; j < n; ++j) {
    const T p = fast_exp_nonpositive(s[j] - lse);
    s[j] = p;
    dp[j] = p * (dp[j] - di);
  }
}

template <class T>
LAMINA_ALWAYS_INLINE void scale_row(T* __restrict s, int64_t n, T f) {
  for (int64_t j = 0; j < n; ++j) s[j] *= f;
}

LAMINA_PER_ISA_KERNEL(row_max)
LAMINA_PER_ISA_KERNEL(exp_shift_sum)
LAMINA_PER_ISA_KERNEL(dot)
LAMINA_PER_ISA_KERNEL(softmax_grad_row)
LAMINA_PER_ISA_KERNEL(scale_row)

// S[rows, cols] (leading dim kBlockK) = scale * Q[i0:] K[j0:]^T with the mask applied;
// kt is K[j0 : j0 + cols]^T.
template <class T>
void score_tile(const AttentionArgs<T>& a, int64_t h, int64_t i0, int64_t rows, int64_t j0, int64_t cols,
                const T* q, const ReusedMatrix<T>& kt, T* S) {
  kt.multiply(false, rows, a.scale, q + a.q.at(h, i0), a.q.row, T(0), S, kBlockK);
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t r = 0; r < rows; ++r) {
    T* row = S + r * kBlockK;
    const int64_t i = i0 + r;
    if (a.mask) {
      const int64_t base = a.head_offset[size_t(h)] + i * a.row_stride + j0 * a.col_stride;
      if (a.bool_mask) {
        const uint8_t* m = static_cast<const uint8_t*>(a.mask) + base;
        for (int64_t c = 0; c < cols; ++c)
          if (!m[c * a.col_stride]) row[c] = ninf;
      } else {
        const T* m = static_cast<const T*>(a.mask) + base;
        for (int64_t c = 0; c < cols; ++c) row[c] += m[c * a.col_stride];
      }
    }
    if (a.causal)
      for (int64_t c = std::max<int64_t>(0, i + 1 - j0); c < cols; ++c) row[c] = ninf;
  }
}

// Keys [0, key_end) can be visible to queries [i0, i0 + rows).
template <class T>
int64_t key_end(const AttentionArgs<T>& a, int64_t i0, int64_t rows) {
  return a.causal ? std::min(a.lk, i0 + rows) : a.lk;
}

int64_t blocks(int64_t n, int64_t block) { return (n + block - 1) / block; }

// Row blocks [b * block, ...) of a (rows, cols) matrix with rows ld apart, each packed as a
// GEMM operand op(B): the block itself (K = its rows) or, with `trans`, its transpose (N =
// its rows).
template <class T>
class PackedBlocks {
 public:
  PackedBlocks(const T* m, int64_t rows, int64_t cols, int64_t ld, int64_t block, bool trans) {
    tiles_.reserve(size_t(blocks(rows, block)));
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
      const int64_t n = std::min(block, rows - r0);
      if (trans) tiles_.emplace_back(true, cols, n, m + r0 * ld, ld);
      else tiles_.emplace_back(false, n, cols, m + r0 * ld, ld);
    }
  }
  const ReusedMatrix<T>& operator[](int64_t b) const { return tiles_[size_t(b)]; }

 private:
  std::vector<ReusedMatrix<T>> tiles_;
};

}  // namespace

// ---- launchers ---------------------------------------------------------------------------

template <class T>
void attention_forward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, T* out, T* lse) {
  const int64_t nqb = blocks(a.lq, kBlockQ);
  const T ninf = -std::numeric_limits<T>::infinity();
  std::vector<std::optional<PackedBlocks<T>>> kt(size_t(a.heads)), vb(size_t(a.heads));
  parallel_for(0, a.heads, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t h = lo; h < hi; ++h) {
      kt[size_t(h)].emplace(k + a.k.at(h, 0), a.lk, a.d, a.k.row, kBlockK, true);
      vb[size_t(h)].emplace(v + a.v.at(h, 0), a.lk, a.dv, a.v.row, kBlockK, false);
    }
  });
  parallel_for(0, a.heads * nqb, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> S(size_t(kBlockQ * kBlockK)), m(kBlockQ), l(kBlockQ);
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t h = task / nqb, i0 = (task % nqb) * kBlockQ, rows = std::min(kBlockQ, a.lq - i0);
      T* O = out + (h * a.lq + i0) * a.dv;
      std::fill(O, O + rows * a.dv, T(0));
      std::fill(m.begin(), m.end(), ninf);
      std::fill(l.begin(), l.end(), T(0));
      const int64_t jend = key_end(a, i0, rows);
      for (int64_t j0 = 0; j0 < jend; j0 += kBlockK) {
        const int64_t cols = std::min(kBlockK, jend - j0);
        score_tile(a, h, i0, rows, j0, cols, q, (*kt[size_t(h)])[j0 / kBlockK], S.data());
        for (int64_t r = 0; r < rows; ++r) {
          T* row = S.data() + r * kBlockK;
          const T mnew = std::max(m[r], row_max_run<T>(row, cols));
          if (mnew == ninf) {  // nothing visible yet in this row
            std::fill(row, row + cols, T(0));
            continue;
          }
          const T alpha = m[r] == ninf ? T(0) : T(std::exp(m[r] - mnew));
          const T sum = exp_shift_sum_run<T>(row, cols, mnew);
          if (alpha != T(1)) scale_row_run<T>(O + r * a.dv, a.dv, alpha);
          l[r] = l[r] * alpha + sum;
          m[r] = mnew;
        }
        const ReusedMatrix<T>& vj = (*vb[size_t(h)])[j0 / kBlockK];
        if (cols == vj.rows()) {
          vj.multiply(false, rows, T(1), S.data(), kBlockK, T(1), O, a.dv);
        } else {  // a causal tail: only the first `cols` keys of the tile are visible
          gemm<T>(false, false, rows, a.dv, cols, T(1), S.data(), kBlockK, v + a.v.at(h, j0), a.v.row, T(1), O,
                  a.dv);
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        T* L = lse + h * a.lq + i0 + r;
        if (l[r] > T(0)) {
          scale_row_run<T>(O + r * a.dv, a.dv, T(1) / l[r]);
          *L = m[r] + std::log(l[r]);
        } else {
          std::fill(O + r * a.dv, O + (r + 1) * a.dv, T(0));
          *L = std::numeric_limits<T>::infinity();
        }
      }
    }
  });
}

template <class T>
void attention_backward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv) {
  parallel_for(0, a.heads, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> S(size_t(kBlockQ * kBlockK)), dP(size_t(kBlockQ * kBlockK)), Di(size_t(a.lq));
    for (int64_t h = lo; h < hi; ++h) {
      const T* O = out + h * a.lq * a.dv;
      const T* dO = dout + a.dout.at(h, 0);
      const int64_t ldo = a.dout.row;
      for (int64_t i = 0; i < a.lq; ++i) Di[size_t(i)] = dot_run<T>(dO + i * ldo, O + i * a.dv, a.dv);
      T* dQ = dq + h * a.lq * a.d;
      T* dK = dk + h * a.lk * a.d;
      T* dV = dv + h * a.lk * a.dv;
      // Each block's first product writes it (beta 0); zeros only where no product lands.
      if (a.lk == 0) std::fill(dQ, dQ + a.lq * a.d, T(0));
      const PackedBlocks<T> q_blocks(q + a.q.at(h, 0), a.lq, a.d, a.q.row, kBlockQ, false);
      const PackedBlocks<T> dO_blocks(dO, a.lq, a.dv, ldo, kBlockQ, false);
      for (int64_t j0 = 0; j0 < a.lk; j0 += kBlockK) {
        const int64_t cols = std::min(kBlockK, a.lk - j0);
        const T* Kj = k + a.k.at(h, j0);
        const T* Vj = v + a.v.at(h, j0);
        const ReusedMatrix<T> kj(false, cols, a.d, Kj, a.k.row), kjt(true, a.d, cols, Kj, a.k.row);
        const ReusedMatrix<T> vjt(true, a.dv, cols, Vj, a.v.row);
        const int64_t i_first = a.causal ? (j0 / kBlockQ) * kBlockQ : 0;
        if (i_first >= a.lq) {
          std::fill(dK + j0 * a.d, dK + (j0 + cols) * a.d, T(0));
          std::fill(dV + j0 * a.dv, dV + (j0 + cols) * a.dv, T(0));
        }
        for (int64_t i0 = i_first; i0 < a.lq; i0 += kBlockQ) {
          const int64_t rows = std::min(kBlockQ, a.lq - i0);
          const T* dOi = dO + i0 * ldo;
          score_tile(a, h, i0, rows, j0, cols, q, kjt, S.data());
          vjt.multiply(false, rows, T(1), dOi, ldo, T(0), dP.data(), kBlockK);
          for (int64_t r = 0; r < rows; ++r) {
            T* const s_row = S.data() + r * kBlockK;
            T* const dp_row = dP.data() + r * kBlockK;
            const T row_lse = lse[h * a.lq + i0 + r];
            if (row_lse == std::numeric_limits<T>::infinity()) {
              // The forward zeroed this row (no visible key, or NaN scores): a constant output,
              // so zero gradients, even where the scores are NaN.
              std::fill(s_row, s_row + cols, T(0));
              std::fill(dp_row, dp_row + cols, T(0));
              continue;
            }
            softmax_grad_row_run<T>(s_row, dp_row, cols, row_lse, Di[size_t(i0 + r)]);
          }
          const T kv_beta = i0 == i_first ? T(0) : T(1), q_beta = j0 == 0 ? T(0) : T(1);
          dO_blocks[i0 / kBlockQ].multiply(true, cols, T(1), S.data(), kBlockK, kv_beta, dV + j0 * a.dv, a.dv);
          kj.multiply(false, rows, a.scale, dP.data(), kBlockK, q_beta, dQ + i0 * a.d, a.d);
          q_blocks[i0 / kBlockQ].multiply(true, cols, a.scale, dP.data(), kBlockK, kv_beta, dK + j0 * a.d, a.d);
        }
      }
    }
  });
}

template void attention_forward<float>(const AttentionArgs<float>&, const float*, const float*, const float*,
                                       float*, float*);
template void attention_forward<double>(const AttentionArgs<double>&, const double*, const double*,
                                        const double*, double*, double*);
template void attention_backward<float>(const AttentionArgs<float>&, const float*, const float*, const float*,
                                        const float*, const float*, const float*, float*, float*, float*);
template void attention_backward<double>(const AttentionArgs<double>&, const double*, const double*,
                                         const double*, const double*, const double*, const double*, double*,
                                         double*, double*);

}  // namespace lamina::cpu
