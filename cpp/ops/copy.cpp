#include "ops/copy.h"

#include "core/autograd.h"
#include "core/errors.h"
#include "cpu/copy.h"
#include "ops/reduce.h"

namespace lamina {

Tensor astype(const Tensor& a, DType dtype) {
  if (a.dtype() == dtype) return a;
  Tensor out = Tensor::empty(a.shape(), dtype, a.device());
  cpu::copy_cast(out, a);
  if (needs_grad({&a}) && is_floating(dtype)) {
    DType from = a.dtype();
    record("astype", {a}, out, [from](const Tensor& g) -> std::vector<Tensor> { return {astype(g, from)}; });
  }
  return out;
}

Tensor clone(const Tensor& a) {
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  cpu::copy_cast(out, a);
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

void assign_inplace(const Tensor& dst, const Tensor& result, const char* op) {
  bool records = result.requires_grad() && GradMode::is_enabled();
  check_inplace(dst, records, op);
  check<ValueError>(broadcast_shapes(dst.shape(), result.shape(), op) == dst.shape(), op,
                    ": cannot write a result of shape ", shape_str(result.shape()),
                    " into a tensor of shape ", shape_str(dst.shape()));
  cpu::copy_cast(dst, result);
  dst.bump_version();
  if (records) {
    Tensor r = result.dtype() == dst.dtype() ? result : astype(result, dst.dtype());
    dst.impl()->grad_fn = r.grad_fn();
    dst.impl()->requires_grad = true;
  }
}

void copy_(const Tensor& dst, const Tensor& src) {
  check<ValueError>(broadcast_shapes(dst.shape(), src.shape(), "copy_") == dst.shape(),
                    "copy_: cannot copy a tensor of shape ", shape_str(src.shape()),
                    " into one of shape ", shape_str(dst.shape()));
  bool records = needs_grad({&src});
  check_inplace(dst, records || (GradMode::is_enabled() && dst.requires_grad()), "copy_");
  cpu::copy_cast(dst, src);
  dst.bump_version();
  if (records && is_floating(dst.dtype())) {
    Shape src_shape = src.shape();
    Tensor self = dst;
    record("copy_", {src}, self, [src_shape](const Tensor& g) -> std::vector<Tensor> {
      return {sum_to(g, src_shape)};
    });
  }
}

}  // namespace lamina
