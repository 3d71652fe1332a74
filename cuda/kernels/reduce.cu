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
//
// The other reductions (prod, max/min, argmax/argmin, var, logsumexp) share one pair of
// kernels over a Reducer (a state per thread: init / add / merge / finish):
//   reduce_block_kernel   one block per output; thread t folds r = t, t + 256, ...; the 256
//                         states merge in a fixed shared-memory tree, so the result does not
//                         depend on the order threads run in; for R >= 64.
//   reduce_serial_kernel  one thread per output, r in order; for short reductions.
// Each Reducer matches its CPU twin (cpu/reduce.cpp): NaN propagates (argmax/argmin: the
// first NaN's index), ties of argmax/argmin go to the lowest index, var merges (count, mean,
// M2) in float64 (Chan et al.), logsumexp merges (max, sum of exp(x - max)) in float64,
// integer products wrap.
// Version 1: no split of one long reduction over several blocks (a (1, 10^8) sum uses one block).
#include <algorithm>
#include <type_traits>

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

template <class T>
__device__ __forceinline__ bool is_nan(T v) {
  return v != v;
}

// Product in Acc; integers multiply as unsigned so that overflow wraps as on the CPU.
template <class Acc>
struct ProdReducer {
  using State = Acc;
  __device__ State init() const { return Acc(1); }
  __device__ static Acc mul(Acc a, Acc b) {
    if constexpr (std::is_integral_v<Acc>)
      return Acc(static_cast<std::make_unsigned_t<Acc>>(a) * static_cast<std::make_unsigned_t<Acc>>(b));
    else return a * b;
  }
  template <class In>
  __device__ void add(State& s, In v, int64_t) const {
    s = mul(s, Acc(v));
  }
  __device__ void merge(State& s, const State& o) const { s = mul(s, o); }
  __device__ Acc finish(const State& s, int64_t) const { return s; }
};

// Max or min; a NaN sticks. `count` is the number of elements folded (never 0 at finish).
template <class T, bool kMax>
struct ExtremumReducer {
  struct State {
    T best;
    int64_t count;
  };
  __device__ State init() const { return {T(0), 0}; }
  __device__ void add(State& s, T v, int64_t) const { merge(s, State{v, 1}); }
  __device__ void merge(State& s, const State& o) const {
    if (o.count == 0) return;
    if (s.count == 0 || (!is_nan(s.best) && (is_nan(o.best) || (kMax ? o.best > s.best : o.best < s.best))))
      s.best = o.best;
    s.count += o.count;
  }
  __device__ T finish(const State& s, int64_t) const { return s.best; }
};

// Index of the first max (min); the first NaN wins. States from any subset merge by value,
// then by lower index, so the fold order does not matter.
template <class T, bool kMax>
struct ArgReducer {
  struct State {
    T best;
    int64_t index;
  };
  __device__ State init() const { return {T(0), -1}; }
  __device__ void add(State& s, T v, int64_t r) const { merge(s, State{v, r}); }
  __device__ void merge(State& s, const State& o) const {
    if (o.index < 0) return;
    if (s.index < 0) { s = o; return; }
    const bool s_nan = is_nan(s.best), o_nan = is_nan(o.best);
    bool take;
    if (s_nan || o_nan) take = o_nan && (!s_nan || o.index < s.index);
    else if (o.best == s.best) take = o.index < s.index;
    else take = kMax ? o.best > s.best : o.best < s.best;
    if (take) s = o;
  }
  __device__ int64_t finish(const State& s, int64_t) const { return s.index; }
};

// Count, mean and sum of squared deviations in float64; divisor max(count - ddof, 0).
template <class Out>
struct VarReducer {
  double ddof;
  struct State {
    double n, mean, m2;
  };
  __device__ State init() const { return {0.0, 0.0, 0.0}; }
  template <class In>
  __device__ void add(State& s, In v, int64_t) const {
    const double x = double(v);
    s.n += 1;
    const double delta = x - s.mean;
    s.mean += delta / s.n;
    s.m2 += delta * (x - s.mean);
  }
  __device__ void merge(State& s, const State& o) const {
    if (o.n == 0) return;
    const double total = s.n + o.n, delta = o.mean - s.mean;
    s.mean += delta * (o.n / total);
    s.m2 += o.m2 + delta * delta * (s.n * o.n / total);
    s.n = total;
  }
  __device__ Out finish(const State& s, int64_t count) const {
    if (count == 0) return Out(nan(""));
    const double divisor = double(count) - ddof;
    return Out(s.m2 / (divisor > 0 ? divisor : 0.0));
  }
};

// Running (max, sum of exp(x - max)) in float64; NaN sticks, +inf wins, all -inf gives -inf.
template <class Out>
struct LogSumExpReducer {
  struct State {
    double max, sum;
  };
  __device__ State init() const { return {-INFINITY, 0.0}; }
  template <class In>
  __device__ void add(State& s, In v, int64_t) const {
    merge(s, State{double(v), 1.0});
  }
  __device__ void merge(State& s, const State& o) const {
    if (is_nan(s.max)) return;
    if (is_nan(o.max)) { s.max = o.max; return; }
    if (o.max == -INFINITY) return;
    if (o.max > s.max) {
      s.sum = (s.max == -INFINITY ? 0.0 : s.sum * exp(s.max - o.max)) + o.sum;
      s.max = o.max;
    } else {
      s.sum += o.max == s.max ? o.sum : o.sum * exp(o.max - s.max);
    }
  }
  __device__ Out finish(const State& s, int64_t) const {
    if (is_nan(s.max) || isinf(s.max)) return Out(s.max);
    return Out(s.max + log(s.sum));
  }
};

constexpr int kReduceThreads = 256;

template <class Reducer, class In, class Out>
__global__ void __launch_bounds__(kReduceThreads)
    reduce_block_kernel(Reducer reducer, int64_t outputs, int64_t reduced, Indexer kept, Indexer red,
                        const In* __restrict__ in, Out* __restrict__ out) {
  __shared__ typename Reducer::State states[kReduceThreads];
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {  // uniform across the block
    const In* base = in + kept.offset(o);
    typename Reducer::State s = reducer.init();
    for (int64_t r = threadIdx.x; r < reduced; r += blockDim.x) reducer.add(s, base[red.offset(r)], r);
    states[threadIdx.x] = s;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (int(threadIdx.x) < stride) reducer.merge(states[threadIdx.x], states[threadIdx.x + stride]);
      __syncthreads();
    }
    if (threadIdx.x == 0) out[o] = reducer.finish(states[0], reduced);
    __syncthreads();  // the next output reuses states
  }
}

template <class Reducer, class In, class Out>
__global__ void __launch_bounds__(128)
    reduce_serial_kernel(Reducer reducer, int64_t outputs, int64_t reduced, Indexer kept, Indexer red,
                         const In* __restrict__ in, Out* __restrict__ out) {
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < outputs;
       o += int64_t(gridDim.x) * blockDim.x) {
    const In* base = in + kept.offset(o);
    typename Reducer::State s = reducer.init();
    for (int64_t r = 0; r < reduced; ++r) reducer.add(s, base[red.offset(r)], r);
    out[o] = reducer.finish(s, reduced);
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

template <class In, class Out, class Reducer>
void run_reduction(const char* name, const char* kernel, Reducer reducer, const Tensor& out, const Tensor& in,
                   const std::vector<int64_t>& axes) {
  const int64_t outputs = out.numel();
  if (outputs == 0) return;
  const device::Indexer kept = sub_indexer(in, axes, false, name), red = sub_indexer(in, axes, true, name);
  int64_t reduced = 1;
  for (int d = 0; d < red.ndim; ++d) reduced *= red.shape[d];
  const In* src = in.data<In>();
  Out* dst = out.data<Out>();
  cudaError_t status;
  if (reduced >= 64)
    status = simt_launch(device::reduce_block_kernel<Reducer, In, Out>, dim3(grid_for(outputs, 1)),
                         dim3(device::kReduceThreads), 0, current_stream(), reducer, outputs, reduced, kept, red,
                         src, dst);
  else
    status = simt_launch(device::reduce_serial_kernel<Reducer, In, Out>, dim3(grid_for(outputs, 128)), dim3(128), 0,
                         current_stream(), reducer, outputs, reduced, kept, red, src, dst);
  check_launch(status, name, kernel);
}

// Calls fn(In{}, Out{}) for in's and out's compute dtypes (half types are widened by the op).
template <class Fn>
void visit_in_out(const Tensor& out, const Tensor& in, Fn&& fn) {
  visit_compute_dtype(in.dtype(), [&](auto in_tag) {
    visit_compute_dtype(out.dtype(), [&](auto out_tag) { fn(in_tag, out_tag); });
  });
}

}  // namespace

void prod(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes) {
  visit_in_out(out, in, [&](auto in_tag, auto out_tag) {
    using In = decltype(in_tag);
    using Out = decltype(out_tag);
    if constexpr (std::is_same_v<Out, bool> || std::is_same_v<Out, uint8_t> || std::is_same_v<Out, int32_t>)
      throw TypeError(std::string(name) + ": the product accumulates in float32, float64 or int64");
    else run_reduction<In, Out>(name, "prod kernel launch", device::ProdReducer<Out>{}, out, in, axes);
  });
}

void extremum(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes, bool is_max) {
  check<TypeError>(out.dtype() == in.dtype(), name, ": max/min keep the input dtype");
  visit_compute_dtype(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (is_max) run_reduction<T, T>(name, "max kernel launch", device::ExtremumReducer<T, true>{}, out, in, axes);
    else run_reduction<T, T>(name, "min kernel launch", device::ExtremumReducer<T, false>{}, out, in, axes);
  });
}

void arg_extremum(const char* name, const Tensor& out, const Tensor& in, int64_t axis, bool is_max) {
  check<TypeError>(out.dtype() == DType::Int64, name, ": indices are int64");
  visit_compute_dtype(in.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (is_max) run_reduction<T, int64_t>(name, "argmax kernel launch", device::ArgReducer<T, true>{}, out, in, {axis});
    else run_reduction<T, int64_t>(name, "argmin kernel launch", device::ArgReducer<T, false>{}, out, in, {axis});
  });
}

void variance(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes, double ddof) {
  visit_in_out(out, in, [&](auto in_tag, auto out_tag) {
    using In = decltype(in_tag);
    using Out = decltype(out_tag);
    if constexpr (!std::is_floating_point_v<Out>)
      throw TypeError(std::string(name) + ": the variance is float32 or float64");
    else run_reduction<In, Out>(name, "var kernel launch", device::VarReducer<Out>{ddof}, out, in, axes);
  });
}

void logsumexp(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes) {
  visit_in_out(out, in, [&](auto in_tag, auto out_tag) {
    using In = decltype(in_tag);
    using Out = decltype(out_tag);
    if constexpr (!std::is_floating_point_v<Out>)
      throw TypeError(std::string(name) + ": logsumexp is float32 or float64");
    else run_reduction<In, Out>(name, "logsumexp kernel launch", device::LogSumExpReducer<Out>{}, out, in, axes);
  });
}

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
