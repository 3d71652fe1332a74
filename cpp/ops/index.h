// Indexing by arrays: take/gather along an axis, boolean masks, scatter-add and the
// out-of-place updates that `t[key] = v` is built from. Indices are checked (negative
// ones wrap); an out-of-range index is an IndexError.
#pragma once
#include <functional>

#include "core/tensor.h"

namespace lamina {

// numpy.take: out.shape = a.shape[:axis] + indices.shape + a.shape[axis+1:].
Tensor take(const Tensor& a, const Tensor& indices, int64_t axis);
// a[mask] where mask covers axes [axis, axis + mask.ndim): those axes become one axis
// holding the selected positions in row-major order.
Tensor masked_select(const Tensor& a, const Tensor& mask, int64_t axis = 0);
// torch.gather / numpy.take_along_axis: index has a's rank; out.shape = index.shape.
Tensor gather(const Tensor& a, int64_t axis, const Tensor& index);
// A copy of a with src added at index along axis (index and src have the same shape).
Tensor scatter_add(const Tensor& a, int64_t axis, const Tensor& index, const Tensor& src);
Tensor one_hot(const Tensor& indices, int64_t num_classes, DType dtype = DType::Float32);

// Out-of-place updates (differentiable in a and value):
Tensor masked_fill(const Tensor& a, const Tensor& mask, const Tensor& value);  // value broadcast
Tensor index_put(const Tensor& a, const Tensor& indices, const Tensor& value);  // along axis 0
// A copy of a whose region (a view picked by `region_of`) holds value (broadcast).
Tensor put_region(const Tensor& a, const Tensor& value, std::function<Tensor(const Tensor&)> region_of);

}  // namespace lamina
