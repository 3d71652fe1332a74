#pragma once
#include "core/tensor.h"

namespace lamina::cpu {

// out (contiguous, in's shape) = running sum of `in` along `axis`, from the end when
// `reverse`. out's dtype is the accumulation dtype chosen by the op.
void cumsum(const Tensor& out, const Tensor& in, int64_t axis, bool reverse);

}  // namespace lamina::cpu
