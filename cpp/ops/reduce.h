// Reductions along axes (empty `axes` = all axes) with keepdims, and their gradients.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace lamina {

using Axes = std::vector<int64_t>;

Tensor sum(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
Tensor mean(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
// Sums `g` down to `shape` (the inverse of broadcasting): used by every gradient of a
// broadcasting op.
Tensor sum_to(const Tensor& g, const Shape& shape);
// The shape of reducing `shape` over normalized `axes`.
Shape reduced_shape(const Shape& shape, const Axes& axes, bool keepdims);
// Re-inserts size-1 axes removed by a reduction so a gradient broadcasts back.
Tensor restore_reduced_axes(const Tensor& g, const Shape& input_shape, const Axes& axes, bool keepdims);

}  // namespace lamina
