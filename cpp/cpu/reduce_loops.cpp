#include "cpu/reduce_loops.h"

#include <algorithm>

namespace lamina::cpu {

ReduceGeometry reduce_geometry(const Tensor& in, const std::vector<int64_t>& axes) {
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

}  // namespace lamina::cpu
