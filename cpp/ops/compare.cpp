#include "ops/compare.h"

#include "core/autograd.h"
#include "core/backend.h"
#include "core/errors.h"
#include "ops/arith.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "cpu/select.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

using cpu::BinaryOp;

namespace {
Tensor compare(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  return run_binary(op, name, a, b, promote_types(a.dtype(), b.dtype()), true);
}
}  // namespace

Tensor eq(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Eq, "eq", a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Ne, "ne", a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Lt, "lt", a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Le, "le", a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Gt, "gt", a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Ge, "ge", a, b); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return compare(BinaryOp::LogicalAnd, "logical_and", a, b); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return compare(BinaryOp::LogicalOr, "logical_or", a, b); }
Tensor logical_xor(const Tensor& a, const Tensor& b) { return compare(BinaryOp::LogicalXor, "logical_xor", a, b); }
Tensor logical_not(const Tensor& a) { return run_unary(cpu::UnaryOp::LogicalNot, "logical_not", a, a.dtype(), 0, true); }
Tensor isnan(const Tensor& a) { return run_unary(cpu::UnaryOp::IsNan, "isnan", a, a.dtype(), 0, true); }
Tensor isinf(const Tensor& a) { return run_unary(cpu::UnaryOp::IsInf, "isinf", a, a.dtype(), 0, true); }
Tensor isfinite(const Tensor& a) { return run_unary(cpu::UnaryOp::IsFinite, "isfinite", a, a.dtype(), 0, true); }

Tensor astype_like(const Tensor& mask, DType dtype) {
  GradModeGuard no_grad(false);
  return astype(mask, dtype);
}

Tensor where(const Tensor& cond, const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in, b = b_in;
  unify_devices("where", a, b);
  check_same_device("where", cond, a);
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  DType t = promote_types(a.dtype(), b.dtype());
  Tensor c = astype_like(cond, DType::Bool);
  Tensor out = Tensor::empty(shape, t, a.device());
  {
    GradModeGuard no_grad(false);
    DType kd = kernel_dtype(t);
    Tensor tmp = kd == t ? out : Tensor::empty(shape, kd, a.device());
    if (is_cuda(tmp.device())) LAMINA_CUDA_BRANCH("where", cuda::select("where", tmp, c, astype(a, kd), astype(b, kd)));
    else cpu::select(tmp, c, astype(a, kd), astype(b, kd));
    if (kd != t) out = astype(tmp, t);
  }
  if (needs_grad({&a_in, &b_in})) {
    SavedTensor sc(c);
    Shape sa = a.shape(), sb = b.shape();
    record("where", {a_in, b_in}, out, [sc, sa, sb](const Tensor& g) -> std::vector<Tensor> {
      Tensor zero = zeros({}, g.dtype());
      return {sum_to(where(sc.get(), g, zero), sa), sum_to(where(sc.get(), zero, g), sb)};
    });
  }
  return out;
}

}  // namespace lamina
