// Sums over a row that vectorize and stay accurate in float32. A plain `s += f(i)` loop is
// an ordered reduction: without -ffast-math the compiler keeps it scalar (and a double
// accumulator adds a conversion per element). Here the terms are computed on GCC vector
// values of the build's native width (`Lanes`: 8 floats with AVX2, 4 with the baseline),
// two accumulators deep, over blocks of kSumBlock elements; each block is folded pairwise
// and the block totals are added in double. A lane accumulates at most kSumBlock / 16 = 32
// terms with AVX2 (64 with the baseline), and long rows add no error beyond double's. The
// order depends only on n and the instruction set, never on the thread count.
//
// Terms are generic lambdas over one vector (or, for the ragged tail, one scalar) per input
// array: `[m](auto x) { auto d = x - m; return d * d; }`. Terms that need the scalar
// vmath functions go through lane_sum_of, which stages them in a block buffer first.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/isa.h"

namespace lamina::cpu {
inline namespace LAMINA_LOOPS {

#ifdef __AVX2__
constexpr int kLaneBytes = 32;
#else
constexpr int kLaneBytes = 16;
#endif
constexpr int64_t kSumBlock = 512;

template <class T, int N>
struct VectorOf {
  typedef T type __attribute__((vector_size(N * sizeof(T))));
};
template <class T>
constexpr int kLanes = kLaneBytes / int(sizeof(T));
template <class T>
using Lanes = typename VectorOf<T, kLanes<T>>::type;

template <class T>
__attribute__((always_inline)) inline Lanes<T> load_lanes(const T* p) {
  Lanes<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Pairwise fold: halves added until one lane is left.
template <class T, int N>
__attribute__((always_inline)) inline T fold_lanes(const typename VectorOf<T, N>::type& v) {
  if constexpr (N == 1) {
    return v[0];
  } else {
    typename VectorOf<T, N / 2>::type lo, hi;
    std::memcpy(&lo, &v, sizeof lo);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
    return fold_lanes<T, N / 2>(lo + hi);
  }
}

// sum over i in [0, n) of term(in[i]...), term as described above.
template <class T, class Term, class... In>
__attribute__((always_inline)) inline double lane_sum(int64_t n, Term term, const In*... in) {
  constexpr int64_t W = kLanes<T>;
  double total = 0;
  for (int64_t b = 0; b < n; b += kSumBlock) {
    const int64_t e = std::min(n, b + kSumBlock);
    Lanes<T> a0 = {}, a1 = {};
    int64_t i = b;
    for (; i + 2 * W <= e; i += 2 * W) {
      a0 += term(load_lanes(in + i)...);
      a1 += term(load_lanes(in + i + W)...);
    }
    T tail = 0;
    for (; i < e; ++i) tail += term(in[i]...);
    total += double(fold_lanes<T, W>(a0 + a1) + tail);
  }
  return total;
}

// Two sums over the same inputs in one pass.
template <class T, class TermA, class TermB, class... In>
__attribute__((always_inline)) inline void lane_sum2(int64_t n, double& sum_a, double& sum_b, TermA term_a,
                                                     TermB term_b, const In*... in) {
  constexpr int64_t W = kLanes<T>;
  double ta = 0, tb = 0;
  for (int64_t b = 0; b < n; b += kSumBlock) {
    const int64_t e = std::min(n, b + kSumBlock);
    Lanes<T> a0 = {}, a1 = {}, b0 = {}, b1 = {};
    int64_t i = b;
    for (; i + 2 * W <= e; i += 2 * W) {
      a0 += term_a(load_lanes(in + i)...);
      b0 += term_b(load_lanes(in + i)...);
      a1 += term_a(load_lanes(in + i + W)...);
      b1 += term_b(load_lanes(in + i + W)...);
    }
    T tail_a = 0, tail_b = 0;
    for (; i < e; ++i) {
      tail_a += term_a(in[i]...);
      tail_b += term_b(in[i]...);
    }
    ta += double(fold_lanes<T, W>(a0 + a1) + tail_a);
    tb += double(fold_lanes<T, W>(b0 + b1) + tail_b);
  }
  sum_a = ta;
  sum_b = tb;
}

// sum over i in [0, n) of term(i) for a scalar term (e.g. one calling vmath::exp): each
// block of terms is written to a buffer by a plain elementwise loop (which vectorizes),
// then summed as above.
template <class T, class Term>
__attribute__((always_inline)) inline double lane_sum_of(int64_t n, Term term) {
  T staged[kSumBlock];
  double total = 0;
  for (int64_t b = 0; b < n; b += kSumBlock) {
    const int64_t len = std::min(kSumBlock, n - b);
    for (int64_t i = 0; i < len; ++i) staged[i] = term(b + i);
    total += lane_sum<T>(len, [](auto v) { return v; }, static_cast<const T*>(staged));
  }
  return total;
}

// max over v[0, n), -inf for n = 0. NaN elements are skipped (a compare-and-select chain
// that kept them costs twice as much): callers that need NaN to propagate must get it from
// another pass, as softmax does from the sum of exp(v - max).
template <class T>
__attribute__((always_inline)) inline T lane_max_skipping_nan(int64_t n, const T* v) {
  constexpr int64_t W = kLanes<T>;
  const T lowest = -__builtin_huge_val();
  auto pick = [](auto m, auto x) { return x > m ? x : m; };
  T m = lowest;
  int64_t i = 0;
  if (n >= 2 * W) {
    Lanes<T> m0 = load_lanes(v), m1 = load_lanes(v + W);
    for (i = 2 * W; i + 2 * W <= n; i += 2 * W) {
      m0 = pick(m0, load_lanes(v + i));
      m1 = pick(m1, load_lanes(v + i + W));
    }
    m0 = pick(m0, m1);
    for (int j = 0; j < W; ++j) m = pick(m, m0[j]);
  }
  for (; i < n; ++i) m = pick(m, v[i]);
  return m;
}

}  // namespace LAMINA_LOOPS
}  // namespace lamina::cpu
