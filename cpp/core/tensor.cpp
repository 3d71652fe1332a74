#include "core/tensor.h"

#include "core/autograd.h"
#include "core/errors.h"

namespace lamina {

TensorImpl::~TensorImpl() { release_node(std::move(grad_fn)); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  int64_t n = checked_numel(shape, "empty");
  size_t isz = dtype_size(dtype);
  uint64_t sides = 1;  // the product of the non-zero sides: byte strides must fit even when n == 0
  for (int64_t d : shape) sides *= d ? uint64_t(d) : 1;
  if (sides > uint64_t(INT64_MAX) / isz)
    throw MemoryError("empty: shape " + shape_str(shape) + " needs more bytes than addressable");
  auto impl = std::make_shared<TensorImpl>();
  try {
    impl->storage = Storage::allocate(size_t(n) * isz, device);
  } catch (const MemoryError& e) {  // say which tensor did not fit
    throw MemoryError(detail::concat(e.what(), " for a tensor of shape ", shape_str(shape), " and dtype ",
                                     dtype_name(dtype)));
  }
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::view_of(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl_->storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.impl_->dtype;
  impl->view_root = base.impl_->view_root ? base.impl_->view_root : base.impl_;
  return Tensor(std::move(impl));
}

int64_t Tensor::size(int64_t axis) const {
  return impl_->shape[size_t(normalize_axis(axis, ndim(), "size"))];
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : impl_->shape) n *= d;
  return n;
}

bool Tensor::is_contiguous() const {
  // No elements, no layout: strides of an empty (maybe expanded) tensor do not matter.
  for (int64_t d : impl_->shape)
    if (d == 0) return true;
  int64_t expected = 1;
  for (size_t i = impl_->shape.size(); i-- > 0;) {
    if (impl_->shape[i] == 1) continue;
    if (impl_->strides[i] != expected) return false;
    expected *= impl_->shape[i];
  }
  return true;
}

void Tensor::set_requires_grad(bool value) {
  if (!value && !is_leaf())
    throw RuntimeError("requires_grad can only be cleared on a leaf tensor; use detach()");
  if (value && !is_floating(dtype()))
    throw TypeError(std::string("only floating-point tensors can require gradients, got ") +
                    dtype_name(dtype()));
  impl_->requires_grad = value;
}

// Not a view for autograd: writing into a detached alias leaves every history alone (the
// version counter still catches saved tensors it changes).
Tensor Tensor::detach() const {
  Tensor out = view_of(*this, impl_->shape, impl_->strides, impl_->offset);
  out.impl_->view_root.reset();
  return out;
}

}  // namespace lamina
