#pragma once
#include "core/tensor.h"
#include "cpu/gemm.h"

namespace lamina::cpu {
// out[b] = a[b] @ b_[b] over the broadcast batch axes. a: (..., M, K), b: (..., K, N),
// both already expanded to the output's batch shape (stride-0 axes are fine); out is
// contiguous (..., M, N). Each matrix operand may be row- or column-major (a transposed
// view) and is passed to the GEMM without a copy; other layouts are copied first.
// float32 or float64.
void matmul(const Tensor& out, const Tensor& a, const Tensor& b);

// out (M, N, contiguous) = epilogue(a (M, K) @ b (K, N) + bias (N, contiguous)), float32, in
// one GEMM: the bias and activation are applied to each tile as it leaves the registers.
// a and b may be row- or column-major (copied first otherwise).
void matmul_bias(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias, Epilogue epilogue);
}  // namespace lamina::cpu
