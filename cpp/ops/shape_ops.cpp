#include "ops/shape_ops.h"

#include <algorithm>
#include <functional>

#include "core/autograd.h"
#include "core/errors.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/reduce.h"

namespace lamina {

namespace {

Shape infer_shape(const Shape& requested, int64_t numel, const Shape& from, const char* op) {
  Shape shape = requested;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      check<ValueError>(infer_at < 0, op, ": only one dimension can be -1, got ", shape_str(requested));
      infer_at = int64_t(i);
    } else {
      check<ValueError>(shape[i] >= 0, op, ": invalid size ", shape[i], " in shape ", shape_str(requested));
      known = checked_numel({known, shape[i]}, op);
    }
  }
  if (infer_at >= 0) {
    check<ValueError>(known != 0 && numel % known == 0, op, ": cannot reshape a tensor of shape ",
                      shape_str(from), " into shape ", shape_str(requested));
    shape[size_t(infer_at)] = numel / known;
  }
  check<ValueError>(checked_numel(shape, op) == numel, op, ": cannot reshape a tensor of shape ",
                    shape_str(from), " (", numel, " elements) into shape ", shape_str(requested));
  return shape;
}

// Strides for viewing `a` with `shape`, if its memory layout allows it.
std::optional<Shape> view_strides(const Tensor& a, const Shape& shape) {
  if (a.is_contiguous()) return contiguous_strides(shape);
  // Group old axes into chunks that are contiguous among themselves, and match new axes.
  const Shape& os = a.shape();
  const Shape& ost = a.strides();
  Shape out(shape.size());
  int64_t numel = a.numel();
  if (numel == 0) return contiguous_strides(shape);
  size_t oi = 0, ni = 0;
  while (oi < os.size() || ni < shape.size()) {
    while (oi < os.size() && os[oi] == 1) ++oi;
    while (ni < shape.size() && shape[ni] == 1) out[ni++] = 1;
    if (oi >= os.size() || ni >= shape.size()) break;
    int64_t chunk = os[oi];
    size_t oend = oi, prev = oi;  // prev: the chunk's last axis of size > 1
    while (oend + 1 < os.size()) {
      if (os[oend + 1] == 1) { ++oend; continue; }
      if (ost[prev] != ost[oend + 1] * os[oend + 1]) break;
      chunk *= os[++oend];
      prev = oend;
    }
    // Find the last non-1 old axis of the chunk for its innermost stride.
    size_t last = oend;
    while (last > oi && os[last] == 1) --last;
    int64_t stride = ost[last];
    int64_t prod = 1;
    size_t nstart = ni;
    while (ni < shape.size() && prod < chunk) prod *= shape[ni++];
    if (prod != chunk) return std::nullopt;
    int64_t s = stride;
    for (size_t k = ni; k-- > nstart;) {
      out[k] = s;
      s *= shape[k];
    }
    oi = oend + 1;
  }
  return out;
}

Tensor make_view(const Tensor& a, Shape shape, Shape strides, int64_t offset, const char* name) {
  Tensor out = Tensor::view_of(a, std::move(shape), std::move(strides), offset);
  if (needs_grad({&a})) {
    Shape in_shape = a.shape();
    record(name, {a}, out, [in_shape](const Tensor& g) -> std::vector<Tensor> { return {reshape(g, in_shape)}; });
  }
  return out;
}

}  // namespace

Tensor reshape(const Tensor& a, const Shape& requested) {
  Shape shape = infer_shape(requested, a.numel(), a.shape(), "reshape");
  if (shape == a.shape()) return a;
  auto st = view_strides(a, shape);
  if (st) return make_view(a, shape, *st, a.offset(), "reshape");
  return reshape(clone(a), shape);
}

Tensor view(const Tensor& a, const Shape& requested) {
  Shape shape = infer_shape(requested, a.numel(), a.shape(), "view");
  auto st = view_strides(a, shape);
  check<ValueError>(st.has_value(), "view: a tensor of shape ", shape_str(a.shape()),
                    " with these strides cannot be viewed as ", shape_str(shape), "; use reshape");
  return make_view(a, shape, *st, a.offset(), "view");
}

Tensor flatten(const Tensor& a, int64_t start_axis, int64_t end_axis) {
  if (a.ndim() == 0) return reshape(a, {1});
  int64_t s = normalize_axis(start_axis, a.ndim(), "flatten"), e = normalize_axis(end_axis, a.ndim(), "flatten");
  check<ValueError>(s <= e, "flatten: start_axis ", start_axis, " comes after end_axis ", end_axis);
  Shape shape(a.shape().begin(), a.shape().begin() + s);
  int64_t n = 1;
  for (int64_t d = s; d <= e; ++d) n *= a.shape()[size_t(d)];
  shape.push_back(n);
  shape.insert(shape.end(), a.shape().begin() + e + 1, a.shape().end());
  return reshape(a, shape);
}

Tensor permute(const Tensor& a, const std::vector<int64_t>& axes_in) {
  check<ValueError>(int64_t(axes_in.size()) == a.ndim(), "permute: expected ", a.ndim(), " axes for a tensor of shape ",
                    shape_str(a.shape()), ", got ", axes_in.size());
  std::vector<int64_t> axes(axes_in.size());
  std::vector<bool> used(axes_in.size(), false);
  for (size_t i = 0; i < axes_in.size(); ++i) {
    axes[i] = normalize_axis(axes_in[i], a.ndim(), "permute");
    check<ValueError>(!used[size_t(axes[i])], "permute: axis ", axes_in[i], " repeated");
    used[size_t(axes[i])] = true;
  }
  Shape shape(axes.size()), strides(axes.size());
  for (size_t i = 0; i < axes.size(); ++i) {
    shape[i] = a.shape()[size_t(axes[i])];
    strides[i] = a.strides()[size_t(axes[i])];
  }
  Tensor out = Tensor::view_of(a, shape, strides, a.offset());
  if (needs_grad({&a})) {
    std::vector<int64_t> inverse(axes.size());
    for (size_t i = 0; i < axes.size(); ++i) inverse[size_t(axes[i])] = int64_t(i);
    record("permute", {a}, out, [inverse](const Tensor& g) -> std::vector<Tensor> { return {permute(g, inverse)}; });
  }
  return out;
}

Tensor transpose(const Tensor& a, int64_t axis0, int64_t axis1) {
  std::vector<int64_t> axes(size_t(a.ndim()));
  for (int64_t i = 0; i < a.ndim(); ++i) axes[size_t(i)] = i;
  if (a.ndim() == 0) return a;
  std::swap(axes[size_t(normalize_axis(axis0, a.ndim(), "transpose"))],
            axes[size_t(normalize_axis(axis1, a.ndim(), "transpose"))]);
  return permute(a, axes);
}

Tensor matrix_transpose(const Tensor& a) {
  if (a.ndim() < 2) return a;
  return transpose(a, -2, -1);
}

Tensor squeeze(const Tensor& a, const std::vector<int64_t>& axes_in) {
  std::vector<int64_t> axes = normalize_axes(axes_in, a.ndim(), "squeeze");
  Shape shape, strides;
  for (int64_t d = 0; d < a.ndim(); ++d) {
    bool listed = std::find(axes.begin(), axes.end(), d) != axes.end();
    int64_t size = a.shape()[size_t(d)];
    if (listed)
      check<ValueError>(size == 1, "squeeze: cannot squeeze axis ", d, " of size ", size, " in shape ",
                        shape_str(a.shape()));
    if ((axes_in.empty() && size == 1) || listed) continue;
    shape.push_back(size);
    strides.push_back(a.strides()[size_t(d)]);
  }
  return make_view(a, shape, strides, a.offset(), "squeeze");
}

Tensor unsqueeze(const Tensor& a, int64_t axis) {
  int64_t d = normalize_axis(axis, a.ndim() + 1, "unsqueeze");
  Shape shape = a.shape(), strides = a.strides();
  int64_t st = d < a.ndim() ? strides[size_t(d)] * shape[size_t(d)] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, st);
  return make_view(a, shape, strides, a.offset(), "unsqueeze");
}

Tensor expand(const Tensor& a, const Shape& requested) {
  check<ValueError>(requested.size() >= size_t(a.ndim()), "expand: cannot broadcast shape ", shape_str(a.shape()),
                    " to ", shape_str(requested), " (fewer dimensions)");
  size_t lead = requested.size() - size_t(a.ndim());
  Shape shape(requested.size()), strides(requested.size(), 0);
  for (size_t i = 0; i < requested.size(); ++i) {
    int64_t want = requested[i];
    if (i < lead) {
      check<ValueError>(want >= 0, "expand: invalid size ", want, " in ", shape_str(requested));
      shape[i] = want;
      continue;
    }
    int64_t have = a.shape()[i - lead];
    if (want == -1) want = have;
    check<ValueError>(want >= 0 && (have == want || have == 1), "expand: cannot broadcast shape ",
                      shape_str(a.shape()), " to ", shape_str(requested));
    shape[i] = want;
    strides[i] = have == want ? a.strides()[i - lead] : 0;
  }
  checked_numel(shape, "expand");
  if (shape == a.shape()) return a;
  Tensor out = Tensor::view_of(a, shape, strides, a.offset());
  if (needs_grad({&a})) {
    Shape in_shape = a.shape();
    record("expand", {a}, out, [in_shape](const Tensor& g) -> std::vector<Tensor> { return {sum_to(g, in_shape)}; });
  }
  return out;
}

namespace {

// The gradient of a view that picks part of its input: g written into zeros. Its own
// gradient is the same view again, so higher-order gradients stay exact.
Tensor embed_in_zeros(const Tensor& g, const Shape& in_shape, std::function<Tensor(const Tensor&)> same_view) {
  Tensor out = zeros(in_shape, g.dtype(), g.device());
  {
    GradModeGuard no_grad(false);
    copy_(same_view(out), g);
  }
  if (needs_grad({&g}))
    record("view_backward", {g}, out, [same_view](const Tensor& gg) -> std::vector<Tensor> {
      return {contiguous(same_view(gg))};
    });
  return out;
}

// Records a view that picks part of `a` (the indices [begin, end) of `axis` when it is one
// range): its backward embeds the gradient in zeros, and the engine may instead write it into
// the matching region of a's gradient (Node::picked_part).
void record_view(const char* name, const Tensor& a, Tensor& out, std::function<Tensor(const Tensor&)> same_view,
                 int64_t axis, int64_t begin, int64_t end) {
  Shape in_shape = a.shape();
  record(name, {a}, out, [in_shape, same_view](const Tensor& g) -> std::vector<Tensor> {
    return {embed_in_zeros(g, in_shape, same_view)};
  });
  out.grad_fn()->picked_part = Node::PickedPart{std::move(same_view), a.strides(), axis, begin, end};
}

}  // namespace

Tensor slice(const Tensor& a, int64_t axis, std::optional<int64_t> start_in, std::optional<int64_t> stop_in,
             int64_t step) {
  check<ValueError>(step != 0, "slice: step cannot be zero");
  int64_t d = normalize_axis(axis, a.ndim(), "slice");
  check<IndexError>(a.ndim() > 0, "slice: cannot slice a 0-d tensor");
  int64_t n = a.shape()[size_t(d)];
  // Python's slice.indices semantics.
  int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? n : n - 1;
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v < 0 ? *v + n : *v;
    return std::clamp(x, lower, upper);
  };
  int64_t start = clamp(start_in, step > 0 ? lower : upper);
  int64_t stop = clamp(stop_in, step > 0 ? upper : lower);
  int64_t len = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0)
                         : (start > stop ? (start - stop - step - 1) / (-step) : 0);
  Shape shape = a.shape(), strides = a.strides();
  shape[size_t(d)] = len;
  strides[size_t(d)] *= step;
  int64_t offset = a.offset() + (len > 0 ? start * a.strides()[size_t(d)] : 0);
  Tensor out = Tensor::view_of(a, shape, strides, offset);
  if (needs_grad({&a})) {
    if (step == 1 && start == 0 && len == n)  // the whole axis (t[:]): the gradient passes through
      record("slice", {a}, out, [](const Tensor& g) -> std::vector<Tensor> { return {g}; });
    else
      record_view("slice", a, out, [=](const Tensor& z) { return slice(z, d, start_in, stop_in, step); },
                  step == 1 ? d : -1, start, start + len);
  }
  return out;
}

Tensor select(const Tensor& a, int64_t axis, int64_t index) {
  check<IndexError>(a.ndim() > 0, "select: cannot index a 0-d tensor");
  int64_t d = normalize_axis(axis, a.ndim(), "select");
  int64_t n = a.shape()[size_t(d)];
  check<IndexError>(index >= -n && index < n, "index ", index, " is out of bounds for axis ", d, " with size ", n);
  if (index < 0) index += n;
  Shape shape = a.shape(), strides = a.strides();
  int64_t offset = a.offset() + index * strides[size_t(d)];
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  Tensor out = Tensor::view_of(a, shape, strides, offset);
  if (needs_grad({&a}))
    record_view("select", a, out, [=](const Tensor& z) { return select(z, d, index); }, d, index, index + 1);
  return out;
}

}  // namespace lamina
