#pragma once
#include "core/tensor.h"
#include "cpu/isa.h"

namespace lamina::cpu {

// One line per op in unary.cpp's table. `param` feeds the ops that take one
// (leaky_relu slope, elu alpha).
enum class UnaryOp {
  Neg, Abs, Sign, Exp, Log, Log1p, Expm1, Sqrt, Rsqrt, Sin, Cos, Tanh, Sigmoid, Relu,
  LeakyRelu, Elu, Selu, GeluErf, GeluTanh, Silu, Softplus, Erf, Square, Reciprocal,
  Floor, Ceil, Round, LogicalNot, IsNan, IsInf, IsFinite,
};

// out = op(a); a has the compute dtype; IsNan/IsInf/IsFinite/LogicalNot write bool.
LAMINA_DUAL_KERNEL(unary, (UnaryOp op, const Tensor& out, const Tensor& a, double param))

}  // namespace lamina::cpu
