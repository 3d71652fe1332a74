// Tensor: a cheap handle to a TensorImpl (storage + shape/strides/offset + dtype + autograd
// fields). Copying a Tensor shares the same impl; views get their own impl on shared storage.
#pragma once
#include <memory>
#include <string>

#include "core/dtype.h"
#include "core/shape.h"
#include "core/storage.h"

namespace lamina {

struct Node;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;  // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  bool requires_grad = false;
  bool retains_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  // For a view: the tensor that owns its storage (never itself a view). An in-place write
  // through the view rewrites the root's autograd history too (ops/copy.cpp).
  std::shared_ptr<TensorImpl> view_root;
  ~TensorImpl();
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // A new contiguous tensor with uninitialised memory.
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = {});
  // A view of `base`'s storage with another shape/strides/offset (no autograd link; it
  // remembers base's root for in-place writes).
  static Tensor view_of(const Tensor& base, Shape shape, Shape strides, int64_t offset);
  // The root of a view (the tensor owning the storage), or an undefined tensor.
  Tensor view_root() const { return Tensor(impl_->view_root); }

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  const Shape& shape() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  int64_t ndim() const { return int64_t(impl_->shape.size()); }
  int64_t size(int64_t axis) const;
  int64_t numel() const;
  DType dtype() const { return impl_->dtype; }
  size_t itemsize() const { return dtype_size(impl_->dtype); }
  const Device& device() const { return impl_->storage->device(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl_->storage; }

  void* raw_data() const {
    return static_cast<char*>(impl_->storage->data()) + impl_->offset * int64_t(itemsize());
  }
  template <class T>
  T* data() const { return static_cast<T*>(raw_data()); }

  bool requires_grad() const { return impl_->requires_grad; }
  void set_requires_grad(bool value);
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl_->grad); }
  void set_grad(const Tensor& g) { impl_->grad = g.impl_; }

  // A new handle on the same storage with no autograd history.
  Tensor detach() const;
  uint64_t version() const { return impl_->storage->version(); }
  void bump_version() const { impl_->storage->bump_version(); }
  bool same_impl(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

}  // namespace lamina
