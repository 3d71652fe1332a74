#include "ops/elementwise.h"

#include "core/autograd.h"
#include "core/errors.h"
#include "ops/copy.h"

namespace lamina {

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (a.device() != b.device())
    throw ValueError(detail::concat(op, ": operands are on different devices (", a.device().str(), " and ",
                                    b.device().str(), ")"));
}

Tensor run_binary(cpu::BinaryOp op, const char* name, const Tensor& a, const Tensor& b, DType compute,
                  bool returns_bool) {
  check_same_device(name, a, b);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  GradModeGuard no_grad(false);
  DType kd = kernel_dtype(compute);
  Tensor ak = astype(a, kd), bk = astype(b, kd);
  Tensor out = Tensor::empty(shape, returns_bool ? DType::Bool : kd, a.device());
  cpu::binary(op, out, ak, bk);
  return (returns_bool || kd == compute) ? out : astype(out, compute);
}

Tensor run_unary(cpu::UnaryOp op, const char* name, const Tensor& a, DType compute, double param,
                 bool returns_bool) {
  GradModeGuard no_grad(false);
  DType kd = kernel_dtype(compute);
  Tensor ak = astype(a, kd);
  Tensor out = Tensor::empty(a.shape(), returns_bool ? DType::Bool : kd, a.device());
  cpu::unary(op, out, ak, param);
  return (returns_bool || kd == compute) ? out : astype(out, compute);
}

}  // namespace lamina
