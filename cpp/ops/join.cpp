#include "ops/join.h"

#include <optional>

#include "core/autograd.h"
#include "core/errors.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/shape_ops.h"

namespace lamina {

namespace {

Tensor concat_impl(const std::vector<Tensor>& ts, int64_t axis_in, const char* op) {
  check<ValueError>(!ts.empty(), op, ": need at least one tensor");
  for (size_t i = 0; i < ts.size(); ++i) check<TypeError>(ts[i].defined(), op, ": input ", i, " is undefined");
  const Tensor& first = ts[0];
  check<ValueError>(first.ndim() > 0, op, ": zero-dimensional tensors cannot be concatenated");
  int64_t axis = normalize_axis(axis_in, first.ndim(), op);
  DType dtype = first.dtype();
  Shape shape = first.shape();
  shape[size_t(axis)] = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    check<ValueError>(t.ndim() == first.ndim(), op, ": all inputs must have the same number of dimensions, but input 0 has shape ",
                      shape_str(first.shape()), " and input ", i, " has shape ", shape_str(t.shape()));
    for (int64_t d = 0; d < t.ndim(); ++d)
      check<ValueError>(d == axis || t.shape()[size_t(d)] == first.shape()[size_t(d)], op,
                        ": input shapes must match except along axis ", axis, ", but input 0 has shape ",
                        shape_str(first.shape()), " and input ", i, " has shape ", shape_str(t.shape()));
    if (i > 0) {
      check_same_device(op, first, t);
      dtype = promote_types(dtype, t.dtype());
    }
    shape[size_t(axis)] += t.shape()[size_t(axis)];
  }
  checked_numel(shape, op);
  Tensor out = Tensor::empty(shape, dtype, first.device());
  std::vector<int64_t> starts;
  std::vector<bool> wants;
  {
    GradModeGuard no_grad(false);
    int64_t at = 0;
    for (const Tensor& t : ts) {
      int64_t n = t.shape()[size_t(axis)];
      starts.push_back(at);
      wants.push_back(t.requires_grad());
      if (n > 0) copy_(slice(out, axis, at, at + n), t.detach());
      at += n;
    }
    starts.push_back(at);
  }
  if (needs_grad(ts)) {
    record(op, ts, out, [axis, starts, wants](const Tensor& g) -> std::vector<Tensor> {
      std::vector<Tensor> grads(wants.size());
      for (size_t i = 0; i < wants.size(); ++i)
        if (wants[i]) grads[i] = slice(g, axis, starts[i], starts[i + 1]);
      return grads;
    });
  }
  return out;
}

int64_t split_axis(const Tensor& x, int64_t axis, const char* op) {
  check<TypeError>(x.defined(), op, ": got an undefined tensor");
  check<IndexError>(x.ndim() > 0, op, ": cannot split a 0-d tensor");
  return normalize_axis(axis, x.ndim(), op);
}

}  // namespace

Tensor concatenate(const std::vector<Tensor>& tensors, int64_t axis) { return concat_impl(tensors, axis, "concatenate"); }

Tensor stack(const std::vector<Tensor>& tensors, int64_t axis_in) {
  check<ValueError>(!tensors.empty(), "stack: need at least one tensor");
  for (size_t i = 0; i < tensors.size(); ++i) {
    check<TypeError>(tensors[i].defined(), "stack: input ", i, " is undefined");
    check<ValueError>(tensors[i].shape() == tensors[0].shape(), "stack: all inputs must have the same shape, but input 0 has shape ",
                      shape_str(tensors[0].shape()), " and input ", i, " has shape ", shape_str(tensors[i].shape()));
  }
  int64_t axis = normalize_axis(axis_in, tensors[0].ndim() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (const Tensor& t : tensors) parts.push_back(unsqueeze(t, axis));
  return concat_impl(parts, axis, "stack");
}

constexpr int64_t kMaxEmptyPieces = int64_t(1) << 20;

std::vector<Tensor> split(const Tensor& x, int64_t sections, int64_t axis_in) {
  int64_t axis = split_axis(x, axis_in, "split");
  check<ValueError>(sections > 0, "split: the number of sections must be positive, got ", sections);
  int64_t n = x.shape()[size_t(axis)];
  check<ValueError>(n % sections == 0, "split: a tensor of shape ", shape_str(x.shape()), " (size ", n, " along axis ",
                    axis, ") does not split into ", sections, " equal sections");
  // An empty axis splits into any number of empty pieces; cap it so that a huge count is
  // an error, not an endless loop building views.
  check<ValueError>(n > 0 || sections <= kMaxEmptyPieces, "split: ", sections,
                    " sections of an empty axis is more than the limit of ", kMaxEmptyPieces);
  int64_t size = n / sections;
  std::vector<Tensor> out;
  for (int64_t i = 0; i < sections; ++i) out.push_back(slice(x, axis, i * size, (i + 1) * size));
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& indices, int64_t axis_in) {
  int64_t axis = split_axis(x, axis_in, "split");
  std::vector<Tensor> out;
  std::optional<int64_t> prev;
  for (int64_t idx : indices) {
    out.push_back(slice(x, axis, prev, idx));
    prev = idx;
  }
  out.push_back(slice(x, axis, prev, std::nullopt));
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t axis_in) {
  int64_t axis = split_axis(x, axis_in, "chunk");
  check<ValueError>(chunks > 0, "chunk: the number of chunks must be positive, got ", chunks);
  int64_t n = x.shape()[size_t(axis)];
  std::vector<Tensor> out;
  if (n == 0) {
    check<ValueError>(chunks <= kMaxEmptyPieces, "chunk: ", chunks, " chunks of an empty axis is more than the limit of ",
                      kMaxEmptyPieces);
    for (int64_t i = 0; i < chunks; ++i) out.push_back(slice(x, axis, 0, 0));
    return out;
  }
  int64_t size = n / chunks + (n % chunks != 0);  // ceil without overflow for huge `chunks`
  for (int64_t at = 0; at < n; at += size) out.push_back(slice(x, axis, at, std::min(at + size, n)));
  return out;
}

Tensor pad(const Tensor& x, const std::vector<std::vector<int64_t>>& pad_width, const std::string& mode, double value) {
  check<TypeError>(x.defined(), "pad: got an undefined tensor");
  int64_t ndim = x.ndim();
  check<ValueError>(pad_width.size() == 1 || int64_t(pad_width.size()) == ndim,
                    "pad: pad_width must be one (before, after) pair for every axis or one pair per axis (", ndim,
                    " for shape ", shape_str(x.shape()), "), got ", pad_width.size(), " pairs");
  std::vector<std::pair<int64_t, int64_t>> pairs(static_cast<size_t>(ndim));
  for (int64_t d = 0; d < ndim; ++d) {
    const std::vector<int64_t>& p = pad_width.size() == 1 ? pad_width[0] : pad_width[size_t(d)];
    check<ValueError>(p.size() == 1 || p.size() == 2, "pad: each pad_width entry must be (before, after) or (both,), got ",
                      p.size(), " numbers");
    pairs[size_t(d)] = {p[0], p.size() == 2 ? p[1] : p[0]};
    check<ValueError>(p[0] >= 0 && p.back() >= 0, "pad: pad widths must be non-negative, got (", pairs[size_t(d)].first,
                      ", ", pairs[size_t(d)].second, ") for axis ", d);
  }
  Shape in_shape = x.shape();
  if (mode == "constant") {
    Shape shape = in_shape;
    for (int64_t d = 0; d < ndim; ++d) shape[size_t(d)] += pairs[size_t(d)].first + pairs[size_t(d)].second;
    checked_numel(shape, "pad");
    Tensor out = full(shape, value, x.dtype(), x.device());
    auto region = [pairs, in_shape](const Tensor& t) {
      Tensor r = t;
      for (size_t d = 0; d < pairs.size(); ++d)
        if (pairs[d].first || pairs[d].second)
          r = slice(r, int64_t(d), pairs[d].first, pairs[d].first + in_shape[d]);
      return r;
    };
    {
      GradModeGuard no_grad(false);
      copy_(region(out), x.detach());
    }
    if (needs_grad({&x}))
      record("pad", {x}, out, [region](const Tensor& g) -> std::vector<Tensor> { return {region(g)}; });
    return out;
  }
  check<ValueError>(mode == "edge" || mode == "reflect" || mode == "wrap", "pad: mode '", mode,
                    "' is not supported (use 'constant', 'edge', 'reflect' or 'wrap')");
  // The other modes are compositions of slices and concatenation along each axis.
  Tensor r = x;
  for (int64_t d = 0; d < ndim; ++d) {
    auto [before, after] = pairs[size_t(d)];
    if (!before && !after) continue;
    int64_t n = r.shape()[size_t(d)];
    check<ValueError>(n > 0, "pad: cannot pad an empty axis (", d, " of shape ", shape_str(in_shape), ") with mode '",
                      mode, "'");
    Tensor left, right;
    if (mode == "edge") {
      Shape ls = r.shape(), rs = r.shape();
      ls[size_t(d)] = before;
      rs[size_t(d)] = after;
      left = expand(slice(r, d, 0, 1), ls);
      right = expand(slice(r, d, n - 1, n), rs);
    } else if (mode == "reflect") {
      check<ValueError>(before < n && after < n, "pad: mode 'reflect' needs pad widths smaller than the axis size, got (",
                        before, ", ", after, ") for axis ", d, " of size ", n);
      left = slice(r, d, before, 0, -1);
      int64_t stop = n - 2 - after;
      right = after == 0 ? slice(r, d, 0, 0)
                         : slice(r, d, n - 2, stop < 0 ? std::nullopt : std::optional<int64_t>(stop), -1);
    } else {
      check<ValueError>(before <= n && after <= n, "pad: mode 'wrap' needs pad widths at most the axis size, got (", before,
                        ", ", after, ") for axis ", d, " of size ", n);
      left = slice(r, d, n - before, n);
      right = slice(r, d, 0, after);
    }
    r = concatenate({left, r, right}, d);
  }
  return r.same_impl(x) ? clone(x) : r;
}

}  // namespace lamina
