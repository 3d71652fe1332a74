// Host launchers of the CUDA kernels, one block per family (cuda/kernels/<family>.cu). Ops
// call them from their device switch (LAMINA_CUDA_BRANCH in core/backend.h); this header
// has no CUDA types, so it compiles in every build. Tensors are on one CUDA device; `name`
// is the user-facing op, used in error messages.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "cpu/binary.h"
#include "cpu/gemm.h"
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

// matmul.cu: out (..., M, N) = epilogue(a (..., M, K) @ b (..., K, N)), one launch over the
// batch. Each operand is contiguous and either the whole batch or one matrix that every batch
// shares. float32/float64: the tiled SIMT GEMM (exact FMA), or for float32 with allow_tf32 the
// TF32 tensor-core GEMM; bfloat16/float16 inputs: the tensor-core GEMM with fp32
// accumulation, out of the input dtype (rounded once). The epilogue (cpu::Epilogue) adds
// `bias` (N values in the accumulator dtype: float32 for 16-bit inputs, else out's dtype) and
// applies relu/gelu_tanh before that rounding.
void matmul(const char* name, const Tensor& out, const Tensor& a, const Tensor& b,
            cpu::Epilogue epilogue = cpu::Epilogue::None, const Tensor& bias = Tensor(), bool allow_tf32 = false);

}  // namespace lamina::cuda

// ---- Reductions other than sum, scans and indexing (device coverage of the index,
// reduction and scan families). Same conventions as above: out contiguous, half inputs
// widened to float32 by the op, integer indices int64, already wrapped into range.
namespace lamina::cuda {

// reduce.cu: out (contiguous, kept axes) = the reduction of in over `axes`, as the cpu::
// kernels of the same name: prod (out float32/float64/int64), extremum (out in's dtype; the
// block must not be empty), arg_extremum (one axis, out int64), variance (out float32/64,
// divisor max(n - ddof, 0)) and logsumexp (out float32/64).
void prod(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes);
void extremum(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes, bool is_max);
void arg_extremum(const char* name, const Tensor& out, const Tensor& in, int64_t axis, bool is_max);
void variance(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes, double ddof);
void logsumexp(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes);

// scan.cu: out (contiguous, in's shape) = running sum of in along `axis` (from the end when
// `reverse`); out float32/float64/int64, floats accumulated in float64 like the CPU.
void cumsum(const char* name, const Tensor& out, const Tensor& in, int64_t axis, bool reverse);

// index.cu, all tensors contiguous:
// take:        out[pre, j, post] = a[pre, idx[j], post] (idx any shape, flattened), any dtype.
// index_add:   out[pre, idx[j], post] += src[pre, j, post].
// gather:      out[i] = a[i with its `axis` coordinate replaced by index[i]], any dtype.
// scatter_add: out[i with its `axis` coordinate replaced by index[i]] += src[i].
// The adds are atomic (float32, float64, int32, int64 outputs): with repeated indices the
// float sums are not bitwise deterministic.
void take(const char* name, const Tensor& out, const Tensor& a, const Tensor& idx, int64_t axis);
void index_add(const char* name, const Tensor& out, const Tensor& idx, const Tensor& src, int64_t axis);
void gather(const char* name, const Tensor& out, const Tensor& a, const Tensor& index, int64_t axis);
void scatter_add(const char* name, const Tensor& out, const Tensor& index, const Tensor& src, int64_t axis);

}  // namespace lamina::cuda
