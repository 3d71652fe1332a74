// 2-D max and average pooling over NCHW planes, forward and backward (float32, float64).
// Windows as on the CPU (cpp/cpu/pool.cpp): window (oh, ow) starts at (oh sh - ph, ow sw - pw),
// is clipped to the padded image for the count_include_pad divisor and to the image for the
// elements it reads. Max pooling: NaN wins, the first maximum in row-major window order wins
// ties, and its flat plane index h * W + w is saved for backward.
//
// Kernels (256 threads, grid-stride over elements):
//   max_pool2d_forward_kernel   one thread per output: window maximum and its index.
//   avg_pool2d_forward_kernel   one thread per output: window mean.
//   max_pool2d_backward_kernel  one thread per INPUT element: sums grad_out over the windows
//       that cover it and chose it. Gathering instead of scattering needs no atomics, so the
//       result is deterministic and adds in the CPU's order (windows in row-major order).
//   avg_pool2d_backward_kernel  one thread per input element: sums grad_out / divisor over the
//       covering windows, in the CPU's order.
// Traffic: forward reads each input about (kh / sh) (kw / sw) times (from L1/L2) and writes
// the output (plus an int64 index for max); backward reads grad_out (and indices) for each
// covering window and writes dx once: bandwidth-bound, a few FLOPs per byte.
// Version 1: no shared-memory tiling of the input plane.
#include <algorithm>

#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

struct PoolDims {
  int64_t planes;  // N * C
  int h, w, oh, ow, kh, kw, sh, sw, ph, pw;
};

struct PoolWindow {
  int h0, h1, w0, w1;  // clipped to the image
  int count_padded;    // size clipped to the padded image
};

__device__ __forceinline__ PoolWindow pool_window(const PoolDims& g, int oh, int ow) {
  const int hs = oh * g.sh - g.ph, ws = ow * g.sw - g.pw;
  const int he = min(hs + g.kh, g.h + g.ph), we = min(ws + g.kw, g.w + g.pw);
  return {max(hs, 0), min(he, g.h), max(ws, 0), min(we, g.w), (he - hs) * (we - ws)};
}

template <class T>
__device__ __forceinline__ T pool_divisor(const PoolWindow& w, bool include_pad) {
  const int n = include_pad ? w.count_padded : (w.h1 - w.h0) * (w.w1 - w.w0);
  return T(n > 1 ? n : 1);
}

// The output rows (or columns) whose windows cover input row i: [first, last].
__device__ __forceinline__ void covering(int i, int pad, int k, int stride, int out, int* first, int* last) {
  const int top = i + pad - k;
  *first = top < 0 ? 0 : top / stride + 1;
  *last = min((i + pad) / stride, out - 1);
}

template <class T>
__global__ void __launch_bounds__(256)
    max_pool2d_forward_kernel(PoolDims g, const T* __restrict__ x, T* __restrict__ out,
                              int64_t* __restrict__ indices) {
  const int64_t n = g.planes * g.oh * g.ow;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n; o += int64_t(gridDim.x) * blockDim.x) {
    const int ow = int(o % g.ow), oh = int(o / g.ow % g.oh);
    const T* plane = x + o / (int64_t(g.oh) * g.ow) * g.h * g.w;
    const PoolWindow w = pool_window(g, oh, ow);
    T best = -INFINITY;
    int64_t arg = int64_t(w.h0) * g.w + w.w0;
    bool nan = false;
    for (int h = w.h0; h < w.h1 && !nan; ++h)
      for (int c = w.w0; c < w.w1 && !nan; ++c) {
        const T v = plane[int64_t(h) * g.w + c];
        if (v > best || v != v) {
          best = v;
          arg = int64_t(h) * g.w + c;
          nan = v != v;
        }
      }
    out[o] = best;
    indices[o] = arg;
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    avg_pool2d_forward_kernel(PoolDims g, bool include_pad, const T* __restrict__ x, T* __restrict__ out) {
  const int64_t n = g.planes * g.oh * g.ow;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n; o += int64_t(gridDim.x) * blockDim.x) {
    const int ow = int(o % g.ow), oh = int(o / g.ow % g.oh);
    const T* plane = x + o / (int64_t(g.oh) * g.ow) * g.h * g.w;
    const PoolWindow w = pool_window(g, oh, ow);
    T s = T(0);
    for (int h = w.h0; h < w.h1; ++h)
      for (int c = w.w0; c < w.w1; ++c) s += plane[int64_t(h) * g.w + c];
    out[o] = s / pool_divisor<T>(w, include_pad);
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    max_pool2d_backward_kernel(PoolDims g, const T* __restrict__ gout, const int64_t* __restrict__ indices,
                               T* __restrict__ dx) {
  const int64_t n = g.planes * g.h * g.w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int col = int(i % g.w), row = int(i / g.w % g.h);
    const int64_t plane = i / (int64_t(g.h) * g.w) * g.oh * g.ow, self = int64_t(row) * g.w + col;
    int oh0, oh1, ow0, ow1;
    covering(row, g.ph, g.kh, g.sh, g.oh, &oh0, &oh1);
    covering(col, g.pw, g.kw, g.sw, g.ow, &ow0, &ow1);
    T s = T(0);
    for (int oh = oh0; oh <= oh1; ++oh)
      for (int ow = ow0; ow <= ow1; ++ow) {
        const int64_t o = plane + int64_t(oh) * g.ow + ow;
        if (indices[o] == self) s += gout[o];
      }
    dx[i] = s;
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    avg_pool2d_backward_kernel(PoolDims g, bool include_pad, const T* __restrict__ gout, T* __restrict__ dx) {
  const int64_t n = g.planes * g.h * g.w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int col = int(i % g.w), row = int(i / g.w % g.h);
    const int64_t plane = i / (int64_t(g.h) * g.w) * g.oh * g.ow;
    int oh0, oh1, ow0, ow1;
    covering(row, g.ph, g.kh, g.sh, g.oh, &oh0, &oh1);
    covering(col, g.pw, g.kw, g.sw, g.ow, &ow0, &ow1);
    T s = T(0);
    // Not unrolled: the IEEE division's slow path is a call, and unrolled copies of it spill.
#pragma unroll 1
    for (int oh = oh0; oh <= oh1; ++oh)
#pragma unroll 1
      for (int ow = ow0; ow <= ow1; ++ow)
        s += gout[plane + int64_t(oh) * g.ow + ow] / pool_divisor<T>(pool_window(g, oh, ow), include_pad);
    dx[i] = s;
  }
}

}  // namespace device

namespace {

device::PoolDims pool_dims(const char* name, const cpu::PoolGeometry& g) {
  for (int64_t v : {g.H, g.W, g.OH, g.OW, g.kh, g.kw, g.stride_h, g.stride_w, g.pad_h, g.pad_w})
    check<ValueError>(v < (int64_t(1) << 30), name, ": a size or parameter of 2^30 or more is too large for the CUDA "
                      "pooling kernels");
  check<ValueError>(g.H * g.W < (int64_t(1) << 31), name, ": planes of 2^31 or more elements are too large for "
                    "the CUDA pooling kernels");
  return {g.N * g.C, int(g.H), int(g.W), int(g.OH), int(g.OW), int(g.kh), int(g.kw), int(g.stride_h),
          int(g.stride_w), int(g.pad_h), int(g.pad_w)};
}

template <class F>
void visit_float(const char* name, DType t, F fn) {
  if (t == DType::Float32) return fn(float{});
  if (t == DType::Float64) return fn(double{});
  throw TypeError(std::string(name) + ": the CUDA pooling kernels take float32 or float64, got " + dtype_name(t));
}

}  // namespace

void max_pool2d_forward(const char* name, const cpu::PoolGeometry& g, const Tensor& out, const Tensor& indices,
                        const Tensor& x) {
  if (out.numel() == 0) return;
  const device::PoolDims d = pool_dims(name, g);
  visit_float(name, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    check_launch(simt_launch(device::max_pool2d_forward_kernel<T>, dim3(grid_for(out.numel(), 256)), dim3(256), 0,
                             current_stream(), d, x.data<T>(), out.data<T>(), indices.data<int64_t>()),
                 name, "max_pool2d_forward_kernel launch");
  });
}

void max_pool2d_backward(const char* name, const cpu::PoolGeometry& g, const Tensor& dx, const Tensor& grad_out,
                         const Tensor& indices) {
  if (dx.numel() == 0) return;
  const device::PoolDims d = pool_dims(name, g);
  visit_float(name, dx.dtype(), [&](auto tag) {
    using T = decltype(tag);
    check_launch(simt_launch(device::max_pool2d_backward_kernel<T>, dim3(grid_for(dx.numel(), 256)), dim3(256), 0,
                             current_stream(), d, grad_out.data<T>(), indices.data<int64_t>(), dx.data<T>()),
                 name, "max_pool2d_backward_kernel launch");
  });
}

void avg_pool2d_forward(const char* name, const cpu::PoolGeometry& g, const Tensor& out, const Tensor& x,
                        bool count_include_pad) {
  if (out.numel() == 0) return;
  const device::PoolDims d = pool_dims(name, g);
  visit_float(name, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    check_launch(simt_launch(device::avg_pool2d_forward_kernel<T>, dim3(grid_for(out.numel(), 256)), dim3(256), 0,
                             current_stream(), d, count_include_pad, x.data<T>(), out.data<T>()),
                 name, "avg_pool2d_forward_kernel launch");
  });
}

void avg_pool2d_backward(const char* name, const cpu::PoolGeometry& g, const Tensor& dx, const Tensor& grad_out,
                         bool count_include_pad) {
  if (dx.numel() == 0) return;
  const device::PoolDims d = pool_dims(name, g);
  visit_float(name, dx.dtype(), [&](auto tag) {
    using T = decltype(tag);
    check_launch(simt_launch(device::avg_pool2d_backward_kernel<T>, dim3(grid_for(dx.numel(), 256)), dim3(256), 0,
                             current_stream(), d, count_include_pad, grad_out.data<T>(), dx.data<T>()),
                 name, "avg_pool2d_backward_kernel launch");
  });
}

}  // namespace lamina::cuda
