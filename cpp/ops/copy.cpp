#include "ops/copy.h"

#include "core/autograd.h"
#include "core/backend.h"
#include "core/errors.h"
#include "cpu/copy.h"
#include "ops/creation.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

// dst[...] = cast(src[...]) on dst's device; a source elsewhere is brought over first.
void copy_values(const char* op, const Tensor& dst, const Tensor& src) {
  if (!is_cuda(dst.device()) && !is_cuda(src.device())) return cpu::copy_cast(dst, src);
  Tensor s = src.device() == dst.device() ? src : to_device(src.detach(), dst.device());
  LAMINA_CUDA_BRANCH(op, cuda::copy_cast(op, dst, s));
}

}  // namespace

Tensor to_device(const Tensor& a, const Device& device) {
  if (a.device() == device) return a;
  if (is_cuda(device) || is_cuda(a.device())) {
    if (!cuda_backend()) throw_no_cuda("to");
  }
  Tensor src;
  {
    GradModeGuard no_grad(false);
    src = contiguous(a.detach());
  }
  Tensor out = Tensor::empty(a.shape(), a.dtype(), device);
  const size_t nbytes = size_t(a.numel()) * a.itemsize();
  if (nbytes > 0) {
    const bool h2d = is_cuda(device) && !is_cuda(a.device()), d2h = !is_cuda(device) && is_cuda(a.device());
    const CopyKind kind = h2d ? CopyKind::HostToDevice : d2h ? CopyKind::DeviceToHost : CopyKind::DeviceToDevice;
    // Between two GPUs this relies on unified addressing (cudaMemcpy with peer pointers).
    cuda_backend()->copy(out.raw_data(), src.raw_data(), nbytes, kind, is_cuda(device) ? device.index : a.device().index);
  }
  if (needs_grad({&a})) {
    Device from = a.device();
    record("to", {a}, out, [from](const Tensor& g) -> std::vector<Tensor> { return {to_device(g, from)}; });
  }
  return out;
}

Tensor astype(const Tensor& a, DType dtype) {
  if (a.dtype() == dtype) return a;
  Tensor out = Tensor::empty(a.shape(), dtype, a.device());
  copy_values("astype", out, a);
  if (needs_grad({&a}) && is_floating(dtype)) {
    DType from = a.dtype();
    record("astype", {a}, out, [from](const Tensor& g) -> std::vector<Tensor> { return {astype(g, from)}; });
  }
  return out;
}

Tensor clone(const Tensor& a) {
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  copy_values("clone", out, a);
  if (needs_grad({&a}))
    record("clone", {a}, out, [](const Tensor& g) -> std::vector<Tensor> { return {g}; });
  return out;
}

Tensor contiguous(const Tensor& a) { return a.is_contiguous() ? a : clone(a); }

void check_inplace(const Tensor& dst, bool records_grad, const char* op) {
  if (!records_grad) return;
  check<RuntimeError>(!(dst.is_leaf() && dst.requires_grad()), op,
                      ": a leaf tensor that requires grad cannot be modified in place; "
                      "wrap the update in lamina.no_grad()");
  // A view (x[1:], x.T, ...) of such a leaf shares its storage: writing through it would
  // change the leaf behind autograd's back. Views are short single-input chains, so a
  // bounded walk up the history finds the leaf.
  const Node* node = dst.grad_fn().get();
  for (int depth = 0; node && depth < 32; ++depth) {
    const Node* up = nullptr;
    int inputs = 0;
    for (const Edge& e : node->next) {
      if (!e.valid()) continue;
      ++inputs;
      if (e.leaf && e.leaf->requires_grad && e.leaf->storage == dst.storage())
        throw RuntimeError(detail::concat(op, ": a view of a leaf tensor that requires grad cannot be modified in "
                                          "place; wrap the update in lamina.no_grad()"));
      up = e.node.get();
    }
    node = inputs == 1 ? up : nullptr;
  }
}

namespace {

// Where a view's elements sit in a contiguous tensor of its root's shape.
struct Region {
  Shape shape, strides;
  int64_t offset;
  Tensor of(const Tensor& contiguous_like_root) const {
    return Tensor::view_of(contiguous_like_root, shape, strides, offset);
  }
};

void no_double_backward(const char* node) {
  if (GradMode::is_enabled())
    throw RuntimeError(detail::concat(node, ": double backward through an in-place write into a view is not "
                                      "supported; write into a clone() of the tensor instead"));
}

// dst's storage was just written with `value` (dst's shape and dtype, with history) or with
// constants (value undefined). Rewrites the autograd history of what the write changed:
// - dst owns its storage: dst now is `value` (or a constant, with no history);
// - dst is a view: its root now holds the old values outside the view and `value` inside
//   (node "inplace_view"), and dst itself becomes a view of that new root.
void rebase_history(const Tensor& dst, const Tensor& value, const char* op) {
  if (!GradMode::is_enabled()) return;
  const Tensor root = dst.view_root();
  if (!root.defined()) {
    if (value.defined() && !value.is_leaf()) {
      dst.impl()->grad_fn = value.grad_fn();
      dst.impl()->requires_grad = true;
    } else if (value.defined()) {  // a leaf's values: pass the gradient on to it
      Tensor self = dst;
      record("copy_", {value}, self, [](const Tensor& g) -> std::vector<Tensor> { return {g}; });
    } else if (dst.requires_grad() && !dst.is_leaf()) {
      dst.impl()->grad_fn = nullptr;
      dst.impl()->requires_grad = false;
    }
    return;
  }
  if (!value.defined() && !root.requires_grad() && !dst.requires_grad()) return;
  check<RuntimeError>(root.is_contiguous() && root.offset() <= dst.offset(), op,
                      ": in-place write into a view of a non-contiguous tensor that is part of the autograd "
                      "graph is not supported; clone() the tensor first");
  const Region region{dst.shape(), dst.strides(), dst.offset() - root.offset()};
  const Shape root_shape = root.shape();
  const bool has_value = value.defined();
  Tensor base = root;
  record("inplace_view", {root, value}, base, [region, has_value](const Tensor& g) -> std::vector<Tensor> {
    no_double_backward("inplace_view");
    Tensor kept = clone(g);
    Tensor written = has_value ? clone(region.of(kept)) : Tensor();
    copy_values("inplace_view", region.of(kept), zeros({}, g.dtype(), g.device()));
    return {kept, written};
  });
  Tensor self = dst;
  record("view", {base}, self, [region, root_shape](const Tensor& g) -> std::vector<Tensor> {
    no_double_backward("view");
    Tensor full = zeros(root_shape, g.dtype(), g.device());
    copy_values("view", region.of(full), g);
    return {full};
  });
}

}  // namespace

void assign_inplace(const Tensor& dst, const Tensor& result, const char* op) {
  bool records = result.requires_grad() && GradMode::is_enabled();
  check_inplace(dst, records, op);
  check<ValueError>(broadcast_shapes(dst.shape(), result.shape(), op) == dst.shape(), op,
                    ": cannot write a result of shape ", shape_str(result.shape()),
                    " into a tensor of shape ", shape_str(dst.shape()));
  copy_values(op, dst, result);
  dst.bump_version();
  Tensor value;
  if (records) {
    value = result.dtype() == dst.dtype() ? result : astype(result, dst.dtype());
    if (value.shape() != dst.shape()) value = expand(value, dst.shape());
  }
  rebase_history(dst, value, op);
}

void copy_(const Tensor& dst, const Tensor& src) {
  check<ValueError>(broadcast_shapes(dst.shape(), src.shape(), "copy_") == dst.shape(),
                    "copy_: cannot copy a tensor of shape ", shape_str(src.shape()),
                    " into one of shape ", shape_str(dst.shape()));
  bool records = needs_grad({&src}) && is_floating(dst.dtype());
  check_inplace(dst, records || (GradMode::is_enabled() && dst.requires_grad()), "copy_");
  copy_values("copy_", dst, src);
  dst.bump_version();
  Tensor value;
  if (records) {
    value = src.dtype() == dst.dtype() ? src : astype(src, dst.dtype());
    if (value.shape() != dst.shape()) value = expand(value, dst.shape());
  }
  rebase_history(dst, value, "copy_");
}

}  // namespace lamina
