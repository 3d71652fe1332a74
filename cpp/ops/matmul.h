// Matrix product with numpy semantics: 1-D operands are promoted and the added axis
// removed, leading (batch) axes broadcast.
#pragma once
#include "core/tensor.h"

namespace lamina {

Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace lamina
