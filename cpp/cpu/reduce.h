#pragma once
#include <vector>

#include "core/tensor.h"

namespace lamina::cpu {

// out (contiguous, kept axes only) = sum of `in` over `axes`; out's dtype is the
// accumulation dtype chosen by the op (float32/float64/int64).
void sum(const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes);

}  // namespace lamina::cpu
