#include "ops/elementwise.h"

#include "core/autograd.h"
#include "core/backend.h"
#include "core/errors.h"
#include "ops/copy.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (a.device() != b.device())
    throw ValueError(detail::concat(op, ": operands are on different devices (", a.device().str(), " and ",
                                    b.device().str(), ")"));
}

void unify_devices(const char* op, Tensor& a, Tensor& b) {
  if (a.device() == b.device()) return;
  GradModeGuard no_grad(false);
  if (a.ndim() == 0 && !is_cuda(a.device())) a = to_device(a, b.device());
  else if (b.ndim() == 0 && !is_cuda(b.device())) b = to_device(b, a.device());
  else check_same_device(op, a, b);
}

Tensor run_binary(cpu::BinaryOp op, const char* name, const Tensor& a_in, const Tensor& b_in, DType compute,
                  bool returns_bool) {
  Tensor a = a_in, b = b_in;
  unify_devices(name, a, b);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  GradModeGuard no_grad(false);
  DType kd = kernel_dtype(compute);
  Tensor ak = astype(a, kd), bk = astype(b, kd);
  Tensor out = Tensor::empty(shape, returns_bool ? DType::Bool : kd, a.device());
  if (is_cuda(out.device())) LAMINA_CUDA_BRANCH(name, cuda::binary(name, op, out, ak, bk));
  else cpu::binary(op, out, ak, bk);
  return (returns_bool || kd == compute) ? out : astype(out, compute);
}

void add_into(const Tensor& dst, const Tensor& src) {
  check<ValueError>(dst.shape() == src.shape(), "add_into: shapes ", shape_str(dst.shape()), " and ",
                    shape_str(src.shape()), " differ");
  check_same_device("add_into", dst, src);
  GradModeGuard no_grad(false);
  // The CUDA binary kernel writes contiguous outputs only; a region of a gradient buffer is
  // a strided view there, so it takes the sum and a strided copy.
  if (kernel_dtype(dst.dtype()) != dst.dtype() || (is_cuda(dst.device()) && !dst.is_contiguous())) {
    copy_(dst, run_binary(cpu::BinaryOp::Add, "add", dst, src, dst.dtype()));
    return;
  }
  // Elementwise with out aliasing a: each element is read before it is written.
  const Tensor s = astype(src, dst.dtype());
  if (is_cuda(dst.device())) LAMINA_CUDA_BRANCH("add", cuda::binary("add", cpu::BinaryOp::Add, dst, dst, s));
  else cpu::binary(cpu::BinaryOp::Add, dst, dst, s);
}

Tensor run_unary(cpu::UnaryOp op, const char* name, const Tensor& a, DType compute, double param,
                 bool returns_bool) {
  GradModeGuard no_grad(false);
  DType kd = kernel_dtype(compute);
  Tensor ak = astype(a, kd);
  Tensor out = Tensor::empty(a.shape(), returns_bool ? DType::Bool : kd, a.device());
  if (is_cuda(out.device())) LAMINA_CUDA_BRANCH(name, cuda::unary(name, op, out, ak, param));
  else cpu::unary(op, out, ak, param);
  return (returns_bool || kd == compute) ? out : astype(out, compute);
}

}  // namespace lamina
