#include "ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/errors.h"
#include "cpu/reduce.h"
#include "ops/arith.h"
#include "ops/compare.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/shape_ops.h"
#include "ops/unary.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

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

using Kernel = void (*)(const Tensor&, const Tensor&, const Axes&);

// Runs a reduction kernel with no history: half inputs are widened to float32 for the
// kernel (`src_t`), `acc_t` is the kernel's output dtype, the result is cast to `out_t`.
Tensor reduce_raw(const Tensor& a, const Axes& axes, bool keepdims, DType acc_t, DType out_t,
                  const std::function<void(const Tensor&, const Tensor&)>& kernel) {
  GradModeGuard no_grad(false);
  Tensor src = is_floating(a.dtype()) && kernel_dtype(a.dtype()) != a.dtype() ? astype(a, DType::Float32) : a;
  Tensor out = Tensor::empty(reduced_shape(a.shape(), axes, false), acc_t, a.device());
  kernel(out, src);
  if (keepdims) out = reshape(out, reduced_shape(a.shape(), axes, true));
  return acc_t == out_t ? out : astype(out, out_t);
}

Tensor sum_raw(const Tensor& a, const Axes& axes, bool keepdims, Kernel kernel = &cpu::sum) {
  DType out_t = sum_dtype(a.dtype());
  const bool is_sum = kernel == static_cast<Kernel>(&cpu::sum);
  return reduce_raw(a, axes, keepdims, kernel_dtype(out_t), out_t, [&](const Tensor& o, const Tensor& i) {
    if (!is_cuda(o.device())) return kernel(o, i, axes);
    if (is_sum) LAMINA_CUDA_BRANCH("sum", cuda::sum("sum", o, i, axes));
    else LAMINA_CUDA_BRANCH("prod", cuda::prod("prod", o, i, axes));
  });
}

int64_t block_count(const Tensor& a, const Axes& axes) {
  int64_t count = 1;
  for (int64_t d : axes) count *= a.shape()[size_t(d)];
  return count;
}

DType float_dtype(DType t) { return is_floating(t) ? t : DType::Float32; }

Tensor extremum(const Tensor& a, const Axes& axes_in, bool keepdims, bool is_max) {
  const char* name = is_max ? "max" : "min";
  Axes axes = all_axes_if_empty(axes_in, a.ndim(), name);
  check<ValueError>(block_count(a, axes) > 0, name, ": zero-size reduction over an empty axis of shape ",
                    shape_str(a.shape()), " has no identity");
  Tensor out = reduce_raw(a, axes, keepdims, kernel_dtype(a.dtype()), a.dtype(),
                          [&](const Tensor& o, const Tensor& i) {
                            if (is_cuda(i.device())) LAMINA_CUDA_BRANCH(name, cuda::extremum(name, o, i, axes, is_max));
                            else cpu::extremum(o, i, axes, is_max);
                          });
  if (needs_grad({&a})) {
    SavedTensor sa(a), sy(out.detach());
    Shape in_shape = a.shape();
    record(name, {a}, out, [sa, sy, in_shape, axes, keepdims](const Tensor& g) -> std::vector<Tensor> {
      const Tensor& x = sa.get();
      Tensor y = restore_reduced_axes(sy.get(), in_shape, axes, keepdims);
      Tensor hit = logical_or(eq(x, y), logical_and(isnan(x), isnan(y)));
      Tensor mask = astype_like(hit, g.dtype());
      Tensor share = div(restore_reduced_axes(g, in_shape, axes, keepdims), sum(mask, axes, true));
      return {mul(mask, share)};
    });
  }
  return out;
}

Tensor arg_extremum(const Tensor& a, std::optional<int64_t> axis_in, bool keepdims, bool is_max) {
  const char* name = is_max ? "argmax" : "argmin";
  check<TypeError>(a.defined(), name, ": got an undefined tensor");
  Tensor src = a;
  int64_t axis = 0;
  if (axis_in) axis = normalize_axis(*axis_in, a.ndim(), name);
  auto kernel = [&](int64_t along) {
    return [&, along](const Tensor& o, const Tensor& i) {
      if (is_cuda(i.device())) LAMINA_CUDA_BRANCH(name, cuda::arg_extremum(name, o, i, along, is_max));
      else cpu::arg_extremum(o, i, along, is_max);
    };
  };
  if (a.ndim() == 0) {  // a 0-d input: axis 0 / -1 is the one element (numpy), as with axis=None
    GradModeGuard no_grad(false);
    return reduce_raw(reshape(a, {1}), {0}, false, DType::Int64, DType::Int64, kernel(0));
  }
  if (!axis_in) {
    GradModeGuard no_grad(false);
    src = reshape(a, {a.numel()});
  }
  check<ValueError>(src.shape()[size_t(axis)] > 0, name, ": attempt to get ", name, " of an empty sequence");
  Tensor out = reduce_raw(src, {axis}, false, DType::Int64, DType::Int64, kernel(axis));
  if (!keepdims) return out;
  GradModeGuard no_grad(false);
  return reshape(out, axis_in ? reduced_shape(a.shape(), {axis}, true) : Shape(size_t(a.ndim()), 1));
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

Tensor prod(const Tensor& a, const Axes& axes_in, bool keepdims) {
  Axes axes = all_axes_if_empty(axes_in, a.ndim(), "prod");
  Tensor out = sum_raw(a, axes, keepdims, &cpu::prod);
  if (needs_grad({&a})) {
    SavedTensor sa(a);
    Shape in_shape = a.shape();
    // d/dx_i = product of the others: y / x_i without zeros; with one zero only that
    // element gets the product of the rest; with two or more every derivative is 0.
    record("prod", {a}, out, [sa, in_shape, axes, keepdims](const Tensor& g) -> std::vector<Tensor> {
      const Tensor& x = sa.get();
      Tensor zero = zeros({}, x.dtype());
      Tensor is_zero = eq(x, zero);
      Tensor x_nz = where(is_zero, ones({}, x.dtype()), x);
      Tensor p_nz = prod(x_nz, axes, true);
      Tensor n_zero = sum(astype_like(is_zero, x.dtype()), axes, true);
      Tensor d = where(is_zero, where(eq(n_zero, ones({}, x.dtype())), p_nz, zero),
                       where(eq(n_zero, zero), div(p_nz, x_nz), zero));
      return {mul(restore_reduced_axes(g, in_shape, axes, keepdims), d)};
    });
  }
  return out;
}

Tensor amax(const Tensor& a, const Axes& axes, bool keepdims) { return extremum(a, axes, keepdims, true); }
Tensor amin(const Tensor& a, const Axes& axes, bool keepdims) { return extremum(a, axes, keepdims, false); }
Tensor argmax(const Tensor& a, std::optional<int64_t> axis, bool keepdims) {
  return arg_extremum(a, axis, keepdims, true);
}
Tensor argmin(const Tensor& a, std::optional<int64_t> axis, bool keepdims) {
  return arg_extremum(a, axis, keepdims, false);
}

Tensor var(const Tensor& a, const Axes& axes_in, bool keepdims, double ddof) {
  Axes axes = all_axes_if_empty(axes_in, a.ndim(), "var");
  DType out_t = float_dtype(a.dtype());
  Tensor out = reduce_raw(a, axes, keepdims, kernel_dtype(out_t), out_t,
                          [&](const Tensor& o, const Tensor& i) {
                            if (is_cuda(i.device())) LAMINA_CUDA_BRANCH("var", cuda::variance("var", o, i, axes, ddof));
                            else cpu::variance(o, i, axes, ddof);
                          });
  if (needs_grad({&a})) {
    SavedTensor sa(a);
    Shape in_shape = a.shape();
    double divisor = std::max(double(block_count(a, axes)) - ddof, 0.0);
    record("var", {a}, out, [sa, in_shape, axes, keepdims, divisor](const Tensor& g) -> std::vector<Tensor> {
      const Tensor& x = sa.get();
      Tensor centered = sub(x, mean(x, axes, true));
      Tensor gr = restore_reduced_axes(g, in_shape, axes, keepdims);
      return {mul(mul(centered, 2.0 / divisor), gr)};
    });
  }
  return out;
}

Tensor std_dev(const Tensor& a, const Axes& axes, bool keepdims, double ddof) {
  return sqrt(var(a, axes, keepdims, ddof));
}

Tensor logsumexp(const Tensor& a, const Axes& axes_in, bool keepdims) {
  Axes axes = all_axes_if_empty(axes_in, a.ndim(), "logsumexp");
  DType out_t = float_dtype(a.dtype());
  Tensor out = reduce_raw(a, axes, keepdims, kernel_dtype(out_t), out_t,
                          [&](const Tensor& o, const Tensor& i) {
                            if (is_cuda(i.device())) LAMINA_CUDA_BRANCH("logsumexp", cuda::logsumexp("logsumexp", o, i, axes));
                            else cpu::logsumexp(o, i, axes);
                          });
  if (needs_grad({&a})) {
    // A detached output avoids a node -> output -> node cycle; when differentiating
    // again it is recomputed from x so that the second-order graph is complete.
    SavedTensor sa(a), sy(out.detach());
    Shape in_shape = a.shape();
    record("logsumexp", {a}, out, [sa, sy, in_shape, axes, keepdims](const Tensor& g) -> std::vector<Tensor> {
      const Tensor& x = sa.get();
      Tensor y = GradMode::is_enabled() ? logsumexp(x, axes, true)
                                        : restore_reduced_axes(sy.get(), in_shape, axes, keepdims);
      return {mul(restore_reduced_axes(g, in_shape, axes, keepdims), exp(sub(x, y)))};
    });
  }
  return out;
}

}  // namespace lamina
