// Deliberately broken kernels, each with a classic GPU bug, and the checks that the emulator
// or a sanitizer catches it: a must-catch check passes only when its detector fires. The
// kernels also build with nvcc, so the static checks see them, but only the emulator build
// runs them.
#pragma once

#include "example_tests.cuh"
#include "test_util.h"

namespace lamina::cuda::test {

// A barrier in a loop whose trip count differs between threads (n = 300, 256 threads: the
// first 44 threads loop twice).
__global__ void divergent_loop_barrier_kernel(const float* x, int n, float* out) {
  __shared__ float buf[256];
  float acc = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    buf[threadIdx.x] = x[i];
    __syncthreads();
    if (threadIdx.x == 0)
      for (int j = 0; j < int(blockDim.x); ++j) acc += buf[j];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = acc;
}

// Two warps meet at two different barriers.
__global__ void two_barriers_kernel(float* out) {
  __shared__ float s[64];
  const int t = threadIdx.x;
  if (t < 32) {
    s[t] = 1.0f;
    __syncthreads();
  } else {
    __syncthreads();
    s[t] = 2.0f;
  }
  out[t] = s[63 - t];
}

// Half a warp shuffles with a full mask while the other half waits at a barrier.
__global__ void shuffle_versus_barrier_kernel(float* out) {
  float v = float(threadIdx.x);
  if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  __syncthreads();
  out[threadIdx.x] = v;
}

// Lanes 16..31 exit, but the shuffle's mask still names them.
__global__ void shuffle_exited_lanes_kernel(float* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, float(threadIdx.x), 1);
}

// Even lanes shuffle while odd lanes vote, both naming the whole warp.
__global__ void mismatched_collectives_kernel(unsigned* out) {
  const unsigned lane = threadIdx.x;
  out[lane] = lane % 2 ? __ballot_sync(0xffffffffu, 1) : __shfl_xor_sync(0xffffffffu, lane, 2);
}

__global__ void bad_shuffle_width_kernel(int* out) {
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, int(threadIdx.x), 1, 12);
}

// Every lane shuffles with a mask that names lane 0 only.
__global__ void lane_outside_mask_kernel(int* out) {
  out[threadIdx.x] = __shfl_sync(0x1u, int(threadIdx.x), 0);
}

// A block of 16 threads: mma.sync needs the whole warp.
__global__ void partial_warp_mma_kernel(float* out) {
  const uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
  const float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  float d[4];
  simt::mma_m16n8k16_bf16(d, a, b, c);
  out[threadIdx.x] = d[0];
}

// A 16-byte cp.async from an address 4 bytes off alignment.
__global__ void misaligned_cp_async_kernel(const float* in, float* out) {
  __shared__ __align__(16) float tile[4 * 32];
  simt::cp_async16(&tile[4 * threadIdx.x], &in[4 * threadIdx.x + 1]);
  simt::cp_async_commit();
  simt::cp_async_wait<0>();
  __syncthreads();
  out[threadIdx.x] = tile[threadIdx.x];
}

// Reads a cp.async target after the barrier but without cp.async.wait_group.
__global__ void cp_async_without_wait_kernel(const float4* in, float4* out) {
  __shared__ __align__(16) float4 tile[64];
  simt::cp_async16(&tile[threadIdx.x], &in[threadIdx.x]);
  simt::cp_async_commit();
  __syncthreads();
  out[threadIdx.x] = tile[63 - threadIdx.x];
}

// y[i] = s[i] + s[i + 1], but s[blockDim.x] is never written: read past the staged slice.
__global__ void halo_kernel(const float* x, float* y) {
  SIMT_DYNAMIC_SMEM(float, s);
  const int t = threadIdx.x;
  s[t] = x[t];
  __syncthreads();
  y[t] = s[t] + s[t + 1];
}

// Row addresses 2 bytes off the 16-byte alignment ldmatrix requires.
__global__ void misaligned_ldmatrix_kernel(uint32_t* out) {
  __shared__ __align__(16) uint16_t rows[8 * 8 + 8];
  for (int i = threadIdx.x; i < 72; i += 32) rows[i] = uint16_t(i);
  __syncwarp();
  uint32_t r[1];
  simt::ldmatrix<1>(r, &rows[1 + 8 * (threadIdx.x % 8)]);
  out[threadIdx.x] = r[0];
}

// Accumulates into y, which the host never initialised.
__global__ void accumulate_kernel(const float* x, float* y) {
  y[threadIdx.x] += x[threadIdx.x];
}

// Blocks add into one value without an atomic.
__global__ void unsynchronised_sum_kernel(const float* x, float* out) {
  if (threadIdx.x == 0) *out += x[blockIdx.x];
}

__global__ void scale_kernel(float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) y[i] *= 2.0f;  // should be i < n
}

// Thread 1 spins until thread 0 raises a flag, which thread 0 does only after a barrier that
// thread 1 never reaches: a deadlock on the device as well.
__global__ void spin_wait_kernel(int* flag) {
  if (threadIdx.x == 1)
    while (atomicAdd(flag, 0) == 0) {
    }
  __syncthreads();
  if (threadIdx.x == 0) atomicExch(flag, 1);
}

#if !defined(__CUDACC__)

inline void expect_error(const std::string& bug, cudaError_t e, const char* expected) {
  const std::string error = launch_error(e);
  check(error.find(expected) != std::string::npos, "catches " + bug,
        error.empty() ? "the launch succeeded" : error);
}

inline void expect_wrong(const std::string& bug, const Outcome& o, double tolerance) {
  check(!o.ok(tolerance), "catches " + bug, o.describe());
}

// Runs a kernel on n floats and compares its output with `want`.
template <class Launch>
Outcome float_outcome(int n, const std::vector<double>& want, Launch launch) {
  DeviceBuffer<float> out(n);
  const std::string error = launch_error(launch(out.get()));
  if (!error.empty()) return {error};
  return {{}, max_rel_error(out.download(), want)};
}

inline void run_catch_tests() {
  expect_wrong("a missing __syncthreads (tiles refilled while in use)",
               sgemm_outcome<true>(256, 256, 256), 1e-5);
  expect_wrong("reliance on warp lock-step (no __syncwarp)", block_sum_outcome<true>(), 1e-5);
  {
    DeviceBuffer<float> x(random_floats(300, 5)), out(1);
    expect_error("a barrier in a loop with a thread-dependent trip count",
                 simt_launch(divergent_loop_barrier_kernel, dim3(1), dim3(256), 0, nullptr,
                             x.get(), 300, out.get()),
                 "the others exited");
  }
  {
    DeviceBuffer<float> out(64);
    expect_error("warps meeting at different barriers",
                 simt_launch(two_barriers_kernel, dim3(1), dim3(64), 0, nullptr, out.get()),
                 "divergent __syncthreads");
    expect_error("a shuffle waiting for lanes held at a barrier (deadlock)",
                 simt_launch(shuffle_versus_barrier_kernel, dim3(1), dim3(64), 0, nullptr,
                             out.get()),
                 "deadlock");
    expect_error("a shuffle mask naming exited lanes",
                 simt_launch(shuffle_exited_lanes_kernel, dim3(1), dim3(32), 0, nullptr,
                             out.get()),
                 "exited");
  }
  {
    DeviceBuffer<unsigned> out(32);
    expect_error("a shuffle and a vote in one warp, each waiting for the other",
                 simt_launch(mismatched_collectives_kernel, dim3(1), dim3(32), 0, nullptr,
                             out.get()),
                 "mismatched warp collectives");
    expect_error("ldmatrix rows off 16-byte alignment",
                 simt_launch(misaligned_ldmatrix_kernel, dim3(1), dim3(32), 0, nullptr,
                             out.get()),
                 "not 16-byte aligned");
  }
  {
    DeviceBuffer<int> out(32);
    expect_error("a shuffle width that is not a power of two",
                 simt_launch(bad_shuffle_width_kernel, dim3(1), dim3(32), 0, nullptr, out.get()),
                 "width 12");
    expect_error("a shuffle from a lane outside its own mask",
                 simt_launch(lane_outside_mask_kernel, dim3(1), dim3(32), 0, nullptr, out.get()),
                 "not in its mask");
  }
  const std::vector<float> x = random_floats(256, 6);
  DeviceBuffer<float> d_x(x);
  {
    DeviceBuffer<float> out(32);
    expect_error("mma.sync in a warp of 16 threads",
                 simt_launch(partial_warp_mma_kernel, dim3(1), dim3(16), 0, nullptr, out.get()),
                 "needs all 32 lanes");
    expect_error("a misaligned cp.async source",
                 simt_launch(misaligned_cp_async_kernel, dim3(1), dim3(32), 0, nullptr,
                             d_x.get(), out.get()),
                 "not 16-byte aligned");
  }
  std::vector<double> reversed(256);
  for (int i = 0; i < 256; ++i) reversed[i] = x[4 * (63 - i / 4) + i % 4];
  expect_wrong("a cp.async target read without cp.async.wait_group",
               float_outcome(256, reversed, [&](float* out) {
                 return simt_launch(cp_async_without_wait_kernel, dim3(1), dim3(64), 0, nullptr,
                                    reinterpret_cast<const float4*>(d_x.get()),
                                    reinterpret_cast<float4*>(out));
               }),
               1e-6);
  std::vector<double> halo(64);  // what the author meant: s[64] = 0
  for (int i = 0; i < 64; ++i) halo[i] = double(x[i]) + (i < 63 ? x[i + 1] : 0.0f);
  expect_wrong("shared memory read before anything wrote it",
               float_outcome(64, halo, [&](float* out) {
                 return simt_launch(halo_kernel, dim3(1), dim3(64), 65 * sizeof(float), nullptr,
                                    d_x.get(), out);
               }),
               1e-6);
  std::vector<double> copied(x.begin(), x.begin() + 64);
  expect_wrong("device memory read before the host initialised it",
               float_outcome(64, copied, [&](float* out) {
                 return simt_launch(accumulate_kernel, dim3(1), dim3(64), 0, nullptr, d_x.get(),
                                    out);
               }),
               1e-6);
}

// Bugs that only a sanitizer or the watchdog reports; the script judges their output.
inline bool run_bug(const std::string& bug) {
  if (bug == "race-barrier") {
    sgemm_outcome<true>(128, 128, 64);
  } else if (bug == "race-lockstep") {
    block_sum_outcome<true>();
  } else if (bug == "race-blocks") {
    DeviceBuffer<float> x(random_floats(64, 8)), out(1);
    out.zero();
    launch_error(simt_launch(unsynchronised_sum_kernel, dim3(64), dim3(32), 0, nullptr, x.get(),
                             out.get()));
  } else if (bug == "oob-global") {
    DeviceBuffer<float> y(1000);
    y.zero();
    launch_error(simt_launch(scale_kernel, dim3(8), dim3(128), 0, nullptr, y.get(), 1000));
  } else if (bug == "oob-shared") {
    DeviceBuffer<float> x(random_floats(64, 9)), y(64);
    launch_error(simt_launch(halo_kernel, dim3(1), dim3(64), 64 * sizeof(float), nullptr,
                             x.get(), y.get()));
  } else if (bug == "spin-deadlock") {
    DeviceBuffer<int> flag(1);
    flag.zero();
    launch_error(simt_launch(spin_wait_kernel, dim3(1), dim3(32), 0, nullptr, flag.get()));
  } else {
    return false;
  }
  return true;
}

#endif

}  // namespace lamina::cuda::test
