// Running sum along one axis: out[pre, k, post] = sum over j <= k (j >= k when reversed) of
// in[pre, j, post]. in has any strides; out is contiguous in in's shape.
//
// Kernel: cumsum_kernel, one thread per line (pre, post), the line walked in order with the
// CPU's accumulator (float64 for floating outputs, wrapping int64 otherwise), so results
// match the CPU's to the last bit. Consecutive threads take consecutive `post` positions,
// so the loads of a warp are coalesced when the axis is not the innermost one.
// Traffic: one read and one write per element: bandwidth-bound.
// Version 1: a line is one thread's serial loop; a long innermost axis (few lines) leaves
// the GPU idle. Next: a block-wide scan (decoupled look-back) for lines of >= 1024 elements.
#include <type_traits>

#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

template <class In, class Out>
__global__ void __launch_bounds__(128)
    cumsum_kernel(int64_t lines, int64_t len, int64_t post, bool reverse, Indexer lead, int64_t in_stride,
                  const In* __restrict__ in, Out* __restrict__ out) {
  using Acc = std::conditional_t<std::is_floating_point_v<Out>, double, uint64_t>;
  for (int64_t line = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; line < lines;
       line += int64_t(gridDim.x) * blockDim.x) {
    const In* src = in + lead.offset(line);
    Out* dst = out + (line / post) * len * post + line % post;
    Acc acc = Acc(0);
    for (int64_t j = 0; j < len; ++j) {
      const int64_t k = reverse ? len - 1 - j : j;
      if constexpr (std::is_floating_point_v<Out>) acc += double(src[k * in_stride]);
      else acc += static_cast<uint64_t>(static_cast<int64_t>(src[k * in_stride]));
      dst[k * post] = Out(static_cast<std::conditional_t<std::is_floating_point_v<Out>, double, int64_t>>(acc));
    }
  }
}

}  // namespace device

void cumsum(const char* name, const Tensor& out, const Tensor& in, int64_t axis, bool reverse) {
  const int64_t len = in.shape()[size_t(axis)];
  const int64_t lines = len == 0 ? 0 : in.numel() / len;
  if (lines == 0) return;  // an empty tensor may report non-contiguous strides
  check<RuntimeError>(out.is_contiguous() && out.shape() == in.shape(), name, ": cumsum writes a contiguous output");
  // The indexer over every axis but `axis`, in order, so line = pre * post + q.
  device::Indexer lead;
  int64_t post = 1;
  for (int64_t d = 0; d < in.ndim(); ++d) {
    if (d == axis) continue;
    check<ValueError>(lead.ndim < device::kMaxDims, name, ": CUDA kernels take at most ", device::kMaxDims,
                      " dimensions");
    lead.shape[lead.ndim] = in.shape()[size_t(d)];
    lead.strides[lead.ndim] = in.strides()[size_t(d)];
    ++lead.ndim;
    if (d > axis) post *= in.shape()[size_t(d)];
  }
  const int64_t in_stride = in.strides()[size_t(axis)];
  cudaError_t status = cudaSuccess;
  visit_compute_dtype(in.dtype(), [&](auto in_tag) {
    using In = decltype(in_tag);
    visit_compute_dtype(out.dtype(), [&](auto out_tag) {
      using Out = decltype(out_tag);
      if constexpr (!std::is_same_v<Out, float> && !std::is_same_v<Out, double> && !std::is_same_v<Out, int64_t>)
        throw TypeError(std::string(name) + ": the running sum is float32, float64 or int64");
      else
        status = simt_launch(device::cumsum_kernel<In, Out>, dim3(grid_for(lines, 128)), dim3(128), 0,
                             current_stream(), lines, len, post, reverse, lead, in_stride, in.data<In>(),
                             out.data<Out>());
    });
  });
  check_launch(status, name, "cumsum kernel launch");
}

}  // namespace lamina::cuda
