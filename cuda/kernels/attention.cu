// Flash attention, forward and backward, on tensor cores (mma.sync m16n8k16, bf16 or fp16 in,
// fp32 accumulate). The N x N score matrix is never stored: the forward pass keeps a running
// (online) softmax per query row and saves its log-sum-exp; the backward pass recomputes the
// probabilities from that log-sum-exp. The second half of the file ("float32 flash attention
// on FMA") is the float32 version, for any head size up to 128 and general masks.
//
// Layouts (all contiguous, T = __nv_bfloat16 or __half):
//   q, o, d_o, dq   [batch, heads, nq, D]      k, v, dk, dv   [batch, heads, nk, D]
//   lse, delta      [batch, heads, nq] fp32    dq_accum       [batch, heads, nq, D] fp32
//   kv_lens         [batch] int32 or null: keys j >= kv_lens[b] are padding (masked out)
// Masks: causal keeps key j for query i iff j <= i (top-left aligned, so nq == nk is the usual
// self-attention case). A query row with no visible key gets o = 0 and lse = -inf.
// D (head dimension) is a template parameter: 64 or 128.
//
// Kernels:
//   attention_forward_kernel<T, D>   grid (ceil(nq / 64), batch * heads), 128 threads (4 warps,
//       16 query rows each). Q is staged through shared memory once and held as mma A
//       fragments (ldmatrix.x4). K and V tiles of Bc keys (Bc = 64 for D = 64, 32 for D = 128)
//       are double-buffered with cp.async: tile i+1 is in flight while tile i is used.
//       S = Q K^T (K fragments by ldmatrix.x4), masked, scaled into log2 units, online softmax
//       in fp32 registers; P is repacked from accumulator to A-fragment layout in registers
//       and O += P V (V fragments by ldmatrix.x4.trans). Shared memory 4 * Bc * (D + 8) * 2 B:
//       36 KiB (D = 64), 34 KiB (D = 128). Rows are padded by 8 elements so the 8 rows of an
//       ldmatrix fall in different banks.
//   attention_backward_kernel<T, D>  grid (ceil(nk / Bc), batch * heads), Bc / 16 warps (Bc =
//       64 for D = 64, 32 for D = 128), each warp owning 16 keys. K and V stay in shared memory;
//       for each 32-row query tile (cp.async, single stage): S^T = K Q^T, dP^T = V dO^T,
//       P^T = exp(S^T - lse), dS^T = P^T (dP^T - delta); dV += P^T dO and dK += dS^T Q
//       accumulate in registers for the whole key block. dQ needs a sum over key blocks that
//       run in different CTAs: dS goes through shared memory and each CTA atomicAdds its
//       dS K contribution into the fp32 dq_accum (one add per element per key block), then a
//       separate pass converts dq_accum to T. Shared memory 33 KiB (D = 64), 37 KiB (D = 128).
//   attention_backward_prepare_kernel  delta_i = dO_i . O_i (fp32) and zeroes dq_accum; one
//       warp per query row.
//   attention_backward_dq_kernel       dq = T(dq_accum), elementwise.
//
// FLOPs (per batch * head, no mask): forward 4 * nq * nk * D (two GEMMs), backward
// 10 * nq * nk * D (recompute S, dP, dV, dK, dQ); causal halves both. The exponentials are
// nq * nk (forward) and again nq * nk (backward). Bytes: forward reads Q once and K, V once per
// query block, (2 * nq + 2 * nk * ceil(nq / 64)) * D * sizeof(T), writes O and lse; backward
// reads K, V once and Q, dO, lse, delta once per key block, and adds into dq_accum once per key
// block (4 bytes * nq * D * ceil(nk / Bc)). At D = 64, 2 * 64 * 64 FLOPs per K element
// loaded: compute-bound on every current GPU.
//
// Version 1: two-stage cp.async pipeline (forward), single stage (backward), 4 warps, no
// swizzle (padding instead), no warp specialisation or Hopper wgmma/TMA; see
// cuda/kernels/README.md for the predicted H100 figures.
#include <math.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "simt/portable.cuh"

namespace lamina::cuda {

template <class T>
struct AttentionArgs {
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  const T* o = nullptr;    // forward output; input to the backward pass
  const T* d_o = nullptr;  // backward only
  T* out = nullptr;        // forward: o; unused by the backward pass
  float* lse = nullptr;    // written by the forward pass, read by the backward pass
  T* dq = nullptr;
  T* dk = nullptr;
  T* dv = nullptr;
  float* dq_accum = nullptr;  // backward workspace, batch * heads * nq * D floats
  float* delta = nullptr;     // backward workspace, batch * heads * nq floats
  const int* kv_lens = nullptr;
  int batch = 0, heads = 0, nq = 0, nk = 0;
  float scale = 0.0f;  // usually 1 / sqrt(D)
  bool causal = false;
};

namespace device {
namespace attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>)
    return simt::pack_half2(__float2half(lo), __float2half(hi));
  else
    return simt::pack_bf16x2(__float2bfloat16(lo), __float2bfloat16(hi));
}

template <class T>
__device__ __forceinline__ float to_float(T x) {
  if constexpr (std::is_same_v<T, __half>) return __half2float(x);
  else return __bfloat162float(x);
}

template <class T>
__device__ __forceinline__ T from_float(float x) {
  if constexpr (std::is_same_v<T, __half>) return __float2half(x);
  else return __float2bfloat16(x);
}

// acc += a * b for one warp.
template <class T>
__device__ __forceinline__ void mma(float (&acc)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  const uint32_t b[2] = {b0, b1};
  if constexpr (std::is_same_v<T, __half>) simt::mma_m16n8k16_f16(acc, a, b, acc);
  else simt::mma_m16n8k16_bf16(acc, a, b, acc);
}

// Rows row0 .. row0 + ROWS - 1 of a [n, D] matrix into shared memory [ROWS][LD], 16 bytes per
// cp.async; rows at or past n are zero-filled with plain stores (padding keys must be finite:
// 0 * NaN would poison P V).
template <class T, int D, int LD, int ROWS, int THREADS>
__device__ __forceinline__ void load_rows(T* dst, const T* src, int row0, int n) {
  constexpr int kChunksPerRow = D / 8;
  for (int c = threadIdx.x; c < ROWS * kChunksPerRow; c += THREADS) {
    const int r = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    T* d = dst + r * LD + col;
    if (row0 + r < n) simt::cp_async16(d, src + size_t(row0 + r) * D + col);
    else *reinterpret_cast<uint4*>(d) = uint4{0u, 0u, 0u, 0u};
  }
}

template <int D>
struct ForwardConfig {
  static constexpr int kWarps = 4, kThreads = 32 * kWarps;
  static constexpr int kBr = 16 * kWarps;          // query rows per CTA
  static constexpr int kBc = D == 64 ? 64 : 32;    // keys per pipeline stage
  static constexpr int kLd = D + 8;                // padded row, in elements
  static constexpr size_t kSmemBytes = 4 * size_t(kBc) * kLd * 2;  // K and V, 2 stages each
};

template <int D>
struct BackwardConfig {
  static constexpr int kBc = D == 64 ? 64 : 32;  // keys per CTA
  static constexpr int kWarps = kBc / 16, kThreads = 32 * kWarps;
  static constexpr int kBr = 32;                 // query rows per step
  static constexpr int kLd = D + 8;
  static constexpr int kLdS = kBr + 8;           // dS^T rows
  static constexpr size_t kSmemBytes =
      (2 * size_t(kBc) * kLd + 2 * size_t(kBr) * kLd + size_t(kBc) * kLdS) * 2 +
      2 * kBr * sizeof(float);
};

}  // namespace attn

// ---- kernels --------------------------------------------------------------------------------

template <class T, int D>
__global__ void __launch_bounds__(attn::ForwardConfig<D>::kThreads)
    attention_forward_kernel(AttentionArgs<T> p) {
  using C = attn::ForwardConfig<D>;
  constexpr int Br = C::kBr, Bc = C::kBc, LD = C::kLd;
  SIMT_DYNAMIC_SMEM(T, smem);
  T* const ks = smem;                  // [2][Bc][LD]
  T* const vs = smem + 2 * Bc * LD;    // [2][Bc][LD]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int bh = blockIdx.y, b = bh / p.heads, q0 = blockIdx.x * Br;
  const T* const q = p.q + size_t(bh) * p.nq * D;
  const T* const k = p.k + size_t(bh) * p.nk * D;
  const T* const v = p.v + size_t(bh) * p.nk * D;
  const int kv_len = p.kv_lens ? max(0, min(p.kv_lens[b], p.nk)) : p.nk;
  const int kv_end = p.causal ? min(kv_len, q0 + Br) : kv_len;
  const int n_tiles = (kv_end + Bc - 1) / Bc;

  // Q: through the K buffers (free until the pipeline starts) into A fragments.
  attn::load_rows<T, D, LD, Br, C::kThreads>(smem, q, q0, p.nq);
  simt::cp_async_commit();
  simt::cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    simt::ldmatrix<4>(qf[kk], &smem[(warp * 16 + lane % 8 + 8 * ((lane / 8) % 2)) * LD +
                                     kk * 16 + 8 * (lane / 16)]);
  __syncthreads();

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const float scale2 = p.scale * attn::kLog2e;
  const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};

  if (n_tiles > 0) {
    attn::load_rows<T, D, LD, Bc, C::kThreads>(ks, k, 0, kv_len);
    attn::load_rows<T, D, LD, Bc, C::kThreads>(vs, v, 0, kv_len);
  }
  simt::cp_async_commit();
  for (int it = 0; it < n_tiles; ++it) {
    const int stage = it & 1;
    if (it + 1 < n_tiles) {  // prefetch the next tile into the other stage
      attn::load_rows<T, D, LD, Bc, C::kThreads>(ks + (stage ^ 1) * Bc * LD, k, (it + 1) * Bc, kv_len);
      attn::load_rows<T, D, LD, Bc, C::kThreads>(vs + (stage ^ 1) * Bc * LD, v, (it + 1) * Bc, kv_len);
    }
    simt::cp_async_commit();  // possibly empty: keeps the group count uniform
    simt::cp_async_wait<1>();
    __syncthreads();
    const T* const kt = ks + stage * Bc * LD;
    const T* const vt = vs + stage * Bc * LD;

    // S = Q K^T for this warp's 16 rows and Bc keys.
    float s[Bc / 8][4];
#pragma unroll
    for (int j = 0; j < Bc / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int j = 0; j < Bc / 8; j += 2) {
        uint32_t kb[4];
        simt::ldmatrix<4>(kb, &kt[(j * 8 + 8 * (lane / 16) + lane % 8) * LD + kk * 16 +
                                  8 * ((lane / 8) % 2)]);
        attn::mma<T>(s[j], qf[kk], kb[0], kb[1]);
        attn::mma<T>(s[j + 1], qf[kk], kb[2], kb[3]);
      }
    }

    // Mask, then the online softmax in log2 units; each row's 4 owners form a lane quad.
    const int key0 = it * Bc;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < Bc / 8; ++j)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int key = key0 + j * 8 + 2 * t + c;
          const bool visible = key < kv_len && (!p.causal || key <= row[r]);
          float& x = s[j][2 * r + c];
          x = visible ? x * scale2 : -INFINITY;
          mx = fmaxf(mx, x);
        }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[r], mx);
      const float m_ref = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet
      const float alpha = exp2f(m[r] - m_ref);
      m[r] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < Bc / 8; ++j)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          float& x = s[j][2 * r + c];
          x = exp2f(x - m_ref);
          sum += x;
        }
      l[r] = l[r] * alpha + sum;  // this lane's partial sum; the quad is summed at the end
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o[n][2 * r] *= alpha;
        o[n][2 * r + 1] *= alpha;
      }
    }

    // O += P V: P's accumulator layout is the A layout of the next mma, two n-tiles per k-step.
#pragma unroll
    for (int kc = 0; kc < Bc / 16; ++kc) {
      const uint32_t pa[4] = {attn::pack2<T>(s[2 * kc][0], s[2 * kc][1]),
                              attn::pack2<T>(s[2 * kc][2], s[2 * kc][3]),
                              attn::pack2<T>(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                              attn::pack2<T>(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        uint32_t vb[4];
        simt::ldmatrix<4, true>(vb, &vt[(kc * 16 + 8 * ((lane / 8) % 2) + lane % 8) * LD +
                                        n * 8 + 8 * (lane / 16)]);
        attn::mma<T>(o[n], pa, vb[0], vb[1]);
        attn::mma<T>(o[n + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }

  T* const out = p.out + size_t(bh) * p.nq * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    if (row[r] >= p.nq) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      *reinterpret_cast<uint32_t*>(&out[size_t(row[r]) * D + n * 8 + 2 * t]) =
          attn::pack2<T>(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    if (t == 0)
      p.lse[size_t(bh) * p.nq + row[r]] =
          l[r] > 0.0f ? (m[r] + log2f(l[r])) * attn::kLn2 : -INFINITY;
  }
}

// delta_i = sum_d dO[i, d] * O[i, d]; zeroes row i of dq_accum. One warp per row.
template <class T, int D>
__global__ void __launch_bounds__(128) attention_backward_prepare_kernel(AttentionArgs<T> p) {
  const size_t rows = size_t(p.batch) * p.heads * p.nq;
  const size_t row = size_t(blockIdx.x) * 4 + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // no barrier below; only warp collectives, uniform per warp
  float sum = 0.0f;
  for (int d = lane; d < D; d += 32) {
    sum += attn::to_float(p.d_o[row * D + d]) * attn::to_float(p.o[row * D + d]);
    p.dq_accum[row * D + d] = 0.0f;
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) p.delta[row] = sum;
}

template <class T, int D>
__global__ void __launch_bounds__(attn::BackwardConfig<D>::kThreads)
    attention_backward_kernel(AttentionArgs<T> p) {
  using C = attn::BackwardConfig<D>;
  constexpr int Br = C::kBr, Bc = C::kBc, LD = C::kLd, LDS = C::kLdS;
  SIMT_DYNAMIC_SMEM(T, smem);
  T* const ks = smem;                 // [Bc][LD]
  T* const vs = ks + Bc * LD;         // [Bc][LD]
  T* const qs = vs + Bc * LD;         // [Br][LD]
  T* const dos = qs + Br * LD;        // [Br][LD]
  T* const dss = dos + Br * LD;       // [Bc][LDS]: dS^T * scale, keys by queries
  float* const lse_s = reinterpret_cast<float*>(dss + Bc * LDS);  // [Br], log2 units
  float* const delta_s = lse_s + Br;                              // [Br]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int bh = blockIdx.y, b = bh / p.heads, k0 = blockIdx.x * Bc, kw = warp * 16;
  const size_t q_off = size_t(bh) * p.nq * D, kv_off = size_t(bh) * p.nk * D;
  const int kv_len = p.kv_lens ? max(0, min(p.kv_lens[b], p.nk)) : p.nk;
  const float scale2 = p.scale * attn::kLog2e;

  attn::load_rows<T, D, LD, Bc, C::kThreads>(ks, p.k + kv_off, k0, p.nk);
  attn::load_rows<T, D, LD, Bc, C::kThreads>(vs, p.v + kv_off, k0, p.nk);
  simt::cp_async_commit();

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) dk[n][i] = dv[n][i] = 0.0f;

  const int n_qtiles = (p.nq + Br - 1) / Br;
  // Causal: queries before this key block see none of it. Padding: a block of padding keys
  // has zero gradients and adds nothing to dQ.
  const int qt_begin = k0 >= kv_len ? n_qtiles : (p.causal ? k0 / Br : 0);
  for (int qt = qt_begin; qt < n_qtiles; ++qt) {
    const int q0 = qt * Br;
    attn::load_rows<T, D, LD, Br, C::kThreads>(qs, p.q + q_off, q0, p.nq);
    attn::load_rows<T, D, LD, Br, C::kThreads>(dos, p.d_o + q_off, q0, p.nq);
    simt::cp_async_commit();
    for (int i = threadIdx.x; i < Br; i += C::kThreads) {
      const bool in = q0 + i < p.nq;
      lse_s[i] = in ? p.lse[size_t(bh) * p.nq + q0 + i] * attn::kLog2e : 0.0f;
      delta_s[i] = in ? p.delta[size_t(bh) * p.nq + q0 + i] : 0.0f;
    }
    simt::cp_async_wait<0>();
    __syncthreads();

    // S^T = K Q^T and dP^T = V dO^T: this warp's 16 keys by Br queries.
    float s[Br / 8][4], dp[Br / 8][4];
#pragma unroll
    for (int j = 0; j < Br / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) s[j][i] = dp[j][i] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const int a_at = (kw + lane % 8 + 8 * ((lane / 8) % 2)) * LD + kk * 16 + 8 * (lane / 16);
      uint32_t ka[4], va[4];
      simt::ldmatrix<4>(ka, &ks[a_at]);
      simt::ldmatrix<4>(va, &vs[a_at]);
#pragma unroll
      for (int j = 0; j < Br / 8; j += 2) {
        const int b_at = (j * 8 + 8 * (lane / 16) + lane % 8) * LD + kk * 16 + 8 * ((lane / 8) % 2);
        uint32_t qb[4], ob[4];
        simt::ldmatrix<4>(qb, &qs[b_at]);
        simt::ldmatrix<4>(ob, &dos[b_at]);
        attn::mma<T>(s[j], ka, qb[0], qb[1]);
        attn::mma<T>(s[j + 1], ka, qb[2], qb[3]);
        attn::mma<T>(dp[j], va, ob[0], ob[1]);
        attn::mma<T>(dp[j + 1], va, ob[2], ob[3]);
      }
    }

    // P^T from the saved log-sum-exp, then dS^T = P^T (dP^T - delta); s <- P^T, dp <- dS^T.
#pragma unroll
    for (int j = 0; j < Br / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int key = k0 + kw + g + 8 * (i / 2), ql = j * 8 + 2 * t + i % 2, query = q0 + ql;
        const bool visible = key < kv_len && query < p.nq && (!p.causal || key <= query);
        const float pr = visible ? exp2f(s[j][i] * scale2 - lse_s[ql]) : 0.0f;
        s[j][i] = pr;
        dp[j][i] = pr * (dp[j][i] - delta_s[ql]);
      }

    // dV += P^T dO and dK += dS^T Q (the scale is applied once, at the end).
#pragma unroll
    for (int kc = 0; kc < Br / 16; ++kc) {
      const uint32_t pa[4] = {attn::pack2<T>(s[2 * kc][0], s[2 * kc][1]),
                              attn::pack2<T>(s[2 * kc][2], s[2 * kc][3]),
                              attn::pack2<T>(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                              attn::pack2<T>(s[2 * kc + 1][2], s[2 * kc + 1][3])};
      const uint32_t da[4] = {attn::pack2<T>(dp[2 * kc][0], dp[2 * kc][1]),
                              attn::pack2<T>(dp[2 * kc][2], dp[2 * kc][3]),
                              attn::pack2<T>(dp[2 * kc + 1][0], dp[2 * kc + 1][1]),
                              attn::pack2<T>(dp[2 * kc + 1][2], dp[2 * kc + 1][3])};
#pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        const int at = (kc * 16 + 8 * ((lane / 8) % 2) + lane % 8) * LD + n * 8 + 8 * (lane / 16);
        uint32_t ob[4], qb[4];
        simt::ldmatrix<4, true>(ob, &dos[at]);
        simt::ldmatrix<4, true>(qb, &qs[at]);
        attn::mma<T>(dv[n], pa, ob[0], ob[1]);
        attn::mma<T>(dv[n + 1], pa, ob[2], ob[3]);
        attn::mma<T>(dk[n], da, qb[0], qb[1]);
        attn::mma<T>(dk[n + 1], da, qb[2], qb[3]);
      }
    }

    // dS^T * scale to shared memory, for dQ = dS K across all the block's keys.
#pragma unroll
    for (int j = 0; j < Br / 8; ++j)
#pragma unroll
      for (int r = 0; r < 2; ++r)
        *reinterpret_cast<uint32_t*>(&dss[(kw + g + 8 * r) * LDS + j * 8 + 2 * t]) =
            attn::pack2<T>(dp[j][2 * r] * p.scale, dp[j][2 * r + 1] * p.scale);
    __syncthreads();

    // dQ[q0 .. q0 + Br) += dS K: warp -> (16-row query group, slice of D); 8 accumulators live.
    constexpr int kGroups = Br / 16, kSlices = C::kWarps / kGroups, kSlice = D / kSlices;
    const int qg = warp % kGroups, slice = warp / kGroups;
#pragma unroll 1
    for (int n0 = slice * kSlice; n0 < (slice + 1) * kSlice; n0 += 16) {
      float acc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
      for (int kc = 0; kc < Bc / 16; ++kc) {
        const int mat = lane / 8;
        uint32_t a[4], kb[4];
        simt::ldmatrix<4, true>(a, &dss[(kc * 16 + 8 * (mat / 2) + lane % 8) * LDS + qg * 16 +
                                        8 * (mat % 2)]);
        simt::ldmatrix<4, true>(kb, &ks[(kc * 16 + 8 * (mat % 2) + lane % 8) * LD + n0 +
                                        8 * (mat / 2)]);
        attn::mma<T>(acc[0], a, kb[0], kb[1]);
        attn::mma<T>(acc[1], a, kb[2], kb[3]);
      }
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int query = q0 + qg * 16 + g + 8 * (i / 2);
          if (query < p.nq)
            atomicAdd(&p.dq_accum[q_off + size_t(query) * D + n0 + 8 * h + 2 * t + i % 2],
                      acc[h][i]);
        }
    }
    __syncthreads();  // qs, dos and dss are refilled next step
  }
  simt::cp_async_wait<0>();  // K and V landed even if no query tile ran

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = k0 + kw + g + 8 * r;
    if (key >= p.nk) continue;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      const size_t at = kv_off + size_t(key) * D + n * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(&p.dk[at]) =
          attn::pack2<T>(dk[n][2 * r] * p.scale, dk[n][2 * r + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(&p.dv[at]) = attn::pack2<T>(dv[n][2 * r], dv[n][2 * r + 1]);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(256)
    attention_backward_dq_kernel(const float* __restrict__ dq_accum, T* __restrict__ dq, size_t n) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    dq[i] = attn::from_float<T>(dq_accum[i]);
}

}  // namespace device

// ---- launchers ------------------------------------------------------------------------------

namespace attn_host {

inline void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("attention: ") + what);
}

template <class T>
void check_common(const AttentionArgs<T>& a, int head_dim) {
  require(head_dim == 64 || head_dim == 128, "head dimension must be 64 or 128");
  require(a.batch > 0 && a.heads > 0 && a.nq > 0 && a.nk > 0, "empty shape");
  require(a.batch * a.heads <= 65535, "batch * heads must be at most 65535");
  require(a.q && a.k && a.v && a.lse, "q, k, v and lse are required");
  for (const void* ptr : {static_cast<const void*>(a.q), static_cast<const void*>(a.k),
                          static_cast<const void*>(a.v)})
    require(reinterpret_cast<uintptr_t>(ptr) % 16 == 0, "q, k and v must be 16-byte aligned");
}

}  // namespace attn_host

// o = softmax(scale * q k^T + mask) v, and lse per query row. Returns the launch error.
template <class T>
cudaError_t attention_forward(const AttentionArgs<T>& a, int head_dim, cudaStream_t stream = nullptr) {
  attn_host::check_common(a, head_dim);
  attn_host::require(a.out != nullptr, "out is required");
  auto launch = [&](auto kernel, auto config) {
    using C = decltype(config);
    return simt_launch(kernel, dim3((a.nq + C::kBr - 1) / C::kBr, a.batch * a.heads),
                       dim3(C::kThreads), C::kSmemBytes, stream, a);
  };
  if (head_dim == 64)
    return launch(device::attention_forward_kernel<T, 64>, device::attn::ForwardConfig<64>{});
  return launch(device::attention_forward_kernel<T, 128>, device::attn::ForwardConfig<128>{});
}

// dq, dk, dv from d_o, with o and lse saved by attention_forward; dq_accum and delta are
// workspaces the caller provides (their sizes are in AttentionArgs). Returns the first launch
// error.
template <class T>
cudaError_t attention_backward(const AttentionArgs<T>& a, int head_dim, cudaStream_t stream = nullptr) {
  attn_host::check_common(a, head_dim);
  attn_host::require(a.o && a.d_o && a.dq && a.dk && a.dv, "o, d_o, dq, dk and dv are required");
  attn_host::require(a.dq_accum && a.delta, "the dq_accum and delta workspaces are required");
  attn_host::require(reinterpret_cast<uintptr_t>(a.d_o) % 16 == 0, "d_o must be 16-byte aligned");
  const size_t rows = size_t(a.batch) * a.heads * a.nq;
  attn_host::require((rows + 3) / 4 <= 0x7fffffffu, "too many query rows");
  auto run = [&](auto prepare, auto main, auto config) -> cudaError_t {
    using C = decltype(config);
    cudaError_t e = simt_launch(prepare, dim3(unsigned((rows + 3) / 4)), dim3(128), 0, stream, a);
    if (e != cudaSuccess) return e;
    e = simt_launch(main, dim3((a.nk + C::kBc - 1) / C::kBc, a.batch * a.heads), dim3(C::kThreads),
                    C::kSmemBytes, stream, a);
    if (e != cudaSuccess) return e;
    const size_t n = rows * size_t(head_dim);
    const unsigned blocks = unsigned(std::min<size_t>((n + 255) / 256, 4096));
    return simt_launch(device::attention_backward_dq_kernel<T>, dim3(blocks), dim3(256), 0, stream,
                       static_cast<const float*>(a.dq_accum), a.dq, n);
  };
  if (head_dim == 64)
    return run(device::attention_backward_prepare_kernel<T, 64>,
               device::attention_backward_kernel<T, 64>, device::attn::BackwardConfig<64>{});
  return run(device::attention_backward_prepare_kernel<T, 128>,
             device::attention_backward_kernel<T, 128>, device::attn::BackwardConfig<128>{});
}

// The instantiations the library uses, so that the device build compiles every kernel.
template cudaError_t attention_forward<__nv_bfloat16>(const AttentionArgs<__nv_bfloat16>&, int, cudaStream_t);
template cudaError_t attention_forward<__half>(const AttentionArgs<__half>&, int, cudaStream_t);
template cudaError_t attention_backward<__nv_bfloat16>(const AttentionArgs<__nv_bfloat16>&, int, cudaStream_t);
template cudaError_t attention_backward<__half>(const AttentionArgs<__half>&, int, cudaStream_t);

// ==== float32 flash attention on FMA ==========================================================
// The same computation in fp32 on CUDA cores (no tensor cores: fp32 in, fp32 accumulate; the
// kernels are templates on T = float or double, and float64 runs them for d, dv <= 64, the
// largest whose tiles fit the 48 KiB of shared memory a launch gets without an opt-in), for
// any head dimension 1..128 (dv may differ from d), causal, and a general mask read tile by
// tile through its strides (the CPU kernel's description: mask + head_offset[h] + i * row_stride
// + j * col_stride; bool bytes, 0 = masked out, or additive values of type T). The conventions
// are the CPU kernel's (cpu/attention.h): lse (heads, nq) in natural-log units, +inf for a row
// that sees no key (its output is 0 and its gradients are 0), NaN scores make the row's output
// 0 as well.
//
// Layouts: q (heads, nq, d), k (heads, nk, d), v (heads, nk, dv), out/d_o (heads, nq, dv), all
// contiguous, of type T. Every kernel runs 4 warps; a warp owns 4 rows of a 16-row block and its
// 32 lanes own the 32 columns of a tile on the other side (keys in the forward and dQ kernels,
// queries in the dK/dV kernel), so a score tile is 16 x 32 and each lane holds 4 scores.
//   scores: s[r] = rows[r] . cols[lane] over d: the rows are read as 16-byte broadcasts, the
//     lane's column row as one 16-byte load per 4 elements (row stride an odd multiple of 4
//     words, so the 8 lanes of a quarter-warp hit distinct banks): 16 FMAs per 5 loads.
//   products: acc[r][u] += sum_j w[r][j] vals[j][lane + 32 u], the weights w (P or dS) through
//     shared memory (16-byte broadcasts), vals rows read at consecutive addresses by the lanes.
//   attention_forward_fma_kernel    grid (ceil(nq / 16), heads): Q block in shared memory, K and
//       V tiles of 32 keys, online softmax per row (the row max by warp shuffles, the row sum
//       kept per lane and summed at the end), O in registers (4 rows x 4 column groups).
//       Shared memory 4 * (16 ld(d) + 32 ld(d) + 32 ld(dv) + 512) B: 44 KiB at d = dv = 128.
//   attention_backward_delta_fma_kernel   delta_i = dO_i . O_i, one warp per row.
//   attention_backward_dq_fma_kernel      grid (ceil(nq / 16), heads): Q and dO blocks stay;
//       per key tile V (dP = dO V^T), then K (S, P = exp(S - lse), dS = P (dP - delta),
//       dQ += dS K) through one buffer. 35 KiB at d = dv = 128.
//   attention_backward_dkv_fma_kernel     grid (ceil(nk / 16), heads): K and V blocks stay;
//       per query tile dO (dP^T), Q (S^T, P^T, dS^T, dK += dS^T Q), dO again (dV += P^T dO)
//       through one buffer. 37 KiB at d = dv = 128.
// dQ and dK/dV are separate passes over the score tiles instead of atomics into dQ: the
// gradients are deterministic (as on the CPU) at the cost of recomputing S and dP once more.
//
// FLOPs (per head, no mask): forward 2 nq nk (d + dv), backward 2 nq nk (2 d + 2 dv) in the
// dK/dV pass plus 2 nq nk (2 d + dv) in the dQ pass (7/5 of the minimal 2 nq nk (2 d + 3 dv)
// at d = dv); causal halves them. Global reads: the forward reads K and V once per 16-row query
// block: (d + dv) nk ceil(nq / 16) floats, i.e. 16 rows x 2 FLOPs per float read, 8 FLOP/B from
// L2. Shared memory (the binding limit on a GPU): per 4 elements of d a warp issues 4 broadcast
// LDS.128 (one wavefront each) and one spread LDS.128 (4 wavefronts) for 16 FFMA instructions
// (4 issue cycles of the SM's 4 schedulers): 8 shared-memory cycles per 4 FMA cycles, so the
// score products run at <= 50 % of the FMA peak; P V at d = 64 (2 column groups): 12 cycles per
// 8, <= 67 %. Version 1: no cp.async pipeline, one tile in flight.

template <class T>
struct AttentionFmaArgs {
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  const T* o = nullptr;    // the forward output, read by the backward pass
  const T* d_o = nullptr;  // backward only
  T* out = nullptr;
  T* lse = nullptr;        // (heads, nq): written by the forward pass, read by the backward
  T* delta = nullptr;      // backward workspace (heads, nq)
  T* dq = nullptr;
  T* dk = nullptr;
  T* dv = nullptr;
  const void* mask = nullptr;  // bool bytes or T, broadcast to (heads, nq, nk) by strides
  bool bool_mask = false;
  const int64_t* mask_head_offset = nullptr;  // (heads,), in elements
  int64_t mask_row_stride = 0, mask_col_stride = 0;
  int heads = 0, nq = 0, nk = 0, head_dim = 0, value_dim = 0;  // d (q, k) and dv (v)
  T scale = 0;
  bool causal = false;
};

namespace device {
namespace attn_fma {

constexpr int kWarps = 4, kThreads = 32 * kWarps;
constexpr int kRows = 4;                // rows per warp
constexpr int kBr = kWarps * kRows;     // rows per block (queries, or keys in the dK/dV pass)
constexpr int kBc = 32;                 // columns per tile: one per lane
// 32-column groups of an output row held per lane: d, dv <= 128 for float, <= 64 for double
// (whose tiles would not fit 48 KiB of shared memory beyond that; 4 groups of double
// accumulators would also spill).
template <class T>
constexpr int kGroups = std::is_same_v<T, float> ? 4 : 2;
// __launch_bounds__'s minimum CTAs per SM: unspecified (0) for float, where ptxas's own choice
// keeps 80-110 registers without spills; 1 for double, whose kernels otherwise spill at the 128
// registers ptxas settles on (they take 154-168 with the bound).
template <class T>
constexpr int kMinBlocks = std::is_same_v<T, float> ? 0 : 1;

// Row stride in elements of a shared tile of `width` columns: a multiple of 4 whose quarter is
// odd, so that for float the 16-byte loads of 8 consecutive rows fall in distinct banks. (For
// double the same rows share banks pairwise: float64 is for checks, not speed.)
__host__ __device__ constexpr int smem_ld(int width) { return 4 * (((width + 3) / 4) | 1); }

__host__ __device__ constexpr int forward_smem_elements(int d, int dv) {
  return kBr * smem_ld(d) + kBc * smem_ld(d) + kBc * smem_ld(dv) + kBr * kBc;
}
__host__ __device__ constexpr int dq_smem_elements(int d, int dv) {
  return kBr * smem_ld(d) + kBr * smem_ld(dv) + kBc * (smem_ld(d) > smem_ld(dv) ? smem_ld(d) : smem_ld(dv)) +
         kBr * kBc;
}
__host__ __device__ constexpr int dkv_smem_elements(int d, int dv) {
  return kBr * smem_ld(d) + kBr * smem_ld(dv) + kBc * (smem_ld(d) > smem_ld(dv) ? smem_ld(d) : smem_ld(dv)) +
         2 * kBr * kBc;
}

// dst[r][c] = src[row0 + r][c] (a matrix of n rows of `width` elements) for r < rows; rows at or
// past n and columns at or past width are zero (padding must be finite: 0 * NaN poisons a sum).
__device__ __forceinline__ float fma_of(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double fma_of(double a, double b, double c) { return fma(a, b, c); }
__device__ __forceinline__ float exp_of(float x) { return expf(x); }
__device__ __forceinline__ double exp_of(double x) { return exp(x); }
__device__ __forceinline__ float log_of(float x) { return logf(x); }
__device__ __forceinline__ double log_of(double x) { return log(x); }
__device__ __forceinline__ float max_of(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double max_of(double a, double b) { return fmax(a, b); }

template <class T>
struct Quad {
  T x, y, z, w;
};

// Four consecutive elements at a 4-element aligned address: one 16-byte load for float, four
// 8-byte loads for double.
__device__ __forceinline__ Quad<float> load4(const float* at) {
  const float4 v = *reinterpret_cast<const float4*>(at);
  return {v.x, v.y, v.z, v.w};
}
__device__ __forceinline__ Quad<double> load4(const double* at) { return {at[0], at[1], at[2], at[3]}; }

template <class T>
__device__ __forceinline__ void load_tile(T* dst, int ld, const T* src, int row0, int rows, int n,
                                          int width) {
  for (int at = threadIdx.x; at < rows * ld; at += kThreads) {
    const int r = at / ld, c = at % ld, row = row0 + r;
    dst[at] = row < n && c < width ? src[size_t(row) * width + c] : 0.0f;
  }
}

// acc[r] += rows[r] . col over n4 groups of 4: rows are this warp's rows (stride ld), col the
// lane's row of the column tile.
template <class T>
__device__ __forceinline__ void dot_rows(T (&acc)[kRows], const T* rows, int ld, const T* col,
                                         int n4) {
  for (int c = 0; c < n4; ++c) {
    const Quad<T> b = load4(col + 4 * c);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const Quad<T> a = load4(rows + r * ld + 4 * c);
      acc[r] = fma_of(a.x, b.x, acc[r]);
      acc[r] = fma_of(a.y, b.y, acc[r]);
      acc[r] = fma_of(a.z, b.z, acc[r]);
      acc[r] = fma_of(a.w, b.w, acc[r]);
    }
  }
}

// acc[r][u] += sum_j w[r][j] * vals[j][lane + 32 u] over the kBc rows of vals (stride ld, width
// valid columns); w is this warp's [kRows][kBc] weights.
template <class T>
__device__ __forceinline__ void accumulate_rows(T (&acc)[kRows][kGroups<T>], const T* w, const T* vals,
                                                int ld, int width) {
  const int lane = threadIdx.x % 32;
  for (int j4 = 0; j4 < kBc / 4; ++j4) {
    Quad<T> wr[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) wr[r] = load4(w + r * kBc + 4 * j4);
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) {
      const T* row = vals + (4 * j4 + jj) * ld;
#pragma unroll
      for (int u = 0; u < kGroups<T>; ++u) {
        const int c = lane + 32 * u;
        if (c >= width) continue;
        const T x = row[c];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const T wj = jj == 0 ? wr[r].x : jj == 1 ? wr[r].y : jj == 2 ? wr[r].z : wr[r].w;
          acc[r][u] = fma_of(wj, x, acc[r][u]);
        }
      }
    }
  }
}

// scale * dot + mask for query i and key j, or -inf when the key is not visible (past the
// end, above the causal diagonal, or masked out).
template <class T>
__device__ __forceinline__ T masked_score(const AttentionFmaArgs<T>& p, int64_t mask_base, int i, int j,
                                              T dot) {
  if (j >= p.nk || i >= p.nq || (p.causal && j > i)) return -INFINITY;
  T s = dot * p.scale;
  if (p.mask) {
    const int64_t at = mask_base + int64_t(i) * p.mask_row_stride + int64_t(j) * p.mask_col_stride;
    if (p.bool_mask) {
      if (!static_cast<const unsigned char*>(p.mask)[at]) return -INFINITY;
    } else {
      s += static_cast<const T*>(p.mask)[at];
    }
  }
  return s;
}

template <class T>
__device__ __forceinline__ T warp_max(T x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) x = max_of(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

template <class T>
__device__ __forceinline__ T warp_sum(T x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

}  // namespace attn_fma

template <class T>
__global__ void __launch_bounds__(attn_fma::kThreads, attn_fma::kMinBlocks<T>) attention_forward_fma_kernel(AttentionFmaArgs<T> p) {
  using namespace attn_fma;
  SIMT_DYNAMIC_SMEM(T, smem);
  const int ldd = smem_ld(p.head_dim), ldv = smem_ld(p.value_dim);
  T* const qs = smem;              // [kBr][ldd]
  T* const ks = qs + kBr * ldd;    // [kBc][ldd]
  T* const vs = ks + kBc * ldd;    // [kBc][ldv]
  T* const ps = vs + kBc * ldv;    // [kBr][kBc]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, h = blockIdx.y;
  const int q0 = blockIdx.x * kBr, row0 = q0 + warp * kRows;
  const T* const q = p.q + size_t(h) * p.nq * p.head_dim;
  const T* const k = p.k + size_t(h) * p.nk * p.head_dim;
  const T* const v = p.v + size_t(h) * p.nk * p.value_dim;
  const int64_t mask_base = p.mask ? p.mask_head_offset[h] : 0;
  const int key_end = p.causal ? min(p.nk, q0 + kBr) : p.nk;
  T* const w = ps + warp * kRows * kBc;

  load_tile(qs, ldd, q, q0, kBr, p.nq, p.head_dim);
  T m[kRows], l[kRows], acc[kRows][kGroups<T>];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int u = 0; u < kGroups<T>; ++u) acc[r][u] = 0.0f;
  }
  for (int j0 = 0; j0 < key_end; j0 += kBc) {
    __syncthreads();  // the previous tile is no longer read
    load_tile(ks, ldd, k, j0, kBc, p.nk, p.head_dim);
    load_tile(vs, ldv, v, j0, kBc, p.nk, p.value_dim);
    __syncthreads();
    T s[kRows] = {};
    dot_rows(s, qs + warp * kRows * ldd, ldd, ks + lane * ldd, (p.head_dim + 3) / 4);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const T x = masked_score(p, mask_base, row0 + r, j0 + lane, s[r]);
      const T m_new = max_of(m[r], warp_max(x));
      // A row that has seen nothing visible yet (or only NaN) adds nothing, as on the CPU.
      T pr = 0.0f, alpha = 1.0f;
      if (m_new != -INFINITY) {
        alpha = m[r] == -INFINITY ? 0.0f : exp_of(m[r] - m_new);
        pr = exp_of(x - m_new);
        m[r] = m_new;
      }
      l[r] = l[r] * alpha + pr;
#pragma unroll
      for (int u = 0; u < kGroups<T>; ++u) acc[r][u] *= alpha;
      w[r * kBc + lane] = pr;
    }
    __syncwarp();
    accumulate_rows(acc, w, vs, ldv, p.value_dim);
  }

  T* const out = p.out + size_t(h) * p.nq * p.value_dim;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const T sum = warp_sum(l[r]);
    const int i = row0 + r;
    if (i >= p.nq) continue;
    const bool alive = sum > 0.0f;  // false with no visible key, or NaN scores
    const T inv = alive ? 1.0f / sum : 0.0f;
#pragma unroll
    for (int u = 0; u < kGroups<T>; ++u) {
      const int c = lane + 32 * u;
      if (c < p.value_dim) out[size_t(i) * p.value_dim + c] = alive ? acc[r][u] * inv : 0.0f;
    }
    if (lane == 0) p.lse[size_t(h) * p.nq + i] = alive ? m[r] + log_of(sum) : INFINITY;
  }
}

// delta_i = dO_i . O_i; one warp per row of the flattened (heads * nq, dv) matrices.
template <class T>
__global__ void __launch_bounds__(128) attention_backward_delta_fma_kernel(AttentionFmaArgs<T> p) {
  const size_t rows = size_t(p.heads) * p.nq;
  const size_t row = size_t(blockIdx.x) * 4 + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // no barrier below; only warp collectives, uniform per warp
  T sum = 0.0f;
  for (int c = lane; c < p.value_dim; c += 32)
    sum = attn_fma::fma_of(p.d_o[row * p.value_dim + c], p.o[row * p.value_dim + c], sum);
  sum = attn_fma::warp_sum(sum);
  if (lane == 0) p.delta[row] = sum;
}

template <class T>
__global__ void __launch_bounds__(attn_fma::kThreads, attn_fma::kMinBlocks<T>) attention_backward_dq_fma_kernel(AttentionFmaArgs<T> p) {
  using namespace attn_fma;
  SIMT_DYNAMIC_SMEM(T, smem);
  const int ldd = smem_ld(p.head_dim), ldv = smem_ld(p.value_dim);
  T* const qs = smem;                // [kBr][ldd]
  T* const dos = qs + kBr * ldd;     // [kBr][ldv]
  T* const kv = dos + kBr * ldv;     // [kBc][max(ldd, ldv)]: V, then K
  T* const ds = kv + kBc * max(ldd, ldv);  // [kBr][kBc]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, h = blockIdx.y;
  const int q0 = blockIdx.x * kBr, row0 = q0 + warp * kRows;
  const size_t q_off = size_t(h) * p.nq, k_off = size_t(h) * p.nk;
  const int64_t mask_base = p.mask ? p.mask_head_offset[h] : 0;
  const int key_end = p.causal ? min(p.nk, q0 + kBr) : p.nk;
  T* const w = ds + warp * kRows * kBc;

  load_tile(qs, ldd, p.q + q_off * p.head_dim, q0, kBr, p.nq, p.head_dim);
  load_tile(dos, ldv, p.d_o + q_off * p.value_dim, q0, kBr, p.nq, p.value_dim);
  T lse[kRows], delta[kRows], acc[kRows][kGroups<T>];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int i = row0 + r;
    lse[r] = i < p.nq ? p.lse[q_off + i] : INFINITY;
    delta[r] = i < p.nq ? p.delta[q_off + i] : 0.0f;
#pragma unroll
    for (int u = 0; u < kGroups<T>; ++u) acc[r][u] = 0.0f;
  }
  for (int j0 = 0; j0 < key_end; j0 += kBc) {
    __syncthreads();  // the previous K tile is no longer read
    load_tile(kv, ldv, p.v + k_off * p.value_dim, j0, kBc, p.nk, p.value_dim);
    __syncthreads();
    T dp[kRows] = {};
    dot_rows(dp, dos + warp * kRows * ldv, ldv, kv + lane * ldv, (p.value_dim + 3) / 4);
    __syncthreads();
    load_tile(kv, ldd, p.k + k_off * p.head_dim, j0, kBc, p.nk, p.head_dim);
    __syncthreads();
    T s[kRows] = {};
    dot_rows(s, qs + warp * kRows * ldd, ldd, kv + lane * ldd, (p.head_dim + 3) / 4);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const T x = masked_score(p, mask_base, row0 + r, j0 + lane, s[r]);
      // lse = +inf: the forward zeroed this row, so its gradients are zero (even for NaN scores).
      const bool live = x != -INFINITY && lse[r] != INFINITY;
      w[r * kBc + lane] = live ? exp_of(x - lse[r]) * (dp[r] - delta[r]) : 0.0f;
    }
    __syncwarp();
    accumulate_rows(acc, w, kv, ldd, p.head_dim);
  }
  T* const dq = p.dq + q_off * p.head_dim;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int i = row0 + r;
    if (i >= p.nq) continue;
#pragma unroll
    for (int u = 0; u < kGroups<T>; ++u) {
      const int c = lane + 32 * u;
      if (c < p.head_dim) dq[size_t(i) * p.head_dim + c] = acc[r][u] * p.scale;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(attn_fma::kThreads, attn_fma::kMinBlocks<T>) attention_backward_dkv_fma_kernel(AttentionFmaArgs<T> p) {
  using namespace attn_fma;
  SIMT_DYNAMIC_SMEM(T, smem);
  const int ldd = smem_ld(p.head_dim), ldv = smem_ld(p.value_dim);
  T* const ks = smem;                   // [kBr][ldd]
  T* const vs = ks + kBr * ldd;         // [kBr][ldv]
  T* const tile = vs + kBr * ldv;       // [kBc][max(ldd, ldv)]: dO, Q, dO
  T* const ps = tile + kBc * max(ldd, ldv);  // [kBr][kBc] P^T
  T* const dss = ps + kBr * kBc;             // [kBr][kBc] dS^T
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, h = blockIdx.y;
  const int k0 = blockIdx.x * kBr, key0 = k0 + warp * kRows;
  const size_t q_off = size_t(h) * p.nq, k_off = size_t(h) * p.nk;
  const int64_t mask_base = p.mask ? p.mask_head_offset[h] : 0;
  T* const wp = ps + warp * kRows * kBc;
  T* const wds = dss + warp * kRows * kBc;

  load_tile(ks, ldd, p.k + k_off * p.head_dim, k0, kBr, p.nk, p.head_dim);
  load_tile(vs, ldv, p.v + k_off * p.value_dim, k0, kBr, p.nk, p.value_dim);
  T dk[kRows][kGroups<T>], dv[kRows][kGroups<T>];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int u = 0; u < kGroups<T>; ++u) dk[r][u] = dv[r][u] = 0.0f;
  // Causal: queries before k0 see no key of this block.
  for (int i0 = p.causal ? k0 / kBc * kBc : 0; i0 < p.nq; i0 += kBc) {
    const int i = i0 + lane;
    const T lse = i < p.nq ? p.lse[q_off + i] : INFINITY;
    const T delta = i < p.nq ? p.delta[q_off + i] : 0.0f;
    __syncthreads();  // the previous dO tile is no longer read
    load_tile(tile, ldv, p.d_o + q_off * p.value_dim, i0, kBc, p.nq, p.value_dim);
    __syncthreads();
    T dp[kRows] = {};
    dot_rows(dp, vs + warp * kRows * ldv, ldv, tile + lane * ldv, (p.value_dim + 3) / 4);
    __syncthreads();
    load_tile(tile, ldd, p.q + q_off * p.head_dim, i0, kBc, p.nq, p.head_dim);
    __syncthreads();
    T s[kRows] = {};
    dot_rows(s, ks + warp * kRows * ldd, ldd, tile + lane * ldd, (p.head_dim + 3) / 4);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const T x = masked_score(p, mask_base, i, key0 + r, s[r]);
      const bool live = x != -INFINITY && lse != INFINITY;
      const T pr = live ? exp_of(x - lse) : 0.0f;
      wp[r * kBc + lane] = pr;
      wds[r * kBc + lane] = live ? pr * (dp[r] - delta) : 0.0f;
    }
    __syncwarp();
    accumulate_rows(dk, wds, tile, ldd, p.head_dim);
    __syncthreads();
    load_tile(tile, ldv, p.d_o + q_off * p.value_dim, i0, kBc, p.nq, p.value_dim);
    __syncthreads();
    accumulate_rows(dv, wp, tile, ldv, p.value_dim);
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int key = key0 + r;
    if (key >= p.nk) continue;
#pragma unroll
    for (int u = 0; u < kGroups<T>; ++u) {
      const int c = lane + 32 * u;
      if (c < p.head_dim) p.dk[(k_off + key) * p.head_dim + c] = dk[r][u] * p.scale;
      if (c < p.value_dim) p.dv[(k_off + key) * p.value_dim + c] = dv[r][u];
    }
  }
}

}  // namespace device

namespace attn_host {

template <class T>
void check_fma(const AttentionFmaArgs<T>& a) {
  constexpr int kMax = 32 * device::attn_fma::kGroups<T>;
  require(a.head_dim >= 1 && a.head_dim <= kMax && a.value_dim >= 1 && a.value_dim <= kMax,
          "the FMA kernels take head dimensions 1 to 128 (float), 1 to 64 (double)");
  require(a.heads > 0 && a.nq > 0 && a.nk > 0, "empty shape");
  require(a.heads <= 65535, "heads must be at most 65535");
  require(a.nq < (1 << 30) && a.nk < (1 << 30), "at most 2^30 positions");
  require(a.q && a.k && a.v && a.lse, "q, k, v and lse are required");
  require(!a.mask || a.mask_head_offset, "a mask needs its head offsets");
  using namespace device::attn_fma;
  const int d = a.head_dim, dv = a.value_dim;
  const int most = std::max({forward_smem_elements(d, dv), dq_smem_elements(d, dv), dkv_smem_elements(d, dv)});
  require(size_t(most) * sizeof(T) <= 48 * 1024, "the tiles need more than 48 KiB of shared memory");
}

}  // namespace attn_host

// out = softmax(scale * q k^T + mask) v and lse per query row, on FMA in T. Returns the launch
// error.
template <class T>
cudaError_t attention_forward_fma(const AttentionFmaArgs<T>& a, cudaStream_t stream = nullptr) {
  using namespace device::attn_fma;
  attn_host::check_fma(a);
  attn_host::require(a.out != nullptr, "out is required");
  return simt_launch(device::attention_forward_fma_kernel<T>, dim3((a.nq + kBr - 1) / kBr, a.heads), dim3(kThreads),
                     size_t(forward_smem_elements(a.head_dim, a.value_dim)) * sizeof(T), stream, a);
}

// dq, dk, dv from d_o, with o and lse saved by attention_forward_fma; delta is a (heads, nq)
// workspace the caller provides. Deterministic: no atomics. Returns the first launch error.
template <class T>
cudaError_t attention_backward_fma(const AttentionFmaArgs<T>& a, cudaStream_t stream = nullptr) {
  using namespace device::attn_fma;
  attn_host::check_fma(a);
  attn_host::require(a.o && a.d_o && a.dq && a.dk && a.dv && a.delta, "o, d_o, dq, dk, dv and delta are required");
  const size_t rows = size_t(a.heads) * a.nq;
  attn_host::require((rows + 3) / 4 <= 0x7fffffffu, "too many query rows");
  cudaError_t e = simt_launch(device::attention_backward_delta_fma_kernel<T>, dim3(unsigned((rows + 3) / 4)),
                              dim3(128), 0, stream, a);
  if (e != cudaSuccess) return e;
  e = simt_launch(device::attention_backward_dq_fma_kernel<T>, dim3((a.nq + kBr - 1) / kBr, a.heads), dim3(kThreads),
                  size_t(dq_smem_elements(a.head_dim, a.value_dim)) * sizeof(T), stream, a);
  if (e != cudaSuccess) return e;
  return simt_launch(device::attention_backward_dkv_fma_kernel<T>, dim3((a.nk + kBr - 1) / kBr, a.heads),
                     dim3(kThreads), size_t(dkv_smem_elements(a.head_dim, a.value_dim)) * sizeof(T), stream, a);
}

template cudaError_t attention_forward_fma<float>(const AttentionFmaArgs<float>&, cudaStream_t);
template cudaError_t attention_forward_fma<double>(const AttentionFmaArgs<double>&, cudaStream_t);
template cudaError_t attention_backward_fma<float>(const AttentionFmaArgs<float>&, cudaStream_t);
template cudaError_t attention_backward_fma<double>(const AttentionFmaArgs<double>&, cudaStream_t);

}  // namespace lamina::cuda

// ---- op launchers ---------------------------------------------------------------------------
// The library build wraps the launchers above around its tensors; the kernel lab includes this
// file without the core headers, so this part is compiled only there.
#if defined(LAMINA_HAVE_CUDA)
#include <functional>

#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace attn_host {

template <class T>
AttentionArgs<T> tensor_args(const char* name, const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                             bool causal, const Tensor& kv_lens) {
  check<ValueError>(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3 && q.is_contiguous() && k.is_contiguous() &&
                        v.is_contiguous() && k.shape() == v.shape() && q.shape()[0] == k.shape()[0] &&
                        q.shape()[2] == k.shape()[2],
                    name, ": the flash attention kernel takes contiguous q (heads, nq, D), k and v (heads, nk, D)");
  check<ValueError>(q.shape()[0] <= 65535 && q.shape()[1] < (int64_t(1) << 30) && k.shape()[1] < (int64_t(1) << 30),
                    name, ": the flash attention kernel takes at most 65535 heads and 2^30 positions");
  AttentionArgs<T> a;
  a.q = static_cast<const T*>(q.raw_data());
  a.k = static_cast<const T*>(k.raw_data());
  a.v = static_cast<const T*>(v.raw_data());
  a.batch = int(q.shape()[0]), a.heads = 1, a.nq = int(q.shape()[1]), a.nk = int(k.shape()[1]);
  a.scale = float(scale);
  a.causal = causal;
  if (kv_lens.defined()) {
    check<ValueError>(kv_lens.dtype() == DType::Int32 && kv_lens.is_contiguous() &&
                          kv_lens.shape() == Shape{q.shape()[0]} && kv_lens.device() == q.device(),
                      name, ": the flash attention kernel takes kv_lens as contiguous int32 (heads,) on q's device");
    a.kv_lens = kv_lens.data<int32_t>();
  }
  return a;
}

// The kernels' preconditions are checked by the op; a violation here is a bug, not bad input.
inline void launch(const char* name, const char* what, const std::function<cudaError_t()>& run) {
  cudaError_t status;
  try {
    status = run();
  } catch (const std::invalid_argument& e) {
    throw ValueError(std::string(name) + ": " + e.what());
  }
  check_launch(status, name, what);
}

}  // namespace attn_host

bool attention_fused_supported(DType dtype, int64_t head_dim) {
  return (dtype == DType::BFloat16 || dtype == DType::Float16) && (head_dim == 64 || head_dim == 128);
}

void attention_forward(const char* name, const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                       const Tensor& v, double scale, bool causal) {
  attention_forward(name, out, lse, q, k, v, scale, causal, Tensor());
}

void attention_forward(const char* name, const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                       const Tensor& v, double scale, bool causal, const Tensor& kv_lens) {
  check<TypeError>(attention_fused_supported(q.dtype(), q.shape().back()) && k.dtype() == q.dtype() &&
                       v.dtype() == q.dtype() && out.dtype() == q.dtype() && lse.dtype() == DType::Float32,
                   name, ": the flash attention kernel takes bfloat16 or float16 q, k, v with D = 64 or 128");
  auto run = [&](auto tag) {
    using T = decltype(tag);
    AttentionArgs<T> a = attn_host::tensor_args<T>(name, q, k, v, scale, causal, kv_lens);
    a.out = static_cast<T*>(out.raw_data());
    a.lse = lse.data<float>();
    attn_host::launch(name, "attention_forward_kernel launch",
                      [&] { return lamina::cuda::attention_forward<T>(a, int(q.shape()[2]), current_stream()); });
  };
  if (q.dtype() == DType::BFloat16) run(__nv_bfloat16{});
  else run(__half{});
}

void attention_backward(const char* name, const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& d_out,
                        double scale, bool causal) {
  attention_backward(name, dq, dk, dv, q, k, v, out, lse, d_out, scale, causal, Tensor());
}

void attention_backward(const char* name, const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& d_out,
                        double scale, bool causal, const Tensor& kv_lens) {
  check<TypeError>(attention_fused_supported(q.dtype(), q.shape().back()) && d_out.dtype() == q.dtype(), name,
                   ": the flash attention backward kernel takes bfloat16 or float16 tensors with D = 64 or 128");
  Tensor dq_accum = Tensor::empty(q.shape(), DType::Float32, q.device());
  Tensor delta = Tensor::empty(lse.shape(), DType::Float32, q.device());
  auto run = [&](auto tag) {
    using T = decltype(tag);
    AttentionArgs<T> a = attn_host::tensor_args<T>(name, q, k, v, scale, causal, kv_lens);
    a.o = static_cast<const T*>(out.raw_data());
    a.d_o = static_cast<const T*>(d_out.raw_data());
    a.lse = lse.data<float>();
    a.dq = static_cast<T*>(dq.raw_data());
    a.dk = static_cast<T*>(dk.raw_data());
    a.dv = static_cast<T*>(dv.raw_data());
    a.dq_accum = dq_accum.data<float>();
    a.delta = delta.data<float>();
    attn_host::launch(name, "attention_backward_kernel launch",
                      [&] { return lamina::cuda::attention_backward<T>(a, int(q.shape()[2]), current_stream()); });
  };
  if (q.dtype() == DType::BFloat16) run(__nv_bfloat16{});
  else run(__half{});
}

namespace attn_host {

template <class T>
AttentionFmaArgs<T> fma_args(const char* name, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lse,
                             double scale, bool causal, const AttentionMaskView& mask) {
  check<ValueError>(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3 && q.is_contiguous() && k.is_contiguous() &&
                        v.is_contiguous() && lse.is_contiguous() && q.shape()[0] == k.shape()[0] &&
                        v.shape()[0] == k.shape()[0] && q.shape()[2] == k.shape()[2] &&
                        v.shape()[1] == k.shape()[1] && lse.shape() == Shape{q.shape()[0], q.shape()[1]},
                    name, ": the FMA attention kernels take contiguous q (heads, nq, d), k (heads, nk, d), ",
                    "v (heads, nk, dv) and lse (heads, nq)");
  check<ValueError>(q.shape()[0] <= 65535 && q.shape()[1] < (int64_t(1) << 30) && k.shape()[1] < (int64_t(1) << 30),
                    name, ": the FMA attention kernels take at most 65535 heads and 2^30 positions");
  AttentionFmaArgs<T> a;
  a.q = q.data<T>(), a.k = k.data<T>(), a.v = v.data<T>(), a.lse = lse.data<T>();
  a.heads = int(q.shape()[0]), a.nq = int(q.shape()[1]), a.nk = int(k.shape()[1]);
  a.head_dim = int(q.shape()[2]), a.value_dim = int(v.shape()[2]);
  a.scale = T(scale);
  a.causal = causal;
  if (mask.values.defined()) {
    check<TypeError>(mask.values.dtype() == DType::Bool || mask.values.dtype() == q.dtype(), name,
                     ": the FMA attention kernels take a bool mask or an additive one of q's dtype");
    check<ValueError>(mask.head_offsets.dtype() == DType::Int64 && mask.head_offsets.is_contiguous() &&
                          mask.head_offsets.shape() == Shape{q.shape()[0]} &&
                          mask.head_offsets.device() == q.device() && mask.values.device() == q.device(),
                      name, ": the FMA attention kernels take mask head offsets as int64 (heads,) on q's device");
    a.mask = mask.values.raw_data();
    a.bool_mask = mask.values.dtype() == DType::Bool;
    a.mask_head_offset = mask.head_offsets.data<int64_t>();
    a.mask_row_stride = mask.row_stride, a.mask_col_stride = mask.col_stride;
  }
  return a;
}

// Runs fn(T{}) for float32 or float64 tensors, all of q's dtype.
template <class Fn>
void with_fma_dtype(const char* name, std::initializer_list<const Tensor*> tensors, Fn&& fn) {
  const DType t = (*tensors.begin())->dtype();
  bool ok = t == DType::Float32 || t == DType::Float64;
  for (const Tensor* x : tensors) ok = ok && x->dtype() == t;
  check<TypeError>(ok, name, ": the FMA attention kernels take float32 or float64 tensors, all of one dtype");
  if (t == DType::Float32) fn(float{});
  else fn(double{});
}

}  // namespace attn_host

bool attention_fma_supported(DType dtype, int64_t head_dim, int64_t value_dim) {
  const int64_t most = dtype == DType::Float32 ? 128 : dtype == DType::Float64 ? 64 : 0;
  return head_dim >= 1 && head_dim <= most && value_dim >= 1 && value_dim <= most;
}

void attention_forward_fma(const char* name, const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                           const Tensor& v, double scale, bool causal, const AttentionMaskView& mask) {
  check<ValueError>(out.is_contiguous() && out.shape() == Shape{q.shape()[0], q.shape()[1], v.shape().back()}, name,
                    ": the FMA attention kernels take a contiguous out (heads, nq, dv)");
  attn_host::with_fma_dtype(name, {&q, &k, &v, &lse, &out}, [&](auto tag) {
    using T = decltype(tag);
    AttentionFmaArgs<T> a = attn_host::fma_args<T>(name, q, k, v, lse, scale, causal, mask);
    a.out = out.data<T>();
    attn_host::launch(name, "attention_forward_fma_kernel launch",
                      [&] { return lamina::cuda::attention_forward_fma<T>(a, current_stream()); });
  });
}

void attention_backward_fma(const char* name, const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& q,
                            const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                            const Tensor& d_out, double scale, bool causal, const AttentionMaskView& mask) {
  const Shape out_shape{q.shape()[0], q.shape()[1], v.shape().back()};
  bool ok = out.shape() == out_shape && d_out.shape() == out_shape && dq.shape() == q.shape() &&
            dk.shape() == k.shape() && dv.shape() == v.shape();
  for (const Tensor* t : {&dq, &dk, &dv, &out, &d_out}) ok = ok && t->is_contiguous();
  check<ValueError>(ok, name, ": the FMA attention backward kernels take contiguous out, d_out, dq, dk and dv ",
                    "shaped like out, q, k and v");
  attn_host::with_fma_dtype(name, {&q, &k, &v, &lse, &out, &d_out, &dq, &dk, &dv}, [&](auto tag) {
    using T = decltype(tag);
    AttentionFmaArgs<T> a = attn_host::fma_args<T>(name, q, k, v, lse, scale, causal, mask);
    Tensor delta = Tensor::empty(lse.shape(), q.dtype(), q.device());
    a.o = out.data<T>(), a.d_o = d_out.data<T>(), a.delta = delta.data<T>();
    a.dq = dq.data<T>(), a.dk = dk.data<T>(), a.dv = dv.data<T>();
    attn_host::launch(name, "attention_backward_fma kernels launch",
                      [&] { return lamina::cuda::attention_backward_fma<T>(a, current_stream()); });
  });
}

}  // namespace lamina::cuda
#endif  // LAMINA_HAVE_CUDA
