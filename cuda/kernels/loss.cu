// Softmax cross-entropy from logits and binary cross-entropy with logits, forward and
// backward; the device twins of cpu/loss.cpp, with the same contracts (cpu/loss.h):
// contiguous float32/float64 logits [rows, C], int64 labels [rows] (already checked to lie
// in [0, C)) or dense targets [rows, C], optional class weights [C].
//
// Kernels:
//   softmax_cross_entropy_forward_kernel   one block per row (grid-stride over rows): block
//       max (NaN wins; an all -inf row keeps lse = -inf), block sum of exp(x - max) in
//       double, lse = max + log(sum); the loss w_y (lse - x_y), or for dense targets
//       sum_c w_c t_c (lse - x_c) as a third block sum. The softmax is not stored.
//   softmax_cross_entropy_backward_kernel  one block per row: dlogits = g (exp(x - lse) W - w t)
//       with W = sum_c w_c t_c (1 for sparse labels, where t is one-hot).
//   bce_with_logits_forward_kernel / _backward_kernel  elementwise:
//       max(x, 0) - x t + log1p(exp(-|x|)) and g (sigmoid(x) - t).
// Block kernels use 128 threads (32 for fewer than 128 classes).
// Traffic: 2-3 reads of the logits per row plus one write: bandwidth-bound.
// Version 1: the row is re-read rather than kept in registers.
#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

template <class T>
__global__ void __launch_bounds__(128)
    softmax_cross_entropy_forward_kernel(int64_t rows, int64_t classes, const T* __restrict__ logits,
                                         const int64_t* __restrict__ labels, const T* __restrict__ targets,
                                         const T* __restrict__ weight, T* __restrict__ loss, T* __restrict__ lse) {
  __shared__ T max_scratch[33];
  __shared__ double sum_scratch[33];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {  // uniform across the block
    const T* p = logits + r * classes;
    T m = -INFINITY;
    for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) m = (p[c] > m || p[c] != p[c]) ? p[c] : m;
    m = block_reduce<true>(m, max_scratch);
    if (m == -INFINITY) m = T(0);  // all -inf: lse = -inf, without inf - inf = NaN
    double s = 0;
    for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) s += double(exp(T(p[c] - m)));
    const double l = double(m) + log(block_reduce<false>(s, sum_scratch));
    if (labels) {
      if (threadIdx.x == 0) {
        const int64_t y = labels[r];
        const double w = weight ? double(weight[y]) : 1.0;
        lse[r] = T(l);
        loss[r] = T(w * (l - double(p[y])));
      }
    } else {
      const T* t = targets + r * classes;
      double acc = 0;
      for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
        const double wt = weight ? double(weight[c]) * double(t[c]) : double(t[c]);
        if (wt != 0) acc += wt * (l - double(p[c]));
      }
      acc = block_reduce<false>(acc, sum_scratch);
      if (threadIdx.x == 0) {
        lse[r] = T(l);
        loss[r] = T(acc);
      }
    }
  }
}

template <class T>
__global__ void __launch_bounds__(128)
    softmax_cross_entropy_backward_kernel(int64_t rows, int64_t classes, const T* __restrict__ g,
                                          const T* __restrict__ logits, const T* __restrict__ lse,
                                          const int64_t* __restrict__ labels, const T* __restrict__ targets,
                                          const T* __restrict__ weight, T* __restrict__ dlogits) {
  __shared__ double scratch[33];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* p = logits + r * classes;
    T* q = dlogits + r * classes;
    const T l = lse[r], gr = g[r];
    if (labels) {
      const int64_t y = labels[r];
      const T scale = gr * (weight ? weight[y] : T(1));
      for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
        const T v = scale * exp(T(p[c] - l));
        q[c] = c == y ? v - scale : v;
      }
    } else {
      const T* t = targets + r * classes;
      double tw = 0;
      for (int64_t c = threadIdx.x; c < classes; c += blockDim.x)
        tw += weight ? double(weight[c]) * double(t[c]) : double(t[c]);
      const T scale = gr * T(block_reduce<false>(tw, scratch));
      for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
        const T wt = weight ? gr * weight[c] * t[c] : gr * t[c];
        q[c] = scale * exp(T(p[c] - l)) - wt;
      }
    }
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    bce_with_logits_forward_kernel(int64_t n, const T* __restrict__ x, const T* __restrict__ t, T* __restrict__ loss) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const T v = x[i];
    const T relu = v > 0 ? v : T(0), magnitude = v < 0 ? -v : v;
    loss[i] = relu - v * t[i] + log1p(exp(-magnitude));
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    bce_with_logits_backward_kernel(int64_t n, const T* __restrict__ g, const T* __restrict__ x,
                                    const T* __restrict__ t, T* __restrict__ dx) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dx[i] = g[i] * (T(1) / (T(1) + exp(-x[i])) - t[i]);
}

}  // namespace device

namespace {

const int64_t* labels_or_null(const Tensor& t) { return t.defined() ? t.data<int64_t>() : nullptr; }

}  // namespace

void softmax_cross_entropy_forward(const char* name, const Tensor& loss, const Tensor& lse, const Tensor& logits,
                                   const Tensor& labels, const Tensor& targets, const Tensor& weight) {
  const int64_t classes = logits.shape().back(), rows = logits.numel() / classes;
  const cudaError_t status = visit_float_dtype(logits.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::softmax_cross_entropy_forward_kernel<T>, dim3(grid_for(rows, 1)),
                       dim3(classes >= 128 ? 128 : 32), 0, current_stream(), rows, classes, logits.data<T>(),
                       labels_or_null(labels), data_or_null<T>(targets), data_or_null<T>(weight), loss.data<T>(),
                       lse.data<T>());
  });
  check_launch(status, name, "softmax_cross_entropy_forward_kernel launch");
}

void softmax_cross_entropy_backward(const char* name, const Tensor& dlogits, const Tensor& g, const Tensor& logits,
                                    const Tensor& lse, const Tensor& labels, const Tensor& targets,
                                    const Tensor& weight) {
  const int64_t classes = logits.shape().back(), rows = logits.numel() / classes;
  const cudaError_t status = visit_float_dtype(logits.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::softmax_cross_entropy_backward_kernel<T>, dim3(grid_for(rows, 1)),
                       dim3(classes >= 128 ? 128 : 32), 0, current_stream(), rows, classes, g.data<T>(),
                       logits.data<T>(), lse.data<T>(), labels_or_null(labels), data_or_null<T>(targets),
                       data_or_null<T>(weight), dlogits.data<T>());
  });
  check_launch(status, name, "softmax_cross_entropy_backward_kernel launch");
}

void bce_with_logits_forward(const char* name, const Tensor& loss, const Tensor& x, const Tensor& t) {
  const int64_t n = x.numel();
  const cudaError_t status = visit_float_dtype(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::bce_with_logits_forward_kernel<T>, dim3(grid_for(n, 256)), dim3(256), 0,
                       current_stream(), n, x.data<T>(), t.data<T>(), loss.data<T>());
  });
  check_launch(status, name, "bce_with_logits_forward_kernel launch");
}

void bce_with_logits_backward(const char* name, const Tensor& dx, const Tensor& g, const Tensor& x, const Tensor& t) {
  const int64_t n = x.numel();
  const cudaError_t status = visit_float_dtype(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::bce_with_logits_backward_kernel<T>, dim3(grid_for(n, 256)), dim3(256), 0,
                       current_stream(), n, g.data<T>(), x.data<T>(), t.data<T>(), dx.data<T>());
  });
  check_launch(status, name, "bce_with_logits_backward_kernel launch");
}

}  // namespace lamina::cuda
