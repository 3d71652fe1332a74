// Fused optimizer updates (SGD with momentum / Nesterov, Adam / AdamW / AMSGrad, RMSprop,
// Adagrad): the device twins of cpu/optim.cpp, in place. All tensors are contiguous with the
// parameter's shape and dtype (float32 or float64).
//
// Kernels: <optimizer>_update_kernel, one parameter per launch, one thread per element
// (grid-stride, 256 threads); multi_tensor_update_kernel<Update>, every parameter of one
// dtype in one launch (a table of tensors in the kernel arguments, 1024 elements per block).
// Both call the same per-element function (<optimizer>_element), so they round alike.
// Bit-for-bit equal to the CPU kernel and to the composite update of ops/optim.cpp: the
// scalars are rounded to the tensor's dtype on the host exactly as the CPU rounds them, and
// every operation is an explicitly rounded intrinsic (common.cuh: add_rn, mul_rn, ...), so
// nvcc cannot contract a multiply and an add into one FMA (the CPU file builds with
// -ffp-contract=off); division and square root are the correctly rounded IEEE ones.
// Traffic (Adam, float32): 4 reads + 3 writes of 4 bytes per element, ~12 FLOP:
// bandwidth-bound; one pass replaces the composite's ~10 full sweeps. A step of a model with
// many small tensors is bound by launch latency instead (~5 us of CPU time per launch),
// which the multi-tensor launch pays once.
#include <array>
#include <vector>

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

// The per-element updates, shared by the per-parameter kernels and the multi-tensor kernel
// so that both compute exactly the same roundings.

template <class T>
struct SgdScalars {
  T lr, momentum;
  Decay<T> decay;
  bool nesterov;
};

template <class T>
__device__ __forceinline__ void sgd_element(int64_t i, const SgdScalars<T>& s, T* __restrict__ p,
                                            const T* __restrict__ g, T* __restrict__ buf) {
  T pi = p[i];
  const T gi = decayed(pi, g[i], s.decay);
  if (!buf) {
    p[i] = sub_rn(pi, mul_rn(s.lr, gi));
    return;
  }
  const T bi = sub_rn(mul_rn(buf[i], s.momentum), mul_rn(s.lr, gi));
  buf[i] = bi;
  p[i] = s.nesterov ? add_rn(pi, sub_rn(mul_rn(s.momentum, bi), mul_rn(s.lr, gi))) : add_rn(pi, bi);
}

template <class T>
struct AdamScalars {
  T beta1, one_minus_beta1, beta2, one_minus_beta2, eps, step_size;
  Decay<T> decay;
};

template <class T>
__device__ __forceinline__ void adam_element(int64_t i, const AdamScalars<T>& s, T* __restrict__ p,
                                             const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
                                             T* __restrict__ v_max) {
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

template <class T>
struct RmspropScalars {
  T rho, one_minus_rho, lr, eps, momentum;
  Decay<T> decay;
};

template <class T>
__device__ __forceinline__ void rmsprop_element(int64_t i, const RmspropScalars<T>& s, T* __restrict__ p,
                                                const T* __restrict__ g, T* __restrict__ avg_sq,
                                                T* __restrict__ avg_g, T* __restrict__ buf) {
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

template <class T>
struct AdagradScalars {
  T lr, eps;
  Decay<T> decay;
};

template <class T>
__device__ __forceinline__ void adagrad_element(int64_t i, const AdagradScalars<T>& s, T* __restrict__ p,
                                                const T* __restrict__ g, T* __restrict__ acc) {
  T pi = p[i];
  const T gi = decayed(pi, g[i], s.decay);
  const T ai = add_rn(acc[i], mul_rn(gi, gi));
  acc[i] = ai;
  p[i] = sub_rn(pi, div_rn(mul_rn(s.lr, gi), sqrt_rn(add_rn(ai, s.eps))));
}

// ---- Per-parameter kernels: one thread per element, grid-stride, 256 threads.

#define LAMINA_FOR_ELEMENTS(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <class T>
__global__ void __launch_bounds__(256)
    sgd_update_kernel(int64_t n, SgdScalars<T> s, T* __restrict__ p, const T* __restrict__ g, T* __restrict__ buf) {
  LAMINA_FOR_ELEMENTS(i, n) sgd_element(i, s, p, g, buf);
}

template <class T>
__global__ void __launch_bounds__(256)
    adam_update_kernel(int64_t n, AdamScalars<T> s, T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m,
                       T* __restrict__ v, T* __restrict__ v_max) {
  LAMINA_FOR_ELEMENTS(i, n) adam_element(i, s, p, g, m, v, v_max);
}

template <class T>
__global__ void __launch_bounds__(256)
    rmsprop_update_kernel(int64_t n, RmspropScalars<T> s, T* __restrict__ p, const T* __restrict__ g,
                          T* __restrict__ avg_sq, T* __restrict__ avg_g, T* __restrict__ buf) {
  LAMINA_FOR_ELEMENTS(i, n) rmsprop_element(i, s, p, g, avg_sq, avg_g, buf);
}

template <class T>
__global__ void __launch_bounds__(256)
    adagrad_update_kernel(int64_t n, AdagradScalars<T> s, T* __restrict__ p, const T* __restrict__ g,
                          T* __restrict__ acc) {
  LAMINA_FOR_ELEMENTS(i, n) adagrad_element(i, s, p, g, acc);
}

#undef LAMINA_FOR_ELEMENTS

// ---- The multi-tensor kernel: many parameters of one dtype in one launch.
//
// The table of tensors is a kernel argument: it travels in the launch's parameter block
// (constant bank 0 on the device), so a step needs no table buffer, no copy and no
// allocation, only the launch. The classic parameter limit is 4 KiB; the table takes at most
// kTableBytes of it and the update's scalars the rest. Block b updates elements
// [c * kChunk, (c + 1) * kChunk) of tensor t, where t is the last tensor whose first block
// is <= b (a binary search over block_start) and c = b - block_start[t].

constexpr int kMultiThreads = 256;
constexpr int64_t kChunk = 4 * kMultiThreads;  // elements per block: 4 per thread, coalesced
constexpr size_t kTableBytes = 3840;

// K pointers per tensor: the parameter, its gradient, then its states (nullptr when absent).
template <class T, int K>
struct TensorTable {
  static constexpr int kCapacity =
      int((kTableBytes - 2 * sizeof(int)) / (K * sizeof(T*) + sizeof(int64_t) + sizeof(int)));
  T* ptr[kCapacity][K];
  int64_t numel[kCapacity];
  int block_start[kCapacity + 1];  // block_start[count]: the launch's grid size
  int count;
};

template <class Update, class T, int K>
__global__ void __launch_bounds__(kMultiThreads) multi_tensor_update_kernel(Update update, TensorTable<T, K> table) {
  const int block = int(blockIdx.x);
  int lo = 0, hi = table.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (table.block_start[mid] <= block) lo = mid;
    else hi = mid - 1;
  }
  // Pointers moved to the chunk and a 32-bit count keep few values live across the calls of
  // the division and square-root slow paths (more spill under the call ABI).
  const int64_t begin = int64_t(block - table.block_start[lo]) * kChunk;
  const int count = int(min(kChunk, table.numel[lo] - begin));
  T* ptr[K];
#pragma unroll
  for (int k = 0; k < K; ++k) ptr[k] = table.ptr[lo][k] ? table.ptr[lo][k] + begin : nullptr;
  for (int i = threadIdx.x; i < count; i += kMultiThreads) update(i, ptr);
}

// The update functors of the multi-tensor kernel: the scalars and the element function.
template <class T>
struct SgdUpdate {
  static constexpr int kPointers = 3;  // p, g, buf
  SgdScalars<T> s;
  __device__ __forceinline__ void operator()(int64_t i, T* const* ptr) const {
    sgd_element(i, s, ptr[0], ptr[1], ptr[2]);
  }
};

template <class T>
struct AdamUpdate {
  static constexpr int kPointers = 5;  // p, g, m, v, v_max
  AdamScalars<T> s;
  __device__ __forceinline__ void operator()(int64_t i, T* const* ptr) const {
    adam_element(i, s, ptr[0], ptr[1], ptr[2], ptr[3], ptr[4]);
  }
};

template <class T>
struct RmspropUpdate {
  static constexpr int kPointers = 5;  // p, g, avg_sq, avg_g, buf
  RmspropScalars<T> s;
  __device__ __forceinline__ void operator()(int64_t i, T* const* ptr) const {
    rmsprop_element(i, s, ptr[0], ptr[1], ptr[2], ptr[3], ptr[4]);
  }
};

template <class T>
struct AdagradUpdate {
  static constexpr int kPointers = 3;  // p, g, acc
  AdagradScalars<T> s;
  __device__ __forceinline__ void operator()(int64_t i, T* const* ptr) const {
    adagrad_element(i, s, ptr[0], ptr[1], ptr[2]);
  }
};

}  // namespace device

namespace {

// The decay scalars rounded to T as the CPU kernel rounds them (lr * wd in double first).
template <class T>
device::Decay<T> decay_of(double lr, double weight_decay, bool decoupled) {
  return {T(weight_decay), T(lr * weight_decay), weight_decay != 0, decoupled};
}

template <class T>
device::SgdScalars<T> sgd_scalars(const cpu::SgdArgs& a) {
  return {T(a.lr), T(a.momentum), decay_of<T>(a.lr, a.weight_decay, a.decoupled), a.nesterov};
}
template <class T>
device::AdamScalars<T> adam_scalars(const cpu::AdamArgs& a) {
  return {T(a.beta1), T(1.0 - a.beta1), T(a.beta2), T(1.0 - a.beta2), T(a.eps), T(a.step_size),
          decay_of<T>(a.lr, a.weight_decay, a.decoupled)};
}
template <class T>
device::RmspropScalars<T> rmsprop_scalars(const cpu::RmspropArgs& a) {
  return {T(a.rho), T(1.0 - a.rho), T(a.lr), T(a.eps), T(a.momentum), decay_of<T>(a.lr, a.weight_decay, a.decoupled)};
}
template <class T>
device::AdagradScalars<T> adagrad_scalars(const cpu::AdagradArgs& a) {
  return {T(a.lr), T(a.eps), decay_of<T>(a.lr, a.weight_decay, a.decoupled)};
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

// The largest grid.x of a launch.
constexpr int64_t kMaxBlocks = 0x7fffffff;

// Launches multi_tensor_update_kernel over the parameters of lists[0] with, for each, the
// tensors at the same index of lists[1..K-1] (an undefined one passes nullptr): one launch
// per full table or full grid. Empty parameters take no block.
template <class T, class Update>
void launch_tables(const char* name, const char* kernel, const Update& update,
                   const std::array<const std::vector<Tensor>*, Update::kPointers>& lists) {
  constexpr int K = Update::kPointers;
  using Table = device::TensorTable<T, K>;
  static_assert(sizeof(Update) + sizeof(Table) <= 4096, "the kernel's parameter block must fit in 4 KiB");
  const std::vector<Tensor>& params = *lists[0];
  Table table{};
  int64_t blocks = 0;
  auto launch = [&] {
    if (table.count == 0) return;
    table.block_start[table.count] = int(blocks);
    check_launch(simt_launch(device::multi_tensor_update_kernel<Update, T, K>, dim3(unsigned(blocks)),
                             dim3(device::kMultiThreads), 0, current_stream(), update, table),
                 name, kernel);
    table.count = 0;
    blocks = 0;
  };
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t n = params[i].numel();
    if (n == 0) continue;
    const int64_t need = (n + device::kChunk - 1) / device::kChunk;
    check<ValueError>(need <= kMaxBlocks, name, ": parameter ", i, " has too many elements (", n,
                      ") for one launch");
    if (table.count == Table::kCapacity || blocks + need > kMaxBlocks) launch();
    const int t = table.count++;
    table.block_start[t] = int(blocks);
    table.numel[t] = n;
    for (int k = 0; k < K; ++k) table.ptr[t][k] = data_or_null<T>((*lists[k])[i]);
    blocks += need;
  }
  launch();
}

}  // namespace

void sgd_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& buf, const cpu::SgdArgs& a) {
  launch_update(name, "sgd_update_kernel launch", p, [&](auto tag, dim3 grid, int64_t n) {
    using T = decltype(tag);
    return simt_launch(device::sgd_update_kernel<T>, grid, dim3(256), 0, current_stream(), n, sgd_scalars<T>(a),
                       p.data<T>(), g.data<T>(), a.momentum != 0 ? data_or_null<T>(buf) : nullptr);
  });
}

void adam_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                 const Tensor& v_max, const cpu::AdamArgs& a) {
  launch_update(name, "adam_update_kernel launch", p, [&](auto tag, dim3 grid, int64_t n) {
    using T = decltype(tag);
    return simt_launch(device::adam_update_kernel<T>, grid, dim3(256), 0, current_stream(), n, adam_scalars<T>(a),
                       p.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), data_or_null<T>(v_max));
  });
}

void rmsprop_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& avg_sq, const Tensor& avg_g,
                    const Tensor& buf, const cpu::RmspropArgs& a) {
  launch_update(name, "rmsprop_update_kernel launch", p, [&](auto tag, dim3 grid, int64_t n) {
    using T = decltype(tag);
    return simt_launch(device::rmsprop_update_kernel<T>, grid, dim3(256), 0, current_stream(), n,
                       rmsprop_scalars<T>(a), p.data<T>(), g.data<T>(), avg_sq.data<T>(), data_or_null<T>(avg_g),
                       data_or_null<T>(buf));
  });
}

void adagrad_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& acc, const cpu::AdagradArgs& a) {
  launch_update(name, "adagrad_update_kernel launch", p, [&](auto tag, dim3 grid, int64_t n) {
    using T = decltype(tag);
    return simt_launch(device::adagrad_update_kernel<T>, grid, dim3(256), 0, current_stream(), n,
                       adagrad_scalars<T>(a), p.data<T>(), g.data<T>(), acc.data<T>());
  });
}

// A list of one takes the per-parameter kernel: its launch carries ~60 bytes of arguments
// instead of the 4 KiB table (Optimizer.update_step updates one variable per call).

void sgd_update_multi(const char* name, const std::vector<Tensor>& p, const std::vector<Tensor>& g,
                      const std::vector<Tensor>& buf, const cpu::SgdArgs& a) {
  if (p.size() == 1) return sgd_update(name, p[0], g[0], buf[0], a);
  const std::vector<Tensor> no_buffers(p.size());
  const std::vector<Tensor>& bufs = a.momentum != 0 ? buf : no_buffers;
  if (!p.empty()) visit_float_dtype(p[0].dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    launch_tables<T>(name, "multi_tensor_update_kernel (sgd) launch", device::SgdUpdate<T>{sgd_scalars<T>(a)},
                     {&p, &g, &bufs});
  });
}

void adam_update_multi(const char* name, const std::vector<Tensor>& p, const std::vector<Tensor>& g,
                       const std::vector<Tensor>& m, const std::vector<Tensor>& v, const std::vector<Tensor>& v_max,
                       const cpu::AdamArgs& a) {
  if (p.size() == 1) return adam_update(name, p[0], g[0], m[0], v[0], v_max[0], a);
  if (!p.empty()) visit_float_dtype(p[0].dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    launch_tables<T>(name, "multi_tensor_update_kernel (adam) launch", device::AdamUpdate<T>{adam_scalars<T>(a)},
                     {&p, &g, &m, &v, &v_max});
  });
}

void rmsprop_update_multi(const char* name, const std::vector<Tensor>& p, const std::vector<Tensor>& g,
                          const std::vector<Tensor>& avg_sq, const std::vector<Tensor>& avg_g,
                          const std::vector<Tensor>& buf, const cpu::RmspropArgs& a) {
  if (p.size() == 1) return rmsprop_update(name, p[0], g[0], avg_sq[0], avg_g[0], buf[0], a);
  if (!p.empty()) visit_float_dtype(p[0].dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    launch_tables<T>(name, "multi_tensor_update_kernel (rmsprop) launch",
                     device::RmspropUpdate<T>{rmsprop_scalars<T>(a)}, {&p, &g, &avg_sq, &avg_g, &buf});
  });
}

void adagrad_update_multi(const char* name, const std::vector<Tensor>& p, const std::vector<Tensor>& g,
                          const std::vector<Tensor>& acc, const cpu::AdagradArgs& a) {
  if (p.size() == 1) return adagrad_update(name, p[0], g[0], acc[0], a);
  if (!p.empty()) visit_float_dtype(p[0].dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    launch_tables<T>(name, "multi_tensor_update_kernel (adagrad) launch",
                     device::AdagradUpdate<T>{adagrad_scalars<T>(a)}, {&p, &g, &acc});
  });
}

}  // namespace lamina::cuda
