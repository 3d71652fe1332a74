// Whole-sequence LSTM and GRU on the CPU, forward and backward through time, on time-major
// buffers (a step's B rows are one contiguous block; batch-first, one step's rows lie T*G
// floats apart, 512 KB in the benchmark, all in the same cache sets).
//
// Both run their time loop on a team of threads (core/parallel.h): each member owns a slice
// of the hidden units, packs the weight rows that feed them once for all steps, and meets
// the others at one barrier per step (the next step's product reads every unit of h_t). A
// parallel_for per step instead cost two fork-joins and a repacking per step.
//
// LSTM (B batch rows, T steps, I inputs, H hidden, G = 4H gates): the saved xh (T, B, I + H)
// holds each step's input beside the state it starts from, so a member's step product
// [x_t | h_{t-1}] @ [w_ih | w_hh]^T + b over its gate rows (B*(I+H)*G multiply-adds per step
// in all) gives the pre-activations in a private buffer, and the fused loop turns them into
// the activated gates (kept for backward), c_t and h_t. Before, one GEMM projected all steps'
// inputs into a (T*B, G) array that the step loop then read back: 32 MB written and re-read
// from memory for the benchmark LSTM instead of 128 KB per step that stays in cache.
// Backward walks the steps in reverse: the fused loop turns dh, dc into pre-activation
// gradients dG_t (B, G) for the member's units and sums its units of db; after a barrier one
// product per member sends all of dG_t back through the columns of w_hh for its units
// (dh_{t-1}) and of w_ih for its slice of the inputs (dx_t, written batch-first). dG is kept
// for a window of steps only: at each window's first step every member adds dG^T @ xh over
// the window to its gate rows of dw (split into dw_ih and dw_hh at the end).
//
// GRU (G = 3H): its candidate gate needs the input and recurrent terms apart, so one GEMM
// projects every step's input (gates[T*B, G] = x[T*B, I] @ w_ih^T + b_ih) and the step
// product is h_{t-1} @ w_hh^T + b_hh alone; backward sends dG_t through w_hh per step, and
// three GEMMs after the loop give dx, dw_ih and dw_hh. Masked steps (mask == 0) keep the
// state, output zeros and get dG = 0. The fused row loops are compiled for AVX-512,
// AVX2+FMA and the baseline, chosen at run time.
#include "cpu/recurrent.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <numeric>
#include <optional>
#include <type_traits>
#include <vector>

#include "core/host_cache.h"
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
// GRU's (T,B,G) arrays (g, dg), a slice's width apart in the LSTM's (see in_slice and the
// backward's dG window), and at q * ghs + j in a member's private product buffer (gh).

// pre: pre-activations (i, f, g, o), gate q at q * ps; their activations go to g, gate q at
// q * gs. c, h: the new state.
template <class T>
LAMINA_ALWAYS_INLINE void lstm_forward_row(const T* __restrict pre, int64_t ps, T* __restrict g, int64_t gs,
                                           const T* __restrict cprev, T* __restrict c, T* __restrict h,
                                           int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const T i = fast_sigmoid(pre[j]), f = fast_sigmoid(pre[ps + j]);
    const T gg = fast_tanh(pre[2 * ps + j]), o = fast_sigmoid(pre[3 * ps + j]);
    const T cn = f * cprev[j] + i * gg;
    c[j] = cn;
    h[j] = o * fast_tanh(cn);
    g[j] = i;
    g[gs + j] = f;
    g[2 * gs + j] = gg;
    g[3 * gs + j] = o;
  }
}

// g: the activated gates, gate q at q * gs. dh + dout: gradient reaching h_t; dc: in,
// gradient reaching c_t from later steps; out, gradient reaching c_{t-1}. dg: pre-activation
// gradients, gate q at q * dgs.
template <class T>
LAMINA_ALWAYS_INLINE void lstm_backward_row(const T* __restrict g, int64_t gs, const T* __restrict cprev,
                                            const T* __restrict c, const T* __restrict dh,
                                            const T* __restrict dout, T* __restrict dc, T* __restrict dg,
                                            int64_t dgs, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const T i = g[j], f = g[gs + j], gg = g[2 * gs + j], o = g[3 * gs + j];
    const T dht = dh[j] + dout[j];
    const T tc = fast_tanh(c[j]);
    const T dct = dc[j] + dht * o * (T(1) - tc * tc);
    dg[j] = dct * gg * i * (T(1) - i);
    dg[dgs + j] = dct * cprev[j] * f * (T(1) - f);
    dg[2 * dgs + j] = dct * i * (T(1) - gg * gg);
    dg[3 * dgs + j] = dht * tc * o * (T(1) - o);
    dc[j] = dct * f;
  }
}

// sum += a, n values.
template <class T>
LAMINA_ALWAYS_INLINE void add_row(const T* __restrict a, T* __restrict sum, int64_t n) {
  for (int64_t j = 0; j < n; ++j) sum[j] += a[j];
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
LAMINA_PER_ISA_KERNEL(add_row)
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

// A member's slice of the step weights (rows or columns of w_ih and w_hh), multiplied by a
// (B, K) operand at every step. The workspace is reserved up front, so the steps allocate
// nothing.
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

// For the forward product: rows q * H + [lo, hi) of [w_ih | w_hh] (G x (I + H); I may be 0
// and w_ih null), gate by gate, as one (gates * units, I + H) matrix.
template <class T>
std::vector<T> gate_rows(const T* w_ih, int64_t I, const T* w_hh, int64_t H, int64_t gates, Units u) {
  const int64_t K = I + H;
  std::vector<T> out(size_t(gates * u.count() * K));
  for (int64_t q = 0; q < gates; ++q)
    for (int64_t j = u.lo; j < u.hi; ++j) {
      T* row = out.data() + (q * u.count() + j - u.lo) * K;
      if (I > 0) copy_row(w_ih + (q * H + j) * I, row, I);
      copy_row(w_hh + (q * H + j) * H, row + I, H);
    }
  return out;
}

// Entries q * H + [lo, hi) of b (G), gate by gate.
template <class T>
std::vector<T> gate_bias(const T* b, int64_t gates, int64_t H, Units u) {
  std::vector<T> out(size_t(gates * u.count()));
  for (int64_t q = 0; q < gates; ++q) copy_row(b + q * H + u.lo, out.data() + q * u.count(), u.count());
  return out;
}


// One member of a time loop's team and the hidden units it owns.
struct Member {
  int rank, size;
  Units units;
};

// Runs body(member, state, barrier) on every member of a team and returns the team's size.
// prepare(member) builds a member's state and may throw (it allocates); the body must not.
// When any member's prepare fails, every member skips its body (they all decide after the
// same barrier, so none is left waiting) and the first error is rethrown here.
template <class Prepare, class Body>
int run_time_loop(int max_members, int64_t H, const Prepare& prepare, const Body& body) {
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  int team_size = 1;
  parallel_team(max_members, [&](int rank, int size, TeamBarrier& barrier) {
    if (rank == 0) team_size = size;
    const Member member{rank, size, unit_slice(H, rank, size)};
    std::optional<decltype(prepare(member))> state;
    try {
      state.emplace(prepare(member));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed.store(true);
    }
    barrier.wait();
    if (!failed.load()) body(member, *state, barrier);
  });
  if (error) std::rethrow_exception(error);
  return team_size;
}

// The LSTM's saved gates and cells keep each step's values slice by slice over the forward
// team's unit slices: slice [lo, hi) holds (B, per_unit, hi - lo) values from per_unit * B *
// lo on (per_unit: 4 for the gates, gate by gate, 1 for the cells). A member thus writes,
// and later reads, one contiguous run per step, which the hardware prefetcher follows. With
// whole rows (4H values per batch row, the members' runs interleaved 512 bytes at a time)
// the row loops waited on memory: ~20% of the benchmark LSTM's training step.
template <class T>
T* in_slice(T* step, int64_t B, int64_t per_unit, Units slice, int64_t bi) {
  return step + per_unit * (B * slice.lo + bi * slice.count());
}

// A member's LSTM backward state. Its step product sends dG_t back through the columns of
// w_hh for its units (dh_{t-1}) and of w_ih for its slice of the inputs (dx_t): one (G, units
// + inputs) matrix, so dG_t is packed once per step.
template <class T>
struct LstmBackwardState {
  Units inputs;
  StepWeight<T> columns;
  std::vector<T> product;  // (B, units + inputs)
  std::vector<T> db;       // the member's units of db, gate by gate
  std::vector<T> dw;       // (4 * units, I + H): the member's gate rows of [dw_ih | dw_hh]
};

// Gate rows (q * H + j) in the order the LSTM backward keeps its gate gradients: member by
// member, and within a member gate by gate over its units, so that each member's columns of
// dG form one block, which its weight-gradient product reads as one matrix.
std::vector<int64_t> member_major_gates(int64_t H, int members) {
  std::vector<int64_t> rows;
  rows.reserve(size_t(4 * H));
  for (int r = 0; r < members; ++r) {
    const Units u = unit_slice(H, r, members);
    for (int64_t q = 0; q < 4; ++q)
      for (int64_t j = u.lo; j < u.hi; ++j) rows.push_back(q * H + j);
  }
  return rows;
}

std::vector<int64_t> identity_rows(int64_t count) {
  std::vector<int64_t> rows(static_cast<size_t>(count));
  std::iota(rows.begin(), rows.end(), int64_t(0));
  return rows;
}

// For the backward products: columns [lo, hi) of w_hh (G x H) beside columns [lo, hi) of w_ih
// (G x I; the GRU passes none), as one (G, units + inputs) matrix whose row k is gate row
// rows[k] of the weights.
template <class T>
std::vector<T> joined_columns(const T* w_hh, int64_t H, Units units, const T* w_ih, int64_t I, Units inputs,
                              const std::vector<int64_t>& rows) {
  const int64_t n = units.count(), nx = inputs.count(), width = n + nx;
  std::vector<T> out(rows.size() * size_t(width));
  for (size_t k = 0; k < rows.size(); ++k) {
    copy_row(w_hh + rows[k] * H + units.lo, out.data() + int64_t(k) * width, n);
    if (nx > 0) copy_row(w_ih + rows[k] * I + inputs.lo, out.data() + int64_t(k) * width + n, nx);
  }
  return out;
}

// A member's forward product: rows of [w_ih | w_hh] (LSTM; I = 0 and w_hh alone for the
// GRU) for its units and their biases, and the step's result, (B, gates * units).
template <class T>
struct ForwardState {
  StepWeight<T> weight;
  std::vector<T> bias;
  std::vector<T> product;
};

template <class T>
ForwardState<T> forward_state(const T* w_ih, int64_t I, const T* w_hh, const T* b, int64_t gates, int64_t B,
                              int64_t H, Units u) {
  return {StepWeight<T>(gate_rows(w_ih, I, w_hh, H, gates, u), true, I + H, gates * u.count(), B),
          gate_bias(b, gates, H, u), std::vector<T>(size_t(B * gates * u.count()))};
}

template <class T>
StepWeight<T> backward_weight(const T* w_hh, int64_t gates, int64_t B, int64_t H, Units u) {
  return StepWeight<T>(joined_columns<T>(w_hh, H, u, nullptr, 0, Units{0, 0}, identity_rows(gates * H)), false,
                       gates * H, u.count(), B);
}

}  // namespace

// ---- launchers ---------------------------------------------------------------------------

template <class T>
int lstm_forward(const RnnDims& d, const T* x, const T* h0, const T* c0, const T* w_ih, const T* w_hh,
                 const T* b, const uint8_t* mask, T* gates, T* xh, T* cells, T* out) {
  const int64_t B = d.batch, S = d.steps, I = d.input, H = d.hidden, G = 4 * H, K = I + H;
  parallel_for(0, S * B, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) copy_row(x + ((r % B) * S + r / B) * I, xh + r * K, I);
  });
  for (int64_t bi = 0; bi < B; ++bi) copy_row(h0 + bi * H, xh + bi * K + I, H);
  auto prepare = [&](const Member& m) { return forward_state<T>(w_ih, I, w_hh, b, 4, B, H, m.units); };
  const auto body = [&](const Member& m, ForwardState<T>& s, TeamBarrier& barrier) {
    const Units u = m.units;
    const int64_t n = u.count(), row = 4 * n;
    for (int64_t t = 0; t < S; ++t) {
      s.weight.multiply(B, xh + t * B * K, K, T(0), s.product.data(), row, s.bias.data());
      for (int64_t bi = 0; bi < B; ++bi) {
        const int64_t r = t * B + bi;
        const T* cp = t > 0 ? in_slice(cells + (t - 1) * B * H, B, 1, u, bi) : c0 + bi * H + u.lo;
        T* c = in_slice(cells + t * B * H, B, 1, u, bi);
        T* o = out + (bi * (S + 2) + t) * H + u.lo;
        T* next = (t + 1 < S ? xh + (r + B) * K + I : out + (bi * (S + 2) + S) * H) + u.lo;
        if (!mask || mask[r]) {
          lstm_forward_row_run<T>(s.product.data() + bi * row, n, in_slice(gates + t * B * G, B, 4, u, bi), n, cp, c,
                                  o, n);
          copy_row(o, next, n);
        } else {
          copy_row(cp, c, n);
          zero_row(o, n);
          copy_row(xh + r * K + I + u.lo, next, n);
        }
        if (t + 1 == S) copy_row(c, out + (bi * (S + 2) + S + 1) * H + u.lo, n);
      }
      barrier.wait();
    }
  };
  return run_time_loop(team_members(B * K * G, H), H, prepare, body);
}

template <class T>
void lstm_backward(const RnnDims& d, const T* dout, const T* xh, const T* c0, const T* w_ih, const T* w_hh,
                   const uint8_t* mask, const T* gates, const T* cells, int saved_slices, T* dx, T* dh0, T* dc0,
                   T* dw_ih, T* dw_hh, T* db) {
  const int64_t B = d.batch, S = d.steps, I = d.input, H = d.hidden, G = 4 * H, K = I + H;
  // dG of the last `window` steps (step t in slot t % window, columns member-major): each
  // member adds its rows of dw from a window's steps while they are still in cache, instead
  // of one product over all steps' dG afterwards (32 MB written and read back for the
  // benchmark LSTM). Two slots at least: a member may write step t - 1 while the other still
  // reads step t.
  const int64_t window = std::clamp<int64_t>((256 + B - 1) / B, 2, std::max<int64_t>(S, 2));
  const bool want_dw = dw_ih || dw_hh;
  HostArray<T> dg(size_t(window * B * G));
  std::vector<T> dh_a(size_t(B * H)), dc(size_t(B * H)), dh_b(size_t(B * H));
  for (int64_t bi = 0; bi < B; ++bi) {
    copy_row(dout + (bi * (S + 2) + S) * H, dh_a.data() + bi * H, H);
    copy_row(dout + (bi * (S + 2) + S + 1) * H, dc.data() + bi * H, H);
  }
  auto prepare = [&](const Member& m) {
    const Units inputs = dx ? unit_slice(I, m.rank, m.size) : Units{0, 0};
    const int64_t n = m.units.count(), width = n + inputs.count();
    LstmBackwardState<T> s{
        inputs,
        StepWeight<T>(joined_columns(w_hh, H, m.units, w_ih, I, inputs, member_major_gates(H, m.size)), false, G,
                      width, B),
        std::vector<T>(size_t(B * width)), std::vector<T>(size_t(4 * n)),
        std::vector<T>(want_dw ? size_t(4 * n * K) : 0)};
    if (want_dw) reserve_gemm<T>(4 * n, K, window * B);
    return s;
  };
  run_time_loop(team_members(B * K * G, H), H, prepare,
                [&](const Member& m, LstmBackwardState<T>& s, TeamBarrier& barrier) {
    const Units u = m.units;
    const int64_t n = u.count(), own = 4 * u.lo;  // the member's first column of dG
    T* dh = dh_a.data();
    T* dh_next = dh_b.data();
    for (int64_t t = S - 1; t >= 0; --t) {
      T* dg_t = dg.data() + (t % window) * B * G;
      for (int64_t bi = 0; bi < B; ++bi) {
        const int64_t r = t * B + bi, at = bi * H + u.lo;
        T* dg_row = dg_t + bi * G + own;
        if (!mask || mask[r]) {
          // The forward's slices (one, unless this team is smaller or larger) that meet ours.
          for (int slice = 0; slice < saved_slices; ++slice) {
            const Units f = unit_slice(H, slice, saved_slices);
            const int64_t lo = std::max(f.lo, u.lo), hi = std::min(f.hi, u.hi);
            if (lo >= hi) continue;
            const T* cp = t > 0 ? in_slice(cells + (t - 1) * B * H, B, 1, f, bi) + (lo - f.lo) : c0 + bi * H + lo;
            lstm_backward_row_run<T>(in_slice(gates + t * B * G, B, 4, f, bi) + (lo - f.lo), f.count(), cp,
                                     in_slice(cells + t * B * H, B, 1, f, bi) + (lo - f.lo), dh + bi * H + lo,
                                     dout + (bi * (S + 2) + t) * H + lo, dc.data() + bi * H + lo,
                                     dg_row + (lo - u.lo), n, hi - lo);
          }
          add_row_run<T>(dg_row, s.db.data(), 4 * n);
          zero_row(dh_next + at, n);
        } else {
          zero_row(dg_row, 4 * n);
          copy_row(dh + at, dh_next + at, n);
        }
      }
      barrier.wait();
      const int64_t nx = s.inputs.count(), width = n + nx;
      s.columns.multiply(B, dg_t, G, T(0), s.product.data(), width);
      for (int64_t bi = 0; bi < B; ++bi) {
        const T* p = s.product.data() + bi * width;
        add_row_run<T>(p, dh_next + bi * H + u.lo, n);
        if (nx > 0) copy_row(p + n, dx + (bi * S + t) * I + s.inputs.lo, nx);
      }
      if (want_dw && t % window == 0) {  // the window's first step: slots [0, steps) hold [t, t + steps)
        const int64_t steps = std::min(window, S - t);
        gemm<T>(true, false, 4 * n, K, steps * B, T(1), dg.data() + own, G, xh + t * B * K, K,
                t + steps == S ? T(0) : T(1), s.dw.data(), K);
      }
      std::swap(dh, dh_next);
    }
    for (int64_t q = 0; q < 4; ++q) {
      if (db) copy_row(s.db.data() + q * n, db + q * H + u.lo, n);
      for (int64_t j = 0; j < n && want_dw; ++j) {
        const T* row = s.dw.data() + (q * n + j) * K;
        const int64_t gate = q * H + u.lo + j;
        if (dw_ih) copy_row(row, dw_ih + gate * I, I);
        if (dw_hh) copy_row(row + I, dw_hh + gate * H, H);
      }
    }
  });
  const T* dh_first = S % 2 ? dh_b.data() : dh_a.data();
  if (dh0) copy_row(dh_first, dh0, B * H);
  if (dc0) copy_row(dc.data(), dc0, B * H);
}

template <class T>
void gru_forward(const RnnDims& d, const T* x, const T* h0, const T* w_ih, const T* w_hh, const T* b_ih,
                 const T* b_hh, const uint8_t* mask, T* gates, T* hn, T* hprev, T* out) {
  const int64_t B = d.batch, S = d.steps, I = d.input, H = d.hidden, G = 3 * H;
  project<T>(S * B, G, I, x, I, w_ih, b_ih, gates, G);
  copy_row(h0, hprev, B * H);
  auto prepare = [&](const Member& m) { return forward_state<T>(nullptr, 0, w_hh, b_hh, 3, B, H, m.units); };
  run_time_loop(team_members(B * H * G, H), H, prepare, [&](const Member& m, ForwardState<T>& s, TeamBarrier& barrier) {
    const Units u = m.units;
    const int64_t n = u.count(), ghs = 3 * n;
    for (int64_t t = 0; t < S; ++t) {
      s.weight.multiply(B, hprev + t * B * H, H, T(0), s.product.data(), ghs, s.bias.data());
      for (int64_t bi = 0; bi < B; ++bi) {
        const int64_t r = t * B + bi;
        T* o = out + (bi * (S + 1) + t) * H + u.lo;
        T* next = (t + 1 < S ? hprev + (r + B) * H : out + (bi * (S + 1) + S) * H) + u.lo;
        if (!mask || mask[r]) {
          gru_forward_row_run<T>(gates + r * G + u.lo, s.product.data() + bi * ghs, n, hprev + r * H + u.lo,
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
  HostArray<T> dgi(size_t(S * B * G)), dgh(size_t(S * B * G));
  std::vector<T> dh_a(size_t(B * H)), dh_b(size_t(B * H));
  for (int64_t bi = 0; bi < B; ++bi) copy_row(dout + (bi * (S + 1) + S) * H, dh_a.data() + bi * H, H);
  auto prepare = [&](const Member& m) { return backward_weight<T>(w_hh, 3, B, H, m.units); };
  run_time_loop(team_members(B * H * G, H), H, prepare, [&](const Member& m, StepWeight<T>& w, TeamBarrier& barrier) {
    const Units u = m.units;
    const int64_t n = u.count();
    T* dh = dh_a.data();
    T* dh_next = dh_b.data();
    for (int64_t t = S - 1; t >= 0; --t) {
      for (int64_t bi = 0; bi < B; ++bi) {
        const int64_t r = t * B + bi, at = bi * H + u.lo;
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
      w.multiply(B, dgh.data() + t * B * G, G, T(1), dh_next + u.lo, H);
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
  template int lstm_forward<T>(const RnnDims&, const T*, const T*, const T*, const T*, const T*, const T*,       \
                               const uint8_t*, T*, T*, T*, T*);                                                  \
  template void lstm_backward<T>(const RnnDims&, const T*, const T*, const T*, const T*, const T*,               \
                                 const uint8_t*, const T*, const T*, int, T*, T*, T*, T*, T*, T*);               \
  template void gru_forward<T>(const RnnDims&, const T*, const T*, const T*, const T*, const T*, const T*,       \
                               const uint8_t*, T*, T*, T*, T*);                                                  \
  template void gru_backward<T>(const RnnDims&, const T*, const T*, const T*, const T*, const uint8_t*,          \
                                const T*, const T*, const T*, T*, T*, T*, T*, T*, T*);
LAMINA_INSTANTIATE(float)
LAMINA_INSTANTIATE(double)
#undef LAMINA_INSTANTIATE

}  // namespace lamina::cpu
