// Whole-sequence LSTM and GRU on the CPU, forward and backward through time.
//
// Forward, per sequence (B batch rows, T steps, I inputs, H hidden, G = 4H or 3H gates):
//   1. one GEMM projects every step's input: gates[B*T, G] = x[B*T, I] @ w_ih^T + b
//      (B*T*I*G multiply-adds, e.g. 64*128*128*1024 = 1.07 G for the benchmark LSTM);
//   2. the time loop runs on a team of threads (core/parallel.h), each owning a slice of the
//      hidden units and the rows of w_hh that feed them, packed once for all steps. Per
//      step a member multiplies h_{t-1} by its rows into a private (B, 4 * units) buffer
//      (B*H*G multiply-adds in all, e.g. 16.8 M), then runs the fused loop for its units:
//      adds the input term, applies sigmoid/tanh and the cell update, writes h_t, c_t and
//      the activated gates (kept for backward). One barrier per step: the next product
//      reads every unit of h_t. A parallel_for per step instead cost two fork-joins and a
//      repacking of w_hh per step. The recurrent term is not accumulated into `gates` in
//      place: a step's rows there lie T*G floats apart (512 KB in the benchmark), all in
//      the same cache sets, and that product ran 1.7x slower per gate.
// Backward walks the steps in reverse on the same team: the fused loop turns dh, dc into
// pre-activation gate gradients dG (B,T,G) for the member's units; after a barrier each
// member sends all of dG_t back through its columns of w_hh (its units of dh_{t-1}). After
// the loop three large GEMMs give dx, dw_ih and dw_hh (and a column sum gives db). Masked
// steps (mask == 0) keep the state, output zeros and get dG = 0.
// The fused row loops are compiled for AVX-512, AVX2+FMA and the baseline, chosen at run time.
#include "cpu/recurrent.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
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

// ---- fused row kernels -------------------------------------------------------------------
// Each works on `n` hidden units of one batch row. Gate q of unit j sits at q * H + j in the
// (B,T,G) arrays (g, dg) and at q * ghs + j in a member's private product buffer (gh).

// g + gh: pre-activations (i, f, g, o), input and recurrent terms; the activations replace
// g. c, h: the new state.
template <class T>
LAMINA_ALWAYS_INLINE void lstm_forward_row(T* __restrict g, const T* __restrict gh, int64_t ghs,
                                           const T* __restrict cprev, T* __restrict c, T* __restrict h,
                                           int64_t n, int64_t H) {
  for (int64_t j = 0; j < n; ++j) {
    const T i = fast_sigmoid(g[j] + gh[j]), f = fast_sigmoid(g[H + j] + gh[ghs + j]);
    const T gg = fast_tanh(g[2 * H + j] + gh[2 * ghs + j]), o = fast_sigmoid(g[3 * H + j] + gh[3 * ghs + j]);
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
                                            int64_t n, int64_t H) {
  for (int64_t j = 0; j < n; ++j) {
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
LAMINA_ALWAYS_INLINE void gru_forward_row(T* __restrict g, const T* __restrict gh, int64_t ghs,
                                          const T* __restrict hp, T* __restrict hn, T* __restrict h, int64_t n,
                                          int64_t H) {
  for (int64_t j = 0; j < n; ++j) {
    const T r = fast_sigmoid(g[j] + gh[j]), z = fast_sigmoid(g[H + j] + gh[ghs + j]);
    const T hnv = gh[2 * ghs + j];
    const T nv = fast_tanh(g[2 * H + j] + r * hnv);
    h[j] = (T(1) - z) * nv + z * hp[j];
    g[j] = r;
    g[H + j] = z;
    g[2 * H + j] = nv;
    hn[j] = hnv;
  }
}

// dgi: gradient of the input projection (and b_ih); dgh: of W_hh h + b_hh; dprev: the part
// of dh_{t-1} that skips w_hh.
template <class T>
LAMINA_ALWAYS_INLINE void gru_backward_row(const T* __restrict g, const T* __restrict hn,
                                           const T* __restrict hp, const T* __restrict dh,
                                           const T* __restrict dout, T* __restrict dgi, T* __restrict dgh,
                                           T* __restrict dprev, int64_t n, int64_t H) {
  for (int64_t j = 0; j < n; ++j) {
    const T r = g[j], z = g[H + j], nv = g[2 * H + j];
    const T dht = dh[j] + dout[j];
    const T dan = dht * (T(1) - z) * (T(1) - nv * nv);
    const T dar = dan * hn[j] * r * (T(1) - r);
    const T daz = dht * (hp[j] - nv) * z * (T(1) - z);
    dgi[j] = dar;
    dgi[H + j] = daz;
    dgi[2 * H + j] = dan;
    dgh[j] = dar;
    dgh[H + j] = daz;
    dgh[2 * H + j] = dan * r;
    dprev[j] = dht * z;
  }
}

// Each row kernel in AVX-512, AVX2+FMA and baseline builds of the float version.
LAMINA_PER_ISA_KERNEL(lstm_forward_row)
LAMINA_PER_ISA_KERNEL(lstm_backward_row)
LAMINA_PER_ISA_KERNEL(gru_forward_row)
LAMINA_PER_ISA_KERNEL(gru_backward_row)

template <class T>
void copy_row(const T* src, T* dst, int64_t n) {
  if (n > 0) std::memcpy(dst, src, size_t(n) * sizeof(T));
}
template <class T>
void zero_row(T* dst, int64_t n) {
  std::fill(dst, dst + n, T(0));
}
// Zeroes gate columns [0, n) of each of `gates` gates (q * H apart).
template <class T>
void zero_gates(T* dst, int64_t gates, int64_t n, int64_t H) {
  for (int64_t q = 0; q < gates; ++q) zero_row(dst + q * H, n);
}

// ---- the time loop's team ----------------------------------------------------------------

// The hidden units [lo, hi) a team member owns: equal slices, cut at multiples of 8 (one
// vector of floats) so the fused loops stay aligned to the rows' starts.
struct Units {
  int64_t lo, hi;
  int64_t count() const { return hi - lo; }
};

Units unit_slice(int64_t H, int rank, int size) {
  auto cut = [&](int r) { return r >= size ? H : std::min(H, (H * r / size) / 8 * 8); };
  return {cut(rank), cut(rank + 1)};
}

// Members for a time loop whose steps do `step_macs` multiply-adds: one when a step is too
// small to split (the barrier would cost more than the halves save), else one per 8 units.
int team_members(int64_t step_macs, int64_t H) {
  constexpr int64_t kSplitWork = 64 * 64 * 64;
  return step_macs < kSplitWork ? 1 : int(std::clamp<int64_t>(H / 8, 1, 1024));
}

// A member's slice of w_hh, multiplied by a (B, K) operand at every step. The workspace
// is reserved up front, so the steps allocate nothing.
template <class T>
struct StepWeight {
  StepWeight(std::vector<T> slice_, bool trans, int64_t K, int64_t N, int64_t rows)
      : slice(std::move(slice_)), matrix(trans, K, N, slice.data(), trans ? K : N) {
    matrix.reserve(rows);
  }
  // C[M, N] = A[M, K] @ op(slice) + beta * C (+ bias), on the calling thread.
  void multiply(int64_t M, const T* A, int64_t lda, T beta, T* C, int64_t ldc, const T* bias = nullptr) const {
    matrix.multiply(false, M, T(1), A, lda, beta, C, ldc, bias ? Epilogue::Bias : Epilogue::None, bias);
  }
  std::vector<T> slice;  // double products read it in place
  ReusedMatrix<T> matrix;
};

// For the forward product: rows q * H + [lo, hi) of w (G x H), gate by gate, as one
// (gates * units, H) matrix.
template <class T>
std::vector<T> gate_rows(const T* w, int64_t gates, int64_t H, Units u) {
  std::vector<T> out(size_t(gates * u.count() * H));
  for (int64_t q = 0; q < gates; ++q)
    for (int64_t j = u.lo; j < u.hi; ++j) copy_row(w + (q * H + j) * H, out.data() + (q * u.count() + j - u.lo) * H, H);
  return out;
}

// For the backward product: columns [lo, hi) of w (G x H) as a (G, units) matrix.
template <class T>
std::vector<T> unit_columns(const T* w, int64_t G, int64_t H, Units u) {
  std::vector<T> out(size_t(G * u.count()));
  for (int64_t k = 0; k < G; ++k) copy_row(w + k * H + u.lo, out.data() + k * u.count(), u.count());
  return out;
}

// Runs body(units, state, barrier) on every member of a team. prepare(units) builds a
// member's state and may throw (it allocates); the body must not. When any member's
// prepare fails, every member skips its body (they all decide after the same barrier, so
// none is left waiting) and the first error is rethrown here.
template <class Prepare, class Body>
void run_time_loop(int max_members, int64_t H, const Prepare& prepare, const Body& body) {
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  parallel_team(max_members, [&](int rank, int size, TeamBarrier& barrier) {
    const Units units = unit_slice(H, rank, size);
    std::optional<decltype(prepare(units))> state;
    try {
      state.emplace(prepare(units));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed.store(true);
    }
    barrier.wait();
    if (!failed.load()) body(units, *state, barrier);
  });
  if (error) std::rethrow_exception(error);
}

template <class T>
struct ForwardState {
  StepWeight<T> weight;
  std::vector<T> gh;  // this step's recurrent term for the member's units, (B, gates * units)
  const T* bias;      // b_hh for the member's units, gate by gate (GRU), else null
  std::vector<T> bias_rows;
};

template <class T>
ForwardState<T> forward_state(const T* w_hh, const T* b_hh, int64_t gates, int64_t B, int64_t H, Units u) {
  ForwardState<T> s{StepWeight<T>(gate_rows(w_hh, gates, H, u), true, H, gates * u.count(), B),
                    std::vector<T>(size_t(B * gates * u.count())), nullptr, {}};
  if (b_hh) {
    s.bias_rows.resize(size_t(gates * u.count()));
    for (int64_t q = 0; q < gates; ++q) copy_row(b_hh + q * H + u.lo, s.bias_rows.data() + q * u.count(), u.count());
    s.bias = s.bias_rows.data();
  }
  return s;
}

template <class T>
StepWeight<T> backward_weight(const T* w_hh, int64_t gates, int64_t B, int64_t H, Units u) {
  return StepWeight<T>(unit_columns(w_hh, gates * H, H, u), false, gates * H, u.count(), B);
}

}  // namespace

// ---- launchers ---------------------------------------------------------------------------

template <class T>
void lstm_forward(const RnnDims& d, const T* x, const T* h0, const T* c0, const T* w_ih, const T* w_hh,
                  const T* b, const uint8_t* mask, T* gates, T* hprev, T* cells, T* out) {
  const int64_t B = d.batch, S = d.steps, I = d.input, H = d.hidden, G = 4 * H;
  project<T>(B * S, G, I, x, I, w_ih, b, gates, G);
  for (int64_t bi = 0; bi < B; ++bi) copy_row(h0 + bi * H, hprev + bi * S * H, H);
  auto prepare = [&](Units u) { return forward_state<T>(w_hh, nullptr, 4, B, H, u); };
  run_time_loop(team_members(B * H * G, H), H, prepare, [&](Units u, ForwardState<T>& s, TeamBarrier& barrier) {
    const int64_t n = u.count(), ghs = 4 * n;
    for (int64_t t = 0; t < S; ++t) {
      s.weight.multiply(B, hprev + t * H, S * H, T(0), s.gh.data(), ghs);
      for (int64_t bi = 0; bi < B; ++bi) {
        const int64_t r = bi * S + t;
        const T* cp = (t > 0 ? cells + (r - 1) * H : c0 + bi * H) + u.lo;
        T* c = cells + r * H + u.lo;
        T* o = out + (bi * (S + 2) + t) * H + u.lo;
        T* next = (t + 1 < S ? hprev + (r + 1) * H : out + (bi * (S + 2) + S) * H) + u.lo;
        if (!mask || mask[r]) {
          lstm_forward_row_run<T>(gates + r * G + u.lo, s.gh.data() + bi * ghs, n, cp, c, o, n, H);
          copy_row(o, next, n);
        } else {
          copy_row(cp, c, n);
          zero_row(o, n);
          copy_row(hprev + r * H + u.lo, next, n);
        }
        if (t + 1 == S) copy_row(c, out + (bi * (S + 2) + S + 1) * H + u.lo, n);
      }
      barrier.wait();
    }
  });
}

template <class T>
void lstm_backward(const RnnDims& d, const T* dout, const T* x, const T* c0, const T* w_ih, const T* w_hh,
                   const uint8_t* mask, const T* gates, const T* hprev, const T* cells, T* dx, T* dh0, T* dc0,
                   T* dw_ih, T* dw_hh, T* db) {
  const int64_t B = d.batch, S = d.steps, I = d.input, H = d.hidden, G = 4 * H;
  std::vector<T> dg(size_t(B * S * G)), dh_a(size_t(B * H)), dc(size_t(B * H)), dh_b(size_t(B * H));
  for (int64_t bi = 0; bi < B; ++bi) {
    copy_row(dout + (bi * (S + 2) + S) * H, dh_a.data() + bi * H, H);
    copy_row(dout + (bi * (S + 2) + S + 1) * H, dc.data() + bi * H, H);
  }
  auto prepare = [&](Units u) { return backward_weight<T>(w_hh, 4, B, H, u); };
  run_time_loop(team_members(B * H * G, H), H, prepare, [&](Units u, StepWeight<T>& w, TeamBarrier& barrier) {
    const int64_t n = u.count();
    T* dh = dh_a.data();
    T* dh_next = dh_b.data();
    for (int64_t t = S - 1; t >= 0; --t) {
      for (int64_t bi = 0; bi < B; ++bi) {
        const int64_t r = bi * S + t, at = bi * H + u.lo;
        if (!mask || mask[r]) {
          const T* cp = t > 0 ? cells + (r - 1) * H : c0 + bi * H;
          lstm_backward_row_run<T>(gates + r * G + u.lo, cp + u.lo, cells + r * H + u.lo, dh + at,
                                   dout + (bi * (S + 2) + t) * H + u.lo, dc.data() + at, dg.data() + r * G + u.lo,
                                   n, H);
          zero_row(dh_next + at, n);
        } else {
          zero_gates(dg.data() + r * G + u.lo, 4, n, H);
          copy_row(dh + at, dh_next + at, n);
        }
      }
      barrier.wait();
      w.multiply(B, dg.data() + t * G, S * G, T(1), dh_next + u.lo, H);
      std::swap(dh, dh_next);
    }
  });
  const T* dh_first = S % 2 ? dh_b.data() : dh_a.data();
  if (dh0) copy_row(dh_first, dh0, B * H);
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
  for (int64_t bi = 0; bi < B; ++bi) copy_row(h0 + bi * H, hprev + bi * S * H, H);
  auto prepare = [&](Units u) { return forward_state<T>(w_hh, b_hh, 3, B, H, u); };
  run_time_loop(team_members(B * H * G, H), H, prepare, [&](Units u, ForwardState<T>& s, TeamBarrier& barrier) {
    const int64_t n = u.count(), ghs = 3 * n;
    for (int64_t t = 0; t < S; ++t) {
      s.weight.multiply(B, hprev + t * H, S * H, T(0), s.gh.data(), ghs, s.bias);
      for (int64_t bi = 0; bi < B; ++bi) {
        const int64_t r = bi * S + t;
        T* o = out + (bi * (S + 1) + t) * H + u.lo;
        T* next = (t + 1 < S ? hprev + (r + 1) * H : out + (bi * (S + 1) + S) * H) + u.lo;
        if (!mask || mask[r]) {
          gru_forward_row_run<T>(gates + r * G + u.lo, s.gh.data() + bi * ghs, n, hprev + r * H + u.lo,
                                 hn + r * H + u.lo, o, n, H);
          copy_row(o, next, n);
        } else {
          zero_row(o, n);
          copy_row(hprev + r * H + u.lo, next, n);
        }
      }
      barrier.wait();
    }
  });
}

template <class T>
void gru_backward(const RnnDims& d, const T* dout, const T* x, const T* w_ih, const T* w_hh, const uint8_t* mask,
                  const T* gates, const T* hn, const T* hprev, T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih,
                  T* db_hh) {
  const int64_t B = d.batch, S = d.steps, I = d.input, H = d.hidden, G = 3 * H;
  std::vector<T> dgi(size_t(B * S * G)), dgh(size_t(B * S * G)), dh_a(size_t(B * H)), dh_b(size_t(B * H));
  for (int64_t bi = 0; bi < B; ++bi) copy_row(dout + (bi * (S + 1) + S) * H, dh_a.data() + bi * H, H);
  auto prepare = [&](Units u) { return backward_weight<T>(w_hh, 3, B, H, u); };
  run_time_loop(team_members(B * H * G, H), H, prepare, [&](Units u, StepWeight<T>& w, TeamBarrier& barrier) {
    const int64_t n = u.count();
    T* dh = dh_a.data();
    T* dh_next = dh_b.data();
    for (int64_t t = S - 1; t >= 0; --t) {
      for (int64_t bi = 0; bi < B; ++bi) {
        const int64_t r = bi * S + t, at = bi * H + u.lo;
        if (!mask || mask[r]) {
          gru_backward_row_run<T>(gates + r * G + u.lo, hn + r * H + u.lo, hprev + r * H + u.lo, dh + at,
                                  dout + (bi * (S + 1) + t) * H + u.lo, dgi.data() + r * G + u.lo,
                                  dgh.data() + r * G + u.lo, dh_next + at, n, H);
        } else {
          zero_gates(dgi.data() + r * G + u.lo, 3, n, H);
          zero_gates(dgh.data() + r * G + u.lo, 3, n, H);
          copy_row(dh + at, dh_next + at, n);
        }
      }
      barrier.wait();
      w.multiply(B, dgh.data() + t * G, S * G, T(1), dh_next + u.lo, H);
      std::swap(dh, dh_next);
    }
  });
  const T* dh_first = S % 2 ? dh_b.data() : dh_a.data();
  if (dh0) copy_row(dh_first, dh0, B * H);
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
