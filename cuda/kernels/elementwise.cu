// Elementwise unary and binary ops: out[i] = op(a[i]) and out[i] = op(a[i], b[i]) over any
// strides, with numpy broadcasting (broadcast operands have stride 0).
//
// Kernels: one per (compute dtype, output dtype), switching on the op (UnaryOp / BinaryOp,
// the enums of cpu/unary.h and cpu/binary.h) per element; the switch is uniform across a
// warp, so it costs a few instructions, not divergence. Contiguous operands skip the index
// arithmetic.
// Launch: 256 threads per block, a grid-stride loop over out.numel().
// Traffic: (operands + 1) * sizeof(T) bytes per element, 1 to ~30 FLOPs: bandwidth-bound.
// Version 1: scalar loads; vectorised (float4) loads for the contiguous case come next.
// Gradients are written with ops (cpp/ops/unary.cpp, arith.cpp), so no backward kernels.
#include "core/errors.h"
#include "core/tensor.h"
#include "cpu/binary.h"
#include "cpu/scalar_rules.h"
#include "cpu/unary.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

using cpu::BinaryOp;
using cpu::UnaryOp;

namespace device {

// Floor division, modulo and integer powers come from cpu/scalar_rules.h, shared with the
// CPU kernels; NaN propagates through relu/maximum/minimum as there.
using cpu::floor_div;
using cpu::int_pow;
using cpu::py_mod;

template <class T>
__device__ __forceinline__ T sigmoid(T x) {  // stable for large |x|
  if (x >= T(0)) return T(1) / (T(1) + exp(-x));
  const T e = exp(x);
  return e / (T(1) + e);
}

template <class T>
__device__ __forceinline__ T unary_value(UnaryOp op, T x, double param) {
  if constexpr (std::is_floating_point_v<T>) {
    const T p = T(param);
    switch (op) {
      case UnaryOp::Neg: return -x;
      case UnaryOp::Abs: return fabs(x);
      case UnaryOp::Sign: return x != x ? x : T((T(0) < x) - (x < T(0)));
      case UnaryOp::Exp: return exp(x);
      case UnaryOp::Log: return log(x);
      case UnaryOp::Log1p: return log1p(x);
      case UnaryOp::Expm1: return expm1(x);
      case UnaryOp::Sqrt: return sqrt(x);
      case UnaryOp::Rsqrt: return T(1) / sqrt(x);
      case UnaryOp::Tanh: return tanh(x);
      case UnaryOp::Sigmoid: return sigmoid(x);
      case UnaryOp::Relu: return x > T(0) || x != x ? x : T(0);
      case UnaryOp::LeakyRelu: return x > 0 ? x : x * p;
      case UnaryOp::Elu: return x > 0 ? x : p * expm1(x);
      case UnaryOp::Selu:
        return T(1.0507009873554805) * (x > 0 ? x : T(1.6732632423543772) * expm1(x));
      case UnaryOp::GeluErf: return T(0.5) * x * (T(1) + erf(x * T(0.7071067811865476)));
      case UnaryOp::GeluTanh:
        return T(0.5) * x * (T(1) + tanh(T(0.7978845608028654) * (x + T(0.044715) * x * x * x)));
      case UnaryOp::Silu: return x * sigmoid(x);
      case UnaryOp::Softplus: return (x > T(0) ? x : T(0)) + log1p(exp(-fabs(x)));
      case UnaryOp::Erf: return erf(x);
      case UnaryOp::Square: return x * x;
      case UnaryOp::Reciprocal: return T(1) / x;
      case UnaryOp::Floor: return floor(x);
      case UnaryOp::Ceil: return ceil(x);
      case UnaryOp::Round: return nearbyint(x);
      default: return x;
    }
  } else {
    switch (op) {
      case UnaryOp::Neg:
        if constexpr (std::is_same_v<T, bool>) return x;
        else return T(0 - static_cast<std::make_unsigned_t<T>>(x));
      case UnaryOp::Abs:
        if constexpr (std::is_same_v<T, bool> || std::is_unsigned_v<T>) return x;
        else return x < 0 ? T(0 - static_cast<std::make_unsigned_t<T>>(x)) : x;
      case UnaryOp::Sign:
        if constexpr (std::is_unsigned_v<T> || std::is_same_v<T, bool>) return T(x != T(0));
        else return T((T(0) < x) - (x < T(0)));
      case UnaryOp::Relu:
        if constexpr (std::is_unsigned_v<T> || std::is_same_v<T, bool>) return x;
        else return x > T(0) ? x : T(0);
      case UnaryOp::Square:
        if constexpr (std::is_same_v<T, bool>) return x;
        else return T(x * x);
      default: return x;  // floor, ceil, round
    }
  }
}

template <class T>
__device__ __forceinline__ bool unary_predicate(UnaryOp op, T x) {
  switch (op) {
    case UnaryOp::LogicalNot: return x == T(0);
    case UnaryOp::IsNan: return x != x;
    case UnaryOp::IsInf:
      if constexpr (std::is_floating_point_v<T>) return isinf(x);
      else return false;
    default:  // IsFinite
      if constexpr (std::is_floating_point_v<T>) return isfinite(x);
      else return true;
  }
}

template <class T>
__device__ __forceinline__ T binary_value(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::Add:
      if constexpr (std::is_same_v<T, bool>) return x || y;
      else return T(x + y);
    case BinaryOp::Sub: return T(x - y);
    case BinaryOp::Mul:
      if constexpr (std::is_same_v<T, bool>) return x && y;
      else return T(x * y);
    case BinaryOp::Div: return T(x / y);
    case BinaryOp::FloorDiv: return floor_div(x, y);
    case BinaryOp::Mod: return py_mod(x, y);
    case BinaryOp::Pow:
      if constexpr (std::is_floating_point_v<T>) return pow(x, y);
      else return int_pow(x, y);
    case BinaryOp::Maximum:
      if constexpr (std::is_floating_point_v<T>) {
        if (x != x || y != y) return x + y;
      }
      return x > y ? x : y;
    case BinaryOp::Minimum:
      if constexpr (std::is_floating_point_v<T>) {
        if (x != x || y != y) return x + y;
      }
      return x < y ? x : y;
    case BinaryOp::GeluErfBackward:  // x * gelu'(y)
      if constexpr (std::is_floating_point_v<T>)
        return x * (T(0.5) * (T(1) + erf(y * T(0.7071067811865476))) + y * T(0.3989422804014327) * exp(T(-0.5) * y * y));
      else return T(0);
    case BinaryOp::ReluBackward: return y > T(0) ? x : T(0);
    default: return T(atan2(double(x), double(y)));  // Atan2
  }
}

template <class T>
__device__ __forceinline__ bool binary_predicate(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::Eq: return x == y;
    case BinaryOp::Ne: return x != y;
    case BinaryOp::Lt: return x < y;
    case BinaryOp::Le: return x <= y;
    case BinaryOp::Gt: return x > y;
    case BinaryOp::Ge: return x >= y;
    case BinaryOp::LogicalAnd: return x != T(0) && y != T(0);
    case BinaryOp::LogicalOr: return x != T(0) || y != T(0);
    default: return (x != T(0)) != (y != T(0));  // LogicalXor
  }
}

// ---- kernels ---------------------------------------------------------------------------------

template <class T, class Out>
__global__ void __launch_bounds__(256)
    unary_forward_kernel(UnaryOp op, double param, int64_t n, bool contiguous, Indexer ia,
                         const T* __restrict__ a, Out* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T x = a[contiguous ? i : ia.offset(i)];
    if constexpr (std::is_same_v<Out, bool> && !std::is_same_v<T, bool>) out[i] = unary_predicate(op, x);
    else out[i] = unary_value(op, x, param);
  }
}

// sin and cos apart: for |x| > ~10^5 the CUDA math library reduces the argument with a
// scratch array in local memory (Payne-Hanek), which the other ops should not carry.
template <class T>
__global__ void __launch_bounds__(256)
    unary_trig_forward_kernel(bool is_cos, int64_t n, bool contiguous, Indexer ia, const T* __restrict__ a,
                              T* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T x = a[contiguous ? i : ia.offset(i)];
    out[i] = is_cos ? cos(x) : sin(x);
  }
}

// The bool-input instantiation serves both value ops and predicates.
__global__ void __launch_bounds__(256)
    unary_bool_forward_kernel(UnaryOp op, bool predicate, int64_t n, bool contiguous, Indexer ia,
                              const bool* __restrict__ a, bool* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const bool x = a[contiguous ? i : ia.offset(i)];
    out[i] = predicate ? unary_predicate(op, x) : unary_value(op, x, 0.0);
  }
}

template <class T, class Out>
__global__ void __launch_bounds__(256)
    binary_forward_kernel(BinaryOp op, int64_t n, bool contiguous, Indexer ia, Indexer ib,
                          const T* __restrict__ a, const T* __restrict__ b, Out* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T x = a[contiguous ? i : ia.offset(i)], y = b[contiguous ? i : ib.offset(i)];
    if constexpr (std::is_same_v<Out, bool>) {
      if constexpr (std::is_same_v<T, bool>) {
        out[i] = op >= BinaryOp::Eq ? binary_predicate(op, x, y) : binary_value(op, x, y);
      } else {
        out[i] = binary_predicate(op, x, y);
      }
    } else {
      out[i] = binary_value(op, x, y);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    select_forward_kernel(int64_t n, Indexer ic, Indexer ia, Indexer ib, const bool* __restrict__ cond,
                          const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = cond[ic.offset(i)] ? a[ia.offset(i)] : b[ib.offset(i)];
}

}  // namespace device

// ---- launchers -------------------------------------------------------------------------------

namespace {

constexpr int kThreads = 256;

bool is_predicate(UnaryOp op) {
  return op == UnaryOp::LogicalNot || op == UnaryOp::IsNan || op == UnaryOp::IsInf || op == UnaryOp::IsFinite;
}

bool dense_like(const Tensor& t, const Tensor& out) { return t.shape() == out.shape() && t.is_contiguous(); }

}  // namespace

void unary(const char* name, UnaryOp op, const Tensor& out, const Tensor& a, double param) {
  const int64_t n = out.numel();
  if (n == 0) return;  // an empty tensor may report non-contiguous strides
  check<RuntimeError>(out.is_contiguous() && n == a.numel(), name, ": output must be contiguous");
  const device::Indexer ia = make_indexer(a, out.shape(), name);
  const bool contiguous = dense_like(a, out);
  const dim3 grid(grid_for(n, kThreads)), block(kThreads);
  cudaError_t status;
  if (a.dtype() == DType::Bool) {
    check<TypeError>(out.dtype() == DType::Bool, name, ": a bool input needs a bool output");
    status = simt_launch(device::unary_bool_forward_kernel, grid, block, 0, current_stream(), op, is_predicate(op), n,
                         contiguous, ia, a.data<bool>(), out.data<bool>());
  } else {
    status = visit_compute_dtype(a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_floating_point_v<T>) {
        if (op == UnaryOp::Sin || op == UnaryOp::Cos)
          return simt_launch(device::unary_trig_forward_kernel<T>, grid, block, 0, current_stream(),
                             op == UnaryOp::Cos, n, contiguous, ia, a.data<T>(), out.data<T>());
      }
      if (out.dtype() == DType::Bool)
        return simt_launch(device::unary_forward_kernel<T, bool>, grid, block, 0, current_stream(), op, param, n,
                           contiguous, ia, a.data<T>(), out.data<bool>());
      return simt_launch(device::unary_forward_kernel<T, T>, grid, block, 0, current_stream(), op, param, n,
                         contiguous, ia, a.data<T>(), out.data<T>());
    });
  }
  check_launch(status, name, "unary_forward_kernel launch");
}

void binary(const char* name, BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) {
  const int64_t n = out.numel();
  if (n == 0) return;
  check<RuntimeError>(out.is_contiguous() && a.dtype() == b.dtype(), name, ": output must be contiguous and operands of one dtype");
  const device::Indexer ia = make_indexer(a, out.shape(), name), ib = make_indexer(b, out.shape(), name);
  const bool contiguous = dense_like(a, out) && dense_like(b, out);
  const dim3 grid(grid_for(n, kThreads)), block(kThreads);
  const cudaError_t status = visit_compute_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (out.dtype() == DType::Bool)
      return simt_launch(device::binary_forward_kernel<T, bool>, grid, block, 0, current_stream(), op, n, contiguous,
                         ia, ib, a.data<T>(), b.data<T>(), out.data<bool>());
    return simt_launch(device::binary_forward_kernel<T, T>, grid, block, 0, current_stream(), op, n, contiguous, ia,
                       ib, a.data<T>(), b.data<T>(), out.data<T>());
  });
  check_launch(status, name, "binary_forward_kernel launch");
}

void select(const char* name, const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  const int64_t n = out.numel();
  if (n == 0) return;
  check<RuntimeError>(out.is_contiguous() && cond.dtype() == DType::Bool && a.dtype() == out.dtype() &&
                          b.dtype() == out.dtype(),
                      name, ": select takes a bool condition and operands of the output's dtype");
  const device::Indexer ic = make_indexer(cond, out.shape(), name), ia = make_indexer(a, out.shape(), name),
                        ib = make_indexer(b, out.shape(), name);
  const cudaError_t status = visit_compute_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::select_forward_kernel<T>, dim3(grid_for(n, kThreads)), dim3(kThreads), 0,
                       current_stream(), n, ic, ia, ib, cond.data<bool>(), a.data<T>(), b.data<T>(), out.data<T>());
  });
  check_launch(status, name, "select_forward_kernel launch");
}

}  // namespace lamina::cuda
