#pragma once
#include <vector>

#include "core/tensor.h"
#include "cpu/isa.h"

namespace lamina::cpu {

// Every kernel here writes `out` (contiguous, kept axes only) from `in` reduced over
// `axes`; the op chooses out's dtype and converts half types before calling.

// Sum; out's dtype is the accumulation dtype chosen by the op (float32/float64/int64).
LAMINA_DUAL_KERNEL(sum, (const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes))
// Product; same dtype rules as sum. An empty block gives 1.
LAMINA_DUAL_KERNEL(prod, (const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes))
// Max (is_max) or min, in in's dtype; NaN propagates. The block must not be empty.
LAMINA_DUAL_KERNEL(extremum, (const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes, bool is_max))
// Index (int64) of the first max/min along one axis; the first NaN wins, like numpy.
LAMINA_DUAL_KERNEL(arg_extremum, (const Tensor& out, const Tensor& in, int64_t axis, bool is_max))
// Variance with divisor max(n - ddof, 0), by merging per-run two-pass moments (Chan et
// al.) in float64; out is float32 or float64.
LAMINA_DUAL_KERNEL(variance, (const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes, double ddof))
// log(sum(exp(x))) computed stably (running max); an empty block gives -inf.
LAMINA_DUAL_KERNEL(logsumexp, (const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes))

}  // namespace lamina::cpu
