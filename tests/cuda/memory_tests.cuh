// Self-tests of the memory operations: atomics on global and shared memory, the fence-and-
// counter handshake between blocks, cp.async groups and dynamic shared memory.
#pragma once

#include <algorithm>
#include <numeric>

#include "test_util.h"

namespace lamina::cuda::test {

struct AtomicCells {
  unsigned ticket, and_bits, or_bits, xor_bits, cas_count, histogram[16];
  int sub, min, max, exchanged;
  float fsum;
  double dsum;
};

// 8 blocks x 128 threads hit each cell; `tickets[i]` and `swapped[i]` keep the old values.
__global__ void atomics_kernel(const int* values, AtomicCells* cells, unsigned* tickets,
                               int* swapped) {
  __shared__ unsigned histogram[16];
  const int i = blockIdx.x * blockDim.x + threadIdx.x, v = values[i];
  if (threadIdx.x < 16) histogram[threadIdx.x] = 0;
  __syncthreads();
  tickets[i] = atomicAdd(&cells->ticket, 1u);
  atomicAdd(&cells->fsum, 1.0f);
  atomicAdd(&cells->dsum, 0.5);
  atomicSub(&cells->sub, 3);
  atomicMin(&cells->min, v);
  atomicMax(&cells->max, v);
  atomicAnd(&cells->and_bits, ~(1u << (i % 32)));
  atomicOr(&cells->or_bits, 1u << (i % 29));
  atomicXor(&cells->xor_bits, unsigned(i));
  swapped[i] = atomicExch(&cells->exchanged, i);
  for (unsigned guess = 0, seen;; guess = seen) {  // increment by compare-and-swap
    seen = atomicCAS(&cells->cas_count, guess, guess + 1);
    if (seen == guess) break;
  }
  atomicAdd(&histogram[v & 15], 1u);
  __syncthreads();
  if (threadIdx.x < 16) atomicAdd(&cells->histogram[threadIdx.x], histogram[threadIdx.x]);
}

inline void test_atomics() {
  const int n = 8 * 128;
  const std::vector<int> values = random_ints(n, 21, -5000, 5000);
  AtomicCells init{};
  init.and_bits = 0xffffffffu;
  init.min = 1 << 30;
  init.max = -(1 << 30);
  init.exchanged = -1;
  DeviceBuffer<int> d_values(values), d_swapped(n);
  DeviceBuffer<AtomicCells> d_cells(std::vector<AtomicCells>{init});
  DeviceBuffer<unsigned> d_tickets(n);
  const char* name = "atomics (global and shared, 1024 threads)";
  if (!launched(name, simt_launch(atomics_kernel, dim3(8), dim3(128), 0, nullptr,
                                  d_values.get(), d_cells.get(), d_tickets.get(),
                                  d_swapped.get())))
    return;
  const AtomicCells c = d_cells.download()[0];
  unsigned xor_bits = 0, or_bits = 0, histogram[16] = {};
  for (int i = 0; i < n; ++i) {
    xor_bits ^= unsigned(i);
    or_bits |= 1u << (i % 29);
    ++histogram[values[i] & 15];
  }
  std::vector<long long> got = {c.ticket, c.and_bits, c.or_bits, c.xor_bits, c.cas_count,
                                c.sub, c.min, c.max, (long long)c.fsum, (long long)(2 * c.dsum)};
  std::vector<long long> want = {n, 0, or_bits, xor_bits, n, -3 * n,
                                 *std::min_element(values.begin(), values.end()),
                                 *std::max_element(values.begin(), values.end()), n, n};
  for (int b = 0; b < 16; ++b) {
    got.push_back(c.histogram[b]);
    want.push_back(histogram[b]);
  }
  // Every ticket is handed out once; every exchanged value comes back once.
  std::vector<unsigned> tickets = d_tickets.download();
  std::sort(tickets.begin(), tickets.end());
  std::vector<int> swapped = d_swapped.download();
  swapped.push_back(c.exchanged);
  std::sort(swapped.begin(), swapped.end());
  for (int i = 0; i < n; ++i) {
    got.push_back(tickets[i]);
    want.push_back(i);
    got.push_back(swapped[i + 1]);
    want.push_back(i);
  }
  got.push_back(swapped[0]);
  want.push_back(-1);
  check_equal(name, got, want);
}

// Each block publishes a partial sum; the block that takes the last ticket adds them up.
// The fence before the ticket and the fence after it make the partials visible.
__global__ void last_block_sum_kernel(const float* x, float* partials, unsigned* tickets,
                                      float* out) {
  __shared__ float sums[128];
  __shared__ bool last;
  sums[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0.0f;
    for (int i = 0; i < int(blockDim.x); ++i) s += sums[i];
    partials[blockIdx.x] = s;
    __threadfence();
    last = atomicAdd(tickets, 1u) == gridDim.x - 1;
    if (last) __threadfence();
  }
  __syncthreads();
  if (last && threadIdx.x == 0) {
    float s = 0.0f;
    for (int b = 0; b < int(gridDim.x); ++b) s += partials[b];
    *out = s;
  }
}

inline void test_last_block_sum() {
  const int blocks = 16, threads = 128;
  const std::vector<float> x = random_floats(blocks * threads, 22);
  DeviceBuffer<float> d_x(x), d_partials(blocks), d_out(1);
  DeviceBuffer<unsigned> d_tickets(1);
  d_tickets.zero();
  const char* name = "threadfence + atomic ticket: last block sums the partials";
  if (!launched(name, simt_launch(last_block_sum_kernel, dim3(blocks), dim3(threads), 0,
                                  nullptr, d_x.get(), d_partials.get(), d_tickets.get(),
                                  d_out.get())))
    return;
  check_close(name, d_out.download(), {std::accumulate(x.begin(), x.end(), 0.0)}, 1e-5);
}

// Two cp.async groups of 64 x 16 bytes; the first is read after wait_group 1, the second
// after wait_group 0.
__global__ void cp_async_kernel(const float4* in, float4* out) {
  __shared__ __align__(16) float4 tile[2][64];
  const int t = threadIdx.x;
  simt::cp_async16(&tile[0][t], &in[t]);
  simt::cp_async_commit();
  simt::cp_async16(&tile[1][t], &in[64 + t]);
  simt::cp_async_commit();
  simt::cp_async_wait<1>();
  __syncthreads();
  out[t] = tile[0][63 - t];
  simt::cp_async_wait<0>();
  __syncthreads();
  out[64 + t] = tile[1][63 - t];
}

inline void test_cp_async() {
  const std::vector<float> x = random_floats(4 * 128, 23);
  DeviceBuffer<float> d_in(x), d_out(4 * 128);
  const char* name = "cp.async: two groups, wait_group 1 then 0";
  if (!launched(name, simt_launch(cp_async_kernel, dim3(1), dim3(64), 0, nullptr,
                                  reinterpret_cast<const float4*>(d_in.get()),
                                  reinterpret_cast<float4*>(d_out.get()))))
    return;
  std::vector<float> want(4 * 128);
  for (int g = 0; g < 2; ++g)
    for (int t = 0; t < 64; ++t)
      for (int k = 0; k < 4; ++k) want[4 * (64 * g + t) + k] = x[4 * (64 * g + 63 - t) + k];
  check_equal(name, d_out.download(), want);
}

// Reverses each block's slice through dynamic shared memory.
__global__ void reverse_kernel(const float* in, float* out) {
  SIMT_DYNAMIC_SMEM(float, s);
  const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
  s[t] = in[base + t];
  __syncthreads();
  out[base + t] = s[blockDim.x - 1 - t];
}

inline void test_dynamic_smem() {
  const int blocks = 4, threads = 96;
  const std::vector<float> x = random_floats(blocks * threads, 24);
  DeviceBuffer<float> d_in(x), d_out(x.size());
  const char* name = "dynamic shared memory";
  if (!launched(name, simt_launch(reverse_kernel, dim3(blocks), dim3(threads),
                                  threads * sizeof(float), nullptr, d_in.get(), d_out.get())))
    return;
  std::vector<float> want(x.size());
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) want[b * threads + t] = x[b * threads + threads - 1 - t];
  check_equal(name, d_out.download(), want);
}

inline void run_memory_tests() {
  test_atomics();
  test_last_block_sum();
  test_cp_async();
  test_dynamic_smem();
}

}  // namespace lamina::cuda::test
