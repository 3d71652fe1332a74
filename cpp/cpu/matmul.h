#pragma once
#include "core/tensor.h"

namespace lamina::cpu {
// out[b] = a[b] @ b_[b] for contiguous 3-D operands (batch, M, K) x (batch, K, N),
// float32 or float64.
void batched_matmul(const Tensor& out, const Tensor& a, const Tensor& b);
}  // namespace lamina::cpu
