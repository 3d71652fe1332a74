// 2-D convolution as implicit GEMMs: the im2col matrix is never stored; tile loaders compute,
// for each GEMM element, which input element (or padding zero) it is.
//
// Layouts: activations NHWC, x [N, H, W, C] and y [N, P, Q, K]; weights KRSC, w [K, R, S, C]
// (output channel, filter row, filter column, input channel), so a weight row is one output
// channel's whole filter, contiguous. P = (H + pad_h + pad_h_end - dil_h (R - 1) - 1) / stride_h
// + 1, likewise Q; the end (bottom/right) padding defaults to the start padding ('same' padding
// can put one more row at the end). y is fp32; the op adds the bias afterwards (no epilogue yet).
//
// The three GEMMs (Kg: reduction length):
//   forward  y[m, k]  = sum_{(r,s,c)} x[n, p sh - ph + r dh, q sw - pw + s dw, c] w[k, r, s, c]
//            M = N P Q, N = K, Kg = R S C
//   dgrad    dx[m, c] = sum_{(r,s,k)} dy[n, p, q, k] w[k, r, s, c], where h + ph - r dh = p sh
//            (and the same for w, q); M = N H W, N = C, Kg = R S K
//   wgrad    dw[k, (r,s,c)] = sum_{(n,p,q)} dy[n, p, q, k] x[n, ih, iw, c]
//            M = K, N = R S C, Kg = N P Q
//
// Kernels:
//   conv2d_forward_bf16_kernel<kVec>   bf16 x and w, fp32 y, on tensor cores. 64 x 64 output
//       tile per 128-thread CTA (2 x 2 warps of 32 x 32 = 2 x 4 mma.m16n8k16), Kg in steps of
//       32, two stages: with kVec (C % 8 == 0, the usual case) each 8-channel run of a tile
//       row is one 16-byte cp.async, issued for step i+1 while ldmatrix.x4 + mma.sync consume
//       step i; padding and ragged edges are zero-filled with plain stores. Without kVec
//       (e.g. C = 3, a network's first layer) the tiles are gathered element by element.
//       Rows padded by 8 elements (ldmatrix rows in distinct banks). 20 KiB shared memory.
//   conv2d_forward_fma_kernel, conv2d_backward_input_kernel, conv2d_backward_weight_kernel
//       <float> / <double>: FFMA / DFMA implicit GEMMs, one shared body: 64 x 64 tile per 256
//       threads, 4 x 4 outputs per thread, Kg in steps of 16 through shared memory (exact fp32,
//       no TF32; fp64 for float64 tensors).
// Done: forward bf16 (mma), fp32 and fp64 (FMA); input-grad and weight-grad in fp32 and fp64
// (FMA). The conv2d op runs its forward for bfloat16 x and w on the mma kernel and its
// gradients on the fp32 FMA kernels. Not yet:
// bf16 tensor-core dgrad/wgrad (same loaders, with the B operand transposed).
// FLOPs: 2 N P Q K R S C for each of the three. Bytes (ideal): forward reads x once and w
// once per M tile, ~(N H W C + ceil(M / 64) K R S C) * sizeof(T), writes N P Q K * 4; the
// loaders re-read each x element up to R S times from L1/L2 (the im2col duplication).
// Version 1: two stages, no split-K for wgrad (whose Kg = N P Q is long and M, N small), no
// swizzle, 64 x 64 tiles.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "simt/portable.cuh"

namespace lamina::cuda {

struct Conv2dShape {
  int n = 0, h = 0, w = 0, c = 0;  // input
  int k = 0, r = 0, s = 0;         // filters
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  int pad_h_end = -1, pad_w_end = -1;  // -1: pad_h / pad_w
  int out_h() const {
    return (h + pad_h + (pad_h_end < 0 ? pad_h : pad_h_end) - dil_h * (r - 1) - 1) / stride_h + 1;
  }
  int out_w() const {
    return (w + pad_w + (pad_w_end < 0 ? pad_w : pad_w_end) - dil_w * (s - 1) - 1) / stride_w + 1;
  }
};

namespace device {
namespace conv {

// Shape with the output size, passed by value to every kernel.
struct Geometry {
  int n, h, w, c, k, r, s, ph, pw, sh, sw, dh, dw, p, q;
};

inline Geometry geometry(const Conv2dShape& a) {
  return {a.n, a.h, a.w, a.c, a.k, a.r, a.s, a.pad_h, a.pad_w, a.stride_h, a.stride_w,
          a.dil_h, a.dil_w, a.out_h(), a.out_w()};
}

// Input pixel for output pixel m = (n, p, q) and filter tap (r, s); false for padding.
__device__ __forceinline__ bool input_pixel(const Geometry& g, int m, int r, int s, size_t* at) {
  const int q = m % g.q, p = m / g.q % g.p, n = m / (g.q * g.p);
  const int ih = p * g.sh - g.ph + r * g.dh, iw = q * g.sw - g.pw + s * g.dw;
  if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return false;
  *at = (size_t(n) * g.h + ih) * g.w + iw;
  return true;
}

// ---- forward, bf16 on tensor cores ----------------------------------------------------------

constexpr int kBM = 64, kBN = 64, kBK = 32, kLd = kBK + 8, kThreads = 128;

// One pipeline stage: A (64 output pixels x 32 of (r, s, c)) and B (64 output channels x the
// same 32), both row-major in shared memory with padded rows.
template <bool kVec>
__device__ __forceinline__ void load_stage(const Geometry& g, const __nv_bfloat16* __restrict__ x,
                                           const __nv_bfloat16* __restrict__ w, int m0, int n0,
                                           int k0, __nv_bfloat16* as, __nv_bfloat16* bs) {
  const int M = g.n * g.p * g.q, Kg = g.r * g.s * g.c;
  const __nv_bfloat16 zero = __float2bfloat16(0.0f);
  if constexpr (kVec) {  // 16-byte runs: 8 channels of one tap
    for (int e = threadIdx.x; e < kBM * kBK / 8; e += kThreads) {
      const int row = e / (kBK / 8), col = e % (kBK / 8) * 8, kg = k0 + col;
      __nv_bfloat16* da = as + row * kLd + col;
      __nv_bfloat16* db = bs + row * kLd + col;
      const int c = kg % g.c, tap = kg / g.c, s = tap % g.s, r = tap / g.s;
      size_t at;
      if (m0 + row < M && kg < Kg && input_pixel(g, m0 + row, r, s, &at))
        simt::cp_async16(da, x + at * g.c + c);
      else
        *reinterpret_cast<uint4*>(da) = uint4{0u, 0u, 0u, 0u};
      if (n0 + row < g.k && kg < Kg) simt::cp_async16(db, w + size_t(n0 + row) * Kg + kg);
      else *reinterpret_cast<uint4*>(db) = uint4{0u, 0u, 0u, 0u};
    }
  } else {
    for (int e = threadIdx.x; e < kBM * kBK; e += kThreads) {
      const int row = e / kBK, col = e % kBK, kg = k0 + col;
      const int c = kg % g.c, tap = kg / g.c, s = tap % g.s, r = tap / g.s;
      size_t at;
      as[row * kLd + col] = m0 + row < M && kg < Kg && input_pixel(g, m0 + row, r, s, &at)
                                ? x[at * g.c + c]
                                : zero;
      bs[row * kLd + col] = n0 + row < g.k && kg < Kg ? w[size_t(n0 + row) * Kg + kg] : zero;
    }
  }
}

// ---- fp32 / fp64 FMA implicit GEMM, shared by forward, dgrad and wgrad ----------------------

constexpr int kFBM = 64, kFBN = 64, kFBK = 16, kFThreads = 256;

// Each problem says what A(m, kg), B(kg, n) and the output element (m, n) are.
template <class T>
struct ForwardProblem {
  Geometry g;
  const T* x;
  const T* w;
  T* y;
  __device__ int m() const { return g.n * g.p * g.q; }
  __device__ int n() const { return g.k; }
  __device__ int kg() const { return g.r * g.s * g.c; }
  __device__ T a(int m, int kg) const {
    const int c = kg % g.c, tap = kg / g.c;
    size_t at;
    return input_pixel(g, m, tap / g.s, tap % g.s, &at) ? x[at * g.c + c] : T(0);
  }
  __device__ T b(int kg, int n) const { return w[size_t(n) * kg_stride() + kg]; }
  __device__ int kg_stride() const { return g.r * g.s * g.c; }
  __device__ T& out(int m, int n) const { return y[size_t(m) * g.k + n]; }
};

template <class T>
struct BackwardInputProblem {  // kg = (r, s, k), k fastest
  Geometry g;
  const T* dy;
  const T* w;
  T* dx;
  __device__ int m() const { return g.n * g.h * g.w; }
  __device__ int n() const { return g.c; }
  __device__ int kg() const { return g.r * g.s * g.k; }
  __device__ T a(int m, int kg) const {
    const int k = kg % g.k, tap = kg / g.k, s = tap % g.s, r = tap / g.s;
    const int iw = m % g.w, ih = m / g.w % g.h, n = m / (g.w * g.h);
    const int ph = ih + g.ph - r * g.dh, pw = iw + g.pw - s * g.dw;
    if (ph < 0 || pw < 0 || ph % g.sh || pw % g.sw) return T(0);
    const int p = ph / g.sh, q = pw / g.sw;
    if (p >= g.p || q >= g.q) return T(0);
    return dy[((size_t(n) * g.p + p) * g.q + q) * g.k + k];
  }
  __device__ T b(int kg, int c) const {
    const int k = kg % g.k, tap = kg / g.k;
    return w[(size_t(k) * g.r * g.s + tap) * g.c + c];
  }
  __device__ T& out(int m, int c) const { return dx[size_t(m) * g.c + c]; }
};

template <class T>
struct BackwardWeightProblem {  // m = output channel, n = (r, s, c), kg = output pixel
  Geometry g;
  const T* dy;
  const T* x;
  T* dw;
  __device__ int m() const { return g.k; }
  __device__ int n() const { return g.r * g.s * g.c; }
  __device__ int kg() const { return g.n * g.p * g.q; }
  __device__ T a(int k, int pixel) const { return dy[size_t(pixel) * g.k + k]; }
  __device__ T b(int pixel, int rsc) const {
    const int c = rsc % g.c, tap = rsc / g.c;
    size_t at;
    return input_pixel(g, pixel, tap / g.s, tap % g.s, &at) ? x[at * g.c + c] : T(0);
  }
  __device__ T& out(int k, int rsc) const { return dw[size_t(k) * g.r * g.s * g.c + rsc]; }
};

template <class T, class Problem>
__device__ __forceinline__ void implicit_gemm_fma(const Problem& pr) {
  constexpr int TM = 4, TN = 4;
  __shared__ T as[kFBK][kFBM + 4];
  __shared__ T bs[kFBK][kFBN + 4];
  const int M = pr.m(), N = pr.n(), K = pr.kg();
  const int tid = threadIdx.x, tx = tid % (kFBN / TN), ty = tid / (kFBN / TN);
  const int m0 = blockIdx.y * kFBM, n0 = blockIdx.x * kFBN;
  T acc[TM][TN] = {};
  for (int k0 = 0; k0 < K; k0 += kFBK) {
    for (int e = tid; e < kFBM * kFBK; e += kFThreads) {  // k fastest: contiguous channels
      const int m = e / kFBK, k = e % kFBK;
      as[k][m] = m0 + m < M && k0 + k < K ? pr.a(m0 + m, k0 + k) : T(0);
    }
    for (int e = tid; e < kFBK * kFBN; e += kFThreads) {  // n fastest
      const int k = e / kFBN, n = e % kFBN;
      bs[k][n] = k0 + k < K && n0 + n < N ? pr.b(k0 + k, n0 + n) : T(0);
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
      if (m < M && n < N) pr.out(m, n) = acc[i][j];
    }
}

}  // namespace conv

// ---- kernels --------------------------------------------------------------------------------

template <bool kVec>
__global__ void __launch_bounds__(conv::kThreads)
    conv2d_forward_bf16_kernel(conv::Geometry g, const __nv_bfloat16* __restrict__ x,
                               const __nv_bfloat16* __restrict__ w, float* __restrict__ y) {
  using namespace conv;
  SIMT_DYNAMIC_SMEM(__nv_bfloat16, smem);
  __nv_bfloat16* const as = smem;                   // [2][kBM][kLd]
  __nv_bfloat16* const bs = smem + 2 * kBM * kLd;   // [2][kBN][kLd]
  const int M = g.n * g.p * g.q, Kg = g.r * g.s * g.c;
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gr = lane / 4, t = lane % 4;
  const int wm = warp / 2 * 32, wn = warp % 2 * 32;
  float acc[2][4][4] = {};
  const int steps = (Kg + kBK - 1) / kBK;
  load_stage<kVec>(g, x, w, m0, n0, 0, as, bs);
  simt::cp_async_commit();
  for (int i = 0; i < steps; ++i) {
    const int stage = i & 1;
    if (i + 1 < steps)
      load_stage<kVec>(g, x, w, m0, n0, (i + 1) * kBK, as + (stage ^ 1) * kBM * kLd,
                       bs + (stage ^ 1) * kBN * kLd);
    simt::cp_async_commit();
    simt::cp_async_wait<1>();
    __syncthreads();
    const __nv_bfloat16* const a_tile = as + stage * kBM * kLd;
    const __nv_bfloat16* const b_tile = bs + stage * kBN * kLd;
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t a[2][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
        simt::ldmatrix<4>(a[mi], &a_tile[(wm + mi * 16 + lane % 8 + 8 * ((lane / 8) % 2)) * kLd +
                                         kk * 16 + 8 * (lane / 16)]);
#pragma unroll
      for (int nj = 0; nj < 4; nj += 2) {
        uint32_t r[4];
        simt::ldmatrix<4>(r, &b_tile[(wn + nj * 8 + 8 * (lane / 16) + lane % 8) * kLd + kk * 16 +
                                     8 * ((lane / 8) % 2)]);
        b[nj][0] = r[0], b[nj][1] = r[1], b[nj + 1][0] = r[2], b[nj + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int nj = 0; nj < 4; ++nj) simt::mma_m16n8k16_bf16(acc[mi][nj], a[mi], b[nj], acc[mi][nj]);
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
        if (m < M && n < g.k) y[size_t(m) * g.k + n] = acc[mi][nj][e];
      }
}

template <class T>
__global__ void __launch_bounds__(conv::kFThreads)
    conv2d_forward_fma_kernel(conv::ForwardProblem<T> problem) {
  conv::implicit_gemm_fma<T>(problem);
}

template <class T>
__global__ void __launch_bounds__(conv::kFThreads)
    conv2d_backward_input_kernel(conv::BackwardInputProblem<T> problem) {
  conv::implicit_gemm_fma<T>(problem);
}

template <class T>
__global__ void __launch_bounds__(conv::kFThreads)
    conv2d_backward_weight_kernel(conv::BackwardWeightProblem<T> problem) {
  conv::implicit_gemm_fma<T>(problem);
}

}  // namespace device

// ---- launchers ------------------------------------------------------------------------------

namespace conv_host {

inline void require(bool ok, const char* op, const char* what) {
  if (!ok) throw std::invalid_argument(std::string(op) + ": " + what);
}

inline void require_shape(const char* op, const Conv2dShape& s) {
  require(s.n > 0 && s.h > 0 && s.w > 0 && s.c > 0 && s.k > 0 && s.r > 0 && s.s > 0, op,
          "empty shape");
  require(s.pad_h >= 0 && s.pad_w >= 0 && s.stride_h > 0 && s.stride_w > 0 && s.dil_h > 0 &&
              s.dil_w > 0, op, "bad padding, stride or dilation");
  require(s.out_h() > 0 && s.out_w() > 0, op, "the filter is larger than the padded input");
  const double pixels = double(s.n) * std::max(s.h * s.w, s.out_h() * s.out_w());
  require(pixels * std::max(s.c, s.k) < 2147483647.0 && double(s.r) * s.s * s.c * s.k < 2147483647.0,
          op, "tensors of 2^31 or more elements");
}

inline dim3 grid(int m, int n, int bm, int bn) { return dim3((n + bn - 1) / bn, (m + bm - 1) / bm); }

}  // namespace conv_host

// y (fp32, NPQK) = conv2d(x, w), bf16 inputs on tensor cores. Returns the launch error.
inline cudaError_t conv2d_forward(const Conv2dShape& s, const __nv_bfloat16* x,
                                  const __nv_bfloat16* w, float* y, cudaStream_t stream = nullptr) {
  conv_host::require_shape("conv2d_forward", s);
  conv_host::require(x && w && y, "conv2d_forward", "x, w and y are required");
  const device::conv::Geometry g = device::conv::geometry(s);
  const dim3 grid = conv_host::grid(s.n * g.p * g.q, s.k, device::conv::kBM, device::conv::kBN);
  constexpr size_t smem = 2 * size_t(device::conv::kBM + device::conv::kBN) * device::conv::kLd * 2;
  const bool vec = s.c % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(w) % 16 == 0;
  if (vec)
    return simt_launch(device::conv2d_forward_bf16_kernel<true>, grid, dim3(device::conv::kThreads),
                       smem, stream, g, x, w, y);
  return simt_launch(device::conv2d_forward_bf16_kernel<false>, grid, dim3(device::conv::kThreads),
                     smem, stream, g, x, w, y);
}

// y = conv2d(x, w) in T (float: FFMA, double: DFMA).
template <class T>
inline cudaError_t conv2d_forward(const Conv2dShape& s, const T* x, const T* w, T* y,
                                  cudaStream_t stream = nullptr) {
  conv_host::require_shape("conv2d_forward", s);
  conv_host::require(x && w && y, "conv2d_forward", "x, w and y are required");
  const device::conv::ForwardProblem<T> pr{device::conv::geometry(s), x, w, y};
  return simt_launch(device::conv2d_forward_fma_kernel<T>,
                     conv_host::grid(s.n * pr.g.p * pr.g.q, s.k, device::conv::kFBM, device::conv::kFBN),
                     dim3(device::conv::kFThreads), 0, stream, pr);
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
  const dim3 block(device::conv::kFThreads);
  if (dx) {
    const device::conv::BackwardInputProblem<T> pr{g, dy, w, dx};
    const cudaError_t e = simt_launch(
        device::conv2d_backward_input_kernel<T>,
        conv_host::grid(s.n * s.h * s.w, s.c, device::conv::kFBM, device::conv::kFBN), block, 0,
        stream, pr);
    if (e != cudaSuccess) return e;
  }
  if (dw) {
    const device::conv::BackwardWeightProblem<T> pr{g, dy, x, dw};
    return simt_launch(device::conv2d_backward_weight_kernel<T>,
                       conv_host::grid(s.k, s.r * s.s * s.c, device::conv::kFBM, device::conv::kFBN),
                       block, 0, stream, pr);
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

}  // namespace lamina::cuda

// ---- op launchers ---------------------------------------------------------------------------
// The library build wraps the fp32 launchers around its tensors; the kernel lab includes this
// file without the core headers, so this part is compiled only there.
#if defined(LAMINA_HAVE_CUDA)
#include <functional>

#include "core/errors.h"
#include "core/tensor.h"
#include "cpu/conv.h"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace conv_host {

// One group of `g` as the kernels' shape: C and Co are per group. The end padding is the
// smallest that gives g's output size (any padding that gives it computes the same values).
inline Conv2dShape group_shape(const char* name, const cpu::ConvGeometry& g) {
  const int64_t limit = int64_t(1) << 30;
  for (int64_t v : {g.N, g.C, g.H, g.W, g.Co, g.kh, g.kw, g.OH, g.OW, g.stride_h, g.stride_w, g.pad_top, g.pad_left,
                    g.dil_h, g.dil_w})
    check<ValueError>(v < limit, name, ": a size or parameter of 2^30 or more is too large for the CUDA conv kernels");
  Conv2dShape s;
  s.n = int(g.N), s.h = int(g.H), s.w = int(g.W), s.c = int(g.C / g.groups);
  s.k = int(g.Co / g.groups), s.r = int(g.kh), s.s = int(g.kw);
  s.pad_h = int(g.pad_top), s.pad_w = int(g.pad_left);
  s.stride_h = int(g.stride_h), s.stride_w = int(g.stride_w), s.dil_h = int(g.dil_h), s.dil_w = int(g.dil_w);
  const int64_t end_h = (g.OH - 1) * g.stride_h + g.dil_h * (g.kh - 1) + 1 - g.H - g.pad_top;
  const int64_t end_w = (g.OW - 1) * g.stride_w + g.dil_w * (g.kw - 1) + 1 - g.W - g.pad_left;
  s.pad_h_end = int(std::max<int64_t>(end_h, 0)), s.pad_w_end = int(std::max<int64_t>(end_w, 0));
  const double pixels = double(s.n) * std::max(double(s.h) * s.w, double(g.OH) * g.OW);
  check<ValueError>(pixels * std::max(s.c, s.k) < 2147483647.0 && double(s.r) * s.s * s.c * s.k < 2147483647.0,
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

}  // namespace conv_host

void conv2d_forward_nhwc(const char* name, const cpu::ConvGeometry& g, const Tensor& y, const Tensor& x,
                         const Tensor& w) {
  const Conv2dShape s = conv_host::group_shape(name, g);
  conv_host::visit_float(name, y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv_host::launched(name, "conv2d_forward_fma_kernel launch", [&] {
      return conv2d_forward<T>(s, x.data<T>(), w.data<T>(), y.data<T>(), current_stream());
    });
  });
}

void conv2d_forward_bf16_nhwc(const char* name, const cpu::ConvGeometry& g, const Tensor& y, const Tensor& x,
                              const Tensor& w) {
  const Conv2dShape s = conv_host::group_shape(name, g);
  check<TypeError>(x.dtype() == DType::BFloat16 && w.dtype() == DType::BFloat16 && y.dtype() == DType::Float32, name,
                   ": the tensor-core conv kernel takes bfloat16 x and w and a float32 y, got ", dtype_name(x.dtype()),
                   ", ", dtype_name(w.dtype()), " and ", dtype_name(y.dtype()));
  conv_host::launched(name, "conv2d_forward_bf16_kernel launch", [&] {
    return conv2d_forward(s, static_cast<const __nv_bfloat16*>(x.raw_data()),
                          static_cast<const __nv_bfloat16*>(w.raw_data()), y.data<float>(), current_stream());
  });
}

void conv2d_backward_nhwc(const char* name, const cpu::ConvGeometry& g, const Tensor* dx, const Tensor* dw,
                          const Tensor& x, const Tensor& w, const Tensor& dy) {
  const Conv2dShape s = conv_host::group_shape(name, g);
  conv_host::visit_float(name, dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv_host::launched(name, "conv2d backward kernel launch", [&] {
      return conv2d_backward<T>(s, dw ? x.data<T>() : nullptr, dx ? w.data<T>() : nullptr, dy.data<T>(),
                                dx ? dx->data<T>() : nullptr, dw ? dw->data<T>() : nullptr, current_stream());
    });
  });
}

}  // namespace lamina::cuda
#endif  // LAMINA_HAVE_CUDA
