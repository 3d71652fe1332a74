// 2-D convolution as implicit GEMMs: the im2col matrix is never stored; tile loaders compute,
// for each GEMM element, which input element (or padding zero) it is.
//
// Layouts: activations NHWC, x [N, H, W, G C] and y [N, P, Q, G K]; weights KRSC, w [G K, R, S,
// C] (output channel, filter row, filter column, input channel), so a weight row is one output
// channel's whole filter, contiguous. G groups: group g reads channels [g C, (g + 1) C) of x and
// filters [g K, (g + 1) K) of w, and writes channels [g K, (g + 1) K) of y; C and K below are
// per group. P = (H + pad_h + pad_h_end - dil_h (R - 1) - 1) / stride_h + 1, likewise Q; the end
// (bottom/right) padding defaults to the start padding ('same' padding can put one more row at
// the end). The op adds the bias afterwards (no epilogue yet).
//
// The three GEMMs of one group (Kg: reduction length):
//   forward  y[m, k]  = sum_{(r,s,c)} x[n, p sh - ph + r dh, q sw - pw + s dw, c] w[k, r, s, c]
//            M = N P Q, N = K, Kg = R S C
//   dgrad    dx[m, c] = sum_{(r,s,k)} dy[n, p, q, k] w[k, r, s, c], where h + ph - r dh = p sh
//            (and the same for w, q); M = N H W, N = C, Kg = R S K
//   wgrad    dw[k, (r,s,c)] = sum_{(n,p,q)} dy[n, p, q, k] x[n, ih, iw, c]
//            M = K, N = R S C, Kg = N P Q
// Each is a Problem: where A(m, kg) and B(kg, n) live (null for a padding zero) and where the
// output element (m, n) goes. Grid: M tiles on x (whose limit, 2^31 - 1, large batches of large
// images need), N tiles on y, and the group on z: one launch covers all groups (the launcher
// splits more than 65535 groups into several launches).
//
// Kernels:
//   conv2d_forward_mma_kernel, conv2d_backward_input_mma_kernel, conv2d_backward_weight_mma_kernel
//       <T = __nv_bfloat16 or __half, kVec>: 16-bit operands, fp32 output, on tensor cores
//       (mma.sync m16n8k16, fp32 accumulation), one shared body: 64 x 64 output tile per
//       128-thread CTA (2 x 2 warps of 32 x 32 = 2 x 4 mma), Kg in steps of 32, two stages. An
//       operand whose memory runs along the reduction axis (forward x and w, dgrad dy) is
//       stored [mn][kg] in shared memory and read by ldmatrix; one whose runs go along M or N
//       (dgrad w: channels; wgrad dy: output channels, wgrad x: channels) is stored [kg][mn]
//       and read by ldmatrix.trans. With kVec (every 8-element run whole and 16-byte aligned:
//       C % 8 == 0, and K % 8 == 0 for the gradients, which run along K) each run is one
//       16-byte cp.async, issued for step i+1 while ldmatrix + mma consume step i; padding and
//       ragged edges are zero-filled with plain stores. Without kVec (e.g. C = 3, a network's
//       first layer) the tiles are gathered element by element. Rows padded by 8 elements
//       (ldmatrix rows in distinct banks). 20 KiB shared memory. The weight gradient (M = K
//       and N = R S C small, Kg = N P Q long) splits its reduction over blockIdx.z when its
//       tiles alone would leave SMs idle: each part writes an fp32 tile to a workspace, and
//   conv2d_split_sum_kernel adds the parts up in order (deterministic).
//   conv2d_forward_fma_kernel, conv2d_backward_input_kernel, conv2d_backward_weight_kernel
//       <float> / <double>: FFMA / DFMA implicit GEMMs over the same Problems, one shared body:
//       64 x 64 tile per 256 threads, 4 x 4 outputs per thread, Kg in steps of 16 through
//       shared memory (exact fp32, no TF32; fp64 for float64 tensors).
//   conv2d_depthwise_*_kernel: direct kernels for groups == C_in > 1 (one input channel per
//       group), which the launchers choose instead of the GEMMs: see their section below.
// FLOPs: 2 N P Q G K R S C for each of the three. Bytes (ideal): forward reads x once and w
// once per M tile, ~(N H W G C + ceil(M / 64) G K R S C) * sizeof(T), writes N P Q G K * 4;
// the loaders re-read each x element up to R S times from L1/L2 (the im2col duplication).
// Version 2: two stages, split-K only for the tensor-core wgrad (not the FMA one), no swizzle,
// 64 x 64 tiles.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "simt/portable.cuh"

namespace lamina::cuda {

struct Conv2dShape {
  int n = 0, h = 0, w = 0, c = 0;  // input; c per group
  int k = 0, r = 0, s = 0;         // filters; k per group
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  int pad_h_end = -1, pad_w_end = -1;  // -1: pad_h / pad_w
  int groups = 1;
  int out_h() const {
    return (h + pad_h + (pad_h_end < 0 ? pad_h : pad_h_end) - dil_h * (r - 1) - 1) / stride_h + 1;
  }
  int out_w() const {
    return (w + pad_w + (pad_w_end < 0 ? pad_w : pad_w_end) - dil_w * (s - 1) - 1) / stride_w + 1;
  }
};

namespace device {
namespace conv {

// Shape with the output size, passed by value to every kernel. c and k are per group; xl and
// yl are the elements from one pixel of x (of y) to the next: G C and G K.
struct Geometry {
  int n, h, w, c, k, r, s, ph, pw, sh, sw, dh, dw, p, q, xl, yl;
};

inline Geometry geometry(const Conv2dShape& a) {
  return {a.n,      a.h,      a.w,     a.c,     a.k,         a.r,         a.s,
          a.pad_h,  a.pad_w,  a.stride_h, a.stride_w, a.dil_h, a.dil_w, a.out_h(),
          a.out_w(), a.c * a.groups, a.k * a.groups};
}

// Input pixel for output pixel m = (n, p, q) and filter tap (r, s); false for padding.
__device__ __forceinline__ bool input_pixel(const Geometry& g, int m, int r, int s, size_t* at) {
  const int q = m % g.q, p = m / g.q % g.p, n = m / (g.q * g.p);
  const int ih = p * g.sh - g.ph + r * g.dh, iw = q * g.sw - g.pw + s * g.dw;
  if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return false;
  *at = (size_t(n) * g.h + ih) * g.w + iw;
  return true;
}

// ---- the three GEMMs, over operands of type T and an output of type O -----------------------
// a(m, kg) and b(kg, n) point at the operand element, or are null for a padding zero; they are
// called only inside the GEMM's bounds. kAAlongMN / kBAlongMN: the operand's contiguous runs go
// along M (N) rather than along Kg, which decides its shared-memory layout on tensor cores.

template <class T, class O>
struct ForwardProblem {
  static constexpr bool kAAlongMN = false, kBAlongMN = false;
  Geometry g;
  const T* x;
  const T* w;
  O* y;
  __host__ __device__ ForwardProblem with_group(int gi) const {
    return {g, x + size_t(gi) * g.c, w + size_t(gi) * g.k * kg(), y + size_t(gi) * g.k};
  }
  __host__ __device__ int m() const { return g.n * g.p * g.q; }
  __host__ __device__ int n() const { return g.k; }
  __host__ __device__ int kg() const { return g.r * g.s * g.c; }
  __device__ const T* a(int m, int kg) const {
    const int c = kg % g.c, tap = kg / g.c;
    size_t at;
    return input_pixel(g, m, tap / g.s, tap % g.s, &at) ? x + at * g.xl + c : nullptr;
  }
  __device__ const T* b(int kg, int n) const { return w + size_t(n) * this->kg() + kg; }
  __device__ O* out(int m, int n) const { return y + size_t(m) * g.yl + n; }
};

template <class T, class O>
struct BackwardInputProblem {  // kg = (r, s, k), k fastest
  static constexpr bool kAAlongMN = false, kBAlongMN = true;
  Geometry g;
  const T* dy;
  const T* w;
  O* dx;
  __host__ __device__ BackwardInputProblem with_group(int gi) const {
    return {g, dy + size_t(gi) * g.k, w + size_t(gi) * g.k * g.r * g.s * g.c, dx + size_t(gi) * g.c};
  }
  __host__ __device__ int m() const { return g.n * g.h * g.w; }
  __host__ __device__ int n() const { return g.c; }
  __host__ __device__ int kg() const { return g.r * g.s * g.k; }
  __device__ const T* a(int m, int kg) const {
    const int k = kg % g.k, tap = kg / g.k, s = tap % g.s, r = tap / g.s;
    const int iw = m % g.w, ih = m / g.w % g.h, n = m / (g.w * g.h);
    const int ph = ih + g.ph - r * g.dh, pw = iw + g.pw - s * g.dw;
    if (ph < 0 || pw < 0 || ph % g.sh || pw % g.sw) return nullptr;
    const int p = ph / g.sh, q = pw / g.sw;
    if (p >= g.p || q >= g.q) return nullptr;
    return dy + ((size_t(n) * g.p + p) * g.q + q) * g.yl + k;
  }
  __device__ const T* b(int kg, int c) const {
    const int k = kg % g.k, tap = kg / g.k;
    return w + (size_t(k) * g.r * g.s + tap) * g.c + c;
  }
  __device__ O* out(int m, int c) const { return dx + size_t(m) * g.xl + c; }
};

template <class T, class O>
struct BackwardWeightProblem {  // m = output channel, n = (r, s, c), kg = output pixel
  static constexpr bool kAAlongMN = true, kBAlongMN = true;
  Geometry g;
  const T* dy;
  const T* x;
  O* dw;
  __host__ __device__ BackwardWeightProblem with_group(int gi) const {
    return {g, dy + size_t(gi) * g.k, x + size_t(gi) * g.c, dw + size_t(gi) * g.k * n()};
  }
  __host__ __device__ int m() const { return g.k; }
  __host__ __device__ int n() const { return g.r * g.s * g.c; }
  __host__ __device__ int kg() const { return g.n * g.p * g.q; }
  __device__ const T* a(int k, int pixel) const { return dy + size_t(pixel) * g.yl + k; }
  __device__ const T* b(int pixel, int rsc) const {
    const int c = rsc % g.c, tap = rsc / g.c;
    size_t at;
    return input_pixel(g, pixel, tap / g.s, tap % g.s, &at) ? x + at * g.xl + c : nullptr;
  }
  __device__ O* out(int k, int rsc) const { return dw + size_t(k) * n() + rsc; }
};

// ---- 16-bit operands on tensor cores --------------------------------------------------------

constexpr int kBM = 64, kBK = 32, kThreads = 128;  // tiles are kBM x kBM outputs
constexpr int kLdK = kBK + 8, kLdMN = kBM + 8;       // row lengths of [mn][kg] and [kg][mn] tiles
constexpr int kTileElems = std::max(kBM * kLdK, kBK * kLdMN);
constexpr size_t kMmaSmemBytes = 4 * size_t(kTileElems) * 2;  // A and B, two stages

template <class T>
__device__ __forceinline__ T zero16() {
  if constexpr (std::is_same_v<T, __half>) return __float2half(0.0f);
  else return __float2bfloat16(0.0f);
}

template <class T>
__device__ __forceinline__ void mma16(float (&acc)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (std::is_same_v<T, __half>) simt::mma_m16n8k16_f16(acc, a, b, acc);
  else simt::mma_m16n8k16_bf16(acc, a, b, acc);
}

// One operand's tile of one pipeline stage: kBM rows (of M or N) by kBK of Kg, stored [mn][kg]
// (kAlongMN false) or [kg][mn]. at(mn, kg) is the operand element or null.
template <class T, bool kAlongMN, bool kVec, class At>
__device__ __forceinline__ void load_tile(T* tile, int mn0, int k0, int mn_size, int kg_size, const At& at) {
  constexpr int rows = kAlongMN ? kBK : kBM, cols = kAlongMN ? kBM : kBK, run = kVec ? 8 : 1;
  for (int e = threadIdx.x; e < rows * cols / run; e += kThreads) {
    const int row = e / (cols / run), col = e % (cols / run) * run;
    const int mn = mn0 + (kAlongMN ? col : row), kg = k0 + (kAlongMN ? row : col);
    const T* src = mn < mn_size && kg < kg_size ? at(mn, kg) : nullptr;
    T* dst = tile + row * (cols + 8) + col;
    if constexpr (kVec) {
      if (src) simt::cp_async16(dst, src);
      else *reinterpret_cast<uint4*>(dst) = uint4{0u, 0u, 0u, 0u};
    } else {
      *dst = src ? *src : zero16<T>();
    }
  }
}

// The A fragment (16 x 16, rows m.., reduction columns k..) of mma.m16n8k16. ldmatrix.trans
// turns a [kg][mn] tile's 8 x 8 blocks into the same register layout.
template <bool kAlongMN, class T>
__device__ __forceinline__ void load_a_fragment(uint32_t (&a)[4], const T* tile, int m, int k, int lane) {
  if constexpr (kAlongMN)
    simt::ldmatrix<4, true>(a, &tile[(k + lane % 8 + 8 * (lane / 16)) * kLdMN + m + 8 * (lane / 8 % 2)]);
  else
    simt::ldmatrix<4>(a, &tile[(m + lane % 8 + 8 * (lane / 8 % 2)) * kLdK + k + 8 * (lane / 16)]);
}

// The B fragments (16 x 8 each) of columns n..n+7 and n+8..n+15.
template <bool kAlongMN, class T>
__device__ __forceinline__ void load_b_fragments(uint32_t (&b0)[2], uint32_t (&b1)[2], const T* tile, int n, int k,
                                                 int lane) {
  uint32_t r[4];
  if constexpr (kAlongMN)
    simt::ldmatrix<4, true>(r, &tile[(k + lane % 8 + 8 * (lane / 8 % 2)) * kLdMN + n + 8 * (lane / 16)]);
  else
    simt::ldmatrix<4>(r, &tile[(n + 8 * (lane / 16) + lane % 8) * kLdK + k + 8 * (lane / 8 % 2)]);
  b0[0] = r[0], b0[1] = r[1], b1[0] = r[2], b1[1] = r[3];
}

__host__ __device__ inline int k_steps(int kg) { return (kg + kBK - 1) / kBK; }

// The weight gradient's reduction (N P Q, long) split over blockIdx.z: group z / splits sums
// k-steps [part steps, (part + 1) steps) of it, part = z % splits, into its own fp32 tile of
// `partial` ([G][splits][K][R S C]); conv2d_split_sum_kernel adds the tiles up.
struct SplitK {
  int splits, steps;
  float* partial;
};

// The GEMM over k-steps [step_begin, step_end) (of kBK each). Its tile goes to pr.out, or, with
// `partial` (a split of the reduction), to partial[m N + n].
template <class T, bool kVec, class Problem>
__device__ __forceinline__ void implicit_gemm_mma(const Problem& pr, int step_begin, int step_end, float* partial) {
  SIMT_DYNAMIC_SMEM(T, smem);
  T* const as = smem;                   // [2][kTileElems]
  T* const bs = smem + 2 * kTileElems;  // [2][kTileElems]
  const int M = pr.m(), N = pr.n(), Kg = pr.kg();
  const int m0 = blockIdx.x * kBM, n0 = blockIdx.y * kBM;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gr = lane / 4, t = lane % 4;
  const int wm = warp / 2 * 32, wn = warp % 2 * 32;
  const auto a_at = [&](int m, int kg) { return pr.a(m, kg); };
  const auto b_at = [&](int n, int kg) { return pr.b(kg, n); };
  const auto load_stage = [&](int step, int stage) {
    load_tile<T, Problem::kAAlongMN, kVec>(as + stage * kTileElems, m0, step * kBK, M, Kg, a_at);
    load_tile<T, Problem::kBAlongMN, kVec>(bs + stage * kTileElems, n0, step * kBK, N, Kg, b_at);
  };
  float acc[2][4][4] = {};
  load_stage(step_begin, 0);
  simt::cp_async_commit();
  for (int i = step_begin; i < step_end; ++i) {
    const int stage = (i - step_begin) & 1;
    if (i + 1 < step_end) load_stage(i + 1, stage ^ 1);
    simt::cp_async_commit();
    simt::cp_async_wait<1>();
    __syncthreads();
    const T* const a_tile = as + stage * kTileElems;
    const T* const b_tile = bs + stage * kTileElems;
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      uint32_t a[2][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) load_a_fragment<Problem::kAAlongMN>(a[mi], a_tile, wm + mi * 16, kk, lane);
#pragma unroll
      for (int nj = 0; nj < 4; nj += 2)
        load_b_fragments<Problem::kBAlongMN>(b[nj], b[nj + 1], b_tile, wn + nj * 8, kk, lane);
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int nj = 0; nj < 4; ++nj) mma16<T>(acc[mi][nj], a[mi], b[nj]);
    }
    __syncthreads();  // the stage is refilled by the next iteration
  }
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int nj = 0; nj < 4; ++nj)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int m = m0 + wm + mi * 16 + gr + 8 * (e / 2), n = n0 + wn + nj * 8 + 2 * t + e % 2;
        if (m < M && n < N) *(partial ? partial + size_t(m) * N + n : pr.out(m, n)) = acc[mi][nj][e];
      }
}

// ---- fp32 / fp64 FMA implicit GEMM ----------------------------------------------------------

constexpr int kFBM = 64, kFBN = 64, kFBK = 16, kFThreads = 256;

template <class T, class Problem>
__device__ __forceinline__ void implicit_gemm_fma(const Problem& pr) {
  constexpr int TM = 4, TN = 4;
  __shared__ T as[kFBK][kFBM + 4];
  __shared__ T bs[kFBK][kFBN + 4];
  const int M = pr.m(), N = pr.n(), K = pr.kg();
  const int tid = threadIdx.x, tx = tid % (kFBN / TN), ty = tid / (kFBN / TN);
  const int m0 = blockIdx.x * kFBM, n0 = blockIdx.y * kFBN;
  T acc[TM][TN] = {};
  for (int k0 = 0; k0 < K; k0 += kFBK) {
    for (int e = tid; e < kFBM * kFBK; e += kFThreads) {  // k fastest: contiguous channels
      const int m = e / kFBK, k = e % kFBK;
      const T* src = m0 + m < M && k0 + k < K ? pr.a(m0 + m, k0 + k) : nullptr;
      as[k][m] = src ? *src : T(0);
    }
    for (int e = tid; e < kFBK * kFBN; e += kFThreads) {  // n fastest
      const int k = e / kFBN, n = e % kFBN;
      const T* src = k0 + k < K && n0 + n < N ? pr.b(k0 + k, n0 + n) : nullptr;
      bs[k][n] = src ? *src : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kFBK; ++k) {
      T a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = as[k][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = bs[k][tx * TN + j];
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
      const int m = m0 + ty * TM + i, n = n0 + tx * TN + j;
      if (m < M && n < N) *pr.out(m, n) = acc[i][j];
    }
}

}  // namespace conv

// ---- kernels: one group per blockIdx.z ------------------------------------------------------

template <class T, bool kVec>
__global__ void __launch_bounds__(conv::kThreads)
    conv2d_forward_mma_kernel(conv::ForwardProblem<T, float> problem) {
  conv::implicit_gemm_mma<T, kVec>(problem.with_group(blockIdx.z), 0, conv::k_steps(problem.kg()), nullptr);
}

template <class T, bool kVec>
__global__ void __launch_bounds__(conv::kThreads)
    conv2d_backward_input_mma_kernel(conv::BackwardInputProblem<T, float> problem) {
  conv::implicit_gemm_mma<T, kVec>(problem.with_group(blockIdx.z), 0, conv::k_steps(problem.kg()), nullptr);
}

template <class T, bool kVec>
__global__ void __launch_bounds__(conv::kThreads)
    conv2d_backward_weight_mma_kernel(conv::BackwardWeightProblem<T, float> problem, conv::SplitK split) {
  const int group = blockIdx.z / split.splits, part = blockIdx.z % split.splits;
  const int steps = conv::k_steps(problem.kg()), end = (part + 1) * split.steps;
  conv::implicit_gemm_mma<T, kVec>(problem.with_group(group), part * split.steps, end < steps ? end : steps,
                                   split.splits > 1 ? split.partial + size_t(blockIdx.z) * problem.m() * problem.n()
                                                    : nullptr);
}

// dw[g] = the sum of the splits' partial tiles, in split order (deterministic).
__global__ void __launch_bounds__(256)
    conv2d_split_sum_kernel(const float* __restrict__ partial, float* __restrict__ out, int splits,
                            size_t tile, size_t total) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    const float* p = partial + i / tile * splits * tile + i % tile;
    float sum = 0.0f;
    for (int z = 0; z < splits; ++z) sum += p[z * tile];
    out[i] = sum;
  }
}

template <class T>
__global__ void __launch_bounds__(conv::kFThreads)
    conv2d_forward_fma_kernel(conv::ForwardProblem<T, T> problem) {
  conv::implicit_gemm_fma<T>(problem.with_group(blockIdx.z));
}

template <class T>
__global__ void __launch_bounds__(conv::kFThreads)
    conv2d_backward_input_kernel(conv::BackwardInputProblem<T, T> problem) {
  conv::implicit_gemm_fma<T>(problem.with_group(blockIdx.z));
}

template <class T>
__global__ void __launch_bounds__(conv::kFThreads)
    conv2d_backward_weight_kernel(conv::BackwardWeightProblem<T, T> problem) {
  conv::implicit_gemm_fma<T>(problem.with_group(blockIdx.z));
}


// ==== direct depthwise conv ===================================================================
// Used when there are several groups of one input channel each (C = 1 per group, G = the input
// channels > 1; K filters per group, K >= 1): the implicit GEMM would have N = K (1/64 of a
// tile) and a reduction of R S, so its tile machinery is almost all overhead. These kernels
// compute each sum directly, over the taps that fall inside the input (padding taps are skipped,
// not added as 0 * w, as in the CPU op's depthwise loops). Layouts as above with C = 1: x [N, H, W, G], w [G K, R, S] (filter oc = g K + k
// reads input channel g = oc / K), y [N, P, Q, G K].
//
//   conv2d_depthwise_forward_kernel: one thread per y element, oc fastest, so a warp reads 32
//       consecutive channels of one x pixel per tap (a coalesced 128-byte row for float, K = 1)
//       and neighbouring taps hit L1. The R S weights of a filter come from L1/L2 (w is tiny).
//   conv2d_depthwise_input_kernel: one thread per dx element (n, h, w, g), the gather form: for
//       each tap (r, s) the output pixel that read it is p = (h + ph - r dh) / sh when that
//       divides (likewise q), summed over the group's K filters. No atomics: deterministic.
//   conv2d_depthwise_weight_kernel: dw[oc, tap] = sum over the N P Q output pixels of
//       dy[pixel, oc] x[input pixel of (pixel, tap), g]. A CTA is 32 channels (lanes: coalesced)
//       x 8 pixel rows, and covers up to kDwTaps taps at once (one dy load feeds kDwTaps FMAs;
//       more taps take more CTAs on grid.x). grid.y splits N P Q into `splits` fixed slices;
//       each thread sums its pixels of the slice in order, the 8 rows are added in a fixed
//       order through shared memory, and the slice's sums go to dw (one slice) or to a
//       workspace [splits][G K][R S] that conv2d_depthwise_split_sum_kernel adds up in slice
//       order. Deterministic: no float atomics, no order that depends on scheduling.
// T is the operand type, O the output type, and sums run in Acc: T for float and double; for
// bf16 / fp16 operands Acc = O = float (the tensor-core launchers' contract: the op rounds to
// 16 bits once, afterwards).
//
// FLOPs (forward; dgrad and wgrad the same): 2 N P Q G K R S. Bytes, each operand once from
// HBM (the tap reuse stays in L1/L2): forward x N H W G + y N P Q G K elements (+ w, tiny);
// dgrad dy + dx; wgrad dy + x (+ the workspace, splits G K R S floats, written and read once).
// At 2 R S FLOPs per ~8 bytes (float, K = 1) that is ~2 FLOP/B, far below an H100's ridge
// (~60 TFLOP/s fp32 / 3.35 TB/s ~ 18 FLOP/B): these kernels are memory-bound.
// Predicted (H100 SXM5, ~3.35 TB/s HBM3, ~2.8-3.0 TB/s sustained by a streaming kernel) for a
// MobileNet-like layer, N = 64, C = 256, 56 x 56, 3 x 3, stride 1, K = 1, float32: x and y are
// 64 * 56 * 56 * 256 * 4 B = 205.5 MB each, 411 MB per pass for 0.92 GFLOP, so ~140 us
// (~145-170 us with tails and the L1 misses of the halo rows) per forward, the same for dgrad
// and for wgrad (which reads dy and x once: each CTA takes the 9 taps of one dy load). That is
// ~6 TFLOP/s, ~10 % of the fp32 FMA peak, and at the HBM roofline; the implicit GEMM spends
// ~64x its FLOPs on the N tile's padding. Not in these figures: the op's NCHW <-> NHWC copies
// (each reads and writes the operand once more, ~3x the kernel's bytes over a pass).

namespace conv {

constexpr int kDwThreads = 256, kDwLanes = 32, kDwRows = kDwThreads / kDwLanes, kDwTaps = 9;

template <class T>
__device__ __forceinline__ auto widen(T v) {
  if constexpr (std::is_same_v<T, __half>) return __half2float(v);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v);
  else return v;
}

// CTAs per SM the weight-gradient kernel must fit: 4 (64 registers, half the SM's threads:
// enough loads in flight for a streaming kernel) for float sums; 2 for double, whose 9
// accumulators and tap offsets spill at 64 registers.
template <class Acc>
constexpr int kDwWeightMinBlocks = sizeof(Acc) == 8 ? 2 : 4;

// The weight gradient's split of its N P Q pixels over grid.y: slices of `per` pixels.
struct DepthwiseSplit {
  int splits, per;
};

}  // namespace conv

template <class T, class O, class Acc>
__global__ void __launch_bounds__(conv::kDwThreads)
    conv2d_depthwise_forward_kernel(conv::Geometry g, const T* __restrict__ x, const T* __restrict__ w,
                                    O* __restrict__ y) {
  const int64_t total = int64_t(g.n) * g.p * g.q * g.yl;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int oc = int(i % g.yl), pixel = int(i / g.yl);
    const int q = pixel % g.q, p = pixel / g.q % g.p, n = pixel / (g.q * g.p);
    const T* const filter = w + size_t(oc) * g.r * g.s;
    const T* const image = x + size_t(n) * g.h * g.w * g.xl + oc / g.k;
    Acc sum = 0;
    for (int r = 0; r < g.r; ++r) {
      const int ih = p * g.sh - g.ph + r * g.dh;
      if (ih < 0 || ih >= g.h) continue;
      for (int s = 0; s < g.s; ++s) {
        const int iw = q * g.sw - g.pw + s * g.dw;
        if (iw < 0 || iw >= g.w) continue;
        sum += Acc(conv::widen(image[(size_t(ih) * g.w + iw) * g.xl])) * Acc(conv::widen(filter[r * g.s + s]));
      }
    }
    y[i] = O(sum);
  }
}

template <class T, class O, class Acc>
__global__ void __launch_bounds__(conv::kDwThreads)
    conv2d_depthwise_input_kernel(conv::Geometry g, const T* __restrict__ dy, const T* __restrict__ w,
                                  O* __restrict__ dx) {
  const int64_t total = int64_t(g.n) * g.h * g.w * g.xl;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % g.xl), pixel = int(i / g.xl);
    const int iw = pixel % g.w, ih = pixel / g.w % g.h, n = pixel / (g.w * g.h);
    const T* const grads = dy + size_t(n) * g.p * g.q * g.yl + size_t(c) * g.k;
    const T* const filters = w + size_t(c) * g.k * g.r * g.s;
    Acc sum = 0;
    for (int r = 0; r < g.r; ++r) {
      const int ph = ih + g.ph - r * g.dh;
      if (ph < 0 || ph % g.sh) continue;
      const int p = ph / g.sh;
      if (p >= g.p) continue;
      for (int s = 0; s < g.s; ++s) {
        const int pw = iw + g.pw - s * g.dw;
        if (pw < 0 || pw % g.sw) continue;
        const int q = pw / g.sw;
        if (q >= g.q) continue;
        const T* const at = grads + (size_t(p) * g.q + q) * g.yl;
        for (int k = 0; k < g.k; ++k)
          sum += Acc(conv::widen(at[k])) * Acc(conv::widen(filters[(size_t(k) * g.r + r) * g.s + s]));
      }
    }
    dx[i] = O(sum);
  }
}

// grid.x: (channel tile, tap chunk) pairs, the chunk fastest; grid.y: the pixel slice.
template <class T, class O, class Acc>
__global__ void __launch_bounds__(conv::kDwThreads, conv::kDwWeightMinBlocks<Acc>)
    conv2d_depthwise_weight_kernel(conv::Geometry g, const T* __restrict__ dy, const T* __restrict__ x,
                                   O* __restrict__ dw, Acc* __restrict__ partial, conv::DepthwiseSplit split) {
  using namespace conv;
  __shared__ Acc rows[kDwTaps][kDwRows][kDwLanes];
  const int taps = g.r * g.s, chunks = (taps + kDwTaps - 1) / kDwTaps;
  const int tap0 = int(blockIdx.x % chunks) * kDwTaps, oc0 = int(blockIdx.x / chunks) * kDwLanes;
  const int lane = threadIdx.x % kDwLanes, row = threadIdx.x / kDwLanes, oc = oc0 + lane;
  const int pixels = g.n * g.p * g.q, begin = int(blockIdx.y) * split.per;
  const int end = begin + split.per < pixels ? begin + split.per : pixels;
  Acc acc[kDwTaps];
#pragma unroll
  for (int t = 0; t < kDwTaps; ++t) acc[t] = 0;
  if (oc < g.yl) {
    const T* const image = x + oc / g.k;
    for (int pixel = begin + row; pixel < end; pixel += kDwRows) {
      const Acc grad = Acc(widen(dy[size_t(pixel) * g.yl + oc]));
      const int q = pixel % g.q, p = pixel / g.q % g.p, n = pixel / (g.q * g.p);
#pragma unroll
      for (int t = 0; t < kDwTaps; ++t) {
        const int tap = tap0 + t, r = tap / g.s, s = tap % g.s;
        const int ih = p * g.sh - g.ph + r * g.dh, iw = q * g.sw - g.pw + s * g.dw;
        if (tap < taps && ih >= 0 && ih < g.h && iw >= 0 && iw < g.w)
          acc[t] += grad * Acc(widen(image[((size_t(n) * g.h + ih) * g.w + iw) * g.xl]));
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kDwTaps; ++t) rows[t][row][lane] = acc[t];
  __syncthreads();
  for (int e = threadIdx.x; e < kDwTaps * kDwLanes; e += kDwThreads) {
    const int t = e / kDwLanes, l = e % kDwLanes, tap = tap0 + t;
    if (tap >= taps || oc0 + l >= g.yl) continue;
    Acc sum = rows[t][0][l];
    for (int j = 1; j < kDwRows; ++j) sum += rows[t][j][l];
    const size_t at = size_t(oc0 + l) * taps + tap;
    if (split.splits > 1) partial[size_t(blockIdx.y) * g.yl * taps + at] = sum;
    else dw[at] = O(sum);
  }
}

// dw = the sum of the slices' partial sums, in slice order.
template <class O, class Acc>
__global__ void __launch_bounds__(conv::kDwThreads)
    conv2d_depthwise_split_sum_kernel(const Acc* __restrict__ partial, O* __restrict__ dw, int splits, int size) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < size; i += gridDim.x * blockDim.x) {
    Acc sum = partial[i];
    for (int z = 1; z < splits; ++z) sum += partial[size_t(z) * size + i];
    dw[i] = O(sum);
  }
}

}  // namespace device

// ---- launchers ------------------------------------------------------------------------------

namespace conv_host {

constexpr int kMaxGroupsPerLaunch = 65535;  // grid.z

inline void require(bool ok, const char* op, const char* what) {
  if (!ok) throw std::invalid_argument(std::string(op) + ": " + what);
}

inline void require_shape(const char* op, const Conv2dShape& s) {
  require(s.n > 0 && s.h > 0 && s.w > 0 && s.c > 0 && s.k > 0 && s.r > 0 && s.s > 0 && s.groups > 0, op,
          "empty shape");
  require(s.pad_h >= 0 && s.pad_w >= 0 && s.stride_h > 0 && s.stride_w > 0 && s.dil_h > 0 &&
              s.dil_w > 0, op, "bad padding, stride or dilation");
  require(s.out_h() > 0 && s.out_w() > 0, op, "the filter is larger than the padded input");
  const double pixels = double(s.n) * std::max(s.h * s.w, s.out_h() * s.out_w());
  const double channels = double(std::max(s.c, s.k)) * s.groups;
  require(pixels * channels < 2147483647.0 && double(s.r) * s.s * s.c * s.k * s.groups < 2147483647.0, op,
          "tensors of 2^31 or more elements");
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Launches `kernel` over pr's M x N tiles for every group, at most 65535 groups a launch. M
// (output pixels, or input pixels for dgrad) goes on grid.x, whose limit is 2^31 - 1; N
// (channels, or R S C for wgrad) on grid.y, limited to 65535 tiles.
template <class Problem>
dim3 tile_grid(const char* op, const Problem& pr, int tile, int z) {
  const int n_tiles = (pr.n() + tile - 1) / tile;
  require(n_tiles <= 65535, op,
          "more than 65535 tiles of 64 GEMM columns (output channels for the forward, input channels for the "
          "input gradient, R S C for the weight gradient) per group");
  return dim3((pr.m() + tile - 1) / tile, n_tiles, z);
}

template <class Problem>
cudaError_t launch_groups(const char* op, void (*kernel)(Problem), const Problem& pr, int groups, int tile,
                          int threads, size_t smem, cudaStream_t stream) {
  for (int g0 = 0; g0 < groups; g0 += kMaxGroupsPerLaunch) {
    const dim3 grid = tile_grid(op, pr, tile, std::min(groups - g0, kMaxGroupsPerLaunch));
    const cudaError_t e = simt_launch(kernel, grid, dim3(threads), smem, stream, pr.with_group(g0));
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

// The tensor-core kernel of a Problem: the cp.async loader when `vec`, the gather otherwise.
template <class Problem>
cudaError_t launch_mma(const char* op, void (*vec_kernel)(Problem), void (*gather_kernel)(Problem), bool vec,
                       const Problem& pr, int groups, cudaStream_t stream) {
  using namespace device::conv;
  return launch_groups(op, vec ? vec_kernel : gather_kernel, pr, groups, kBM, kThreads, kMmaSmemBytes, stream);
}

// How the tensor-core weight gradient splits its reduction: into enough parts that the grid has
// about two CTAs per SM of an H100 (132), each part at least 4 k-steps (128 pixels) long.
inline device::conv::SplitK weight_grad_split(const Conv2dShape& s) {
  constexpr int64_t kTargetCtas = 264, kMinStepsPerSplit = 4, kMaxSplits = 64;
  const int64_t tiles = int64_t((s.k + 63) / 64) * ((int64_t(s.r) * s.s * s.c + 63) / 64) * s.groups;
  const int steps = device::conv::k_steps(s.n * s.out_h() * s.out_w());
  const int64_t wanted = std::min({(kTargetCtas + tiles - 1) / tiles, steps / kMinStepsPerSplit, kMaxSplits});
  const int per = (steps + int(std::max<int64_t>(wanted, 1)) - 1) / int(std::max<int64_t>(wanted, 1));
  return {(steps + per - 1) / per, per, nullptr};
}

template <class T>
cudaError_t conv2d_forward_mma(const Conv2dShape& s, const T* x, const T* w, float* y, cudaStream_t stream) {
  require_shape("conv2d_forward", s);
  require(x && w && y, "conv2d_forward", "x, w and y are required");
  const device::conv::ForwardProblem<T, float> pr{device::conv::geometry(s), x, w, y};
  const bool vec = s.c % 8 == 0 && aligned16(x) && aligned16(w);
  return launch_mma("conv2d_forward", device::conv2d_forward_mma_kernel<T, true>,
                    device::conv2d_forward_mma_kernel<T, false>, vec, pr, s.groups, stream);
}

template <class T>
cudaError_t conv2d_backward_mma(const Conv2dShape& s, const T* x, const T* w, const T* dy, float* dx, float* dw,
                                float* workspace, cudaStream_t stream) {
  require_shape("conv2d_backward", s);
  require(dy && (dx || dw), "conv2d_backward", "dy and one of dx, dw are required");
  require(!dx || w, "conv2d_backward", "dx needs w");
  require(!dw || x, "conv2d_backward", "dw needs x");
  const device::conv::Geometry g = device::conv::geometry(s);
  // Every 8-element run whole: channel runs (C) and output-channel runs (K, of dy).
  const bool runs = s.c % 8 == 0 && s.k % 8 == 0 && aligned16(dy);
  if (dx) {
    const device::conv::BackwardInputProblem<T, float> pr{g, dy, w, dx};
    const cudaError_t e = launch_mma("conv2d_backward", device::conv2d_backward_input_mma_kernel<T, true>,
                                     device::conv2d_backward_input_mma_kernel<T, false>, runs && aligned16(w), pr,
                                     s.groups, stream);
    if (e != cudaSuccess) return e;
  }
  if (dw) {
    using namespace device::conv;
    const BackwardWeightProblem<T, float> pr{g, dy, x, dw};
    SplitK split = weight_grad_split(s);
    if (split.splits == 1 || !workspace) split = {1, k_steps(pr.kg()), nullptr};
    const size_t tile = size_t(pr.m()) * pr.n();  // one group's dw
    const int groups_per_launch = kMaxGroupsPerLaunch / split.splits;
    for (int g0 = 0; g0 < s.groups; g0 += groups_per_launch) {
      SplitK part = split;
      if (split.splits > 1) part.partial = workspace + size_t(g0) * split.splits * tile;
      const int groups_here = std::min(s.groups - g0, groups_per_launch);
      const dim3 grid = tile_grid("conv2d_backward", pr, kBM, groups_here * split.splits);
      const cudaError_t e =
          simt_launch(runs && aligned16(x) ? device::conv2d_backward_weight_mma_kernel<T, true>
                                           : device::conv2d_backward_weight_mma_kernel<T, false>,
                      grid, dim3(kThreads), kMmaSmemBytes, stream, pr.with_group(g0), part);
      if (e != cudaSuccess) return e;
    }
    if (split.splits > 1) {
      const size_t total = size_t(s.groups) * tile;
      const unsigned blocks = unsigned(std::min<size_t>((total + 255) / 256, 4096));
      return simt_launch(device::conv2d_split_sum_kernel, dim3(blocks), dim3(256), 0, stream,
                         static_cast<const float*>(workspace), dw, split.splits, tile, total);
    }
  }
  return cudaSuccess;
}

}  // namespace conv_host

// y (fp32, NPQ(GK)) = conv2d(x, w), bf16 or fp16 x and w on tensor cores. Returns the launch
// error.
inline cudaError_t conv2d_forward(const Conv2dShape& s, const __nv_bfloat16* x, const __nv_bfloat16* w, float* y,
                                  cudaStream_t stream = nullptr) {
  return conv_host::conv2d_forward_mma(s, x, w, y, stream);
}
inline cudaError_t conv2d_forward(const Conv2dShape& s, const __half* x, const __half* w, float* y,
                                  cudaStream_t stream = nullptr) {
  return conv_host::conv2d_forward_mma(s, x, w, y, stream);
}

// The fp32 workspace (elements) the bf16/fp16 conv2d_backward needs for dw to split its long
// reduction over N P Q; 0 when it does not split.
inline size_t conv2d_weight_grad_workspace(const Conv2dShape& s) {
  const device::conv::SplitK split = conv_host::weight_grad_split(s);
  return split.splits > 1 ? size_t(s.groups) * split.splits * s.k * s.r * s.s * s.c : 0;
}

// dx and/or dw (fp32; either may be null) from dy, bf16 or fp16 operands on tensor cores.
// `workspace`: conv2d_weight_grad_workspace(s) floats, or null (then dw does not split).
inline cudaError_t conv2d_backward(const Conv2dShape& s, const __nv_bfloat16* x, const __nv_bfloat16* w,
                                   const __nv_bfloat16* dy, float* dx, float* dw, float* workspace = nullptr,
                                   cudaStream_t stream = nullptr) {
  return conv_host::conv2d_backward_mma(s, x, w, dy, dx, dw, workspace, stream);
}
inline cudaError_t conv2d_backward(const Conv2dShape& s, const __half* x, const __half* w, const __half* dy,
                                   float* dx, float* dw, float* workspace = nullptr, cudaStream_t stream = nullptr) {
  return conv_host::conv2d_backward_mma(s, x, w, dy, dx, dw, workspace, stream);
}

// y = conv2d(x, w) in T (float: FFMA, double: DFMA).
template <class T>
inline cudaError_t conv2d_forward(const Conv2dShape& s, const T* x, const T* w, T* y,
                                  cudaStream_t stream = nullptr) {
  conv_host::require_shape("conv2d_forward", s);
  conv_host::require(x && w && y, "conv2d_forward", "x, w and y are required");
  const device::conv::ForwardProblem<T, T> pr{device::conv::geometry(s), x, w, y};
  return conv_host::launch_groups("conv2d_forward", device::conv2d_forward_fma_kernel<T>, pr, s.groups,
                                  device::conv::kFBM, device::conv::kFThreads, 0, stream);
}

// dx and/or dw (either may be null) from dy, in T. Returns the first launch error.
template <class T>
inline cudaError_t conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* dy, T* dx, T* dw,
                                   cudaStream_t stream = nullptr) {
  conv_host::require_shape("conv2d_backward", s);
  conv_host::require(dy && (dx || dw), "conv2d_backward", "dy and one of dx, dw are required");
  conv_host::require(!dx || w, "conv2d_backward", "dx needs w");
  conv_host::require(!dw || x, "conv2d_backward", "dw needs x");
  const device::conv::Geometry g = device::conv::geometry(s);
  if (dx) {
    const device::conv::BackwardInputProblem<T, T> pr{g, dy, w, dx};
    const cudaError_t e = conv_host::launch_groups("conv2d_backward", device::conv2d_backward_input_kernel<T>, pr,
                                                   s.groups, device::conv::kFBM, device::conv::kFThreads, 0, stream);
    if (e != cudaSuccess) return e;
  }
  if (dw) {
    const device::conv::BackwardWeightProblem<T, T> pr{g, dy, x, dw};
    return conv_host::launch_groups("conv2d_backward", device::conv2d_backward_weight_kernel<T>, pr, s.groups,
                                    device::conv::kFBM, device::conv::kFThreads, 0, stream);
  }
  return cudaSuccess;
}

// ---- direct depthwise conv: host side ----------------------------------------------------------

namespace conv_host {

// Several groups of one input channel each (groups == C_in > 1): the direct kernels take it (any
// K, taps, stride, dilation, padding). The CPU op draws the same line (cpu::is_depthwise): its
// depthwise loops skip padding taps, its GEMM path multiplies them as zeros (0 * inf = NaN), and
// the device follows each.
inline bool depthwise(const Conv2dShape& s) { return s.c == 1 && s.groups > 1; }

template <class T>
using DepthwiseAcc = std::conditional_t<std::is_same_v<T, double>, double, float>;

inline unsigned depthwise_blocks(int64_t elements) {
  constexpr int64_t kMaxBlocks = int64_t(1) << 20;  // then each thread loops (grid-stride)
  return unsigned(std::max<int64_t>(1, std::min((elements + device::conv::kDwThreads - 1) / device::conv::kDwThreads,
                                                 kMaxBlocks)));
}

// CTAs of the weight gradient before its pixel split: channel tiles x tap chunks.
inline int64_t depthwise_weight_tiles(const Conv2dShape& s) {
  using namespace device::conv;
  const int64_t taps = int64_t(s.r) * s.s;
  return (int64_t(s.k) * s.groups + kDwLanes - 1) / kDwLanes * ((taps + kDwTaps - 1) / kDwTaps);
}

// Enough pixel slices for about four CTAs per SM of an H100 (132; these kernels are
// memory-bound and want many loads in flight), each slice at least 128 pixels (16 per thread).
inline device::conv::DepthwiseSplit depthwise_weight_split(const Conv2dShape& s) {
  constexpr int64_t kTargetCtas = 528, kMinPixels = 128, kMaxSplits = 64;
  const int64_t pixels = int64_t(s.n) * s.out_h() * s.out_w();
  const int64_t tiles = depthwise_weight_tiles(s);
  const int64_t wanted =
      std::max<int64_t>(1, std::min({(kTargetCtas + tiles - 1) / tiles, pixels / kMinPixels, kMaxSplits}));
  const int per = int((pixels + wanted - 1) / wanted);
  return {int((pixels + per - 1) / per), per};
}

}  // namespace conv_host

// The workspace (elements of DepthwiseAcc<T>) the depthwise weight gradient needs to split its
// reduction over the pixels; 0 when it does not split.
inline size_t conv2d_depthwise_workspace(const Conv2dShape& s) {
  const device::conv::DepthwiseSplit split = conv_host::depthwise_weight_split(s);
  return split.splits > 1 ? size_t(split.splits) * s.k * s.groups * s.r * s.s : 0;
}

// y = conv2d(x, w) for C = 1 per group (conv_host::depthwise), direct. T: float, double, or
// bf16 / fp16 with O = float.
template <class T, class O>
cudaError_t conv2d_depthwise_forward(const Conv2dShape& s, const T* x, const T* w, O* y, cudaStream_t stream = nullptr) {
  conv_host::require_shape("conv2d_forward", s);
  conv_host::require(conv_host::depthwise(s), "conv2d_forward", "the depthwise kernels take one input channel per group");
  conv_host::require(x && w && y, "conv2d_forward", "x, w and y are required");
  const device::conv::Geometry g = device::conv::geometry(s);
  return simt_launch(device::conv2d_depthwise_forward_kernel<T, O, conv_host::DepthwiseAcc<T>>,
                     dim3(conv_host::depthwise_blocks(int64_t(g.n) * g.p * g.q * g.yl)),
                     dim3(device::conv::kDwThreads), 0, stream, g, x, w, y);
}

// dx and/or dw (either may be null) from dy for C = 1 per group. `workspace`:
// conv2d_depthwise_workspace(s) elements of DepthwiseAcc<T>, or null (then dw does not split).
template <class T, class O>
cudaError_t conv2d_depthwise_backward(const Conv2dShape& s, const T* x, const T* w, const T* dy, O* dx, O* dw,
                                      conv_host::DepthwiseAcc<T>* workspace, cudaStream_t stream = nullptr) {
  using namespace device::conv;
  using Acc = conv_host::DepthwiseAcc<T>;
  conv_host::require_shape("conv2d_backward", s);
  conv_host::require(conv_host::depthwise(s), "conv2d_backward",
                     "the depthwise kernels take one input channel per group");
  conv_host::require(dy && (dx || dw), "conv2d_backward", "dy and one of dx, dw are required");
  conv_host::require(!dx || w, "conv2d_backward", "dx needs w");
  conv_host::require(!dw || x, "conv2d_backward", "dw needs x");
  const Geometry g = geometry(s);
  if (dx) {
    const cudaError_t e = simt_launch(device::conv2d_depthwise_input_kernel<T, O, Acc>,
                                      dim3(conv_host::depthwise_blocks(int64_t(g.n) * g.h * g.w * g.xl)),
                                      dim3(kDwThreads), 0, stream, g, dy, w, dx);
    if (e != cudaSuccess) return e;
  }
  if (dw) {
    DepthwiseSplit split = conv_host::depthwise_weight_split(s);
    if (!workspace) split = {1, g.n * g.p * g.q};
    const dim3 grid(unsigned(conv_host::depthwise_weight_tiles(s)), unsigned(split.splits));
    const cudaError_t e = simt_launch(device::conv2d_depthwise_weight_kernel<T, O, Acc>, grid, dim3(kDwThreads), 0,
                                      stream, g, dy, x, dw, workspace, split);
    if (e != cudaSuccess || split.splits == 1) return e;
    const int size = g.yl * g.r * g.s;
    return simt_launch(device::conv2d_depthwise_split_sum_kernel<O, Acc>, dim3(conv_host::depthwise_blocks(size)),
                       dim3(kDwThreads), 0, stream, static_cast<const Acc*>(workspace), dw, split.splits, size);
  }
  return cudaSuccess;
}

// The instantiations the library uses, so that the device build compiles every kernel.
template cudaError_t conv2d_forward<float>(const Conv2dShape&, const float*, const float*, float*, cudaStream_t);
template cudaError_t conv2d_forward<double>(const Conv2dShape&, const double*, const double*, double*, cudaStream_t);
template cudaError_t conv2d_backward<float>(const Conv2dShape&, const float*, const float*, const float*, float*,
                                            float*, cudaStream_t);
template cudaError_t conv2d_backward<double>(const Conv2dShape&, const double*, const double*, const double*,
                                             double*, double*, cudaStream_t);
template cudaError_t conv2d_depthwise_forward<float, float>(const Conv2dShape&, const float*, const float*, float*,
                                                            cudaStream_t);
template cudaError_t conv2d_depthwise_forward<double, double>(const Conv2dShape&, const double*, const double*,
                                                              double*, cudaStream_t);
template cudaError_t conv2d_depthwise_forward<__nv_bfloat16, float>(const Conv2dShape&, const __nv_bfloat16*,
                                                                    const __nv_bfloat16*, float*, cudaStream_t);
template cudaError_t conv2d_depthwise_forward<__half, float>(const Conv2dShape&, const __half*, const __half*, float*,
                                                             cudaStream_t);
template cudaError_t conv2d_depthwise_backward<float, float>(const Conv2dShape&, const float*, const float*,
                                                             const float*, float*, float*, float*, cudaStream_t);
template cudaError_t conv2d_depthwise_backward<double, double>(const Conv2dShape&, const double*, const double*,
                                                               const double*, double*, double*, double*,
                                                               cudaStream_t);
template cudaError_t conv2d_depthwise_backward<__nv_bfloat16, float>(const Conv2dShape&, const __nv_bfloat16*,
                                                                     const __nv_bfloat16*, const __nv_bfloat16*,
                                                                     float*, float*, float*, cudaStream_t);
template cudaError_t conv2d_depthwise_backward<__half, float>(const Conv2dShape&, const __half*, const __half*,
                                                              const __half*, float*, float*, float*, cudaStream_t);

}  // namespace lamina::cuda

// ---- op launchers ---------------------------------------------------------------------------
// The library build wraps the launchers around its tensors; the kernel lab includes this file
// without the core headers, so this part is compiled only there.
#if defined(LAMINA_HAVE_CUDA)
#include <atomic>
#include <functional>

#include "core/errors.h"
#include "core/tensor.h"
#include "cpu/conv.h"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace conv_host {

// `g` as the kernels' shape: C and Co per group. The end padding is the smallest that gives
// g's output size (any padding that gives it computes the same values).
inline Conv2dShape kernel_shape(const char* name, const cpu::ConvGeometry& g) {
  const int64_t limit = int64_t(1) << 30;
  for (int64_t v : {g.N, g.C, g.H, g.W, g.Co, g.kh, g.kw, g.OH, g.OW, g.stride_h, g.stride_w, g.pad_top, g.pad_left,
                    g.dil_h, g.dil_w, g.groups})
    check<ValueError>(v < limit, name, ": a size or parameter of 2^30 or more is too large for the CUDA conv kernels");
  Conv2dShape s;
  s.n = int(g.N), s.h = int(g.H), s.w = int(g.W), s.c = int(g.C / g.groups), s.groups = int(g.groups);
  s.k = int(g.Co / g.groups), s.r = int(g.kh), s.s = int(g.kw);
  s.pad_h = int(g.pad_top), s.pad_w = int(g.pad_left);
  s.stride_h = int(g.stride_h), s.stride_w = int(g.stride_w), s.dil_h = int(g.dil_h), s.dil_w = int(g.dil_w);
  const int64_t end_h = (g.OH - 1) * g.stride_h + g.dil_h * (g.kh - 1) + 1 - g.H - g.pad_top;
  const int64_t end_w = (g.OW - 1) * g.stride_w + g.dil_w * (g.kw - 1) + 1 - g.W - g.pad_left;
  s.pad_h_end = int(std::max<int64_t>(end_h, 0)), s.pad_w_end = int(std::max<int64_t>(end_w, 0));
  const double pixels = double(s.n) * std::max(double(s.h) * s.w, double(g.OH) * g.OW);
  check<ValueError>(pixels * double(std::max(g.C, g.Co)) < 2147483647.0 &&
                        double(s.r) * s.s * s.c * double(g.Co) < 2147483647.0,
                    name, ": tensors of 2^31 or more elements are too large for the CUDA conv kernels");
  return s;
}

inline void launched(const char* name, const char* kernel, const std::function<cudaError_t()>& run) {
  cudaError_t status;
  try {
    status = run();
  } catch (const std::invalid_argument& e) {
    throw ValueError(std::string(name) + ": " + e.what());
  }
  check_launch(status, name, kernel);
}

template <class F>
void visit_float(const char* name, DType t, F fn) {
  if (t == DType::Float32) return fn(float{});
  if (t == DType::Float64) return fn(double{});
  throw TypeError(std::string(name) + ": the CUDA conv kernels take float32 or float64, got " + dtype_name(t));
}

// bfloat16 or float16 operands as the device type.
template <class F>
void visit_16bit(const char* name, DType t, F fn) {
  if (t == DType::BFloat16) return fn(__nv_bfloat16{});
  if (t == DType::Float16) return fn(__half{});
  throw TypeError(std::string(name) + ": the tensor-core conv kernels take bfloat16 or float16, got " +
                  dtype_name(t));
}

template <class T>
const T* data_16bit(const Tensor& t) {
  return static_cast<const T*>(t.raw_data());
}

// The depthwise weight gradient's partial sums (of `acc`, the kernels' accumulator dtype) when
// it splits its reduction; undefined otherwise.
inline Tensor depthwise_workspace(const Conv2dShape& s, bool weight_grad, DType acc, const Device& device) {
  const size_t elements = weight_grad ? conv2d_depthwise_workspace(s) : 0;
  return elements ? Tensor::empty({int64_t(elements)}, acc, device) : Tensor();
}

std::atomic<int64_t> depthwise_passes{0}, implicit_gemm_passes{0};

inline void count_path(bool depthwise) { ++(depthwise ? depthwise_passes : implicit_gemm_passes); }

}  // namespace conv_host

void conv2d_forward_nhwc(const char* name, const cpu::ConvGeometry& g, const Tensor& y, const Tensor& x,
                         const Tensor& w) {
  const Conv2dShape s = conv_host::kernel_shape(name, g);
  conv_host::visit_float(name, y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (conv_host::depthwise(s)) {
      conv_host::count_path(true);
      return conv_host::launched(name, "conv2d_depthwise_forward_kernel launch", [&] {
        return conv2d_depthwise_forward<T, T>(s, x.data<T>(), w.data<T>(), y.data<T>(), current_stream());
      });
    }
    conv_host::count_path(false);
    conv_host::launched(name, "conv2d_forward_fma_kernel launch", [&] {
      return conv2d_forward<T>(s, x.data<T>(), w.data<T>(), y.data<T>(), current_stream());
    });
  });
}

void conv2d_backward_nhwc(const char* name, const cpu::ConvGeometry& g, const Tensor* dx, const Tensor* dw,
                          const Tensor& x, const Tensor& w, const Tensor& dy) {
  const Conv2dShape s = conv_host::kernel_shape(name, g);
  conv_host::visit_float(name, dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (conv_host::depthwise(s)) {
      conv_host::count_path(true);
      const Tensor workspace = conv_host::depthwise_workspace(s, dw != nullptr, dy.dtype(), dy.device());
      return conv_host::launched(name, "conv2d depthwise backward kernel launch", [&] {
        return conv2d_depthwise_backward<T, T>(s, dw ? x.data<T>() : nullptr, dx ? w.data<T>() : nullptr,
                                               dy.data<T>(), dx ? dx->data<T>() : nullptr,
                                               dw ? dw->data<T>() : nullptr,
                                               workspace.defined() ? workspace.data<T>() : nullptr,
                                               current_stream());
      });
    }
    conv_host::count_path(false);
    conv_host::launched(name, "conv2d backward kernel launch", [&] {
      return conv2d_backward<T>(s, dw ? x.data<T>() : nullptr, dx ? w.data<T>() : nullptr, dy.data<T>(),
                                dx ? dx->data<T>() : nullptr, dw ? dw->data<T>() : nullptr, current_stream());
    });
  });
}

void conv2d_forward_mma_nhwc(const char* name, const cpu::ConvGeometry& g, const Tensor& y, const Tensor& x,
                             const Tensor& w) {
  const Conv2dShape s = conv_host::kernel_shape(name, g);
  check<TypeError>(x.dtype() == w.dtype() && y.dtype() == DType::Float32, name,
                   ": the tensor-core conv kernels take x and w of one 16-bit dtype and a float32 y, got ",
                   dtype_name(x.dtype()), ", ", dtype_name(w.dtype()), " and ", dtype_name(y.dtype()));
  conv_host::visit_16bit(name, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv_host::count_path(conv_host::depthwise(s));
    if (conv_host::depthwise(s))
      return conv_host::launched(name, "conv2d_depthwise_forward_kernel launch", [&] {
        return conv2d_depthwise_forward<T, float>(s, conv_host::data_16bit<T>(x), conv_host::data_16bit<T>(w),
                                                  y.data<float>(), current_stream());
      });
    conv_host::launched(name, "conv2d_forward_mma_kernel launch", [&] {
      return conv2d_forward(s, conv_host::data_16bit<T>(x), conv_host::data_16bit<T>(w), y.data<float>(),
                            current_stream());
    });
  });
}

void conv2d_backward_mma_nhwc(const char* name, const cpu::ConvGeometry& g, const Tensor* dx, const Tensor* dw,
                              const Tensor& x, const Tensor& w, const Tensor& dy) {
  const Conv2dShape s = conv_host::kernel_shape(name, g);
  const DType t = dy.dtype();
  check<TypeError>((!dx || (w.dtype() == t && dx->dtype() == DType::Float32)) &&
                       (!dw || (x.dtype() == t && dw->dtype() == DType::Float32)),
                   name, ": the tensor-core conv kernels take dy, w (for dx) and x (for dw) of one 16-bit dtype "
                   "and float32 gradients");
  if (conv_host::depthwise(s)) {
    conv_host::count_path(true);
    const Tensor workspace = conv_host::depthwise_workspace(s, dw != nullptr, DType::Float32, dy.device());
    return conv_host::visit_16bit(name, t, [&](auto tag) {
      using T = decltype(tag);
      conv_host::launched(name, "conv2d depthwise backward kernel launch", [&] {
        return conv2d_depthwise_backward<T, float>(
            s, dw ? conv_host::data_16bit<T>(x) : nullptr, dx ? conv_host::data_16bit<T>(w) : nullptr,
            conv_host::data_16bit<T>(dy), dx ? dx->data<float>() : nullptr, dw ? dw->data<float>() : nullptr,
            workspace.defined() ? workspace.data<float>() : nullptr, current_stream());
      });
    });
  }
  conv_host::count_path(false);
  // Partial weight-gradient tiles when dw splits its reduction over the pixels.
  const size_t partial = dw ? conv2d_weight_grad_workspace(s) : 0;
  const Tensor workspace = partial ? Tensor::empty({int64_t(partial)}, DType::Float32, dy.device()) : Tensor();
  conv_host::visit_16bit(name, t, [&](auto tag) {
    using T = decltype(tag);
    conv_host::launched(name, "conv2d backward mma kernel launch", [&] {
      return conv2d_backward(s, dw ? conv_host::data_16bit<T>(x) : nullptr,
                             dx ? conv_host::data_16bit<T>(w) : nullptr, conv_host::data_16bit<T>(dy),
                             dx ? dx->data<float>() : nullptr, dw ? dw->data<float>() : nullptr,
                             workspace.defined() ? workspace.data<float>() : nullptr, current_stream());
    });
  });
}

ConvPathCounts conv_path_counts() {
  return {conv_host::depthwise_passes.load(), conv_host::implicit_gemm_passes.load()};
}

}  // namespace lamina::cuda
#endif  // LAMINA_HAVE_CUDA
