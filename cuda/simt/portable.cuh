// The one header kernel sources include. Under nvcc it maps Lamina's portable names onto the
// CUDA toolkit and inline PTX; under a host compiler onto the SIMT emulator (simt_emu.h), so
// every kernel also builds and runs, slowly but strictly checked, on a CPU.
//
// Beyond CUDA C++ itself, kernels use:
//   simt_launch(kernel, grid, block, smem, stream, args...)   instead of <<<...>>>
//   SIMT_DYNAMIC_SMEM(T, name)                                 extern __shared__ T name[]
//   lamina::simt::cp_async16 / cp_async_commit / cp_async_wait<N>
//   lamina::simt::ldmatrix<NUM, TRANS>
//   lamina::simt::mma_m16n8k16_bf16 / mma_m16n8k16_f16
//   lamina::simt::float_to_tf32 / mma_m16n8k8_tf32
//   lamina::simt::pack_bf16x2 / pack_half2
#pragma once

#include <cstddef>
#include <cstdint>

#include "launch_count.h"

#if defined(__CUDACC__)

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "Lamina's CUDA kernels need sm_80 or newer (cp.async, bf16 mma.sync)"
#endif

#define SIMT_DYNAMIC_SMEM(T, name)                                        \
  extern __shared__ __align__(16) unsigned char simt_dynamic_smem_[];     \
  T* name = reinterpret_cast<T*>(simt_dynamic_smem_)

template <class... KArgs, class... Args>
inline cudaError_t simt_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                               cudaStream_t stream, Args... args) {
  lamina::simt::launch_count.fetch_add(1, std::memory_order_relaxed);
  // Above 48 KiB of dynamic shared memory a kernel must opt in (the emulator takes up to the
  // sm_90 limit, 227 KiB, as the device then does).
  if (smem > 48 * 1024) {
    const cudaError_t opt_in = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (opt_in != cudaSuccess) return opt_in;
  }
  kernel<<<grid, block, smem, stream>>>(args...);
  return cudaGetLastError();
}

namespace lamina::simt {

// Device bodies are empty in nvcc's host pass, which never runs them.

__device__ __forceinline__ void cp_async16(void* smem_dst, const void* gmem_src) {
#if defined(__CUDA_ARCH__)
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src));
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// `smem_row` is the row this lane supplies: lanes 8j..8j+7 give the rows of matrix j.
template <int NUM, bool TRANS = false>
__device__ __forceinline__ void ldmatrix(uint32_t (&r)[NUM], const void* smem_row) {
  static_assert(NUM == 1 || NUM == 2 || NUM == 4, "ldmatrix loads 1, 2 or 4 matrices");
#if defined(__CUDA_ARCH__)
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  if constexpr (NUM == 1 && !TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
  else if constexpr (NUM == 1)
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0]) : "r"(a));
  else if constexpr (NUM == 2 && !TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  else if constexpr (NUM == 2)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  else if constexpr (!TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
#endif
}

// D = A * B + C for one warp: A 16x16 row-major, B 16x8 column-major, C and D 16x8 fp32, in
// the PTX ISA fragment layouts of mma.m16n8k16 (documented in simt/emu_tensor.h).
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4],
                                                  const uint32_t (&b)[2], const float (&c)[4]) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#endif
}

__device__ __forceinline__ void mma_m16n8k16_f16(float (&d)[4], const uint32_t (&a)[4],
                                                 const uint32_t (&b)[2], const float (&c)[4]) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#endif
}

// fp32 -> tf32 (cvt.rna: round to nearest, ties away from zero): the fp32 bit pattern with
// the low 13 mantissa bits cleared, the operand format of mma.sync .tf32.
__device__ __forceinline__ uint32_t float_to_tf32(float x) {
  uint32_t r = 0;
#if defined(__CUDA_ARCH__)
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
#endif
  return r;
}

// D = A * B + C for one warp: A 16x8 row-major, B 8x8 column-major (tf32 in 32-bit
// registers), C and D 16x8 fp32, in the PTX ISA fragment layouts of mma.m16n8k8 .tf32
// (documented in simt/emu_tensor.h).
__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4],
                                                 const uint32_t (&b)[2], const float (&c)[4]) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#endif
}

}  // namespace lamina::simt

#else  // a host compiler: the emulator

#include "simt_emu.h"

#define SIMT_DYNAMIC_SMEM(T, name) T* name = static_cast<T*>(::lamina::simt::emu::dynamic_smem())

// Runs the whole grid before returning; the stream is ignored.
template <class... KArgs, class... Args>
inline cudaError_t simt_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                               cudaStream_t, Args... args) {
  lamina::simt::launch_count.fetch_add(1, std::memory_order_relaxed);
  return lamina::simt::launch(kernel, grid, block, smem, args...);
}

#endif

namespace lamina::simt {

// Two 16-bit values in one register, `lo` in the low half: the element order of mma
// fragments.
__device__ __forceinline__ uint32_t pack_bf16x2(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  return uint32_t(__bfloat16_as_ushort(lo)) | uint32_t(__bfloat16_as_ushort(hi)) << 16;
}
__device__ __forceinline__ uint32_t pack_half2(__half lo, __half hi) {
  return uint32_t(__half_as_ushort(lo)) | uint32_t(__half_as_ushort(hi)) << 16;
}

}  // namespace lamina::simt
