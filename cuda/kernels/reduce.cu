// Sum over any set of axes: out[o] = sum over the reduced index r of in[kept(o) + reduced(r)],
// in's strides arbitrary, out contiguous over the kept axes. Mean is sum / count in the op.
//
// Kernels:
//   sum_block_kernel   one block per output (grid-stride over outputs), each thread a strided
//                      partial sum, then shuffles and one shared slot per warp; for long
//                      reductions (R >= 64).
//   sum_serial_kernel  one thread per output, a serial loop; for short reductions.
// Accumulation in the output dtype (float32, float64 or int64).
// Traffic: one read of the input, R / 1 FLOP per byte-ish: bandwidth-bound.
// Version 1: no split of one long reduction over several blocks (a (1, 10^8) sum uses one block).
#include <algorithm>

#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

template <class In, class Acc>
__global__ void __launch_bounds__(256)
    sum_block_kernel(int64_t outputs, int64_t reduced, Indexer kept, Indexer red, const In* __restrict__ in,
                     Acc* __restrict__ out) {
  __shared__ Acc scratch[33];
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {  // uniform across the block
    const In* base = in + kept.offset(o);
    Acc acc = Acc(0);
    for (int64_t r = threadIdx.x; r < reduced; r += blockDim.x) acc += Acc(base[red.offset(r)]);
    acc = block_reduce<false>(acc, scratch);
    if (threadIdx.x == 0) out[o] = acc;
  }
}

template <class In, class Acc>
__global__ void __launch_bounds__(256)
    sum_serial_kernel(int64_t outputs, int64_t reduced, Indexer kept, Indexer red, const In* __restrict__ in,
                      Acc* __restrict__ out) {
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < outputs;
       o += int64_t(gridDim.x) * blockDim.x) {
    const In* base = in + kept.offset(o);
    Acc acc = Acc(0);
    for (int64_t r = 0; r < reduced; ++r) acc += Acc(base[red.offset(r)]);
    out[o] = acc;
  }
}

}  // namespace device

namespace {

// The indexer over the axes in (or not in) `axes`, with in's shape and strides.
device::Indexer sub_indexer(const Tensor& in, const std::vector<int64_t>& axes, bool reduced, const char* name) {
  device::Indexer ix;
  for (int64_t d = 0; d < in.ndim(); ++d) {
    const bool is_reduced = std::find(axes.begin(), axes.end(), d) != axes.end();
    if (is_reduced != reduced) continue;
    check<ValueError>(ix.ndim < device::kMaxDims, name, ": CUDA kernels take at most ", device::kMaxDims,
                      " dimensions");
    ix.shape[ix.ndim] = in.shape()[size_t(d)];
    ix.strides[ix.ndim] = in.strides()[size_t(d)];
    ++ix.ndim;
  }
  return ix;
}

}  // namespace

void sum(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes) {
  const int64_t outputs = out.numel();
  if (outputs == 0) return;
  const device::Indexer kept = sub_indexer(in, axes, false, name), red = sub_indexer(in, axes, true, name);
  int64_t reduced = 1;
  for (int d = 0; d < red.ndim; ++d) reduced *= red.shape[d];
  auto launch = [&](auto in_tag, auto acc_tag) {
    using In = decltype(in_tag);
    using Acc = decltype(acc_tag);
    const In* src = in.data<In>();
    Acc* dst = out.data<Acc>();
    if (reduced >= 64)
      return simt_launch(device::sum_block_kernel<In, Acc>, dim3(grid_for(outputs, 1)), dim3(256), 0,
                         current_stream(), outputs, reduced, kept, red, src, dst);
    return simt_launch(device::sum_serial_kernel<In, Acc>, dim3(grid_for(outputs, 128)), dim3(128), 0,
                       current_stream(), outputs, reduced, kept, red, src, dst);
  };
  cudaError_t status;
  switch (out.dtype()) {
    case DType::Float32:
      check<TypeError>(in.dtype() == DType::Float32, name, ": a float32 sum needs float32 input");
      status = launch(float{}, float{});
      break;
    case DType::Float64:
      check<TypeError>(in.dtype() == DType::Float64, name, ": a float64 sum needs float64 input");
      status = launch(double{}, double{});
      break;
    case DType::Int64:
      status = visit_compute_dtype(in.dtype(), [&](auto tag) -> cudaError_t {
        if constexpr (std::is_floating_point_v<decltype(tag)>)
          throw TypeError(std::string(name) + ": an int64 sum needs integer input");
        else return launch(tag, int64_t{});
      });
      break;
    default: throw TypeError(std::string(name) + ": unsupported accumulation dtype " + dtype_name(out.dtype()));
  }
  check_launch(status, name, "sum kernel launch");
}

}  // namespace lamina::cuda
