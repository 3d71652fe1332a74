// Matrix multiply with a fused epilogue, batched: C[z] (M x N) = epilogue(A[z] (M x K) @ B[z]
// (K x N)), all row-major and contiguous, z = blockIdx.z. An operand with batch stride 0 is one
// matrix shared by every batch (a broadcast batch), so no copy of it is made. The epilogue is
// applied in the accumulator's precision before the single store: none, + bias[col],
// relu(+ bias), gelu_tanh(+ bias), as cpu::Epilogue.
//
// Kernels:
//   sgemm_forward_kernel<T>   float32 / float64, exact (FFMA/DFMA): 64x64 output tile per
//       256-thread block, K in steps of 16 through shared memory (A stored k-major, padded),
//       each thread a 4x4 register tile. Each K step reads (64 + 64) * 16 elements for
//       64 * 64 * 16 FMAs: 32 FMAs per loaded element per block.
//   mma_gemm_kernel<E, Tile>  tensor cores, fp32 accumulation, the result rounded once to E:
//       E = bfloat16 / half: mma.sync m16n8k16, fragments by ldmatrix (A: x4; B: x4.trans);
//       E = float (TF32): mma.sync m16n8k8 .tf32, fragments by 32-bit shared loads rounded with
//       cvt.rna.tf32.f32 (10-bit mantissa, so ~1e-3 relative error per product).
//       Tiles: 128x256 (8 warps of 64x64, 4 stages; 16-bit operands with N >= 256), 128x128
//       (8 warps of 64x32, 16 mma per warp per k-step) when M and N are both at least 128,
//       else 64x64 (4 warps of 32x32); blocks take their tiles in groups of 8 row tiles (L2
//       reuse). A stage holds 64 bytes of K per row (BK = 32
//       16-bit or 16 fp32 elements); 3 stages: cp.async (16-byte chunks, scalar fallback on
//       ragged edges or unaligned rows) fills stage t+2 while stage t is consumed, with one
//       barrier per K step. Shared memory is XOR-swizzled per 16-byte chunk instead of padded
//       (see a_offset / b_offset), so a 128x128 tile's three stages fit 48 KiB exactly, the
//       most dynamic shared memory a launch gets without an opt-in.
// Versions: sgemm v1 (the lab's tiled kernel, generalised to ragged shapes and batches);
// mma v2 (v1 was bf16 only, 64x64, 2 stages, padded rows). Backward is written with ops
// (matmul of the gradient with the transposed operand), so it runs these same kernels.
#include <type_traits>

#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

enum class GemmEpilogue : int { None, Bias, BiasRelu, BiasGelu };

// One GEMM launch: In operands, Out result, Acc accumulator and bias. Batch strides are in
// elements.
template <class In, class Out, class Acc>
struct GemmProblem {
  int M, N, K;
  const In* __restrict__ A;
  const In* __restrict__ B;
  Out* __restrict__ C;
  size_t batch_stride_a, batch_stride_b;
  const Acc* __restrict__ bias;  // N values; null when the epilogue is None
  GemmEpilogue epilogue;
  bool a_aligned, b_aligned;  // every 16-byte chunk of a row may be copied with cp.async
};

template <class T>
__device__ __forceinline__ T gelu_tanh(T x) {
  const T sqrt_2_over_pi = T(0.7978845608028654), cubic = T(0.044715);
  const T inner = sqrt_2_over_pi * (x + cubic * x * x * x);
  if constexpr (std::is_same_v<T, float>) return 0.5f * x * (1.0f + tanhf(inner));
  else return 0.5 * x * (1.0 + tanh(inner));
}

template <class T>
__device__ __forceinline__ T apply_epilogue(T v, GemmEpilogue epilogue, const T* bias, int col) {
  if (epilogue == GemmEpilogue::None) return v;
  v += bias[col];
  if (epilogue == GemmEpilogue::BiasRelu) return v < T(0) ? T(0) : v;  // keeps NaN, as the CPU
  if (epilogue == GemmEpilogue::BiasGelu) return gelu_tanh(v);
  return v;
}

constexpr int kSgemmBM = 64, kSgemmBN = 64, kSgemmBK = 16, kSgemmTM = 4, kSgemmTN = 4;

template <class T>
__global__ void __launch_bounds__(256) sgemm_forward_kernel(GemmProblem<T, T, T> p) {
  constexpr int BM = kSgemmBM, BN = kSgemmBN, BK = kSgemmBK, TM = kSgemmTM, TN = kSgemmTN;
  __shared__ T As[BK][BM + 4];  // k-major, padded against bank conflicts on the stores
  __shared__ T Bs[BK][BN];
  const int M = p.M, N = p.N, K = p.K;
  const size_t z = blockIdx.z;
  const T* __restrict__ A = p.A + z * p.batch_stride_a;
  const T* __restrict__ B = p.B + z * p.batch_stride_b;
  T* __restrict__ C = p.C + z * size_t(M) * N;
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
      if (gm < M && gn < N) C[size_t(gm) * N + gn] = apply_epilogue(acc[i][j], p.epilogue, p.bias, gn);
    }
}

// Block tile BM x BN computed by WARPS_M x WARPS_N warps, through STAGES shared-memory stages.
template <int BM_, int BN_, int WARPS_M_, int WARPS_N_, int STAGES_>
struct MmaTile {
  static constexpr int BM = BM_, BN = BN_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, STAGES = STAGES_;
  static constexpr int kThreads = 32 * WARPS_M * WARPS_N;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // one warp's tile
  static constexpr int FM = WM / 16, FN = WN / 8;              // its mma tiles (16 x 8 each)
};
using LargeMmaTile = MmaTile<128, 128, 2, 4, 3>;
using SmallMmaTile = MmaTile<64, 64, 2, 2, 3>;
// 16-bit operands with M >= 128 and N >= 256: 8 warps of 64x64, whose ldmatrix reads carry
// twice the FLOPs per shared byte of the 128x128 tile's 64x32 warps (cuda/kernels/README.md);
// 4 stages of 24 KiB, 96 KiB in all (the launch opts in above 48 KiB), one block per SM.
using WideMmaTile = MmaTile<128, 256, 2, 4, 4>;

// The output tile of this block: consecutive blocks walk down a group of 8 row tiles before
// moving right, so the 8 A row tiles and the B column tiles they read are reused from L2
// (blocks start x fastest, which alone would stream all of B for every row tile).
__device__ __forceinline__ void grouped_tile(int& tile_m, int& tile_n) {
  constexpr int kGroup = 8;
  const int tiles_n = int(gridDim.x), tiles_m = int(gridDim.y);
  const int linear = int(blockIdx.y) * tiles_n + int(blockIdx.x);
  const int first_m = linear / (kGroup * tiles_n) * kGroup;
  const int rows = min(tiles_m - first_m, kGroup), local = linear - first_m * tiles_n;
  tile_m = first_m + local % rows;
  tile_n = local / rows;
}

// Element layout of one pipeline stage. Rows of A hold 64 bytes of K (4 chunks of 16
// bytes); rows of B hold BN elements. Chunks are XOR-swizzled within a row so that the 8
// rows one ldmatrix phase (or a tf32 fragment load) touches fall into 8 different 16-byte
// bank groups, and the cp.async stores of 8 consecutive threads too.
template <class E, class Tile>
struct MmaLayout {
  static constexpr int kChunk = 16 / int(sizeof(E));    // elements per 16-byte chunk
  static constexpr int BK = 4 * kChunk;                  // 32 for 16-bit, 16 for fp32
  static constexpr int kMmaK = sizeof(E) == 2 ? 16 : 8;  // m16n8k16 / m16n8k8
  static constexpr int kChunksB = Tile::BN / kChunk;
  static constexpr int kStageA = Tile::BM * BK, kStageB = BK * Tile::BN;  // elements
  static constexpr size_t kSharedBytes = size_t(Tile::STAGES) * (kStageA + kStageB) * sizeof(E);
  static_assert(kChunksB % 8 == 0, "the B swizzle permutes groups of 8 chunks");

  // Rows 2i and 2i+1 share a 128-byte line; chunk c of row r moves to c ^ (r/2 % 4).
  __device__ static int a_offset(int row, int col) {
    const int chunk = (col / kChunk) ^ ((row >> 1) & 3);
    return row * BK + chunk * kChunk + col % kChunk;
  }
  // 16-bit: ldmatrix.trans reads 8 consecutive k rows at one chunk: chunk ^ (k % 8).
  // fp32: a tf32 fragment reads 4 consecutive k rows at two adjacent chunks: chunk ^ 2(k % 4).
  __device__ static int b_offset(int k, int col) {
    const int swizzle = sizeof(E) == 2 ? (k & 7) : ((k & 3) << 1);
    return k * Tile::BN + ((col / kChunk) ^ swizzle) * kChunk + col % kChunk;
  }
};

template <class E>
__device__ __forceinline__ E zero_element() {
  if constexpr (std::is_same_v<E, __nv_bfloat16>) return __float2bfloat16(0.0f);
  else if constexpr (std::is_same_v<E, __half>) return __float2half(0.0f);
  else return 0.0f;
}

// Copies one 16-byte chunk of a row into shared memory: cp.async when the chunk is inside
// the matrix and aligned, element by element with zero fill otherwise.
template <class E>
__device__ __forceinline__ void load_chunk(E* dst, const E* __restrict__ row, int col, int cols, bool row_ok,
                                           bool aligned) {
  constexpr int kChunk = 16 / int(sizeof(E));
  if (row_ok && aligned && col + kChunk <= cols) {
    simt::cp_async16(dst, row + col);
  } else {
#pragma unroll
    for (int e = 0; e < kChunk; ++e) dst[e] = (row_ok && col + e < cols) ? row[col + e] : zero_element<E>();
  }
}

template <class E, class Tile>
__device__ __forceinline__ void load_stage(E* sa, E* sb, const GemmProblem<E, E, float>& p, const E* __restrict__ A,
                                           const E* __restrict__ B, int row0, int col0, int k0) {
  using L = MmaLayout<E, Tile>;
#pragma unroll
  for (int c = threadIdx.x; c < Tile::BM * 4; c += Tile::kThreads) {
    const int r = c / 4, col = (c % 4) * L::kChunk;
    load_chunk(sa + L::a_offset(r, col), A + size_t(row0 + r) * p.K, k0 + col, p.K, row0 + r < p.M, p.a_aligned);
  }
#pragma unroll
  for (int c = threadIdx.x; c < L::BK * L::kChunksB; c += Tile::kThreads) {
    const int r = c / L::kChunksB, col = (c % L::kChunksB) * L::kChunk;
    load_chunk(sb + L::b_offset(r, col), B + size_t(k0 + r) * p.N, col0 + col, p.N, k0 + r < p.K, p.b_aligned);
  }
}

// One k-step (kMmaK of K) of a warp's FM x FN mma tiles from one stage.
template <class E, class Tile>
__device__ __forceinline__ void mma_step(float (&acc)[Tile::FM][Tile::FN][4], const E* sa, const E* sb, int wm,
                                         int wn, int kk) {
  using L = MmaLayout<E, Tile>;
  const int lane = threadIdx.x % 32;
  uint32_t a[Tile::FM][4], b[Tile::FN][2];
  if constexpr (sizeof(E) == 2) {
    // A, x4: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15,
    // k 8-15) of a 16x16 fragment: registers a0..a3 in mma order.
#pragma unroll
    for (int i = 0; i < Tile::FM; ++i)
      simt::ldmatrix<4>(a[i], sa + L::a_offset(wm + 16 * i + 8 * ((lane / 8) % 2) + lane % 8, kk + 8 * (lane / 16)));
    // B, x4.trans: matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15);
    // transposed, each lane holds the k pair (2t, 2t+1) of column g: b0, b1 of two n tiles.
#pragma unroll
    for (int j = 0; j < Tile::FN; j += 2) {
      uint32_t r[4];
      simt::ldmatrix<4, true>(r, sb + L::b_offset(kk + 8 * ((lane / 8) % 2) + lane % 8, wn + 8 * j + 8 * (lane / 16)));
      b[j][0] = r[0];
      b[j][1] = r[1];
      b[j + 1][0] = r[2];
      b[j + 1][1] = r[3];
    }
#pragma unroll
    for (int i = 0; i < Tile::FM; ++i)
#pragma unroll
      for (int j = 0; j < Tile::FN; ++j) {
        if constexpr (std::is_same_v<E, __half>) simt::mma_m16n8k16_f16(acc[i][j], a[i], b[j], acc[i][j]);
        else simt::mma_m16n8k16_bf16(acc[i][j], a[i], b[j], acc[i][j]);
      }
  } else {
    // tf32 fragments (g = lane / 4, t = lane % 4): a_r at row g + 8(r % 2), column t + 4(r / 2);
    // b_r at row t + 4r, column g.
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int i = 0; i < Tile::FM; ++i)
#pragma unroll
      for (int r = 0; r < 4; ++r)
        a[i][r] = simt::float_to_tf32(sa[L::a_offset(wm + 16 * i + g + 8 * (r % 2), kk + t + 4 * (r / 2))]);
#pragma unroll
    for (int j = 0; j < Tile::FN; ++j)
#pragma unroll
      for (int r = 0; r < 2; ++r) b[j][r] = simt::float_to_tf32(sb[L::b_offset(kk + t + 4 * r, wn + 8 * j + g)]);
#pragma unroll
    for (int i = 0; i < Tile::FM; ++i)
#pragma unroll
      for (int j = 0; j < Tile::FN; ++j) simt::mma_m16n8k8_tf32(acc[i][j], a[i], b[j], acc[i][j]);
  }
}

// Rounds the fp32 result once to the output dtype.
template <class E>
__device__ __forceinline__ E from_float(float v) {
  if constexpr (std::is_same_v<E, __nv_bfloat16>) return __float2bfloat16(v);
  else if constexpr (std::is_same_v<E, __half>) return __float2half(v);
  else return v;
}

template <class E, class Tile>
__global__ void __launch_bounds__(Tile::kThreads) mma_gemm_kernel(GemmProblem<E, E, float> p) {
  using L = MmaLayout<E, Tile>;
  SIMT_DYNAMIC_SMEM(E, smem);
  E* const stage_a = smem;                                  // STAGES x kStageA
  E* const stage_b = smem + Tile::STAGES * L::kStageA;      // STAGES x kStageB
  const size_t z = blockIdx.z;
  const E* __restrict__ A = p.A + z * p.batch_stride_a;
  const E* __restrict__ B = p.B + z * p.batch_stride_b;
  E* __restrict__ C = p.C + z * size_t(p.M) * p.N;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int tile_m, tile_n;
  grouped_tile(tile_m, tile_n);
  const int row0 = tile_m * Tile::BM, col0 = tile_n * Tile::BN;
  const int wm = (warp / Tile::WARPS_N) * Tile::WM, wn = (warp % Tile::WARPS_N) * Tile::WN;
  float acc[Tile::FM][Tile::FN][4];
#pragma unroll
  for (int i = 0; i < Tile::FM; ++i)
#pragma unroll
    for (int j = 0; j < Tile::FN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  // Stage s holds K tile t for t % STAGES == s. Every thread commits one group per tile
  // slot, empty or not, so that wait<STAGES - 2> always means "tile t has landed".
  const int tiles = (p.K + L::BK - 1) / L::BK;
#pragma unroll
  for (int s = 0; s < Tile::STAGES - 1; ++s) {
    if (s < tiles)
      load_stage<E, Tile>(stage_a + s * L::kStageA, stage_b + s * L::kStageB, p, A, B, row0, col0, s * L::BK);
    simt::cp_async_commit();
  }
  for (int t = 0; t < tiles; ++t) {
    simt::cp_async_wait<Tile::STAGES - 2>();
    // Tile t is visible to the block, and every warp is done with tile t - 1, whose stage
    // the load below refills.
    __syncthreads();
    const int next = t + Tile::STAGES - 1;
    if (next < tiles) {
      const int s = next % Tile::STAGES;
      load_stage<E, Tile>(stage_a + s * L::kStageA, stage_b + s * L::kStageB, p, A, B, row0, col0, next * L::BK);
    }
    simt::cp_async_commit();
    const int s = t % Tile::STAGES;
#pragma unroll
    for (int kk = 0; kk < L::BK; kk += L::kMmaK)
      mma_step<E, Tile>(acc, stage_a + s * L::kStageA, stage_b + s * L::kStageB, wm, wn, kk);
  }
  const int g = lane / 4, q = lane % 4;
#pragma unroll
  for (int i = 0; i < Tile::FM; ++i)
#pragma unroll
    for (int j = 0; j < Tile::FN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = row0 + wm + 16 * i + g + 8 * (e / 2), c = col0 + wn + 8 * j + 2 * q + e % 2;
        if (r < p.M && c < p.N)
          C[size_t(r) * p.N + c] = from_float<E>(apply_epilogue(acc[i][j][e], p.epilogue, p.bias, c));
      }
}

}  // namespace device

namespace {

device::GemmEpilogue device_epilogue(cpu::Epilogue e) {
  switch (e) {
    case cpu::Epilogue::None: return device::GemmEpilogue::None;
    case cpu::Epilogue::Bias: return device::GemmEpilogue::Bias;
    case cpu::Epilogue::BiasRelu: return device::GemmEpilogue::BiasRelu;
    case cpu::Epilogue::BiasGelu: return device::GemmEpilogue::BiasGelu;
  }
  return device::GemmEpilogue::None;
}

template <class E, class Tile>
cudaError_t launch_mma(const device::GemmProblem<E, E, float>& p, unsigned batch) {
  const dim3 grid(unsigned((p.N + Tile::BN - 1) / Tile::BN), unsigned((p.M + Tile::BM - 1) / Tile::BM), batch);
  return simt_launch(device::mma_gemm_kernel<E, Tile>, grid, dim3(Tile::kThreads),
                     device::MmaLayout<E, Tile>::kSharedBytes, current_stream(), p);
}

// The largest tile that M and N do not leave mostly empty: 128x256 (16-bit operands only:
// TF32's fragments would not fit its registers), 128x128, else 64x64.
template <class E>
cudaError_t launch_mma_tile(const device::GemmProblem<E, E, float>& p, unsigned batch) {
  if constexpr (sizeof(E) == 2) {
    if (p.M >= device::WideMmaTile::BM && p.N >= device::WideMmaTile::BN)
      return launch_mma<E, device::WideMmaTile>(p, batch);
  }
  if (p.M >= device::LargeMmaTile::BM && p.N >= device::LargeMmaTile::BN) return launch_mma<E, device::LargeMmaTile>(p, batch);
  return launch_mma<E, device::SmallMmaTile>(p, batch);
}

template <class E>
void run_mma(const char* name, const device::GemmProblem<E, E, float>& p, unsigned batch) {
  check_launch(launch_mma_tile(p, batch), name, "mma_gemm_kernel launch");
}

template <class In, class Out, class Acc>
device::GemmProblem<In, Out, Acc> problem(const Tensor& out, const Tensor& a, const Tensor& b, cpu::Epilogue epilogue,
                                     const Tensor& bias, int64_t M, int64_t N, int64_t K) {
  const auto* pa = static_cast<const In*>(a.raw_data());
  const auto* pb = static_cast<const In*>(b.raw_data());
  constexpr int64_t chunk = 16 / int64_t(sizeof(In));  // cp.async copies aligned 16-byte chunks
  return {int(M),
          int(N),
          int(K),
          pa,
          pb,
          static_cast<Out*>(out.raw_data()),
          a.numel() == M * K ? 0 : size_t(M * K),
          b.numel() == K * N ? 0 : size_t(K * N),
          epilogue == cpu::Epilogue::None ? nullptr : static_cast<const Acc*>(bias.raw_data()),
          device_epilogue(epilogue),
          K % chunk == 0 && reinterpret_cast<uintptr_t>(pa) % 16 == 0,
          N % chunk == 0 && reinterpret_cast<uintptr_t>(pb) % 16 == 0};
}

}  // namespace

void matmul(const char* name, const Tensor& out, const Tensor& a, const Tensor& b, cpu::Epilogue epilogue,
            const Tensor& bias, bool allow_tf32) {
  check<RuntimeError>(a.is_contiguous() && b.is_contiguous() && out.is_contiguous() && a.ndim() >= 2 &&
                          b.ndim() >= 2 && out.ndim() >= 2,
                      name, ": the CUDA GEMM takes contiguous operands of at least two dimensions");
  const int64_t M = out.shape()[size_t(out.ndim() - 2)], N = out.shape()[size_t(out.ndim() - 1)];
  const int64_t K = a.shape()[size_t(a.ndim() - 1)];
  const int64_t batch = M * N == 0 ? 0 : out.numel() / (M * N);
  check<RuntimeError>(a.shape()[size_t(a.ndim() - 2)] == M && b.shape()[size_t(b.ndim() - 2)] == K &&
                          b.shape()[size_t(b.ndim() - 1)] == N && (a.numel() == M * K || a.numel() == batch * M * K) &&
                          (b.numel() == K * N || b.numel() == batch * K * N),
                      name, ": the CUDA GEMM takes one matrix or the whole batch of each operand");
  const bool with_bias = epilogue != cpu::Epilogue::None;
  const DType in = a.dtype(), out_t = out.dtype();
  const bool half = in == DType::BFloat16 || in == DType::Float16;
  const DType acc_t = half ? DType::Float32 : out_t;
  check<RuntimeError>(!with_bias || (bias.defined() && bias.is_contiguous() && bias.numel() == N &&
                                     bias.dtype() == acc_t && bias.device() == out.device()),
                      name, ": the GEMM epilogue takes a contiguous bias of N values in the accumulator dtype");
  if (batch == 0) return;
  check<ValueError>(M < (1 << 30) && N < (1 << 30) && K < (1 << 30) && batch <= 65535, name,
                    ": matrix too large for the CUDA GEMM (M, N, K < 2^30, at most 65535 batches)");
  if (K == 0 && !with_bias) {
    fill(name, out, 0.0);
    return;
  }
  check<TypeError>(b.dtype() == in && (!half || out_t == in), name,
                   ": the CUDA GEMM takes operands of one dtype (and 16-bit results of that dtype)");
  if (in == DType::BFloat16) {
    run_mma(name, problem<__nv_bfloat16, __nv_bfloat16, float>(out, a, b, epilogue, bias, M, N, K), unsigned(batch));
    return;
  }
  if (in == DType::Float16) {
    run_mma(name, problem<__half, __half, float>(out, a, b, epilogue, bias, M, N, K), unsigned(batch));
    return;
  }
  check<TypeError>(out_t == in && (in == DType::Float32 || in == DType::Float64), name,
                   ": the CUDA GEMM takes float32, float64, float16 or bfloat16 operands");
  if (in == DType::Float32 && allow_tf32) {
    run_mma(name, problem<float, float, float>(out, a, b, epilogue, bias, M, N, K), unsigned(batch));
    return;
  }
  const dim3 grid(unsigned((N + device::kSgemmBN - 1) / device::kSgemmBN),
                  unsigned((M + device::kSgemmBM - 1) / device::kSgemmBM), unsigned(batch));
  cudaError_t status;
  if (in == DType::Float32)
    status = simt_launch(device::sgemm_forward_kernel<float>, grid, dim3(256), 0, current_stream(),
                         problem<float, float, float>(out, a, b, epilogue, bias, M, N, K));
  else
    status = simt_launch(device::sgemm_forward_kernel<double>, grid, dim3(256), 0, current_stream(),
                         problem<double, double, double>(out, a, b, epilogue, bias, M, N, K));
  check_launch(status, name, "sgemm_forward_kernel launch");
}

}  // namespace lamina::cuda
