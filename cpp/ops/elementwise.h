// What the elementwise op files share: dtype rules, broadcasting, and running a CPU
// kernel with half types widened to float32 (and narrowed back after).
#pragma once
#include "core/tensor.h"
#include "cpu/binary.h"
#include "cpu/unary.h"

namespace lamina {

// The dtype kernels compute in: float16/bfloat16 compute in float32.
inline DType kernel_dtype(DType t) {
  return (t == DType::Float16 || t == DType::BFloat16) ? DType::Float32 : t;
}
// Same device for every operand, or a ValueError naming the op.
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
// `a` and `b` on one device: a 0-d CPU tensor (a scalar) moves to the other's device, as in
// PyTorch; otherwise different devices are a ValueError naming the op.
void unify_devices(const char* op, Tensor& a, Tensor& b);

// out = op(a, b) computed in `compute` (inputs converted, no autograd recorded here).
// Comparisons/logical ops return bool; the rest return `compute`.
Tensor run_binary(cpu::BinaryOp op, const char* name, const Tensor& a, const Tensor& b, DType compute,
                  bool returns_bool = false);
// dst += src in place, in dst's dtype, without recording: the backward engine sums
// gradients with it into buffers nothing else can see. Same shape and device.
void add_into(const Tensor& dst, const Tensor& src);

// out = op(a) computed in `compute`; returns `compute` (or bool).
Tensor run_unary(cpu::UnaryOp op, const char* name, const Tensor& a, DType compute, double param = 0.0,
                 bool returns_bool = false);

}  // namespace lamina
