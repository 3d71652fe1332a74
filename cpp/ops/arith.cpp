#include "ops/arith.h"

#include "core/autograd.h"
#include "core/errors.h"
#include "ops/compare.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/unary.h"

namespace lamina {

using cpu::BinaryOp;

namespace {

void check_numeric(const char* op, const Tensor& a, const Tensor& b) {
  check<TypeError>(a.defined() && b.defined(), op, ": got an undefined tensor");
}

// Arithmetic keeps the promoted dtype; true division and pow of ints go to float32.
DType arith_dtype(const Tensor& a, const Tensor& b) { return promote_types(a.dtype(), b.dtype()); }

Tensor reduce_like(const Tensor& g, const Tensor& like) { return sum_to(g, like.shape()); }

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  check_numeric("add", a, b);
  Tensor out = run_binary(BinaryOp::Add, "add", a, b, arith_dtype(a, b));
  if (needs_grad({&a, &b})) {
    Shape sa = a.shape(), sb = b.shape();
    record("add", {a, b}, out, [sa, sb](const Tensor& g) -> std::vector<Tensor> {
      return {sum_to(g, sa), sum_to(g, sb)};
    });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  check_numeric("sub", a, b);
  check<TypeError>(!(a.dtype() == DType::Bool && b.dtype() == DType::Bool),
                   "sub: subtracting bool tensors is not supported; use logical_xor");
  Tensor out = run_binary(BinaryOp::Sub, "sub", a, b, arith_dtype(a, b));
  if (needs_grad({&a, &b})) {
    Shape sa = a.shape(), sb = b.shape();
    record("sub", {a, b}, out, [sa, sb](const Tensor& g) -> std::vector<Tensor> {
      return {sum_to(g, sa), sum_to(neg(g), sb)};
    });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  check_numeric("mul", a, b);
  Tensor out = run_binary(BinaryOp::Mul, "mul", a, b, arith_dtype(a, b));
  if (needs_grad({&a, &b})) {
    bool ga = a.requires_grad(), gb = b.requires_grad();
    // Save an operand only when the other one needs its gradient, so that `a * constant`
    // does not pin `a` (index_put multiplies by a mask and is then assigned in place).
    SavedTensor sa(gb ? a : Tensor()), sb(ga ? b : Tensor());
    Shape sha = a.shape(), shb = b.shape();
    record("mul", {a, b}, out, [sa, sb, ga, gb, sha, shb](const Tensor& g) -> std::vector<Tensor> {
      return {ga ? sum_to(mul(g, sb.get()), sha) : Tensor(), gb ? sum_to(mul(g, sa.get()), shb) : Tensor()};
    });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  check_numeric("div", a, b);
  DType t = arith_dtype(a, b);
  Tensor out = run_binary(BinaryOp::Div, "div", a, b, is_floating(t) ? t : DType::Float32);
  if (needs_grad({&a, &b})) {
    SavedTensor sa(a), sb(b);
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record("div", {a, b}, out, [sa, sb, ga, gb](const Tensor& g) -> std::vector<Tensor> {
      const Tensor &x = sa.get(), &y = sb.get();
      Tensor gx = div(g, y);
      return {ga ? reduce_like(gx, x) : Tensor(), gb ? reduce_like(neg(div(mul(gx, x), y)), y) : Tensor()};
    });
  }
  return out;
}

Tensor floor_divide(const Tensor& a, const Tensor& b) {
  check_numeric("floor_divide", a, b);
  return run_binary(BinaryOp::FloorDiv, "floor_divide", a, b, arith_dtype(a, b));
}

Tensor remainder(const Tensor& a, const Tensor& b) {
  check_numeric("remainder", a, b);
  Tensor out = run_binary(BinaryOp::Mod, "remainder", a, b, arith_dtype(a, b));
  if (needs_grad({&a, &b})) {
    SavedTensor sa(a), sb(b);
    record("remainder", {a, b}, out, [sa, sb](const Tensor& g) -> std::vector<Tensor> {
      const Tensor &x = sa.get(), &y = sb.get();
      return {reduce_like(g, x), reduce_like(neg(mul(g, floor_divide(x, y))), y)};
    });
  }
  return out;
}

Tensor pow(const Tensor& a, const Tensor& b) {
  check_numeric("pow", a, b);
  Tensor out = run_binary(BinaryOp::Pow, "pow", a, b, arith_dtype(a, b));
  if (needs_grad({&a, &b})) {
    SavedTensor sa(a), sb(b);
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record("pow", {a, b}, out, [sa, sb, ga, gb](const Tensor& g) -> std::vector<Tensor> {
      const Tensor &x = sa.get(), &y = sb.get();
      Tensor gx, gy;
      if (ga) gx = reduce_like(mul(g, mul(y, pow(x, add(y, -1.0)))), x);
      if (gb) {
        // d/dy x^y = x^y log x; taken as 0 where x <= 0 (as PyTorch does for x == 0).
        Tensor positive = gt(x, zeros({}, x.dtype()));
        Tensor safe_x = where(positive, x, ones({}, x.dtype()));
        gy = reduce_like(mul(g, mul(pow(x, y), log(safe_x))), y);
      }
      return {gx, gy};
    });
  }
  return out;
}

namespace {

// Gradient of max/min: to the winner, split evenly on ties.
std::vector<Tensor> extremum_grad(const Tensor& g, const Tensor& x, const Tensor& y, bool is_max) {
  Tensor wins_x = is_max ? gt(x, y) : lt(x, y);
  Tensor tie = eq(x, y);
  DType t = g.dtype();
  Tensor wx = add(astype_like(wins_x, t), mul(astype_like(tie, t), 0.5));
  Tensor wy = rsub(1.0, wx);
  return {sum_to(mul(g, wx), x.shape()), sum_to(mul(g, wy), y.shape())};
}

}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  check_numeric("maximum", a, b);
  Tensor out = run_binary(BinaryOp::Maximum, "maximum", a, b, arith_dtype(a, b));
  if (needs_grad({&a, &b})) {
    SavedTensor sa(a), sb(b);
    record("maximum", {a, b}, out, [sa, sb](const Tensor& g) -> std::vector<Tensor> {
      return extremum_grad(g, sa.get(), sb.get(), true);
    });
  }
  return out;
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  check_numeric("minimum", a, b);
  Tensor out = run_binary(BinaryOp::Minimum, "minimum", a, b, arith_dtype(a, b));
  if (needs_grad({&a, &b})) {
    SavedTensor sa(a), sb(b);
    record("minimum", {a, b}, out, [sa, sb](const Tensor& g) -> std::vector<Tensor> {
      return extremum_grad(g, sa.get(), sb.get(), false);
    });
  }
  return out;
}

Tensor add(const Tensor& a, double b) { return add(a, scalar_tensor(b, a.dtype())); }
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_tensor(b, a.dtype())); }
Tensor rsub(double a, const Tensor& b) { return sub(scalar_tensor(a, b.dtype()), b); }

}  // namespace lamina
