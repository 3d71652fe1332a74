// Layer norm and batch norm, forward and backward; the device twins of cpu/norm.cpp, with
// the same contracts (cpu/norm.h): contiguous float32/float64 tensors, statistics in double.
//
// Kernels:
//   layer_norm_forward_kernel     one block per row (grid-stride over rows): block sums of x
//                                 and of (x - mean)^2 in double, then y; saves mean and rstd.
//   layer_norm_backward_kernel    one block per row: sums of g = dy * gamma and g * (x - mean),
//                                 then dx = rstd (g - mean(g) - xhat mean(g xhat)).
//   layer_norm_param_grad_kernel  one thread per column, a serial loop over rows (reads are
//                                 coalesced across the warp's columns): dgamma, dbeta.
//   batch_norm_stats_kernel       one block per channel over its outer * inner elements:
//                                 mean, biased variance, rstd.
//   batch_norm_apply_kernel       elementwise y = (x - mean) * rstd * gamma + beta.
//   batch_norm_reduce_kernel      one block per channel: sum(dy), sum(dy (x - mean)) -> dgamma,
//                                 dbeta and the three per-channel coefficients of dx.
//   batch_norm_dx_kernel          elementwise dx = k0 dy - k1 - k2 (x - mean).
// Block kernels use 128 threads (32 when the reduced length is under 128).
// Traffic: layer norm forward reads x twice from L2/HBM and writes y: bandwidth-bound.
// Version 1: rows are re-read from memory rather than kept in registers; the column sums of
// layer norm are one thread per column (deterministic, no atomics), which is slow for few,
// long columns.
#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

template <class T>
__global__ void __launch_bounds__(128)
    layer_norm_forward_kernel(int64_t rows, int64_t cols, double eps, const T* __restrict__ x,
                              const T* __restrict__ gamma, const T* __restrict__ beta, T* __restrict__ y,
                              T* __restrict__ mean, T* __restrict__ rstd) {
  __shared__ double scratch[33];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {  // uniform across the block
    const T* p = x + r * cols;
    T* q = y + r * cols;
    double s = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += double(p[c]);
    const double m = block_reduce<false>(s, scratch) / double(cols);
    double v = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const double d = double(p[c]) - m;
      v += d * d;
    }
    const double rs = 1.0 / sqrt(block_reduce<false>(v, scratch) / double(cols) + eps);
    if (threadIdx.x == 0) {
      mean[r] = T(m);
      rstd[r] = T(rs);
    }
    const T mt = T(m), rt = T(rs);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      T out = (p[c] - mt) * rt;
      if (gamma) out = out * gamma[c];
      if (beta) out = out + beta[c];
      q[c] = out;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(128)
    layer_norm_backward_kernel(int64_t rows, int64_t cols, const T* __restrict__ dy, const T* __restrict__ x,
                               const T* __restrict__ mean, const T* __restrict__ rstd, const T* __restrict__ gamma,
                               T* __restrict__ dx) {
  __shared__ double scratch[33];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *p = x + r * cols, *d = dy + r * cols;
    T* q = dx + r * cols;
    const T m = mean[r], rs = rstd[r];
    double sg = 0, sgx = 0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const T g = gamma ? d[c] * gamma[c] : d[c];
      sg += double(g);
      sgx += double(g * (p[c] - m));
    }
    sg = block_reduce<false>(sg, scratch);
    sgx = block_reduce<false>(sgx, scratch);
    const T a = T(sg / double(cols)), b = T(sgx / double(cols) * double(rs) * double(rs));
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const T g = gamma ? d[c] * gamma[c] : d[c];
      q[c] = rs * (g - a - (p[c] - m) * b);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(128)
    layer_norm_param_grad_kernel(int64_t rows, int64_t cols, const T* __restrict__ dy, const T* __restrict__ x,
                                 const T* __restrict__ mean, const T* __restrict__ rstd, T* __restrict__ dgamma,
                                 T* __restrict__ dbeta) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    double ag = 0, ab = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const T d = dy[r * cols + c];
      ag += double(d * ((x[r * cols + c] - mean[r]) * rstd[r]));
      ab += double(d);
    }
    if (dgamma) dgamma[c] = T(ag);
    if (dbeta) dbeta[c] = T(ab);
  }
}

// Element k of channel c (k over outer * inner) in a contiguous [outer, C, inner] tensor.
__device__ __forceinline__ int64_t channel_offset(int64_t k, int64_t c, int64_t channels, int64_t inner) {
  return ((k / inner) * channels + c) * inner + k % inner;
}

template <class T>
__global__ void __launch_bounds__(128)
    batch_norm_stats_kernel(int64_t outer, int64_t channels, int64_t inner, double eps, const T* __restrict__ x,
                            T* __restrict__ mean, T* __restrict__ var, T* __restrict__ rstd) {
  __shared__ double scratch[33];
  const int64_t n = outer * inner;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    double s = 0;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) s += double(x[channel_offset(k, c, channels, inner)]);
    const double m = block_reduce<false>(s, scratch) / double(n);
    double q = 0;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
      const double d = double(x[channel_offset(k, c, channels, inner)]) - m;
      q += d * d;
    }
    const double v = block_reduce<false>(q, scratch) / double(n);
    if (threadIdx.x == 0) {
      mean[c] = T(m);
      var[c] = T(v);
      rstd[c] = T(1.0 / sqrt(v + eps));
    }
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    batch_norm_apply_kernel(int64_t total, int64_t channels, int64_t inner, const T* __restrict__ x,
                            const T* __restrict__ mean, const T* __restrict__ rstd, const T* __restrict__ gamma,
                            const T* __restrict__ beta, T* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (i / inner) % channels;
    const T scale = gamma ? rstd[c] * gamma[c] : rstd[c], shift = beta ? beta[c] : T(0);
    y[i] = (x[i] - mean[c]) * scale + shift;
  }
}

// coef: [3, C], the k0, k1, k2 of dx = k0 dy - k1 - k2 (x - mean).
template <class T>
__global__ void __launch_bounds__(128)
    batch_norm_reduce_kernel(int64_t outer, int64_t channels, int64_t inner, const T* __restrict__ dy,
                             const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ rstd,
                             const T* __restrict__ gamma, T* __restrict__ dgamma, T* __restrict__ dbeta,
                             T* __restrict__ coef) {
  __shared__ double scratch[33];
  const int64_t n = outer * inner;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    const T m = mean[c];
    double a = 0, b = 0;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
      const int64_t off = channel_offset(k, c, channels, inner);
      a += double(dy[off]);
      b += double(dy[off] * (x[off] - m));
    }
    a = block_reduce<false>(a, scratch);
    b = block_reduce<false>(b, scratch);
    if (threadIdx.x == 0) {
      const double rs = double(rstd[c]), g = gamma ? double(gamma[c]) : 1.0;
      if (dgamma) dgamma[c] = T(b * rs);
      if (dbeta) dbeta[c] = T(a);
      coef[c] = T(g * rs);
      coef[channels + c] = T(g * rs * a / double(n));
      coef[2 * channels + c] = T(g * rs * rs * rs * b / double(n));
    }
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    batch_norm_dx_kernel(int64_t total, int64_t channels, int64_t inner, const T* __restrict__ dy,
                         const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ coef,
                         T* __restrict__ dx) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (i / inner) % channels;
    dx[i] = coef[c] * dy[i] - coef[channels + c] - coef[2 * channels + c] * (x[i] - mean[c]);
  }
}

}  // namespace device

namespace {

int threads_for(int64_t reduced) { return reduced >= 128 ? 128 : 32; }

}  // namespace

void layer_norm_forward(const char* name, const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                        const Tensor& gamma, const Tensor& beta, double eps) {
  const int64_t cols = x.shape().back(), rows = x.numel() / cols;
  const cudaError_t status = visit_float_dtype(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::layer_norm_forward_kernel<T>, dim3(grid_for(rows, 1)), dim3(threads_for(cols)), 0,
                       current_stream(), rows, cols, eps, x.data<T>(), data_or_null<T>(gamma), data_or_null<T>(beta),
                       y.data<T>(), mean.data<T>(), rstd.data<T>());
  });
  check_launch(status, name, "layer_norm_forward_kernel launch");
}

void layer_norm_backward(const char* name, const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                         const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                         const Tensor& gamma) {
  const int64_t cols = x.shape().back(), rows = x.numel() / cols;
  cudaError_t status = visit_float_dtype(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::layer_norm_backward_kernel<T>, dim3(grid_for(rows, 1)), dim3(threads_for(cols)), 0,
                       current_stream(), rows, cols, dy.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(),
                       data_or_null<T>(gamma), dx.data<T>());
  });
  check_launch(status, name, "layer_norm_backward_kernel launch");
  if (!dgamma.defined() && !dbeta.defined()) return;
  status = visit_float_dtype(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::layer_norm_param_grad_kernel<T>, dim3(grid_for(cols, 128)), dim3(128), 0,
                       current_stream(), rows, cols, dy.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(),
                       data_or_null<T>(dgamma), data_or_null<T>(dbeta));
  });
  check_launch(status, name, "layer_norm_param_grad_kernel launch");
}

void batch_norm_stats(const char* name, const Tensor& mean, const Tensor& var, const Tensor& rstd, const Tensor& x,
                      int64_t outer, int64_t channels, int64_t inner, double eps) {
  const cudaError_t status = visit_float_dtype(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::batch_norm_stats_kernel<T>, dim3(grid_for(channels, 1)),
                       dim3(threads_for(outer * inner)), 0, current_stream(), outer, channels, inner, eps,
                       x.data<T>(), mean.data<T>(), var.data<T>(), rstd.data<T>());
  });
  check_launch(status, name, "batch_norm_stats_kernel launch");
}

void batch_norm_apply(const char* name, const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                      const Tensor& gamma, const Tensor& beta, int64_t outer, int64_t channels, int64_t inner) {
  const int64_t total = outer * channels * inner;
  const cudaError_t status = visit_float_dtype(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::batch_norm_apply_kernel<T>, dim3(grid_for(total, 256)), dim3(256), 0,
                       current_stream(), total, channels, inner, x.data<T>(), mean.data<T>(), rstd.data<T>(),
                       data_or_null<T>(gamma), data_or_null<T>(beta), y.data<T>());
  });
  check_launch(status, name, "batch_norm_apply_kernel launch");
}

void batch_norm_backward(const char* name, const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                         const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                         const Tensor& gamma, int64_t outer, int64_t channels, int64_t inner) {
  const int64_t total = outer * channels * inner;
  Tensor coef = Tensor::empty({3, channels}, x.dtype(), x.device());
  cudaError_t status = visit_float_dtype(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::batch_norm_reduce_kernel<T>, dim3(grid_for(channels, 1)),
                       dim3(threads_for(outer * inner)), 0, current_stream(), outer, channels, inner, dy.data<T>(),
                       x.data<T>(), mean.data<T>(), rstd.data<T>(), data_or_null<T>(gamma), data_or_null<T>(dgamma),
                       data_or_null<T>(dbeta), coef.data<T>());
  });
  check_launch(status, name, "batch_norm_reduce_kernel launch");
  if (!dx.defined() || total == 0) return;
  status = visit_float_dtype(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::batch_norm_dx_kernel<T>, dim3(grid_for(total, 256)), dim3(256), 0, current_stream(),
                       total, channels, inner, dy.data<T>(), x.data<T>(), mean.data<T>(), coef.data<T>(),
                       dx.data<T>());
  });
  check_launch(status, name, "batch_norm_dx_kernel launch");
}

}  // namespace lamina::cuda
