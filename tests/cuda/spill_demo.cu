// A kernel the ptxas gate must reject: capped at 24 registers (-maxrregcount=24) its 32
// live accumulators spill to local memory. static_checks.sh compiles it to prove the gate
// really fails a build.
#include "simt/portable.cuh"

__global__ void spill_demo_kernel(const float* __restrict__ a, float* __restrict__ out, int n) {
  float acc[32];
#pragma unroll
  for (int j = 0; j < 32; ++j) acc[j] = a[j];
  for (int i = 0; i < n; ++i)
#pragma unroll
    for (int j = 0; j < 32; ++j) acc[j] = fmaf(a[i * 32 + j], acc[(j + 1) % 32], acc[j]);
  float s = 0.0f;
#pragma unroll
  for (int j = 0; j < 32; ++j) s += acc[j];
  out[threadIdx.x] = s;
}
