// Copy with conversion and fill: dst[...] = cast(src[...]) with src broadcast to dst's shape,
// any strides on both sides and any pair of Lamina's eight dtypes; and dst[...] = value.
//
// Kernels: copy_cast_kernel<To, From> (64 instantiations), fill_kernel<T>. Half types convert
// through fp32 (round to nearest even), bool results are "nonzero", as in cpu/copy.cpp.
// Launch: 256 threads per block, grid-stride loop; contiguous operands skip the indexer.
// Traffic: sizeof(From) + sizeof(To) bytes per element, no arithmetic: bandwidth-bound.
// Version 1: scalar loads and stores.
#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

template <class To, class From>
__global__ void __launch_bounds__(256)
    copy_cast_kernel(int64_t n, bool contiguous, Indexer is, const From* __restrict__ src, Indexer id,
                     To* __restrict__ dst) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if (contiguous) dst[i] = convert<To>(src[i]);
    else dst[id.offset(i)] = convert<To>(src[is.offset(i)]);
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    fill_kernel(int64_t n, bool contiguous, Indexer id, double value, T* __restrict__ dst) {
  const T v = convert<T>(value);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[contiguous ? i : id.offset(i)] = v;
}

}  // namespace device

namespace {
constexpr int kThreads = 256;
}

void copy_cast(const char* name, const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const device::Indexer is = make_indexer(src, dst.shape(), name), id = make_indexer(dst, dst.shape(), name);
  const bool contiguous = dst.is_contiguous() && src.is_contiguous() && src.shape() == dst.shape();
  const dim3 grid(grid_for(n, kThreads)), block(kThreads);
  const cudaError_t status = visit_device_dtype(dst.dtype(), [&](auto to_tag) {
    using To = decltype(to_tag);
    return visit_device_dtype(src.dtype(), [&](auto from_tag) {
      using From = decltype(from_tag);
      return simt_launch(device::copy_cast_kernel<To, From>, grid, block, 0, current_stream(), n, contiguous, is,
                         static_cast<const From*>(src.raw_data()), id, static_cast<To*>(dst.raw_data()));
    });
  });
  check_launch(status, name, "copy_cast_kernel launch");
}

void fill(const char* name, const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const device::Indexer id = make_indexer(dst, dst.shape(), name);
  const dim3 grid(grid_for(n, kThreads)), block(kThreads);
  const cudaError_t status = visit_device_dtype(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::fill_kernel<T>, grid, block, 0, current_stream(), n, dst.is_contiguous(), id, value,
                       static_cast<T*>(dst.raw_data()));
  });
  check_launch(status, name, "fill_kernel launch");
}

}  // namespace lamina::cuda
