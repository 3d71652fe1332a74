// Views: new shape/strides over the same storage, with gradients mapped back.
#pragma once
#include <optional>
#include <vector>

#include "core/tensor.h"

namespace lamina {

// One -1 entry is inferred. A view when the strides allow it, otherwise a copy.
Tensor reshape(const Tensor& a, const Shape& shape);
// Like reshape but never copies: raises when the strides do not allow a view.
Tensor view(const Tensor& a, const Shape& shape);
Tensor flatten(const Tensor& a, int64_t start_axis = 0, int64_t end_axis = -1);
Tensor permute(const Tensor& a, const std::vector<int64_t>& axes);
Tensor transpose(const Tensor& a, int64_t axis0, int64_t axis1);
Tensor matrix_transpose(const Tensor& a);  // swaps the last two axes (.T on 2-D, .mT)
Tensor squeeze(const Tensor& a, const std::vector<int64_t>& axes = {});  // empty: all size-1 axes
Tensor unsqueeze(const Tensor& a, int64_t axis);
Tensor expand(const Tensor& a, const Shape& shape);  // broadcast_to; -1 keeps a size
// a[start:stop:step] along one axis (Python slice semantics, already clamped by caller
// or here); a view.
Tensor slice(const Tensor& a, int64_t axis, std::optional<int64_t> start, std::optional<int64_t> stop,
             int64_t step = 1);
// a[..., index, ...] along one axis, removing it; a view.
Tensor select(const Tensor& a, int64_t axis, int64_t index);

}  // namespace lamina
