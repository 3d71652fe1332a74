// AVX-512 copies of the GELU (erf form) forward and backward: the elementwise kernel files
// are compiled for baseline and AVX2 only (see cpu/isa.h), and GELU, an erf and an exp per
// element, is compute-bound there. Same formulas as the unary and binary kernels
// (gelu_erf, gelu_erf_grad in cpu/vmath.h), so the same bits.
#pragma once

#include "core/tensor.h"

namespace lamina::cpu {

// out = gelu(x); returns false (and does nothing) unless the CPU runs AVX-512 kernels and
// both are contiguous float32 of one shape.
bool gelu_erf_rows(const Tensor& out, const Tensor& x);
// out = g * gelu'(x), under the same conditions.
bool gelu_erf_backward_rows(const Tensor& out, const Tensor& g, const Tensor& x);

}  // namespace lamina::cpu
