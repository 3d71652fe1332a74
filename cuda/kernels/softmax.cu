// Softmax and log_softmax along one axis: for each row x (the elements along `axis`),
// y = exp(x - max) / sum(exp(x - max)), or x - max - log(sum(exp(x - max))).
//
// Kernel: softmax_forward_kernel, one block per row (grid-stride over rows), three passes
// over the row: block max, block sum of exp, write. In's strides are arbitrary (the row
// stride is in's stride along `axis`); out is contiguous. 128 threads, or 32 for rows
// shorter than 128.
// Traffic: 2 reads + 1 write per element, ~10 FLOPs: bandwidth-bound.
// Version 1: the row is read from global memory twice rather than kept in registers.
// Backward is written with ops (cpp/ops/softmax.cpp), so no backward kernel.
#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

template <class T>
__global__ void __launch_bounds__(128)
    softmax_forward_kernel(int64_t rows, int64_t len, int64_t stride, bool log_out, Indexer row_in,
                           const T* __restrict__ in, T* __restrict__ out) {
  __shared__ T scratch[33];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {  // uniform across the block
    const T* x = in + row_in.offset(row);
    T* y = out + row * len;  // out is contiguous and `axis` is moved last in the row index
    T m = -INFINITY;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
      const T v = x[i * stride];
      m = (v > m || v != v) ? v : m;
    }
    m = block_reduce<true>(m, scratch);
    T s = T(0);
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) s += exp(x[i * stride] - m);
    s = block_reduce<false>(s, scratch);
    const T log_s = log(s), inv_s = T(1) / s;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
      const T v = x[i * stride] - m;
      y[i] = log_out ? v - log_s : exp(v) * inv_s;
    }
  }
}

// Writes the contiguous output of a row-major (rows, len) result back into out's layout
// when `axis` is not last: out[o] = tmp[row(o), i(o)].
template <class T>
__global__ void __launch_bounds__(256)
    move_axis_kernel(int64_t n, Indexer tmp_of_out, const T* __restrict__ tmp, T* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = tmp[tmp_of_out.offset(i)];
}

}  // namespace device

void softmax(const char* name, const Tensor& out, const Tensor& in, int64_t axis, bool log) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const int64_t len = in.shape()[size_t(axis)], rows = n / len;
  check<ValueError>(in.ndim() <= device::kMaxDims, name, ": CUDA kernels take at most ", device::kMaxDims,
                    " dimensions");
  // Rows are numbered over the other axes in order; the row's elements are contiguous in
  // the kernel's output, so when `axis` is not last a second kernel moves it into place.
  device::Indexer row_in;
  for (int64_t d = 0; d < in.ndim(); ++d) {
    if (d == axis) continue;
    row_in.shape[row_in.ndim] = in.shape()[size_t(d)];
    row_in.strides[row_in.ndim] = in.strides()[size_t(d)];
    ++row_in.ndim;
  }
  const bool axis_last = axis == in.ndim() - 1 || rows == 1;
  const int threads = len >= 128 ? 128 : 32;
  const cudaError_t status = visit_compute_dtype(in.dtype(), [&](auto tag) -> cudaError_t {
    using T = decltype(tag);
    if constexpr (!std::is_floating_point_v<T>) {
      throw TypeError(std::string(name) + ": expected a float32 or float64 input");
    } else {
      if (axis_last)
        return simt_launch(device::softmax_forward_kernel<T>, dim3(grid_for(rows, 1)), dim3(threads), 0,
                           current_stream(), rows, len, in.strides()[size_t(axis)], log, row_in, in.data<T>(),
                           out.data<T>());
      Tensor tmp = Tensor::empty(out.shape(), out.dtype(), out.device());
      cudaError_t s = simt_launch(device::softmax_forward_kernel<T>, dim3(grid_for(rows, 1)), dim3(threads), 0,
                                  current_stream(), rows, len, in.strides()[size_t(axis)], log, row_in,
                                  in.data<T>(), tmp.data<T>());
      if (s != cudaSuccess) return s;
      // out index (d0, ..., dk) reads tmp[row * len + i] with i = d_axis.
      device::Indexer tmp_of_out;
      tmp_of_out.ndim = int(out.ndim());
      int64_t row_stride = len;
      for (int64_t d = out.ndim() - 1; d >= 0; --d) {
        tmp_of_out.shape[d] = out.shape()[size_t(d)];
        if (d == axis) {
          tmp_of_out.strides[d] = 1;
        } else {
          tmp_of_out.strides[d] = row_stride;
          row_stride *= out.shape()[size_t(d)];
        }
      }
      return simt_launch(device::move_axis_kernel<T>, dim3(grid_for(n, 256)), dim3(256), 0, current_stream(), n,
                         tmp_of_out, tmp.data<T>(), out.data<T>());
    }
  });
  check_launch(status, name, "softmax_forward_kernel launch");
}

}  // namespace lamina::cuda
