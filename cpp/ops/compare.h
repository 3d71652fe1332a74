// Comparisons, logical ops and selection. None of them has a gradient except `where`
// (to its two value operands).
#pragma once
#include "core/tensor.h"

namespace lamina {

Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_xor(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& a);
Tensor isnan(const Tensor& a);
Tensor isinf(const Tensor& a);
Tensor isfinite(const Tensor& a);
// cond ? a : b with broadcasting over all three.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// `mask` converted to dtype (for multiplying gradients by it).
Tensor astype_like(const Tensor& mask, DType dtype);

}  // namespace lamina
