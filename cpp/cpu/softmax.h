#pragma once
#include "core/tensor.h"
#include "cpu/isa.h"

namespace lamina::cpu {

// out (contiguous, in's shape and dtype, float32 or float64) = softmax or log_softmax of
// `in` along `axis`, one fused pass per row: max, sum of exp(x - max), normalise.
LAMINA_DUAL_KERNEL(softmax, (const Tensor& out, const Tensor& in, int64_t axis, bool log))

}  // namespace lamina::cpu
