// Matrix product with numpy semantics: 1-D operands are promoted and the added axis
// removed, leading (batch) axes broadcast.
#pragma once
#include "core/tensor.h"

namespace lamina {

Tensor matmul(const Tensor& a, const Tensor& b);

// Whether float32 matmuls on CUDA devices may use TF32 tensor cores (10-bit mantissa
// products, fp32 accumulation): Highest (the default) keeps exact fp32, High allows TF32.
// The CPU always computes in fp32. matmul and linear read it.
enum class Float32MatmulPrecision { Highest, High };
void set_float32_matmul_precision(Float32MatmulPrecision precision);
Float32MatmulPrecision float32_matmul_precision();

// True when a CUDA GEMM on `operands` may use TF32 (float32 operands, precision High).
bool allow_tf32(DType operands);

}  // namespace lamina
