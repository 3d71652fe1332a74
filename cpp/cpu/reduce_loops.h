// Reduction iteration: the input is viewed as [kept axes..., reduced axes...]; each
// output element folds its reduced sub-block with a Reducer. Outputs are split across
// the thread pool, so no two threads write the same element.
#pragma once
#include <algorithm>
#include <array>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "cpu/isa.h"

namespace lamina::cpu {
inline namespace LAMINA_LOOPS {

struct ReduceGeometry {
  Shape kept_shape, kept_strides;        // input strides of kept axes (elements)
  Shape reduced_shape, reduced_strides;  // input strides of reduced axes (elements)
  int64_t reduced_count = 1;
};

inline ReduceGeometry reduce_geometry(const Tensor& in, const std::vector<int64_t>& axes) {
  ReduceGeometry g;
  for (int64_t d = 0; d < in.ndim(); ++d) {
    bool reduced = std::find(axes.begin(), axes.end(), d) != axes.end();
    (reduced ? g.reduced_shape : g.kept_shape).push_back(in.shape()[d]);
    (reduced ? g.reduced_strides : g.kept_strides).push_back(in.strides()[d]);
    if (reduced) g.reduced_count *= in.shape()[d];
  }
  // Merge adjacent reduced axes that are contiguous with each other: longer inner runs.
  Shape ms, mst;
  for (size_t i = 0; i < g.reduced_shape.size(); ++i) {
    if (g.reduced_shape[i] == 1) continue;
    if (!ms.empty() && mst.back() == g.reduced_strides[i] * g.reduced_shape[i]) {
      ms.back() *= g.reduced_shape[i];
      mst.back() = g.reduced_strides[i];
    } else {
      ms.push_back(g.reduced_shape[i]);
      mst.push_back(g.reduced_strides[i]);
    }
  }
  if (ms.empty() && g.reduced_count == 1) {
    ms.push_back(1);
    mst.push_back(1);
  }
  g.reduced_shape = ms;
  g.reduced_strides = mst;
  return g;
}



// Reducer: Acc init() const; void add(Acc&, In value, int64_t index_in_block) const;
// Out finish(const Acc&, int64_t count) const. `out` is contiguous with kept_shape.
template <class In, class Out, class Reducer>
void reduce_kernel(const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes, const Reducer& r) {
  ReduceGeometry g = reduce_geometry(in, axes);
  const In* base = in.data<In>();
  Out* o = out.data<Out>();
  int64_t outputs = 1;
  for (int64_t d : g.kept_shape) outputs *= d;
  const int64_t nk = int64_t(g.kept_shape.size()), nr = int64_t(g.reduced_shape.size());
  const bool inner_contiguous = nr > 0 && g.reduced_strides[nr - 1] == 1;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(g.reduced_count, 1));
  parallel_for(0, outputs, grain, [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> ridx(static_cast<size_t>(nr));
    for (int64_t oi = lo; oi < hi; ++oi) {
      int64_t off = 0, rest = oi;
      for (int64_t d = nk - 1; d >= 0; --d) {
        off += (rest % g.kept_shape[d]) * g.kept_strides[d];
        rest /= g.kept_shape[d];
      }
      auto acc = r.init();
      if (g.reduced_count > 0) {
        std::fill(ridx.begin(), ridx.end(), 0);
        const int64_t inner = nr > 0 ? g.reduced_shape[nr - 1] : 1;
        const int64_t inner_stride = nr > 0 ? g.reduced_strides[nr - 1] : 0;
        int64_t pos = 0, roff = 0;
        while (pos < g.reduced_count) {
          const In* p = base + off + roff;
          if (inner_contiguous) r.add_run(acc, p, inner, pos);
          else
            for (int64_t i = 0; i < inner; ++i) r.add(acc, p[i * inner_stride], pos + i);
          pos += inner;
          for (int64_t d = nr - 2; d >= 0; --d) {
            roff += g.reduced_strides[d];
            if (++ridx[d] < g.reduced_shape[d]) break;
            roff -= ridx[d] * g.reduced_strides[d];
            ridx[d] = 0;
          }
        }
      }
      o[oi] = r.finish(acc, g.reduced_count);
    }
  });
}

// Runs fn(in_offset, out_offset) for every 1-D row of `in` along `axis`, split across the
// thread pool; out_offset indexes a contiguous tensor with in's shape. Used by the fused
// row kernels (softmax, scans): each row is read with stride in.strides()[axis] and
// written with stride out_row_stride(in, axis).
inline int64_t out_row_stride(const Tensor& in, int64_t axis) {
  int64_t s = 1;
  for (int64_t d = axis + 1; d < in.ndim(); ++d) s *= in.shape()[d];
  return s;
}

template <class Fn>
void for_each_row(const Tensor& in, int64_t axis, Fn fn) {
  const int64_t nd = in.ndim(), len = in.shape()[axis];
  Shape ks, kin, kout;
  const Shape out_strides = [&] {
    Shape s(static_cast<size_t>(nd));
    int64_t acc = 1;
    for (int64_t d = nd - 1; d >= 0; --d) { s[d] = acc; acc *= in.shape()[d]; }
    return s;
  }();
  int64_t rows = 1;
  for (int64_t d = 0; d < nd; ++d) {
    if (d == axis) continue;
    ks.push_back(in.shape()[d]);
    kin.push_back(in.strides()[d]);
    kout.push_back(out_strides[d]);
    rows *= in.shape()[d];
  }
  if (rows == 0 || len == 0) return;
  const int64_t nk = int64_t(ks.size());
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(len, 1));
  parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t ri = lo; ri < hi; ++ri) {
      int64_t ioff = 0, ooff = 0, rest = ri;
      for (int64_t d = nk - 1; d >= 0; --d) {
        int64_t i = rest % ks[d];
        rest /= ks[d];
        ioff += i * kin[d];
        ooff += i * kout[d];
      }
      fn(ioff, ooff);
    }
  });
}

}  // namespace LAMINA_LOOPS
}  // namespace lamina::cpu
