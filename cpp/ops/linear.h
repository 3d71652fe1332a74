// The dense-layer op: activation(x @ w + b), one GEMM with a fused bias/activation epilogue
// on the CPU for float32 and on CUDA devices for one floating dtype (what Dense uses),
// composed from matmul / add / relu / gelu otherwise.
#pragma once
#include <string>

#include "core/tensor.h"

namespace lamina {

// x (..., in), w (in, out), b (out,) or undefined; activation "linear" (none), "relu" or
// "gelu_tanh" (GELU, tanh approximation).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, const std::string& activation);

}  // namespace lamina
