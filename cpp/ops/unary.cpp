#include "ops/unary.h"

#include <cmath>

#include "core/autograd.h"
#include "core/errors.h"
#include "ops/arith.h"
#include "ops/compare.h"
#include "ops/creation.h"
#include "ops/elementwise.h"

namespace lamina {

using cpu::UnaryOp;

namespace {

// Float ops on integer input compute in float32, like PyTorch (numpy would use float64).
DType float_dtype(const Tensor& a) { return is_floating(a.dtype()) ? a.dtype() : DType::Float32; }

Tensor apply(UnaryOp op, const char* name, const Tensor& a, DType compute, double param = 0.0) {
  check<TypeError>(a.defined(), name, ": got an undefined tensor");
  return run_unary(op, name, a, compute, param);
}

Tensor mask_of(const Tensor& cond, DType t) { return astype_like(cond, t); }

// Records a node whose gradient is g * dfdx(x), with x saved.
template <class D>
void record_pointwise(const char* name, const Tensor& a, Tensor& out, D dfdx) {
  if (!needs_grad({&a})) return;
  SavedTensor sa(a);
  record(name, {a}, out, [sa, dfdx](const Tensor& g) -> std::vector<Tensor> { return {mul(g, dfdx(sa.get()))}; });
}

// For ops whose derivative is cheapest from the output y (exp, tanh, sigmoid, sqrt): a
// detached y avoids a node -> output -> node cycle; when differentiating again the
// derivative is rebuilt from x so that the second-order graph is complete.
template <class FromY, class FromX>
void record_from_output(const char* name, const Tensor& a, Tensor& out, FromY from_y, FromX from_x) {
  if (!needs_grad({&a})) return;
  SavedTensor sa(a), sy(out.detach());
  record(name, {a}, out, [sa, sy, from_y, from_x](const Tensor& g) -> std::vector<Tensor> {
    if (GradMode::is_enabled()) return {mul(g, from_x(sa.get()))};
    return {mul(g, from_y(sy.get()))};
  });
}

}  // namespace

Tensor neg(const Tensor& a) {
  check<TypeError>(a.dtype() != DType::Bool, "neg: negating a bool tensor is not supported; use logical_not");
  Tensor out = apply(UnaryOp::Neg, "neg", a, a.dtype());
  if (needs_grad({&a})) record("neg", {a}, out, [](const Tensor& g) -> std::vector<Tensor> { return {neg(g)}; });
  return out;
}

Tensor abs(const Tensor& a) {
  Tensor out = apply(UnaryOp::Abs, "abs", a, a.dtype());
  record_pointwise("abs", a, out, [](const Tensor& x) { return sign(x); });
  return out;
}

Tensor sign(const Tensor& a) {
  Tensor out = apply(UnaryOp::Sign, "sign", a, a.dtype());
  if (needs_grad({&a}))
    record("sign", {a}, out, [](const Tensor& g) -> std::vector<Tensor> { return {zeros(g.shape(), g.dtype())}; });
  return out;
}

Tensor exp(const Tensor& a) {
  Tensor out = apply(UnaryOp::Exp, "exp", a, float_dtype(a));
  record_from_output("exp", a, out, [](const Tensor& y) { return y; }, [](const Tensor& x) { return exp(x); });
  return out;
}

Tensor log(const Tensor& a) {
  Tensor out = apply(UnaryOp::Log, "log", a, float_dtype(a));
  record_pointwise("log", a, out, [](const Tensor& x) { return reciprocal(x); });
  return out;
}

Tensor log1p(const Tensor& a) {
  Tensor out = apply(UnaryOp::Log1p, "log1p", a, float_dtype(a));
  record_pointwise("log1p", a, out, [](const Tensor& x) { return reciprocal(add(x, 1.0)); });
  return out;
}

Tensor expm1(const Tensor& a) {
  Tensor out = apply(UnaryOp::Expm1, "expm1", a, float_dtype(a));
  record_from_output("expm1", a, out, [](const Tensor& y) { return add(y, 1.0); },
                     [](const Tensor& x) { return exp(x); });
  return out;
}

Tensor sqrt(const Tensor& a) {
  Tensor out = apply(UnaryOp::Sqrt, "sqrt", a, float_dtype(a));
  record_from_output("sqrt", a, out, [](const Tensor& y) { return div(scalar_tensor(0.5, y.dtype()), y); },
                     [](const Tensor& x) { return mul(rsqrt(x), 0.5); });
  return out;
}

Tensor rsqrt(const Tensor& a) {
  Tensor out = apply(UnaryOp::Rsqrt, "rsqrt", a, float_dtype(a));
  record_pointwise("rsqrt", a, out, [](const Tensor& x) { return mul(div(rsqrt(x), x), -0.5); });
  return out;
}

Tensor sin(const Tensor& a) {
  Tensor out = apply(UnaryOp::Sin, "sin", a, float_dtype(a));
  record_pointwise("sin", a, out, [](const Tensor& x) { return cos(x); });
  return out;
}

Tensor cos(const Tensor& a) {
  Tensor out = apply(UnaryOp::Cos, "cos", a, float_dtype(a));
  record_pointwise("cos", a, out, [](const Tensor& x) { return neg(sin(x)); });
  return out;
}

Tensor tanh(const Tensor& a) {
  Tensor out = apply(UnaryOp::Tanh, "tanh", a, float_dtype(a));
  record_from_output("tanh", a, out, [](const Tensor& y) { return rsub(1.0, square(y)); },
                     [](const Tensor& x) { return rsub(1.0, square(tanh(x))); });
  return out;
}

Tensor sigmoid(const Tensor& a) {
  Tensor out = apply(UnaryOp::Sigmoid, "sigmoid", a, float_dtype(a));
  auto from_y = [](const Tensor& y) { return mul(y, rsub(1.0, y)); };
  record_from_output("sigmoid", a, out, from_y, [from_y](const Tensor& x) { return from_y(sigmoid(x)); });
  return out;
}

Tensor relu(const Tensor& a) {
  Tensor out = apply(UnaryOp::Relu, "relu", a, a.dtype());
  if (!needs_grad({&a})) return out;
  SavedTensor sa(a);
  record("relu", {a}, out, [sa](const Tensor& g) -> std::vector<Tensor> { return {relu_grad(g, sa.get())}; });
  return out;
}

Tensor relu_grad(const Tensor& g, const Tensor& x) {
  if (GradMode::is_enabled()) return mul(g, mask_of(gt(x, zeros({}, x.dtype(), x.device())), g.dtype()));
  return run_binary(cpu::BinaryOp::ReluBackward, "relu", g, x, g.dtype());
}

Tensor leaky_relu(const Tensor& a, double slope) {
  Tensor out = apply(UnaryOp::LeakyRelu, "leaky_relu", a, float_dtype(a), slope);
  record_pointwise("leaky_relu", a, out, [slope](const Tensor& x) {
    Tensor pos = mask_of(gt(x, zeros({}, x.dtype())), x.dtype());
    return add(mul(pos, 1.0 - slope), slope);
  });
  return out;
}

Tensor elu(const Tensor& a, double alpha) {
  Tensor out = apply(UnaryOp::Elu, "elu", a, float_dtype(a), alpha);
  record_pointwise("elu", a, out, [alpha](const Tensor& x) {
    Tensor positive = gt(x, zeros({}, x.dtype()));
    return where(positive, ones({}, x.dtype()), mul(exp(x), alpha));
  });
  return out;
}

Tensor selu(const Tensor& a) {
  constexpr double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
  Tensor out = apply(UnaryOp::Selu, "selu", a, float_dtype(a));
  record_pointwise("selu", a, out, [](const Tensor& x) {
    Tensor positive = gt(x, zeros({}, x.dtype()));
    return where(positive, full({}, scale, x.dtype()), mul(exp(x), alpha * scale));
  });
  return out;
}

Tensor gelu(const Tensor& a, bool tanh_approximation) {
  if (tanh_approximation) {
    Tensor out = apply(UnaryOp::GeluTanh, "gelu", a, float_dtype(a));
    record_pointwise("gelu", a, out, [](const Tensor& x) {
      const double c = 0.7978845608028654, k = 0.044715;
      Tensor x2 = square(x);
      Tensor t = tanh(mul(mul(x, add(mul(x2, k), 1.0)), c));
      Tensor dinner = mul(add(mul(x2, 3.0 * k), 1.0), c);
      return add(mul(add(t, 1.0), 0.5), mul(mul(mul(x, rsub(1.0, square(t))), dinner), 0.5));
    });
    return out;
  }
  Tensor out = apply(UnaryOp::GeluErf, "gelu", a, float_dtype(a));
  if (!needs_grad({&a})) return out;
  SavedTensor sa(a);
  record("gelu", {a}, out, [sa](const Tensor& g) -> std::vector<Tensor> {
    const Tensor& x = sa.get();
    // g * gelu'(x) in one pass; when differentiating again, the composite so that the graph continues.
    if (!GradMode::is_enabled()) return {run_binary(cpu::BinaryOp::GeluErfBackward, "gelu", g, x, float_dtype(x))};
    Tensor cdf = mul(add(erf(mul(x, M_SQRT1_2)), 1.0), 0.5);
    Tensor pdf = mul(exp(mul(square(x), -0.5)), 0.3989422804014327);
    return {mul(g, add(cdf, mul(x, pdf)))};
  });
  return out;
}

Tensor silu(const Tensor& a) {
  Tensor out = apply(UnaryOp::Silu, "silu", a, float_dtype(a));
  record_pointwise("silu", a, out, [](const Tensor& x) {
    Tensor s = sigmoid(x);
    return mul(s, add(mul(x, rsub(1.0, s)), 1.0));
  });
  return out;
}

Tensor softplus(const Tensor& a) {
  Tensor out = apply(UnaryOp::Softplus, "softplus", a, float_dtype(a));
  record_pointwise("softplus", a, out, [](const Tensor& x) { return sigmoid(x); });
  return out;
}

Tensor erf(const Tensor& a) {
  Tensor out = apply(UnaryOp::Erf, "erf", a, float_dtype(a));
  record_pointwise("erf", a, out, [](const Tensor& x) { return mul(exp(neg(square(x))), 1.1283791670955126); });
  return out;
}

Tensor square(const Tensor& a) {
  Tensor out = apply(UnaryOp::Square, "square", a, a.dtype() == DType::Bool ? DType::Bool : a.dtype());
  record_pointwise("square", a, out, [](const Tensor& x) { return mul(x, 2.0); });
  return out;
}

Tensor reciprocal(const Tensor& a) {
  Tensor out = apply(UnaryOp::Reciprocal, "reciprocal", a, float_dtype(a));
  record_pointwise("reciprocal", a, out, [](const Tensor& x) { return neg(reciprocal(square(x))); });
  return out;
}

namespace {
Tensor rounding(UnaryOp op, const char* name, const Tensor& a) {
  Tensor out = apply(op, name, a, a.dtype());
  if (needs_grad({&a}))
    record(name, {a}, out, [](const Tensor& g) -> std::vector<Tensor> { return {zeros(g.shape(), g.dtype())}; });
  return out;
}
}  // namespace

Tensor floor(const Tensor& a) { return rounding(UnaryOp::Floor, "floor", a); }
Tensor ceil(const Tensor& a) { return rounding(UnaryOp::Ceil, "ceil", a); }
Tensor round(const Tensor& a) { return rounding(UnaryOp::Round, "round", a); }

Tensor clip(const Tensor& a, std::optional<double> lo, std::optional<double> hi) {
  check<ValueError>(lo || hi, "clip: at least one of min and max must be given");
  Tensor out = a;
  if (lo) out = maximum(out, scalar_tensor(*lo, a.dtype()));
  if (hi) out = minimum(out, scalar_tensor(*hi, a.dtype()));
  return out;
}

}  // namespace lamina
