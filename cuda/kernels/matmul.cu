// Matrix multiply, batched: C[z] (M x N) = A[z] (M x K) @ B[z] (K x N), all row-major and
// contiguous (the op materialises broadcast batches), z = blockIdx.z.
//
// Kernels:
//   sgemm_forward_kernel<T>   float32 / float64: 64x64 output tile per 256-thread block, K in
//       steps of 16 through shared memory (A stored k-major, padded), each thread a 4x4
//       register tile of FMAs. Exact fp32 (no TF32). 2*M*N*K FLOPs; each K step reads
//       (64 + 64) * 16 elements for 64 * 64 * 16 FMAs: 32 FMAs per loaded element per block.
//   bf16_gemm_forward_kernel  bfloat16 in, fp32 out, on tensor cores: 64x64 tile per
//       128-thread block (2x2 warps, 32x32 each = 2x4 mma.m16n8k16), K in steps of 32,
//       double-buffered: cp.async (16-byte chunks, scalar fallback on ragged edges or
//       unaligned rows) fills the next stage while ldmatrix (A: x4; B: x4.trans) and mma.sync
//       consume this one. Rows padded by 8 elements (16 bytes): ldmatrix rows stay 16-byte
//       aligned and the 8 rows of a matrix fall in different banks. 19 KiB shared memory.
// Versions: sgemm v1 (the lab's tiled kernel, generalised to ragged shapes and batches);
// bf16 v1 (2-stage pipeline; 3+ stages, 128x128 tiles and swizzling come with tuning on a GPU).
// Backward is written with ops (matmul of the gradient with the transposed operand), so it
// runs these same kernels.
#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

constexpr int kSgemmBM = 64, kSgemmBN = 64, kSgemmBK = 16, kSgemmTM = 4, kSgemmTN = 4;

template <class T>
__global__ void __launch_bounds__(256)
    sgemm_forward_kernel(int M, int N, int K, const T* __restrict__ A, const T* __restrict__ B,
                         T* __restrict__ C) {
  constexpr int BM = kSgemmBM, BN = kSgemmBN, BK = kSgemmBK, TM = kSgemmTM, TN = kSgemmTN;
  __shared__ T As[BK][BM + 4];  // k-major, padded against bank conflicts on the stores
  __shared__ T Bs[BK][BN];
  const size_t z = blockIdx.z;
  A += z * size_t(M) * K;
  B += z * size_t(K) * N;
  C += z * size_t(M) * N;
  const int tid = threadIdx.x, tx = tid % (BN / TN), ty = tid / (BN / TN);
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
  for (int k0 = 0; k0 < K; k0 += BK) {
    for (int i = tid; i < BM * BK; i += blockDim.x) {
      const int m = i / BK, k = i % BK, gm = row0 + m, gk = k0 + k;
      As[k][m] = (gm < M && gk < K) ? A[size_t(gm) * K + gk] : T(0);
    }
    for (int i = tid; i < BK * BN; i += blockDim.x) {
      const int k = i / BN, n = i % BN, gk = k0 + k, gn = col0 + n;
      Bs[k][n] = (gk < K && gn < N) ? B[size_t(gk) * N + gn] : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      T a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[k][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[k][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int gm = row0 + ty * TM + i, gn = col0 + tx * TN + j;
      if (gm < M && gn < N) C[size_t(gm) * N + gn] = acc[i][j];
    }
}

constexpr int kMmaBM = 64, kMmaBN = 64, kMmaBK = 32, kMmaPad = 8, kMmaThreads = 128;

// One stage of the bf16 pipeline: the A tile (64 x 32, row-major) and the B tile (32 x 64,
// row-major), rows padded by 8 elements.
struct MmaStage {
  __nv_bfloat16 a[kMmaBM][kMmaBK + kMmaPad];
  __nv_bfloat16 b[kMmaBK][kMmaBN + kMmaPad];
};

// Copies 8 consecutive elements (16 bytes) of a row into shared memory: cp.async when the
// chunk is inside the matrix and 16-byte aligned, element by element with zero fill otherwise.
__device__ __forceinline__ void load_chunk(__nv_bfloat16* dst, const __nv_bfloat16* __restrict__ row, int col,
                                           int cols, bool row_ok, bool aligned) {
  if (row_ok && aligned && col + 8 <= cols) {
    simt::cp_async16(dst, row + col);
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e)
      dst[e] = (row_ok && col + e < cols) ? row[col + e] : __float2bfloat16(0.0f);
  }
}

__device__ __forceinline__ void load_stage(MmaStage& s, const __nv_bfloat16* __restrict__ A,
                                           const __nv_bfloat16* __restrict__ B, int M, int N, int K, int row0,
                                           int col0, int k0, bool a_aligned, bool b_aligned) {
  const int tid = threadIdx.x;
#pragma unroll
  for (int c = tid; c < kMmaBM * kMmaBK / 8; c += kMmaThreads) {  // A: 4 chunks per row
    const int r = c / (kMmaBK / 8), k = (c % (kMmaBK / 8)) * 8;
    load_chunk(&s.a[r][k], A + size_t(row0 + r) * K, k0 + k, K, row0 + r < M, a_aligned);
  }
#pragma unroll
  for (int c = tid; c < kMmaBK * kMmaBN / 8; c += kMmaThreads) {  // B: 8 chunks per row
    const int r = c / (kMmaBN / 8), n = (c % (kMmaBN / 8)) * 8;
    load_chunk(&s.b[r][n], B + size_t(k0 + r) * N, col0 + n, N, k0 + r < K, b_aligned);
  }
}

__global__ void __launch_bounds__(kMmaThreads)
    bf16_gemm_forward_kernel(int M, int N, int K, const __nv_bfloat16* __restrict__ A,
                             const __nv_bfloat16* __restrict__ B, float* __restrict__ C, bool a_aligned,
                             bool b_aligned) {
  __shared__ __align__(16) MmaStage stages[2];
  const size_t z = blockIdx.z;
  A += z * size_t(M) * K;
  B += z * size_t(K) * N;
  C += z * size_t(M) * N;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int row0 = blockIdx.y * kMmaBM, col0 = blockIdx.x * kMmaBN;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;  // this warp's 32x32 in the tile
  float acc[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  const int tiles = (K + kMmaBK - 1) / kMmaBK;
  load_stage(stages[0], A, B, M, N, K, row0, col0, 0, a_aligned, b_aligned);
  simt::cp_async_commit();
  for (int t = 0; t < tiles; ++t) {
    if (t + 1 < tiles) {
      load_stage(stages[(t + 1) % 2], A, B, M, N, K, row0, col0, (t + 1) * kMmaBK, a_aligned, b_aligned);
      simt::cp_async_commit();
      simt::cp_async_wait<1>();  // this stage has landed; the next may still be in flight
    } else {
      simt::cp_async_wait<0>();
    }
    __syncthreads();
    const MmaStage& s = stages[t % 2];
#pragma unroll
    for (int kk = 0; kk < kMmaBK; kk += 16) {
      uint32_t a[2][4], b[4][2];
      // A, x4: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15),
      // (rows 8-15, k 8-15) of the 16x16 fragment: registers a0..a3 in mma order.
#pragma unroll
      for (int i = 0; i < 2; ++i)
        simt::ldmatrix<4>(a[i], &s.a[wm + 16 * i + 8 * ((lane / 8) % 2) + lane % 8][kk + 8 * (lane / 16)]);
      // B, x4.trans: matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15);
      // transposed, each lane holds the k pair (2t, 2t+1) of column g: b0, b1 of two n tiles.
#pragma unroll
      for (int j = 0; j < 4; j += 2) {
        uint32_t r[4];
        simt::ldmatrix<4, true>(r, &s.b[kk + 8 * ((lane / 8) % 2) + lane % 8][wn + 8 * j + 8 * (lane / 16)]);
        b[j][0] = r[0];
        b[j][1] = r[1];
        b[j + 1][0] = r[2];
        b[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) simt::mma_m16n8k16_bf16(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();  // the next iteration's loads overwrite this stage
  }
  const int g = lane / 4, q = lane % 4;
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = row0 + wm + 16 * i + g + 8 * (e / 2), c = col0 + wn + 8 * j + 2 * q + e % 2;
        if (r < M && c < N) C[size_t(r) * N + c] = acc[i][j][e];
      }
}

}  // namespace device

void matmul(const char* name, const Tensor& out, const Tensor& a, const Tensor& b) {
  check<RuntimeError>(a.is_contiguous() && b.is_contiguous() && out.is_contiguous() && a.ndim() >= 2 &&
                          a.ndim() == b.ndim() && a.ndim() == out.ndim(),
                      name, ": the CUDA GEMM takes contiguous operands of equal rank");
  const int64_t M = a.shape()[size_t(a.ndim() - 2)], K = a.shape()[size_t(a.ndim() - 1)];
  const int64_t N = b.shape()[size_t(b.ndim() - 1)];
  const int64_t batch = M * N == 0 ? 0 : out.numel() / (M * N);
  if (batch == 0) return;
  check<ValueError>(M < (1 << 30) && N < (1 << 30) && K < (1 << 30) && batch <= 65535, name,
                    ": matrix too large for the CUDA GEMM (M, N, K < 2^30, at most 65535 batches)");
  if (K == 0) {
    fill(name, out, 0.0);
    return;
  }
  cudaError_t status;
  if (a.dtype() == DType::BFloat16) {
    check<TypeError>(b.dtype() == DType::BFloat16 && out.dtype() == DType::Float32, name,
                     ": the bf16 GEMM takes bfloat16 operands and a float32 output");
    // cp.async needs every 16-byte chunk aligned: rows of a multiple of 8 elements.
    const auto* pa = static_cast<const __nv_bfloat16*>(a.raw_data());
    const auto* pb = static_cast<const __nv_bfloat16*>(b.raw_data());
    const bool a_aligned = K % 8 == 0 && reinterpret_cast<uintptr_t>(pa) % 16 == 0;
    const bool b_aligned = N % 8 == 0 && reinterpret_cast<uintptr_t>(pb) % 16 == 0;
    const dim3 grid(unsigned((N + device::kMmaBN - 1) / device::kMmaBN),
                    unsigned((M + device::kMmaBM - 1) / device::kMmaBM), unsigned(batch));
    status = simt_launch(device::bf16_gemm_forward_kernel, grid, dim3(device::kMmaThreads), 0, current_stream(),
                         int(M), int(N), int(K), pa, pb, out.data<float>(), a_aligned, b_aligned);
    check_launch(status, name, "bf16_gemm_forward_kernel launch");
    return;
  }
  check<TypeError>(a.dtype() == b.dtype() && a.dtype() == out.dtype() &&
                       (a.dtype() == DType::Float32 || a.dtype() == DType::Float64),
                   name, ": the CUDA GEMM takes float32, float64 or bfloat16 operands");
  const dim3 grid(unsigned((N + device::kSgemmBN - 1) / device::kSgemmBN),
                  unsigned((M + device::kSgemmBM - 1) / device::kSgemmBM), unsigned(batch));
  if (a.dtype() == DType::Float32)
    status = simt_launch(device::sgemm_forward_kernel<float>, grid, dim3(256), 0, current_stream(), int(M), int(N),
                         int(K), a.data<float>(), b.data<float>(), out.data<float>());
  else
    status = simt_launch(device::sgemm_forward_kernel<double>, grid, dim3(256), 0, current_stream(), int(M),
                         int(N), int(K), a.data<double>(), b.data<double>(), out.data<double>());
  check_launch(status, name, "sgemm_forward_kernel launch");
}

}  // namespace lamina::cuda
