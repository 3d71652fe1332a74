// The SIMT emulator: CUDA C++ kernels built by a host compiler and run on the CPU, one fiber
// per CUDA thread. Kernel sources include simt/portable.cuh, which includes this file only
// when the compiler is not nvcc.
//
//   emu_fiber.h      stacks, context switches, sanitizer annotations
//   emu_scheduler.h  threads, warps, blocks: __syncthreads, deadlock and divergence reports
//   emu_grid.h       launches: worker threads, the watchdog, the last error
//   emu_math.h       __half, __nv_bfloat16, math and bit intrinsics
//   emu_warp.h       shuffles, votes, reductions, __syncwarp
//   emu_memory.h     atomics, fences, cp.async, the runtime API (cudaMalloc, ...)
//   emu_tensor.h     ldmatrix, mma.sync
//
// Environment: SIMT_THREADS, SIMT_SEED, SIMT_STACK_KB, SIMT_POISON, SIMT_STRICT and
// SIMT_WATCHDOG_S, described in emu_scheduler.h (Config).
#pragma once

#if defined(__CUDACC__)
#error "simt_emu.h is for host compilers; kernels include simt/portable.cuh"
#endif

#include "emu_fiber.h"
#include "emu_grid.h"
#include "emu_math.h"
#include "emu_memory.h"
#include "emu_scheduler.h"
#include "emu_tensor.h"
#include "emu_warp.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// A worker runs one block at a time, so per-OS-thread storage is per-block storage.
#define __shared__ static thread_local
#define __constant__ static

#define threadIdx (::lamina::simt::emu::self().idx)
#define blockIdx (::lamina::simt::emu::block().idx)
#define blockDim (::lamina::simt::emu::block().shape.block)
#define gridDim (::lamina::simt::emu::block().shape.grid)
