// Small complete kernels that exercise the emulator the way library kernels will: a tiled
// SGEMM (shared-memory tiles between barriers), a grid-stride sum (shuffles, shared memory,
// atomics) and a block sum whose last warp synchronises with __syncwarp. The broken
// variants used by the must-catch tests live beside their correct versions.
#pragma once

#include "test_util.h"

namespace lamina::cuda::test {

// C[M,N] = A[M,K] * B[K,N], fp32, row-major. Block tile BM x BN, K step BK, (BM/TM)*(BN/TN)
// threads each computing TM x TN outputs. 2*M*N*K FLOPs; each block reads (BM + BN) * K
// floats. kMissingBarrier drops the barrier that protects the tiles before they are refilled.
template <int BM = 64, int BN = 64, int BK = 16, int TM = 4, int TN = 4, bool kMissingBarrier = false>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    sgemm_tiled_kernel(int M, int N, int K, const float* __restrict__ A,
                       const float* __restrict__ B, float* __restrict__ C) {
  __shared__ float As[BK][BM + 4];  // k-major, padded against bank conflicts
  __shared__ float Bs[BK][BN];
  const int tid = threadIdx.x, tx = tid % (BN / TN), ty = tid / (BN / TN);
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
  for (int k0 = 0; k0 < K; k0 += BK) {
    for (int i = tid; i < BM * BK; i += blockDim.x) {
      const int m = i / BK, k = i % BK, gm = row0 + m, gk = k0 + k;
      As[k][m] = (gm < M && gk < K) ? A[size_t(gm) * K + gk] : 0.0f;
    }
    for (int i = tid; i < BK * BN; i += blockDim.x) {
      const int k = i / BN, n = i % BN, gk = k0 + k, gn = col0 + n;
      Bs[k][n] = (gk < K && gn < N) ? B[size_t(gk) * N + gn] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[k][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[k][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    if (!kMissingBarrier) __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int gm = row0 + ty * TM + i, gn = col0 + tx * TN + j;
      if (gm < M && gn < N) C[size_t(gm) * N + gn] = acc[i][j];
    }
}

template <bool kMissingBarrier = false>
Outcome sgemm_outcome(int M, int N, int K) {
  const std::vector<float> a = random_floats(size_t(M) * K, 1), b = random_floats(size_t(K) * N, 2);
  DeviceBuffer<float> d_a(a), d_b(b), d_c(size_t(M) * N);
  const std::string error = launch_error(
      simt_launch(sgemm_tiled_kernel<64, 64, 16, 4, 4, kMissingBarrier>,
                  dim3((N + 63) / 64, (M + 63) / 64), dim3(256), 0, nullptr, M, N, K,
                  d_a.get(), d_b.get(), d_c.get()));
  if (!error.empty()) return {error};
  std::vector<double> want(size_t(M) * N);
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < N; ++j)
        want[size_t(i) * N + j] += double(a[size_t(i) * K + k]) * b[size_t(k) * N + j];
  return {{}, max_rel_error(d_c.download(), want)};
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// *out += sum(x): grid-stride loads, a shuffle tree per warp, one shared slot per warp, one
// atomicAdd per block.
__global__ void reduce_sum_kernel(const float* __restrict__ x, int n, float* __restrict__ out) {
  __shared__ float warp_sums[32];
  float v = 0.0f;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
  v = warp_sum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int((blockDim.x + 31) / 32) ? warp_sums[lane] : 0.0f;
    v = warp_sum(v);
    if (lane == 0) atomicAdd(out, v);
  }
}

inline void test_reduce_sum(int n, int blocks, int threads) {
  const std::vector<float> x = random_floats(n, 3);
  double want = 0;
  for (float v : x) want += v;
  DeviceBuffer<float> d_x(x), d_out(1);
  d_out.zero();
  const std::string name = "reduce_sum n=" + std::to_string(n) + " grid " + std::to_string(blocks) +
                           " x " + std::to_string(threads);
  if (launched(name, simt_launch(reduce_sum_kernel, dim3(blocks), dim3(threads), 0, nullptr,
                                 d_x.get(), n, d_out.get())))
    check_close(name, d_out.download(), {want}, 1e-5);
}

// *out += sum of each block's 256 values. The last 32 partial sums are folded by warp 0
// through shared memory; kLockStep leaves out the __syncwarp calls, as pre-Volta code did,
// and then relies on the warp running in lock-step (not guaranteed since sm_70).
template <bool kLockStep>
__global__ void block_sum_kernel(const float* __restrict__ x, float* __restrict__ out) {
  __shared__ float s[256];
  const int t = threadIdx.x;
  s[t] = x[blockIdx.x * 256 + t];
  __syncthreads();
  for (int stride = 128; stride > 32; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t < 32) {
    volatile float* v = s;
    for (int stride = 32; stride > 0; stride /= 2) {
      if (kLockStep) {
        v[t] = v[t] + v[t + stride];
      } else {
        const float other = v[t + stride];
        __syncwarp();
        v[t] = v[t] + other;
        __syncwarp();
      }
    }
  }
  if (t == 0) atomicAdd(out, s[0]);
}

template <bool kLockStep>
Outcome block_sum_outcome() {
  const int blocks = 4;
  const std::vector<float> x = random_floats(256 * blocks, 4);
  DeviceBuffer<float> d_x(x), d_out(1);
  d_out.zero();
  const std::string error = launch_error(simt_launch(block_sum_kernel<kLockStep>, dim3(blocks),
                                                     dim3(256), 0, nullptr, d_x.get(),
                                                     d_out.get()));
  if (!error.empty()) return {error};
  double want = 0;
  for (float v : x) want += v;
  return {{}, max_rel_error(d_out.download(), {want})};
}

inline void run_example_tests() {
  check_outcome("sgemm_tiled 256x256x256", sgemm_outcome(256, 256, 256), 1e-5);
  check_outcome("sgemm_tiled 100x70x37 (ragged edges)", sgemm_outcome(100, 70, 37), 1e-5);
  test_reduce_sum(100000, 40, 256);
  test_reduce_sum(1000, 3, 96);
  check_outcome("block_sum, last warp with __syncwarp", block_sum_outcome<false>(), 1e-5);
}

}  // namespace lamina::cuda::test
