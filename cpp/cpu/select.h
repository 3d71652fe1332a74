#pragma once
#include "core/tensor.h"

namespace lamina::cpu {
// out = cond ? a : b; cond is bool, a and b share out's (compute) dtype; all broadcast.
void select(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b);
}  // namespace lamina::cpu
