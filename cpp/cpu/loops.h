// Strided elementwise iteration shared by the CPU kernels. Operands are viewed with
// strides broadcast to the output shape (0 on broadcast axes); adjacent axes that are
// contiguous for every operand are merged, so the innermost run is as long as possible
// and the common cases (all contiguous, one scalar operand) reach a vectorizable loop.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>

#include "core/parallel.h"
#include "core/tensor.h"
#include "cpu/isa.h"

namespace lamina::cpu {
inline namespace LAMINA_LOOPS {

// Elements per parallel chunk: below this, threads cost more than they save.
constexpr int64_t kElementwiseGrain = 32768;

// Where the CPU's kernels may use AVX-512 and every tensor is contiguous float32 of one
// shape: the case the AVX-512 copies of compute-bound elementwise ops take (the
// transcendental maps in cpu/unary.cpp, GELU's backward in cpu/binary.cpp); those run over
// element ranges of kElementwiseGrain.
inline bool avx512_float_run(std::initializer_list<const Tensor*> ts) {
  if (!use_avx512_kernels()) return false;
  for (const Tensor* t : ts)
    if (t->dtype() != DType::Float32 || !t->is_contiguous() || t->shape() != (*ts.begin())->shape()) return false;
  return true;
}

// `t`'s strides (in elements) as seen from `shape`, which `t` broadcasts to.
inline Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape out(shape.size(), 0);
  size_t lead = shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    out[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return out;
}


template <int N>
struct StridedRuns {
  Shape shape;                  // merged shape, innermost last (at least one axis)
  std::array<Shape, N> stride;  // in bytes
};

template <int N>
StridedRuns<N> merge_axes(const Shape& shape, const std::array<Shape, N>& elem_strides,
                          const std::array<int64_t, N>& itemsize) {
  StridedRuns<N> r;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool mergeable = !r.shape.empty();
    for (int k = 0; k < N && mergeable; ++k)
      mergeable = r.stride[k].back() == elem_strides[k][d] * itemsize[k] * shape[d];
    if (mergeable) {
      r.shape.back() *= shape[d];
      for (int k = 0; k < N; ++k) r.stride[k].back() = elem_strides[k][d] * itemsize[k];
    } else {
      r.shape.push_back(shape[d]);
      for (int k = 0; k < N; ++k) r.stride[k].push_back(elem_strides[k][d] * itemsize[k]);
    }
  }
  if (r.shape.empty()) {
    r.shape.push_back(1);
    for (int k = 0; k < N; ++k) r.stride[k].push_back(0);
  }
  return r;
}

// Calls run(ptrs, inner_strides_in_bytes, count) over every innermost run of `shape`,
// split across the thread pool by element ranges.
template <int N, class Run>
void for_each_run(const Shape& shape, std::array<char*, N> base, const std::array<Shape, N>& elem_strides,
                  const std::array<int64_t, N>& itemsize, Run run, int64_t grain = kElementwiseGrain) {
  int64_t total = 1;
  for (int64_t d : shape) total *= d;
  if (total == 0) return;
  StridedRuns<N> r = merge_axes<N>(shape, elem_strides, itemsize);
  const int64_t nd = int64_t(r.shape.size());
  const int64_t inner = r.shape.back();
  std::array<int64_t, N> inner_stride;
  for (int k = 0; k < N; ++k) inner_stride[k] = r.stride[k].back();

  parallel_for(0, total, grain, [&](int64_t lo, int64_t hi) {
    Shape idx(size_t(nd), 0);
    int64_t rest = lo;
    for (int64_t d = nd - 1; d >= 0; --d) {
      idx[d] = rest % r.shape[d];
      rest /= r.shape[d];
    }
    std::array<char*, N> p;
    for (int k = 0; k < N; ++k) {
      p[k] = base[k];
      for (int64_t d = 0; d < nd; ++d) p[k] += idx[d] * r.stride[k][d];
    }
    int64_t pos = lo;
    while (pos < hi) {
      int64_t count = std::min(inner - idx[nd - 1], hi - pos);
      run(p, inner_stride, count);
      pos += count;
      for (int k = 0; k < N; ++k) p[k] += count * inner_stride[k];
      idx[nd - 1] += count;
      for (int64_t d = nd - 1; d > 0 && idx[d] == r.shape[d]; --d) {
        idx[d] = 0;
        ++idx[d - 1];
        for (int k = 0; k < N; ++k) p[k] += r.stride[k][d - 1] - r.shape[d] * r.stride[k][d];
      }
    }
  });
}

// out[i] = f(a[i]) with fast paths for a contiguous and a broadcast (stride 0) operand; the
// latter is how every expanded gradient (of sum, mean, a loss) is made contiguous.
template <class In, class Out, class F>
inline void unary_run(std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t n, F f) {
  Out* o = reinterpret_cast<Out*>(p[0]);
  const In* a = reinterpret_cast<const In*>(p[1]);
  if (s[0] == sizeof(Out) && s[1] == sizeof(In)) {
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
  } else if (s[0] == sizeof(Out) && s[1] == 0) {
    const Out v = f(*a);
    for (int64_t i = 0; i < n; ++i) o[i] = v;
  } else {
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<Out*>(p[0] + i * s[0]) = f(*reinterpret_cast<const In*>(p[1] + i * s[1]));
  }
}

// out[i] = f(a[i], b[i]) with fast paths for contiguous and scalar operands.
template <class In, class Out, class F>
inline void binary_run(std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t n, F f) {
  Out* o = reinterpret_cast<Out*>(p[0]);
  const In* a = reinterpret_cast<const In*>(p[1]);
  const In* b = reinterpret_cast<const In*>(p[2]);
  constexpr int64_t si = sizeof(In);
  if (s[0] == sizeof(Out) && s[1] == si && s[2] == si) {
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
  } else if (s[0] == sizeof(Out) && s[1] == si && s[2] == 0) {
    const In bv = *b;
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], bv);
  } else if (s[0] == sizeof(Out) && s[1] == 0 && s[2] == si) {
    const In av = *a;
    for (int64_t i = 0; i < n; ++i) o[i] = f(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<Out*>(p[0] + i * s[0]) = f(*reinterpret_cast<const In*>(p[1] + i * s[1]),
                                                  *reinterpret_cast<const In*>(p[2] + i * s[2]));
  }
}

// Applies f over `out` (contiguous, shape = broadcast shape) and `a` of the same dtype In.
template <class In, class Out, class F>
void unary_kernel(const Tensor& out, const Tensor& a, F f) {
  for_each_run<2>(out.shape(), {static_cast<char*>(out.raw_data()), static_cast<char*>(a.raw_data())},
                  {out.strides(), broadcast_strides(a, out.shape())},
                  {int64_t(sizeof(Out)), int64_t(sizeof(In))},
                  [&](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t n) {
                    unary_run<In, Out>(p, s, n, f);
                  });
}

template <class In, class Out, class F>
void binary_kernel(const Tensor& out, const Tensor& a, const Tensor& b, F f) {
  for_each_run<3>(out.shape(),
                  {static_cast<char*>(out.raw_data()), static_cast<char*>(a.raw_data()),
                   static_cast<char*>(b.raw_data())},
                  {out.strides(), broadcast_strides(a, out.shape()), broadcast_strides(b, out.shape())},
                  {int64_t(sizeof(Out)), int64_t(sizeof(In)), int64_t(sizeof(In))},
                  [&](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t n) {
                    binary_run<In, Out>(p, s, n, f);
                  });
}

}  // namespace LAMINA_LOOPS
}  // namespace lamina::cpu
