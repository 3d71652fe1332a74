// Reductions along axes (empty `axes` = all axes) with keepdims, and their gradients.
#pragma once
#include <optional>
#include <vector>

#include "core/tensor.h"

namespace lamina {

using Axes = std::vector<int64_t>;

Tensor sum(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
Tensor mean(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
// Integer inputs give int64 (like sum); an empty product is 1. The gradient handles zeros.
Tensor prod(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
// Max/min values in a's dtype; NaN propagates; the gradient is split evenly among ties.
// Reducing an empty axis is a ValueError.
Tensor amax(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
Tensor amin(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
// Index (int64) of the first max/min along `axis` (none: of the flattened tensor).
Tensor argmax(const Tensor& a, std::optional<int64_t> axis = std::nullopt, bool keepdims = false);
Tensor argmin(const Tensor& a, std::optional<int64_t> axis = std::nullopt, bool keepdims = false);
// Variance / standard deviation with divisor n - ddof; integer inputs give float32.
Tensor var(const Tensor& a, const Axes& axes = {}, bool keepdims = false, double ddof = 0.0);
Tensor std_dev(const Tensor& a, const Axes& axes = {}, bool keepdims = false, double ddof = 0.0);
// log(sum(exp(a))) over axes, computed stably; integer inputs give float32.
Tensor logsumexp(const Tensor& a, const Axes& axes = {}, bool keepdims = false);
// Sums `g` down to `shape` (the inverse of broadcasting): used by every gradient of a
// broadcasting op.
Tensor sum_to(const Tensor& g, const Shape& shape);
// The shape of reducing `shape` over normalized `axes`.
Shape reduced_shape(const Shape& shape, const Axes& axes, bool keepdims);
// Re-inserts size-1 axes removed by a reduction so a gradient broadcasts back.
Tensor restore_reduced_axes(const Tensor& g, const Shape& input_shape, const Axes& axes, bool keepdims);

}  // namespace lamina
