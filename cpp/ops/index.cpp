#include "ops/index.h"

#include "core/backend.h"
#include "core/autograd.h"
#include "core/errors.h"
#include "cpu/index.h"
#include "ops/arith.h"
#include "ops/compare.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

// Indices as contiguous int64 on the host, wrapped into [0, n); IndexError names the op and
// bound. Device indices are copied to the host for the check, a synchronising copy: a bad
// index must be a Python exception raised here, not a device-side fault.
Tensor checked_indices(const Tensor& indices, int64_t n, const char* op, int64_t axis) {
  check<IndexError>(is_integral(indices.dtype()), op, ": indices must be integers, got ", dtype_name(indices.dtype()));
  Tensor idx = clone(astype(to_device(indices.detach(), Device{}), DType::Int64));
  int64_t* p = idx.data<int64_t>();
  for (int64_t i = 0, m = idx.numel(); i < m; ++i) {
    check<IndexError>(p[i] >= -n && p[i] < n, op, ": index ", p[i], " is out of bounds for axis ", axis,
                      " with size ", n);
    if (p[i] < 0) p[i] += n;
  }
  return idx;
}

}  // namespace

Tensor take(const Tensor& a, const Tensor& indices, int64_t axis_in) {
  check<IndexError>(a.ndim() > 0, "take: cannot index a 0-d tensor");
  int64_t axis = normalize_axis(axis_in, a.ndim(), "take");
  int64_t n = a.shape()[size_t(axis)];
  Tensor idx = to_device(checked_indices(indices, n, "take", axis), a.device());
  Tensor src = contiguous(a.detach());
  Shape shape(a.shape().begin(), a.shape().begin() + axis);
  shape.insert(shape.end(), idx.shape().begin(), idx.shape().end());
  shape.insert(shape.end(), a.shape().begin() + axis + 1, a.shape().end());
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  if (is_cuda(out.device())) LAMINA_CUDA_BRANCH("take", cuda::take("take", out, src, idx, axis));
  else cpu::take(out, src, idx, axis);
  if (needs_grad({&a})) {
    Shape in_shape = a.shape();
    record("take", {a}, out, [in_shape, idx, axis](const Tensor& g) -> std::vector<Tensor> {
      // Gradient: scatter-add g's rows back; written as the adjoint op so it can be
      // differentiated again (its gradient is take).
      Shape flat_g_shape(in_shape.begin(), in_shape.begin() + axis);
      flat_g_shape.push_back(idx.numel());
      flat_g_shape.insert(flat_g_shape.end(), in_shape.begin() + axis + 1, in_shape.end());
      Tensor gflat = contiguous(reshape(g, flat_g_shape));
      Tensor flat_idx = reshape(idx, {idx.numel()});
      Tensor out_g = zeros(in_shape, g.dtype(), g.device());
      {
        GradModeGuard no_grad(false);
        Tensor gd = astype(gflat.detach(), kernel_dtype(g.dtype()));
        Tensor acc = astype(out_g, gd.dtype());
        if (is_cuda(acc.device())) LAMINA_CUDA_BRANCH("take", cuda::index_add("take", acc, flat_idx, gd, axis));
        else cpu::index_add(acc, flat_idx, gd, axis);
        out_g = astype(acc, g.dtype());
      }
      if (needs_grad({&g}))
        record("take_backward", {g}, out_g, [flat_idx, axis, gshape = g.shape()](const Tensor& gg) -> std::vector<Tensor> {
          return {reshape(take(gg, flat_idx, axis), gshape)};
        });
      return {out_g};
    });
  }
  return out;
}

Tensor masked_select(const Tensor& a, const Tensor& mask, int64_t axis) {
  check<IndexError>(mask.dtype() == DType::Bool, "masked_select: mask must be bool, got ", dtype_name(mask.dtype()));
  int64_t mnd = std::max<int64_t>(mask.ndim(), 1);
  Tensor m = mask.ndim() == 0 ? reshape(mask, {1}) : mask;
  Tensor base = mask.ndim() == 0 ? unsqueeze(a, axis) : a;
  check<IndexError>(axis + mnd <= base.ndim(), "masked_select: mask of shape ", shape_str(mask.shape()),
                    " has more dimensions than the tensor of shape ", shape_str(a.shape()));
  Shape covered(base.shape().begin() + axis, base.shape().begin() + axis + mnd);
  check<IndexError>(covered == m.shape(), "boolean index of shape ", shape_str(mask.shape()),
                    " does not match the indexed tensor's shape ", shape_str(a.shape()), " at axis ", axis);
  Tensor mc = contiguous(to_device(m.detach(), Device{}));  // the positions decide the output's size
  const bool* mp = mc.data<bool>();
  std::vector<int64_t> positions;
  for (int64_t i = 0; i < mc.numel(); ++i)
    if (mp[i]) positions.push_back(i);
  Tensor idx = Tensor::empty({int64_t(positions.size())}, DType::Int64);
  std::copy(positions.begin(), positions.end(), idx.data<int64_t>());
  return take(flatten(base, axis, axis + mnd - 1), idx, axis);
}

Tensor gather(const Tensor& a, int64_t axis_in, const Tensor& index) {
  int64_t axis = normalize_axis(axis_in, a.ndim(), "gather");
  check<ValueError>(index.ndim() == a.ndim(), "gather: index must have the same rank as the input (",
                    a.ndim(), "), got shape ", shape_str(index.shape()));
  for (int64_t d = 0; d < a.ndim(); ++d)
    check<ValueError>(d == axis || index.shape()[size_t(d)] <= a.shape()[size_t(d)], "gather: index shape ",
                      shape_str(index.shape()), " exceeds input shape ", shape_str(a.shape()), " at axis ", d);
  Tensor idx = to_device(checked_indices(index, a.ndim() ? a.shape()[size_t(axis)] : 1, "gather", axis), a.device());
  Tensor out = Tensor::empty(index.shape(), a.dtype(), a.device());
  if (is_cuda(out.device())) LAMINA_CUDA_BRANCH("gather", cuda::gather("gather", out, contiguous(a.detach()), idx, axis));
  else cpu::gather(out, contiguous(a.detach()), idx, axis);
  if (needs_grad({&a})) {
    Shape in_shape = a.shape();
    record("gather", {a}, out, [in_shape, idx, axis](const Tensor& g) -> std::vector<Tensor> {
      return {scatter_add(zeros(in_shape, g.dtype(), g.device()), axis, idx, g)};
    });
  }
  return out;
}

Tensor scatter_add(const Tensor& a, int64_t axis_in, const Tensor& index, const Tensor& src) {
  check_same_device("scatter_add", a, src);
  int64_t axis = normalize_axis(axis_in, a.ndim(), "scatter_add");
  if (a.ndim() == 0 && index.ndim() == 0 && src.ndim() == 0)  // as one element (gather's 0-d gradient)
    return reshape(scatter_add(reshape(a, {1}), 0, reshape(index, {1}), reshape(src, {1})), {});
  check<ValueError>(index.shape() == src.shape(), "scatter_add: index shape ", shape_str(index.shape()),
                    " and src shape ", shape_str(src.shape()), " must match");
  check<ValueError>(index.ndim() == a.ndim(), "scatter_add: index must have the input's rank ", a.ndim());
  for (int64_t d = 0; d < a.ndim(); ++d)
    check<ValueError>(d == axis || index.shape()[size_t(d)] <= a.shape()[size_t(d)], "scatter_add: index shape ",
                      shape_str(index.shape()), " exceeds input shape ", shape_str(a.shape()));
  check<ValueError>(a.ndim() > 0, "scatter_add: index of shape ", shape_str(index.shape()),
                    " cannot address a 0-d tensor");
  Tensor idx = to_device(checked_indices(index, a.shape()[size_t(axis)], "scatter_add", axis), a.device());
  DType t = promote_types(a.dtype(), src.dtype());
  DType kd = kernel_dtype(t);
  Tensor out;
  {
    GradModeGuard no_grad(false);
    if (is_cuda(a.device())) {
      // Device atomics add float32/float64/int32/int64; uint8 and bool sums are taken in
      // int64 and cast back, which wraps (uint8) or tests nonzero (bool) like the CPU's adds.
      DType acc_t = is_floating(kd) || kd == DType::Int32 ? kd : DType::Int64;
      Tensor acc = clone(astype(a.detach(), acc_t));
      LAMINA_CUDA_BRANCH("scatter_add", cuda::scatter_add("scatter_add", acc, idx,
                                                          contiguous(astype(src.detach(), acc_t)), axis));
      out = astype(acc, t);
    } else {
      Tensor acc = clone(astype(a.detach(), kd));
      cpu::scatter_add(acc, idx, contiguous(astype(src.detach(), kd)), axis);
      out = astype(acc, t);
    }
  }
  if (needs_grad({&a, &src})) {
    record("scatter_add", {a, src}, out, [idx, axis](const Tensor& g) -> std::vector<Tensor> {
      return {g, gather(g, axis, idx)};
    });
  }
  return out;
}

Tensor one_hot(const Tensor& indices, int64_t num_classes, DType dtype) {
  check<ValueError>(num_classes > 0, "one_hot: num_classes must be positive, got ", num_classes);
  Tensor idx = checked_indices(indices, num_classes, "one_hot", -1);
  if (is_cuda(indices.device())) {  // a comparison with 0..C-1 on the device
    GradModeGuard no_grad(false);
    Tensor classes = to_device(arange(0, double(num_classes), 1, DType::Int64), indices.device());
    return astype(eq(unsqueeze(to_device(idx, indices.device()), -1), classes), dtype);
  }
  const int64_t* p = idx.data<int64_t>();
  Shape shape = indices.shape();
  shape.push_back(num_classes);
  Tensor out = zeros(shape, DType::Float64);
  double* o = out.data<double>();
  for (int64_t i = 0; i < idx.numel(); ++i) o[i * num_classes + p[i]] = 1.0;
  return astype(out, dtype);
}

Tensor masked_fill(const Tensor& a, const Tensor& mask, const Tensor& value) {
  check<IndexError>(mask.dtype() == DType::Bool, "masked_fill: mask must be bool");
  broadcast_shapes(a.shape(), mask.shape(), "masked_fill");
  check<ValueError>(broadcast_shapes(a.shape(), mask.shape(), "masked_fill") == a.shape(),
                    "masked_fill: mask of shape ", shape_str(mask.shape()), " does not fit shape ", shape_str(a.shape()));
  return where(mask, astype(value, a.dtype()), a);
}

Tensor index_put(const Tensor& a, const Tensor& indices, const Tensor& value) {
  check<IndexError>(a.ndim() > 0, "index_put: cannot index a 0-d tensor");
  Tensor idx = checked_indices(indices, a.shape()[0], "index_put", 0);
  Shape region(idx.shape());
  region.insert(region.end(), a.shape().begin() + 1, a.shape().end());
  Tensor v = expand(astype(value, a.dtype()), region);
  // Zero the rows being overwritten, then scatter-add the new ones. Repeated indices
  // would make the result order-dependent, so they are rejected.
  Tensor flat_idx = reshape(idx, {idx.numel()});
  Tensor hit = zeros({a.shape()[0]}, DType::Int64);
  {
    int64_t* h = hit.data<int64_t>();
    const int64_t* p = flat_idx.data<int64_t>();
    for (int64_t i = 0; i < flat_idx.numel(); ++i)
      check<ValueError>(++h[p[i]] == 1, "index_put: index ", p[i], " appears more than once");
  }
  Shape keep_shape(a.ndim(), 1);
  keep_shape[0] = a.shape()[0];
  Tensor keep = to_device(reshape(eq(hit, zeros({}, DType::Int64)), keep_shape), a.device());
  Tensor kept = mul(a, astype_like(keep, a.dtype()));
  Shape vflat_shape{flat_idx.numel()};
  vflat_shape.insert(vflat_shape.end(), a.shape().begin() + 1, a.shape().end());
  Tensor vflat = reshape(v, vflat_shape);
  Shape idx_full(vflat_shape.size(), 1);
  idx_full[0] = flat_idx.numel();
  Tensor idx_b = contiguous(expand(reshape(flat_idx, idx_full), vflat_shape));
  return scatter_add(kept, 0, idx_b, vflat);
}

Tensor put_region(const Tensor& a, const Tensor& value, std::function<Tensor(const Tensor&)> region_of) {
  Tensor out = clone(a.detach());
  Tensor region_shape_probe = region_of(out);
  Shape region_shape = region_shape_probe.shape();
  Tensor v = astype(value, a.dtype());
  check<ValueError>(broadcast_shapes(region_shape, v.shape(), "setitem") == region_shape, "setitem: cannot assign a value of shape ",
                    shape_str(v.shape()), " to a region of shape ", shape_str(region_shape));
  {
    GradModeGuard no_grad(false);
    copy_(region_of(out), v);
  }
  if (needs_grad({&a, &v})) {
    Shape vshape = v.shape();
    record("setitem", {a, v}, out, [region_of, vshape](const Tensor& g) -> std::vector<Tensor> {
      Tensor ga = clone(g);
      {
        GradModeGuard no_grad(false);
        copy_(region_of(ga.detach()), zeros({}, g.dtype()));
      }
      return {ga, sum_to(contiguous(region_of(g)), vshape)};
    });
  }
  return out;
}

}  // namespace lamina
