// Self-tests of the warp and block collectives: shuffles, votes, reductions, __syncwarp and
// __syncthreads_count/and/or, each against a scalar model of the CUDA programming guide's
// definition. Blocks of 64 threads: two warps, so that warps must not leak into each other.
#pragma once

#include "test_util.h"

namespace lamina::cuda::test {

enum class ShuffleKind { Idx, Up, Down, Xor };

// For Idx each lane reads lane (7 * lane + arg) % 37: sources past the width wrap around.
template <class T>
__global__ void shuffle_kernel(ShuffleKind kind, int arg, int width, const T* in, T* out) {
  const int t = threadIdx.x, lane = t % 32;
  const T v = in[t];
  T r = v;
  switch (kind) {
    case ShuffleKind::Idx: r = __shfl_sync(0xffffffffu, v, (7 * lane + arg) % 37, width); break;
    case ShuffleKind::Up: r = __shfl_up_sync(0xffffffffu, v, unsigned(arg), width); break;
    case ShuffleKind::Down: r = __shfl_down_sync(0xffffffffu, v, unsigned(arg), width); break;
    case ShuffleKind::Xor: r = __shfl_xor_sync(0xffffffffu, v, arg, width); break;
  }
  out[t] = r;
}

// The lane whose value `lane` receives. Lanes form segments of `width`; a source outside the
// segment yields the lane's own value, except that xor may reach back to an earlier segment.
inline int shuffle_source(ShuffleKind kind, int lane, int arg, int width) {
  const int first = lane / width * width, last = first + width - 1;
  switch (kind) {
    case ShuffleKind::Idx: return first + (7 * lane + arg) % 37 % width;
    case ShuffleKind::Up: return lane - arg >= first ? lane - arg : lane;
    case ShuffleKind::Down: return lane + arg <= last ? lane + arg : lane;
    case ShuffleKind::Xor: return (lane ^ arg) <= last ? lane ^ arg : lane;
  }
  return lane;
}

template <class T>
void test_shuffles(const char* type) {
  const char* names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync"};
  std::vector<T> in(64);
  for (int i = 0; i < 64; ++i) in[i] = T(1000 + 3 * i);
  DeviceBuffer<T> d_in(in), d_out(64);
  for (ShuffleKind kind : {ShuffleKind::Idx, ShuffleKind::Up, ShuffleKind::Down, ShuffleKind::Xor}) {
    const std::string name = std::string(names[int(kind)]) + "<" + type + ">, widths 1-32";
    std::vector<T> got, want;
    for (int width = 1; width <= 32; width *= 2) {
      for (int arg : {1, 2, 5, 17}) {
        if (!launched(name, simt_launch(shuffle_kernel<T>, dim3(1), dim3(64), 0, nullptr, kind,
                                        arg, width, d_in.get(), d_out.get())))
          return;
        const std::vector<T> out = d_out.download();
        got.insert(got.end(), out.begin(), out.end());
        for (int t = 0; t < 64; ++t)
          want.push_back(in[t / 32 * 32 + shuffle_source(kind, t % 32, arg, width)]);
      }
    }
    check_equal(name, got, want);
  }
}

// The halves of a warp shuffle apart, with different kinds and masks: legal since sm_70.
__global__ void split_warp_kernel(const int* in, int* out) {
  const int t = threadIdx.x, lane = t % 32;
  int v = in[t];
  if (lane < 16) v = __shfl_xor_sync(0x0000ffffu, v, 1);
  else v = __shfl_down_sync(0xffff0000u, v, 2, 16);
  out[t] = v;
}

inline void test_split_warp() {
  const std::vector<int> in = random_ints(64, 11, -1000, 1000);
  DeviceBuffer<int> d_in(in), d_out(64);
  const char* name = "shuffles in disjoint halves of a warp";
  if (!launched(name, simt_launch(split_warp_kernel, dim3(1), dim3(64), 0, nullptr, d_in.get(),
                                  d_out.get())))
    return;
  std::vector<int> want(64);
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32, base = t - lane;
    want[t] = lane < 16 ? in[base + (lane ^ 1)] : in[base + (lane + 2 < 32 ? lane + 2 : lane)];
  }
  check_equal(name, d_out.download(), want);
}

__global__ void vote_kernel(const int* pred, unsigned* out) {
  const int t = threadIdx.x, p = pred[t];
  out[4 * t + 0] = __ballot_sync(0xffffffffu, p);
  out[4 * t + 1] = __any_sync(0xffffffffu, p);
  out[4 * t + 2] = __all_sync(0xffffffffu, p);
  out[4 * t + 3] = (t & 1) ? __ballot_sync(0xaaaaaaaau, p) : 0u;
}

inline void test_votes() {
  // Warp 0 mixed, warp 1 all true (so that __all_sync is true somewhere).
  std::vector<int> pred = random_ints(64, 12, 0, 1);
  for (int t = 32; t < 64; ++t) pred[t] = 1;
  DeviceBuffer<int> d_pred(pred);
  DeviceBuffer<unsigned> d_out(4 * 64);
  const char* name = "__ballot_sync, __any_sync, __all_sync, partial mask";
  if (!launched(name, simt_launch(vote_kernel, dim3(1), dim3(64), 0, nullptr, d_pred.get(),
                                  d_out.get())))
    return;
  std::vector<unsigned> want(4 * 64);
  for (int w = 0; w < 2; ++w) {
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l) ballot |= unsigned(pred[32 * w + l] != 0) << l;
    for (int l = 0; l < 32; ++l) {
      unsigned* o = &want[4 * (32 * w + l)];
      o[0] = ballot;
      o[1] = ballot != 0;
      o[2] = ballot == 0xffffffffu;
      o[3] = (l & 1) ? ballot & 0xaaaaaaaau : 0u;
    }
  }
  check_equal(name, d_out.download(), want);
}

__global__ void reduce_kernel(const int* in, int* out) {
  const int t = threadIdx.x, v = in[t];
  out[4 * t + 0] = __reduce_add_sync(0xffffffffu, v);
  out[4 * t + 1] = __reduce_min_sync(0xffffffffu, v);
  out[4 * t + 2] = int(__reduce_max_sync(0xffffffffu, unsigned(v)));
  out[4 * t + 3] = t % 32 < 16 ? __reduce_add_sync(0x0000ffffu, v) : 0;
}

inline void test_reductions() {
  const std::vector<int> in = random_ints(64, 13, -100000, 100000);
  DeviceBuffer<int> d_in(in), d_out(4 * 64);
  const char* name = "__reduce_add/min/max_sync (int, unsigned, partial mask)";
  if (!launched(name, simt_launch(reduce_kernel, dim3(1), dim3(64), 0, nullptr, d_in.get(),
                                  d_out.get())))
    return;
  std::vector<int> want(4 * 64);
  for (int w = 0; w < 2; ++w) {
    int sum = 0, low_sum = 0, mn = in[32 * w];
    unsigned umax = 0;
    for (int l = 0; l < 32; ++l) {
      const int v = in[32 * w + l];
      sum += v;
      if (l < 16) low_sum += v;
      mn = std::min(mn, v);
      umax = std::max(umax, unsigned(v));
    }
    for (int l = 0; l < 32; ++l) {
      int* o = &want[4 * (32 * w + l)];
      o[0] = sum;
      o[1] = mn;
      o[2] = int(umax);
      o[3] = l < 16 ? low_sum : 0;
    }
  }
  check_equal(name, d_out.download(), want);
}

// Lanes exchange through shared memory, ordered only by __syncwarp.
__global__ void syncwarp_kernel(const int* in, int* out) {
  __shared__ int s[64];
  const int t = threadIdx.x, lane = t % 32, base = t - lane;
  s[t] = in[t];
  __syncwarp();
  const int v = s[base + (lane + 1) % 32];
  __syncwarp();
  s[t] = v * 2;
  __syncwarp();
  out[t] = s[base + (lane + 31) % 32];
}

inline void test_syncwarp() {
  const std::vector<int> in = random_ints(64, 14, -1000, 1000);
  DeviceBuffer<int> d_in(in), d_out(64);
  const char* name = "__syncwarp orders shared memory within a warp";
  if (!launched(name, simt_launch(syncwarp_kernel, dim3(1), dim3(64), 0, nullptr, d_in.get(),
                                  d_out.get())))
    return;
  std::vector<int> want(64);
  for (int t = 0; t < 64; ++t) want[t] = 2 * in[t];
  check_equal(name, d_out.download(), want);
}

__global__ void block_vote_kernel(const int* pred, int* out) {
  const int p = pred[threadIdx.x];
  const int count = __syncthreads_count(p);
  const int all = __syncthreads_and(p);
  const int any = __syncthreads_or(p);
  if (threadIdx.x == 0) {
    out[0] = count;
    out[1] = all;
    out[2] = any;
  }
}

inline void test_block_votes() {
  const char* name = "__syncthreads_count/and/or (96 threads)";
  std::vector<int> got, want;
  for (int pattern = 0; pattern < 3; ++pattern) {
    std::vector<int> pred = random_ints(96, 15, 0, 1);
    if (pattern > 0) pred.assign(96, pattern == 1);
    DeviceBuffer<int> d_pred(pred), d_out(3);
    if (!launched(name, simt_launch(block_vote_kernel, dim3(1), dim3(96), 0, nullptr,
                                    d_pred.get(), d_out.get())))
      return;
    const std::vector<int> out = d_out.download();
    got.insert(got.end(), out.begin(), out.end());
    int count = 0;
    for (int p : pred) count += p != 0;
    want.insert(want.end(), {count, count == 96, count > 0});
  }
  check_equal(name, got, want);
}

inline void run_warp_tests() {
  test_shuffles<int>("int");
  test_shuffles<double>("double");
  test_split_warp();
  test_votes();
  test_reductions();
  test_syncwarp();
  test_block_votes();
}

}  // namespace lamina::cuda::test
