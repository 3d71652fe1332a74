// Indexing along one axis: take / index_add (whole rows picked by a list of indices, the
// embedding lookup and its gradient) and gather / scatter_add (numpy's take_along_axis and
// its adjoint). All operands are contiguous; indices are int64, already checked and wrapped
// into range by the op (a bad index is a Python IndexError raised before any launch).
//
// Kernels (256 threads per block, grid-stride loops, one thread per element):
//   take_kernel<T>         out[pre, j, post] = a[pre, idx[j], post]; any dtype.
//   index_add_kernel<T>    out[pre, idx[j], post] += src[pre, j, post]; atomic adds.
//   gather_kernel<T>       out[i] = a[i with coordinate `axis` replaced by index[i]].
//   scatter_add_kernel<T>  out[i with coordinate `axis` replaced by index[i]] += src[i]; atomic.
// Atomics exist for float32, float64, int32 and int64 outputs (the ops widen uint8/bool
// accumulations to int64). Repeated indices add in whatever order the threads run, so float
// results are not bitwise deterministic (a sum differs from the CPU's in its last bits).
// Traffic: one read and one write per element, plus the index: bandwidth-bound; heavily
// repeated indices (a small vocabulary) serialise on the atomics of one address.
// Version 1: scalar loads; no sort-and-segment path for heavily repeated indices.
#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd(reinterpret_cast<int*>(p), int(v)); }
// Two's complement: an unsigned 64-bit add is the wrapping signed one.
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}

// Row geometry of take / index_add: (pre, mid, post) of the indexed tensor, n indices.
struct Rows {
  int64_t pre, mid, post, n;
};

template <class T>
__global__ void __launch_bounds__(256)
    take_kernel(Rows g, const int64_t* __restrict__ idx, const T* __restrict__ a, T* __restrict__ out) {
  const int64_t total = g.pre * g.n * g.post;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = i % g.post, j = (i / g.post) % g.n, p = i / (g.post * g.n);
    out[i] = a[(p * g.mid + idx[j]) * g.post + q];
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    index_add_kernel(Rows g, const int64_t* __restrict__ idx, const T* __restrict__ src, T* __restrict__ out) {
  const int64_t total = g.pre * g.n * g.post;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = i % g.post, j = (i / g.post) % g.n, p = i / (g.post * g.n);
    atomic_add(out + (p * g.mid + idx[j]) * g.post + q, src[i]);
  }
}

// The index tensor's shape and the addressed tensor's contiguous strides.
struct AlongAxis {
  int ndim, axis;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];

  // Offset into the addressed tensor of index element i, whose own coordinate on `axis`
  // is replaced by `at`.
  __device__ __forceinline__ int64_t offset(int64_t i, int64_t at) const {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t c = i % shape[d];
      i /= shape[d];
      off += (d == axis ? at : c) * strides[d];
    }
    return off;
  }
};

template <class T>
__global__ void __launch_bounds__(256)
    gather_kernel(int64_t n, AlongAxis g, const int64_t* __restrict__ index, const T* __restrict__ a,
                  T* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = a[g.offset(i, index[i])];
}

template <class T>
__global__ void __launch_bounds__(256)
    scatter_add_kernel(int64_t n, AlongAxis g, const int64_t* __restrict__ index, const T* __restrict__ src,
                       T* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    atomic_add(out + g.offset(i, index[i]), src[i]);
}

}  // namespace device

namespace {

constexpr int kThreads = 256;

void check_operands(const char* name, std::initializer_list<const Tensor*> ts, const Tensor& idx) {
  for (const Tensor* t : ts)
    check<RuntimeError>(t->is_contiguous(), name, ": index kernels take contiguous operands");
  check<RuntimeError>(idx.is_contiguous() && idx.dtype() == DType::Int64, name, ": indices must be contiguous int64");
}

device::Rows rows_of(const Shape& s, int64_t axis, int64_t n) {
  device::Rows g{1, s[size_t(axis)], 1, n};
  for (int64_t d = 0; d < int64_t(s.size()); ++d) {
    if (d < axis) g.pre *= s[size_t(d)];
    if (d > axis) g.post *= s[size_t(d)];
  }
  return g;
}

device::AlongAxis along_axis(const char* name, const Shape& index_shape, const Shape& addressed, int64_t axis) {
  check<ValueError>(index_shape.size() <= size_t(device::kMaxDims), name, ": CUDA kernels take at most ",
                    device::kMaxDims, " dimensions");
  device::AlongAxis g{};
  g.ndim = int(index_shape.size());
  g.axis = int(axis);
  int64_t stride = 1;
  for (int d = g.ndim - 1; d >= 0; --d) {
    g.shape[d] = index_shape[size_t(d)];
    g.strides[d] = stride;
    stride *= addressed[size_t(d)];
  }
  return g;
}

// Calls fn(T{}) for the dtypes with an atomic add.
template <class Fn>
cudaError_t visit_atomic_dtype(const char* name, DType t, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    case DType::Int32: return fn(int32_t{});
    case DType::Int64: return fn(int64_t{});
    default: break;
  }
  throw TypeError(std::string(name) + ": CUDA scatter-adds accumulate float32, float64, int32 or int64, got " +
                  dtype_name(t));
}

}  // namespace

void take(const char* name, const Tensor& out, const Tensor& a, const Tensor& idx, int64_t axis) {
  const device::Rows g = rows_of(a.shape(), axis, idx.numel());
  const int64_t total = g.pre * g.n * g.post;
  if (total == 0) return;  // an empty tensor may report non-contiguous strides
  check_operands(name, {&out, &a}, idx);
  const cudaError_t status = visit_device_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::take_kernel<T>, dim3(grid_for(total, kThreads)), dim3(kThreads), 0, current_stream(),
                       g, idx.data<int64_t>(), a.data<T>(), out.data<T>());
  });
  check_launch(status, name, "take kernel launch");
}

void index_add(const char* name, const Tensor& out, const Tensor& idx, const Tensor& src, int64_t axis) {
  check<TypeError>(out.dtype() == src.dtype(), name, ": index_add needs src in the output's dtype");
  const device::Rows g = rows_of(out.shape(), axis, idx.numel());
  const int64_t total = g.pre * g.n * g.post;
  if (total == 0) return;
  check_operands(name, {&out, &src}, idx);
  const cudaError_t status = visit_atomic_dtype(name, out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::index_add_kernel<T>, dim3(grid_for(total, kThreads)), dim3(kThreads), 0,
                       current_stream(), g, idx.data<int64_t>(), src.data<T>(), out.data<T>());
  });
  check_launch(status, name, "index_add kernel launch");
}

void gather(const char* name, const Tensor& out, const Tensor& a, const Tensor& index, int64_t axis) {
  const int64_t n = index.numel();
  if (n == 0) return;
  check_operands(name, {&out, &a}, index);
  const device::AlongAxis g = along_axis(name, index.shape(), a.shape(), axis);
  const cudaError_t status = visit_device_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::gather_kernel<T>, dim3(grid_for(n, kThreads)), dim3(kThreads), 0, current_stream(),
                       n, g, index.data<int64_t>(), a.data<T>(), out.data<T>());
  });
  check_launch(status, name, "gather kernel launch");
}

void scatter_add(const char* name, const Tensor& out, const Tensor& index, const Tensor& src, int64_t axis) {
  check<TypeError>(out.dtype() == src.dtype(), name, ": scatter_add needs src in the output's dtype");
  const int64_t n = index.numel();
  if (n == 0) return;
  check_operands(name, {&out, &src}, index);
  const device::AlongAxis g = along_axis(name, index.shape(), out.shape(), axis);
  const cudaError_t status = visit_atomic_dtype(name, out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::scatter_add_kernel<T>, dim3(grid_for(n, kThreads)), dim3(kThreads), 0,
                       current_stream(), n, g, index.data<int64_t>(), src.data<T>(), out.data<T>());
  });
  check_launch(status, name, "scatter_add kernel launch");
}

}  // namespace lamina::cuda
