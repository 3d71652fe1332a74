#pragma once
#include "core/tensor.h"
#include "cpu/isa.h"

namespace lamina::cpu {

// One line per op in binary.cpp's table: the functor that computes it.
enum class BinaryOp {
  Add, Sub, Mul, Div, FloorDiv, Mod, Pow, Maximum, Minimum, Atan2,
  GeluErfBackward,  // a * gelu'(b), floating types only: gelu's backward in one pass
  ReluBackward,     // b > 0 ? a : 0: relu's backward in one pass (value ops stay before Eq)
  Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr, LogicalXor,
};

// out = op(a, b); a and b have the compute dtype, broadcast to out's shape. Comparisons
// and logical ops write bool, the rest write the compute dtype.
LAMINA_DUAL_KERNEL(binary, (BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b))

}  // namespace lamina::cpu
