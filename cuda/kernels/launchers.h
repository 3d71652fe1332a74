// Host launchers of the CUDA kernels, one block per family (cuda/kernels/<family>.cu). Ops
// call them from their device switch (LAMINA_CUDA_BRANCH in core/backend.h); this header
// has no CUDA types, so it compiles in every build. Tensors are on one CUDA device; `name`
// is the user-facing op, used in error messages.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "cpu/binary.h"
#include "cpu/unary.h"

namespace lamina::cuda {

// elementwise.cu: out (contiguous) = op(a) / op(a, b); operands broadcast to out's shape
// with any strides, in the compute dtype (bool outputs for predicates), as cpu::unary/binary.
void unary(const char* name, cpu::UnaryOp op, const Tensor& out, const Tensor& a, double param);
void binary(const char* name, cpu::BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b);

// out (contiguous) = cond ? a : b, all broadcast to out's shape; cond bool, a and b out's dtype.
void select(const char* name, const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b);

// copy.cu: dst[...] = cast(src[...]) with src broadcast to dst (any strides, any dtypes);
// every element of dst = value.
void copy_cast(const char* name, const Tensor& dst, const Tensor& src);
void fill(const char* name, const Tensor& dst, double value);

// reduce.cu: out (contiguous, kept axes) = sum of in over `axes`; out is float32, float64
// or int64 (the op's accumulation dtype), in has out's dtype or a narrower integer one.
void sum(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes);

// softmax.cu: out (contiguous, in's shape) = softmax or log_softmax of in along `axis`.
void softmax(const char* name, const Tensor& out, const Tensor& in, int64_t axis, bool log);

// matmul.cu: out (..., M, N) = a (..., M, K) @ b (..., K, N), batch dims already broadcast.
// float32/float64: the tiled SIMT GEMM (exact fp32 FMA); bfloat16 inputs: the tensor-core
// GEMM with fp32 accumulation, out float32.
void matmul(const char* name, const Tensor& out, const Tensor& a, const Tensor& b);

}  // namespace lamina::cuda
