#include "ops/reduce.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/errors.h"
#include "cpu/reduce.h"
#include "ops/arith.h"
#include "ops/copy.h"
#include "ops/shape_ops.h"

namespace lamina {

Shape reduced_shape(const Shape& shape, const Axes& axes, bool keepdims) {
  Shape out;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d) {
    bool reduced = std::find(axes.begin(), axes.end(), d) != axes.end();
    if (!reduced) out.push_back(shape[d]);
    else if (keepdims) out.push_back(1);
  }
  return out;
}

Tensor restore_reduced_axes(const Tensor& g, const Shape& input_shape, const Axes& axes, bool keepdims) {
  if (keepdims) return g;
  return reshape(g, reduced_shape(input_shape, axes, true));
}

namespace {

Axes all_axes_if_empty(const Axes& axes, int64_t ndim, const char* op) {
  if (!axes.empty()) return normalize_axes(axes, ndim, op);
  Axes all(static_cast<size_t>(ndim));
  for (int64_t i = 0; i < ndim; ++i) all[size_t(i)] = i;
  return all;
}

DType sum_dtype(DType t) {
  if (is_floating(t)) return t;
  return DType::Int64;
}

Tensor sum_raw(const Tensor& a, const Axes& axes, bool keepdims) {
  DType out_t = sum_dtype(a.dtype());
  DType acc_t = (out_t == DType::Float16 || out_t == DType::BFloat16) ? DType::Float32 : out_t;
  GradModeGuard no_grad(false);
  Tensor src = acc_t == a.dtype() || !is_floating(a.dtype()) ? a : astype(a, acc_t);
  Tensor out = Tensor::empty(reduced_shape(a.shape(), axes, false), acc_t, a.device());
  cpu::sum(out, src, axes);
  if (keepdims) out = reshape(out, reduced_shape(a.shape(), axes, true));
  return acc_t == out_t ? out : astype(out, out_t);
}

}  // namespace

Tensor sum(const Tensor& a, const Axes& axes_in, bool keepdims) {
  Axes axes = all_axes_if_empty(axes_in, a.ndim(), "sum");
  Tensor out = sum_raw(a, axes, keepdims);
  if (needs_grad({&a})) {
    Shape in_shape = a.shape();
    record("sum", {a}, out, [in_shape, axes, keepdims](const Tensor& g) -> std::vector<Tensor> {
      return {expand(restore_reduced_axes(g, in_shape, axes, keepdims), in_shape)};
    });
  }
  return out;
}

Tensor mean(const Tensor& a, const Axes& axes_in, bool keepdims) {
  Axes axes = all_axes_if_empty(axes_in, a.ndim(), "mean");
  int64_t count = 1;
  for (int64_t d : axes) count *= a.shape()[size_t(d)];
  Tensor s = sum(is_floating(a.dtype()) ? a : astype(a, DType::Float32), axes, keepdims);
  return mul(s, count == 0 ? std::nan("") : 1.0 / double(count));
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  int64_t lead = g.ndim() - int64_t(shape.size());
  check<RuntimeError>(lead >= 0, "sum_to: cannot reduce shape ", shape_str(g.shape()), " to ", shape_str(shape));
  Axes axes;
  for (int64_t d = 0; d < g.ndim(); ++d)
    if (d < lead || (shape[size_t(d - lead)] == 1 && g.shape()[size_t(d)] != 1)) axes.push_back(d);
  Tensor s = sum(g, axes, true);
  return reshape(s, shape);
}

}  // namespace lamina
