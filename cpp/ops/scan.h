// Scans along one axis: cumsum, with its gradient (a reverse cumsum).
#pragma once
#include <optional>

#include "core/tensor.h"

namespace lamina {

// Running sum along `axis` (none: of the flattened tensor). Integer and bool inputs give
// int64, like numpy.
Tensor cumsum(const Tensor& a, std::optional<int64_t> axis = std::nullopt);

}  // namespace lamina
