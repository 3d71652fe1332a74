// Fused optimizer updates (SGD with momentum / Nesterov, Adam / AdamW / AMSGrad, RMSprop,
// Adagrad): the device twins of cpu/optim.cpp, one launch per parameter tensor, in place.
// All tensors are contiguous with the parameter's shape and dtype (float32 or float64).
//
// Kernels: <optimizer>_update_kernel, one thread per element (grid-stride, 256 threads).
// Bit-for-bit equal to the CPU kernel and to the composite update of ops/optim.cpp: the
// scalars are rounded to the tensor's dtype on the host exactly as the CPU rounds them, and
// every operation is an explicitly rounded intrinsic (common.cuh: add_rn, mul_rn, ...), so
// nvcc cannot contract a multiply and an add into one FMA (the CPU file builds with
// -ffp-contract=off); division and square root are the correctly rounded IEEE ones.
// Traffic (Adam, float32): 4 reads + 3 writes of 4 bytes per element, ~12 FLOP:
// bandwidth-bound; one pass replaces the composite's ~10 full sweeps.
// Version 1: one launch per parameter (a multi-tensor launch over a pointer table would
// save the per-launch latency for models with many small tensors).
#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

// Weight decay in the dtype: decoupled p -= (lr * wd) * p, or L2 g + wd * p.
template <class T>
struct Decay {
  T wd, lr_wd;
  bool on, decoupled;
};

// The gradient actually used; p is decayed in place when the decay is decoupled.
template <class T>
__device__ __forceinline__ T decayed(T& p, T g, const Decay<T>& d) {
  if (!d.on) return g;
  if (d.decoupled) {
    p = sub_rn(p, mul_rn(d.lr_wd, p));
    return g;
  }
  return add_rn(g, mul_rn(d.wd, p));
}

// numpy.maximum: NaN wins.
template <class T>
__device__ __forceinline__ T nan_max(T a, T b) {
  if (a != a || b != b) return add_rn(a, b);
  return a > b ? a : b;
}

#define LAMINA_FOR_ELEMENTS(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <class T>
struct SgdScalars {
  T lr, momentum;
  Decay<T> decay;
  bool nesterov;
};

template <class T>
__global__ void __launch_bounds__(256)
    sgd_update_kernel(int64_t n, SgdScalars<T> s, T* __restrict__ p, const T* __restrict__ g, T* __restrict__ buf) {
  LAMINA_FOR_ELEMENTS(i, n) {
    T pi = p[i];
    const T gi = decayed(pi, g[i], s.decay);
    if (!buf) {
      p[i] = sub_rn(pi, mul_rn(s.lr, gi));
      continue;
    }
    const T bi = sub_rn(mul_rn(buf[i], s.momentum), mul_rn(s.lr, gi));
    buf[i] = bi;
    p[i] = s.nesterov ? add_rn(pi, sub_rn(mul_rn(s.momentum, bi), mul_rn(s.lr, gi))) : add_rn(pi, bi);
  }
}

template <class T>
struct AdamScalars {
  T beta1, one_minus_beta1, beta2, one_minus_beta2, eps, step_size;
  Decay<T> decay;
};

template <class T>
__global__ void __launch_bounds__(256)
    adam_update_kernel(int64_t n, AdamScalars<T> s, T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m,
                       T* __restrict__ v, T* __restrict__ v_max) {
  LAMINA_FOR_ELEMENTS(i, n) {
    T pi = p[i];
    const T gi = decayed(pi, g[i], s.decay);
    const T mi = add_rn(mul_rn(m[i], s.beta1), mul_rn(s.one_minus_beta1, gi));
    const T vi = add_rn(mul_rn(v[i], s.beta2), mul_rn(s.one_minus_beta2, mul_rn(gi, gi)));
    m[i] = mi;
    v[i] = vi;
    T second = vi;
    if (v_max) {
      second = nan_max(v_max[i], vi);
      v_max[i] = second;
    }
    p[i] = sub_rn(pi, div_rn(mul_rn(s.step_size, mi), add_rn(sqrt_rn(second), s.eps)));
  }
}

template <class T>
struct RmspropScalars {
  T rho, one_minus_rho, lr, eps, momentum;
  Decay<T> decay;
};

template <class T>
__global__ void __launch_bounds__(256)
    rmsprop_update_kernel(int64_t n, RmspropScalars<T> s, T* __restrict__ p, const T* __restrict__ g,
                          T* __restrict__ avg_sq, T* __restrict__ avg_g, T* __restrict__ buf) {
  LAMINA_FOR_ELEMENTS(i, n) {
    T pi = p[i];
    const T gi = decayed(pi, g[i], s.decay);
    const T si = add_rn(mul_rn(avg_sq[i], s.rho), mul_rn(s.one_minus_rho, mul_rn(gi, gi)));
    avg_sq[i] = si;
    T den = si;
    if (avg_g) {
      const T ai = add_rn(mul_rn(avg_g[i], s.rho), mul_rn(s.one_minus_rho, gi));
      avg_g[i] = ai;
      den = sub_rn(si, mul_rn(ai, ai));
    }
    const T inc = div_rn(mul_rn(s.lr, gi), sqrt_rn(add_rn(den, s.eps)));
    if (buf) {
      const T bi = add_rn(mul_rn(buf[i], s.momentum), inc);
      buf[i] = bi;
      p[i] = sub_rn(pi, bi);
    } else {
      p[i] = sub_rn(pi, inc);
    }
  }
}

template <class T>
struct AdagradScalars {
  T lr, eps;
  Decay<T> decay;
};

template <class T>
__global__ void __launch_bounds__(256)
    adagrad_update_kernel(int64_t n, AdagradScalars<T> s, T* __restrict__ p, const T* __restrict__ g,
                          T* __restrict__ acc) {
  LAMINA_FOR_ELEMENTS(i, n) {
    T pi = p[i];
    const T gi = decayed(pi, g[i], s.decay);
    const T ai = add_rn(acc[i], mul_rn(gi, gi));
    acc[i] = ai;
    p[i] = sub_rn(pi, div_rn(mul_rn(s.lr, gi), sqrt_rn(add_rn(ai, s.eps))));
  }
}

#undef LAMINA_FOR_ELEMENTS

}  // namespace device

namespace {

// The decay scalars rounded to T as the CPU kernel rounds them (lr * wd in double first).
template <class T>
device::Decay<T> decay_of(double lr, double weight_decay, bool decoupled) {
  return {T(weight_decay), T(lr * weight_decay), weight_decay != 0, decoupled};
}

template <class Launch>
void launch_update(const char* name, const char* kernel, const Tensor& p, Launch&& launch) {
  const int64_t n = p.numel();
  if (n == 0) return;
  const cudaError_t status = visit_float_dtype(p.dtype(), name, [&](auto tag) {
    return launch(tag, dim3(grid_for(n, 256)), n);
  });
  check_launch(status, name, kernel);
}

}  // namespace

void sgd_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& buf, const cpu::SgdArgs& a) {
  launch_update(name, "sgd_update_kernel launch", p, [&](auto tag, dim3 grid, int64_t n) {
    using T = decltype(tag);
    const device::SgdScalars<T> s{T(a.lr), T(a.momentum), decay_of<T>(a.lr, a.weight_decay, a.decoupled),
                                  a.nesterov};
    return simt_launch(device::sgd_update_kernel<T>, grid, dim3(256), 0, current_stream(), n, s, p.data<T>(),
                       g.data<T>(), a.momentum != 0 ? data_or_null<T>(buf) : nullptr);
  });
}

void adam_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                 const Tensor& v_max, const cpu::AdamArgs& a) {
  launch_update(name, "adam_update_kernel launch", p, [&](auto tag, dim3 grid, int64_t n) {
    using T = decltype(tag);
    const device::AdamScalars<T> s{T(a.beta1),     T(1.0 - a.beta1), T(a.beta2), T(1.0 - a.beta2),
                                   T(a.eps),       T(a.step_size),   decay_of<T>(a.lr, a.weight_decay, a.decoupled)};
    return simt_launch(device::adam_update_kernel<T>, grid, dim3(256), 0, current_stream(), n, s, p.data<T>(),
                       g.data<T>(), m.data<T>(), v.data<T>(), data_or_null<T>(v_max));
  });
}

void rmsprop_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& avg_sq, const Tensor& avg_g,
                    const Tensor& buf, const cpu::RmspropArgs& a) {
  launch_update(name, "rmsprop_update_kernel launch", p, [&](auto tag, dim3 grid, int64_t n) {
    using T = decltype(tag);
    const device::RmspropScalars<T> s{T(a.rho), T(1.0 - a.rho), T(a.lr), T(a.eps), T(a.momentum),
                                      decay_of<T>(a.lr, a.weight_decay, a.decoupled)};
    return simt_launch(device::rmsprop_update_kernel<T>, grid, dim3(256), 0, current_stream(), n, s, p.data<T>(),
                       g.data<T>(), avg_sq.data<T>(), data_or_null<T>(avg_g), data_or_null<T>(buf));
  });
}

void adagrad_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& acc, const cpu::AdagradArgs& a) {
  launch_update(name, "adagrad_update_kernel launch", p, [&](auto tag, dim3 grid, int64_t n) {
    using T = decltype(tag);
    const device::AdagradScalars<T> s{T(a.lr), T(a.eps), decay_of<T>(a.lr, a.weight_decay, a.decoupled)};
    return simt_launch(device::adagrad_update_kernel<T>, grid, dim3(256), 0, current_stream(), n, s, p.data<T>(),
                       g.data<T>(), acc.data<T>());
  });
}

}  // namespace lamina::cuda
