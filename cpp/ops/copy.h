// Copies and dtype conversion.
#pragma once
#include "core/tensor.h"

namespace lamina {

Tensor astype(const Tensor& a, DType dtype);  // differentiable between float dtypes
Tensor clone(const Tensor& a);                 // differentiable; always new contiguous memory
Tensor contiguous(const Tensor& a);            // `a` itself when already contiguous
// `a` on `device` (differentiable): `a` itself when already there, else a contiguous copy.
Tensor to_device(const Tensor& a, const Device& device);
// dst[...] = src (broadcast, cast), in place; bumps dst's version. Records history like
// any in-place op.
void copy_(const Tensor& dst, const Tensor& src);
// In-place ops share this: refuses leaves that require grad and views of tensors in a graph.
void check_inplace(const Tensor& dst, bool records_grad, const char* op);
// After an in-place op computed `result` out of place, makes `dst` hold it: copies the
// values and rebases dst's autograd history onto result's.
void assign_inplace(const Tensor& dst, const Tensor& result, const char* op);

}  // namespace lamina
