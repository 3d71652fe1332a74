#include "cpu/binary.h"

#include <cmath>
#include <type_traits>

#include "cpu/loops.h"
#include "cpu/wrapping.h"

namespace lamina::cpu::LAMINA_KERNELS {

namespace {

// Integer division and modulo follow Python (floor) semantics; division by zero gives 0
// rather than a hardware trap, and INT_MIN / -1 wraps.
template <class T>
T floor_div(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    // numpy's npy_divmod: consistent with py_mod (a == b * q + r), e.g. -1 // inf == -1.
    if (b == 0) return a / b;
    T mod = std::fmod(a, b);
    T div = (a - mod) / b;
    if (mod != 0 && ((b < 0) != (mod < 0))) div -= T(1);
    if (div == 0) return std::copysign(T(0), a / b);
    T q = std::floor(div);
    return div - q > T(0.5) ? q + T(1) : q;
  } else if constexpr (std::is_same_v<T, bool>) {
    return b ? a : false;
  } else {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return T(0 - static_cast<std::make_unsigned_t<T>>(a));
      T q = a / b;
      if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
      return q;
    } else {
      return a / b;
    }
  }
}

template <class T>
T py_mod(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (b == 0) return std::fmod(a, b);
    T r = std::fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
  } else if constexpr (std::is_same_v<T, bool>) {
    return false;
  } else {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return 0;
      T r = a % b;
      if (r != 0 && ((r < 0) != (b < 0))) r += b;
      return r;
    } else {
      return a % b;
    }
  }
}

template <class T>
T int_pow(T base, T exp) {
  if constexpr (std::is_same_v<T, bool>) {
    return base || !exp;
  } else {
    if constexpr (std::is_signed_v<T>) {
      if (exp < 0) return base == 1 ? 1 : (base == -1 ? ((exp & 1) ? -1 : 1) : 0);
    }
    using U = std::make_unsigned_t<T>;
    U result = 1, b = U(base);
    for (T e = exp; e > 0; e >>= 1) {
      if (e & 1) result *= b;
      b *= b;
    }
    return T(result);
  }
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
