// Whole-sequence LSTM and GRU on the CPU, forward and backward through time.
//
// Forward, per sequence (B batch rows, T steps, I inputs, H hidden, G = 4H or 3H gates):
//   1. one GEMM projects every step's input: gates[B*T, G] = x[B*T, I] @ w_ih^T + b
//      (B*T*I*G multiply-adds, e.g. 64*128*128*1024 = 1.07 G for the benchmark LSTM);
//   2. per step, one GEMM computes the recurrent term h_{t-1} @ w_hh^T into a contiguous
//      (B, G) buffer: B*H*G multiply-adds, e.g. 16.8 M. Not accumulated into `gates` in
//      place: a step's rows there lie T*G floats apart (512 KB in the benchmark), so all
//      of them map to the same cache sets, and that GEMM ran 1.7x slower per gate;
//   3. per step, one fused loop over (B, H) adds the two terms, applies sigmoid/tanh and the
//      cell update, writes h_t, c_t and the activated gates (kept for backward).
// Backward walks the steps in reverse with the same structure: a fused loop turns dh, dc
// into pre-activation gate gradients dG (B,T,G), one GEMM per step sends dG back through
// w_hh, and after the loop three large GEMMs give dx, dw_ih and dw_hh (and a column sum
// gives db). Masked steps (mask == 0) keep the state, output zeros and get dG = 0.
// The fused row loops are compiled for AVX2+FMA and for the baseline, chosen at run time.
#include "cpu/recurrent.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/parallel.h"
#include "cpu/fast_math.h"
#include "cpu/gemm.h"

namespace lamina::cpu {

namespace {

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else gemm_f64(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// C[M, N] (leading dim ldc) = A[M, K] @ W[N, K]^T + bias[N].
template <class T>
void project(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* W, const T* bias, T* C,
             int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    gemm_f32(false, true, M, N, K, 1.0f, A, lda, W, K, 0.0f, C, ldc, Epilogue::Bias, bias);
  } else {
    for (int64_t i = 0; i < M; ++i) std::copy(bias, bias + N, C + i * ldc);
    gemm_f64(false, true, M, N, K, 1.0, A, lda, W, K, 1.0, C, ldc);
  }
}

// Column sums of a (rows, cols) matrix, split over column chunks.
template <class T>
void column_sums(const T* a, int64_t rows, int64_t cols, T* out) {
  parallel_for(0, cols, 256, [&](int64_t lo, int64_t hi) {
    std::fill(out + lo, out + hi, T(0));
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = a + r * cols;
      for (int64_t c = lo; c < hi; ++c) out[c] += row[c];
    }
  });
}

// Rows per parallel chunk so that each chunk carries a few thousand gate elements.
int64_t row_grain(int64_t hidden) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, hidden)); }

// ---- fused row kernels -------------------------------------------------------------------

// g + gh: one row's pre-activations (i, f, g, o), input and recurrent terms; the
// activations replace g. c, h: the new state.
template <class T>
LAMINA_ALWAYS_INLINE void lstm_forward_row(T* __restrict g, const T* __restrict gh, const T* __restrict cprev,
                                           T* __restrict c, T* __restrict h, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T i = fast_sigmoid(g[j] + gh[j]), f = fast_sigmoid(g[H + j] + gh[H + j]);
    const T gg = fast_tanh(g[2 * H + j] + gh[2 * H + j]), o = fast_sigmoid(g[3 * H + j] + gh[3 * H + j]);
    const T cn = f * cprev[j] + i * gg;
    c[j] = cn;
    h[j] = o * fast_tanh(cn);
    g[j] = i;
    g[H + j] = f;
    g[2 * H + j] = gg;
    g[3 * H + j] = o;
  }
}

// dh + dout: gradient reaching h_t; dc: in, gradient reaching c_t from later steps; out,
// gradient reaching c_{t-1}. dg: pre-activation gradients.
template <class T>
LAMINA_ALWAYS_INLINE void lstm_backward_row(const T* __restrict g, const T* __restrict cprev,
                                            const T* __restrict c, const T* __restrict dh,
                                            const T* __restrict dout, T* __restrict dc, T* __restrict dg,
                                            int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
    const T dht = dh[j] + dout[j];
    const T tc = fast_tanh(c[j]);
    const T dct = dc[j] + dht * o * (T(1) - tc * tc);
    dg[j] = dct * gg * i * (T(1) - i);
    dg[H + j] = dct * cprev[j] * f * (T(1) - f);
    dg[2 * H + j] = dct * i * (T(1) - gg * gg);
    dg[3 * H + j] = dht * tc * o * (T(1) - o);
    dc[j] = dct * f;
  }
}

// g: (input part of r, z, n) -> (r, z, n); gh: W_hh h + b_hh for this row.
template <class T>
LAMINA_ALWAYS_INLINE void gru_forward_row(T* __restrict g, const T* __restrict gh, const T* __restrict hp,
                                          T* __restrict hn, T* __restrict h, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T r = fast_sigmoid(g[j] + gh[j]), z = fast_sigmoid(g[H + j] + gh[H + j]);
    const T hnv = gh[2 * H + j];
    const T n = fast_tanh(g[2 * H + j] + r * hnv);
    h[j] = (T(1) - z) * n + z * hp[j];
    g[j] = r;
    g[H + j] = z;
    g[2 * H + j] = n;
    hn[j] = hnv;
  }
}

// dgi: gradient of the input projection (and b_ih); dgh: of W_hh h + b_hh; dprev: the part
// of dh_{t-1} that skips w_hh.
template <class T>
LAMINA_ALWAYS_INLINE void gru_backward_row(const T* __restrict g, const T* __restrict hn,
                                           const T* __restrict hp, const T* __restrict dh,
                                           const T* __restrict dout, T* __restrict dgi, T* __restrict dgh,
                                           T* __restrict dprev, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T r = g[j], z = g[H + j], n = g[2 * H + j];
    const T dht = dh[j] + dout[j];
    const T dan = dht * (T(1) - z) * (T(1) - n * n);
    const T dar = dan * hn[j] * r * (T(1) - r);
    const T daz = dht * (hp[j] - n) * z * (T(1) - z);
    dgi[j] = dar;
    dgi[H + j] = daz;
    dgi[2 * H + j] = dan;
    dgh[j] = dar;
    dgh[H + j] = daz;
    dgh[2 * H + j] = dan * r;
    dprev[j] = dht * z;
  }
}

// Each row kernel in an AVX2+FMA build and a baseline build of the float version.
#define LAMINA_ROW_KERNEL(name)                                                        \
  template <class... A>                                                                \
  LAMINA_TARGET_AVX2 void name##_avx2(A... a) {                                        \
    name<float>(a...);                                                                 \
  }                                                                                    \
  template <class... A>                                                                \
  void name##_generic(A... a) {                                                        \
    name<float>(a...);                                                                 \
  }                                                                                    \
  template <class T, class... A>                                                       \
  void name##_run(A... a) {                                                            \
    if constexpr (std::is_same_v<T, float>) {                                          \
      if (use_avx2_kernels()) name##_avx2(a...);                                           \
      else name##_generic(a...);                                                       \
    } else {                                                                           \
      name<T>(a...);                                                                   \
    }                                                                                  \
  }

LAMINA_ROW_KERNEL(lstm_forward_row)
LAMINA_ROW_KERNEL(lstm_backward_row)
LAMINA_ROW_KERNEL(gru_forward_row)
LAMINA_ROW_KERNEL(gru_backward_row)

#undef LAMINA_ROW_KERNEL

template <class T>
void copy_row(const T* src, T* dst, int64_t n) {
  std::memcpy(dst, src, size_t(n) * sizeof(T));
}
template <class T>
void zero_row(T* dst, int64_t n) {
  std::fill(dst, dst + n, T(0));
}

}  // namespace

// ---- launchers ---------------------------------------------------------------------------

template <class T>
void lstm_forward(const RnnDims& d, const T* x, const T* h0, const T* c0, const T* w_ih, const T* w_hh,
                  const T* b, const uint8_t* mask, T* gates, T* hprev, T* cells, T* out) {
  const int64_t B = d.batch, S = d.steps, I = d.input, H = d.hidden, G = 4 * H;
  project<T>(B * S, G, I, x, I, w_ih, b, gates, G);
  std::vector<T> gh(size_t(B * G));
  for (int64_t bi = 0; bi < B; ++bi) copy_row(h0 + bi * H, hprev + bi * S * H, H);
  for (int64_t t = 0; t < S; ++t) {
    gemm<T>(false, true, B, G, H, T(1), hprev + t * H, S * H, w_hh, H, T(0), gh.data(), G);
    parallel_for(0, B, row_grain(H), [&](int64_t lo, int64_t hi) {
      for (int64_t bi = lo; bi < hi; ++bi) {
        const int64_t r = bi * S + t;
        const T* cp = t > 0 ? cells + (r - 1) * H : c0 + bi * H;
        T* c = cells + r * H;
        T* o = out + (bi * (S + 2) + t) * H;
        T* next = t + 1 < S ? hprev + (r + 1) * H : out + (bi * (S + 2) + S) * H;
        if (!mask || mask[r]) {
          lstm_forward_row_run<T>(gates + r * G, gh.data() + bi * G, cp, c, o, H);
          copy_row(o, next, H);
        } else {
          copy_row(cp, c, H);
          zero_row(o, H);
          copy_row(hprev + r * H, next, H);
        }
        if (t + 1 == S) copy_row(c, out + (bi * (S + 2) + S + 1) * H, H);
      }
    });
  }
}

template <class T>
void lstm_backward(const RnnDims& d, const T* dout, const T* x, const T* c0, const T* w_ih, const T* w_hh,
                   const uint8_t* mask, const T* gates, const T* hprev, const T* cells, T* dx, T* dh0, T* dc0,
                   T* dw_ih, T* dw_hh, T* db) {
  const int64_t B = d.batch, S = d.steps, I = d.input, H = d.hidden, G = 4 * H;
  std::vector<T> dg(size_t(B * S * G)), dh(size_t(B * H)), dc(size_t(B * H)), dh_next(size_t(B * H));
  for (int64_t bi = 0; bi < B; ++bi) {
    copy_row(dout + (bi * (S + 2) + S) * H, dh.data() + bi * H, H);
    copy_row(dout + (bi * (S + 2) + S + 1) * H, dc.data() + bi * H, H);
  }
  for (int64_t t = S - 1; t >= 0; --t) {
    parallel_for(0, B, row_grain(H), [&](int64_t lo, int64_t hi) {
      for (int64_t bi = lo; bi < hi; ++bi) {
        const int64_t r = bi * S + t;
        if (!mask || mask[r]) {
          const T* cp = t > 0 ? cells + (r - 1) * H : c0 + bi * H;
          lstm_backward_row_run<T>(gates + r * G, cp, cells + r * H, dh.data() + bi * H,
                                   dout + (bi * (S + 2) + t) * H, dc.data() + bi * H, dg.data() + r * G, H);
          zero_row(dh_next.data() + bi * H, H);
        } else {
          zero_row(dg.data() + r * G, G);
          copy_row(dh.data() + bi * H, dh_next.data() + bi * H, H);
        }
      }
    });
    gemm<T>(false, false, B, H, G, T(1), dg.data() + t * G, S * G, w_hh, H, T(1), dh_next.data(), H);
    std::swap(dh, dh_next);
  }
  if (dh0) copy_row(dh.data(), dh0, B * H);
  if (dc0) copy_row(dc.data(), dc0, B * H);
  if (dx) gemm<T>(false, false, B * S, I, G, T(1), dg.data(), G, w_ih, I, T(0), dx, I);
  if (dw_ih) gemm<T>(true, false, G, I, B * S, T(1), dg.data(), G, x, I, T(0), dw_ih, I);
  if (dw_hh) gemm<T>(true, false, G, H, B * S, T(1), dg.data(), G, hprev, H, T(0), dw_hh, H);
  if (db) column_sums(dg.data(), B * S, G, db);
}

template <class T>
void gru_forward(const RnnDims& d, const T* x, const T* h0, const T* w_ih, const T* w_hh, const T* b_ih,
                 const T* b_hh, const uint8_t* mask, T* gates, T* hn, T* hprev, T* out) {
  const int64_t B = d.batch, S = d.steps, I = d.input, H = d.hidden, G = 3 * H;
  project<T>(B * S, G, I, x, I, w_ih, b_ih, gates, G);
  std::vector<T> gh(size_t(B * G));
  for (int64_t bi = 0; bi < B; ++bi) copy_row(h0 + bi * H, hprev + bi * S * H, H);
  for (int64_t t = 0; t < S; ++t) {
    project<T>(B, G, H, hprev + t * H, S * H, w_hh, b_hh, gh.data(), G);
    parallel_for(0, B, row_grain(H), [&](int64_t lo, int64_t hi) {
      for (int64_t bi = lo; bi < hi; ++bi) {
        const int64_t r = bi * S + t;
        T* o = out + (bi * (S + 1) + t) * H;
        T* next = t + 1 < S ? hprev + (r + 1) * H : out + (bi * (S + 1) + S) * H;
        if (!mask || mask[r]) {
          gru_forward_row_run<T>(gates + r * G, gh.data() + bi * G, hprev + r * H, hn + r * H, o, H);
          copy_row(o, next, H);
        } else {
          zero_row(o, H);
          copy_row(hprev + r * H, next, H);
        }
      }
    });
  }
}

template <class T>
void gru_backward(const RnnDims& d, const T* dout, const T* x, const T* w_ih, const T* w_hh, const uint8_t* mask,
                  const T* gates, const T* hn, const T* hprev, T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih,
                  T* db_hh) {
  const int64_t B = d.batch, S = d.steps, I = d.input, H = d.hidden, G = 3 * H;
  std::vector<T> dgi(size_t(B * S * G)), dgh(size_t(B * S * G)), dh(size_t(B * H)), dh_next(size_t(B * H));
  for (int64_t bi = 0; bi < B; ++bi) copy_row(dout + (bi * (S + 1) + S) * H, dh.data() + bi * H, H);
  for (int64_t t = S - 1; t >= 0; --t) {
    parallel_for(0, B, row_grain(H), [&](int64_t lo, int64_t hi) {
      for (int64_t bi = lo; bi < hi; ++bi) {
        const int64_t r = bi * S + t;
        if (!mask || mask[r]) {
          gru_backward_row_run<T>(gates + r * G, hn + r * H, hprev + r * H, dh.data() + bi * H,
                                  dout + (bi * (S + 1) + t) * H, dgi.data() + r * G, dgh.data() + r * G,
                                  dh_next.data() + bi * H, H);
        } else {
          zero_row(dgi.data() + r * G, G);
          zero_row(dgh.data() + r * G, G);
          copy_row(dh.data() + bi * H, dh_next.data() + bi * H, H);
        }
      }
    });
    gemm<T>(false, false, B, H, G, T(1), dgh.data() + t * G, S * G, w_hh, H, T(1), dh_next.data(), H);
    std::swap(dh, dh_next);
  }
  if (dh0) copy_row(dh.data(), dh0, B * H);
  if (dx) gemm<T>(false, false, B * S, I, G, T(1), dgi.data(), G, w_ih, I, T(0), dx, I);
  if (dw_ih) gemm<T>(true, false, G, I, B * S, T(1), dgi.data(), G, x, I, T(0), dw_ih, I);
  if (dw_hh) gemm<T>(true, false, G, H, B * S, T(1), dgh.data(), G, hprev, H, T(0), dw_hh, H);
  if (db_ih) column_sums(dgi.data(), B * S, G, db_ih);
  if (db_hh) column_sums(dgh.data(), B * S, G, db_hh);
}

#define LAMINA_INSTANTIATE(T)                                                                                    \
  template void lstm_forward<T>(const RnnDims&, const T*, const T*, const T*, const T*, const T*, const T*,      \
                                const uint8_t*, T*, T*, T*, T*);                                                 \
  template void lstm_backward<T>(const RnnDims&, const T*, const T*, const T*, const T*, const T*,               \
                                 const uint8_t*, const T*, const T*, const T*, T*, T*, T*, T*, T*, T*);          \
  template void gru_forward<T>(const RnnDims&, const T*, const T*, const T*, const T*, const T*, const T*,       \
                               const uint8_t*, T*, T*, T*, T*);                                                  \
  template void gru_backward<T>(const RnnDims&, const T*, const T*, const T*, const T*, const uint8_t*,          \
                                const T*, const T*, const T*, T*, T*, T*, T*, T*, T*);
LAMINA_INSTANTIATE(float)
LAMINA_INSTANTIATE(double)
#undef LAMINA_INSTANTIATE

}  // namespace lamina::cpu
