#include "cpu/binary.h"

#include <cmath>
#include <type_traits>

#include "core/errors.h"
#include "cpu/fast_math.h"
#include "cpu/loops.h"
#include "cpu/scalar_rules.h"
#include "cpu/vmath.h"
#include "cpu/wrapping.h"

namespace lamina::cpu::LAMINA_KERNELS {

namespace {

// GELU's backward, an erf and an exp per element, is compute-bound on this file's AVX2
// vectors: where the CPU has AVX-512, contiguous float32 runs this copy of the same formula
// (same bits).
LAMINA_TARGET_AVX512 void gelu_erf_grad_avx512(const float* __restrict g, const float* __restrict x,
                                               float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_erf_grad(g[i], x[i]);
}

bool gelu_erf_grad_wide(const Tensor& out, const Tensor& g, const Tensor& x) {
  if (!avx512_float_run({&out, &g, &x})) return false;
  const float* gp = g.data<float>();
  const float* xp = x.data<float>();
  float* y = out.data<float>();
  parallel_for(0, x.numel(), kElementwiseGrain,
               [&](int64_t lo, int64_t hi) { gelu_erf_grad_avx512(gp + lo, xp + lo, y + lo, hi - lo); });
  return true;
}

template <class T>
T nan_max(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (a != a || b != b) return a + b;  // NaN propagates, as in numpy.maximum
  }
  return a > b ? a : b;
}
template <class T>
T nan_min(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (a != a || b != b) return a + b;
  }
  return a < b ? a : b;
}

template <class T, class Out, class F>
void run(const Tensor& out, const Tensor& a, const Tensor& b, F f) {
  binary_kernel<T, Out>(out, a, b, f);
}

// Wraps arithmetic so bool operands stay bool (numpy: True + True == True).
template <class T, class F>
auto arith(F f) {
  return [f](T x, T y) -> T { return T(f(x, y)); };
}

template <class T>
void dispatch(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  switch (op) {
    case BinaryOp::Add:
      if constexpr (std::is_same_v<T, bool>) return run<T, T>(out, a, b, [](T x, T y) -> T { return x || y; });
      else return run<T, T>(out, a, b, [](T x, T y) -> T { return wrapping_add(x, y); });
    case BinaryOp::Sub: return run<T, T>(out, a, b, arith<T>([](T x, T y) { return wrapping_sub(x, y); }));
    case BinaryOp::Mul:
      if constexpr (std::is_same_v<T, bool>) return run<T, T>(out, a, b, [](T x, T y) -> T { return x && y; });
      else return run<T, T>(out, a, b, [](T x, T y) -> T { return wrapping_mul(x, y); });
    case BinaryOp::Div: return run<T, T>(out, a, b, [](T x, T y) -> T { return x / y; });
    case BinaryOp::FloorDiv: return run<T, T>(out, a, b, [](T x, T y) { return floor_div(x, y); });
    case BinaryOp::Mod: return run<T, T>(out, a, b, [](T x, T y) { return py_mod(x, y); });
    case BinaryOp::Pow:
      if constexpr (std::is_floating_point_v<T>) return run<T, T>(out, a, b, [](T x, T y) -> T { return std::pow(x, y); });
      else return run<T, T>(out, a, b, [](T x, T y) { return int_pow(x, y); });
    case BinaryOp::Maximum: return run<T, T>(out, a, b, [](T x, T y) { return nan_max(x, y); });
    case BinaryOp::Minimum: return run<T, T>(out, a, b, [](T x, T y) { return nan_min(x, y); });
    case BinaryOp::Atan2:
      return run<T, T>(out, a, b, [](T x, T y) -> T { return T(std::atan2(double(x), double(y))); });
    case BinaryOp::GeluErfBackward:
      if (std::is_same_v<T, float> && gelu_erf_grad_wide(out, a, b)) return;
      if constexpr (std::is_floating_point_v<T>)
        return run<T, T>(out, a, b, [](T g, T x) -> T { return gelu_erf_grad(g, x); });
      else throw TypeError("gelu backward: floating-point operands only");
    case BinaryOp::ReluBackward: return run<T, T>(out, a, b, [](T g, T x) { return x > T(0) ? g : T(0); });
    case BinaryOp::Eq: return run<T, bool>(out, a, b, [](T x, T y) { return x == y; });
    case BinaryOp::Ne: return run<T, bool>(out, a, b, [](T x, T y) { return x != y; });
    case BinaryOp::Lt: return run<T, bool>(out, a, b, [](T x, T y) { return x < y; });
    case BinaryOp::Le: return run<T, bool>(out, a, b, [](T x, T y) { return x <= y; });
    case BinaryOp::Gt: return run<T, bool>(out, a, b, [](T x, T y) { return x > y; });
    case BinaryOp::Ge: return run<T, bool>(out, a, b, [](T x, T y) { return x >= y; });
    case BinaryOp::LogicalAnd: return run<T, bool>(out, a, b, [](T x, T y) { return x != T(0) && y != T(0); });
    case BinaryOp::LogicalOr: return run<T, bool>(out, a, b, [](T x, T y) { return x != T(0) || y != T(0); });
    case BinaryOp::LogicalXor: return run<T, bool>(out, a, b, [](T x, T y) { return (x != T(0)) != (y != T(0)); });
  }
}

}  // namespace

void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  visit_compute_dtype(a.dtype(), [&](auto tag) { dispatch<decltype(tag)>(op, out, a, b); });
}

}  // namespace lamina::cpu::LAMINA_KERNELS
