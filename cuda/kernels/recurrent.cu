// Fused LSTM and GRU time steps, forward and backward-through-time, fp32.
//
// Split of the work (as on the CPU backend): the input projection x_t W_ih^T + b for all time
// steps is one GEMM before the loop (gates_x below). Each step is then ONE launch that
// computes the recurrent product h_{t-1} W_hh^T itself and fuses the gate nonlinearities, the
// cell update and the h output into the same threads: a step never writes pre-activation
// gates to memory and reads them back. Backward mirrors it: the step-t kernel first forms
// dh_t = dh_out_t + (recurrent gradient from step t+1) with the transposed product
// dgates_{t+1} W_hh, then the gate derivatives. dW_hh, dW_ih, the biases and dx are GEMMs /
// reductions over the dgates of all steps, done by the caller after the loop.
//
// Layouts: row-major, batch-major. H = hidden size.
//   mask [B] bytes of this step, or null: a row whose byte is 0 is a padded step. It keeps its
//         state (h = h_prev, c = c_prev, saved gates 0); backward gives it zero gate gradients
//         and passes dh (through dh_carry) and dc straight to the previous step.
//   LSTM: gates_x [B, 4H] (order i, f, g, o; both biases folded in), w_hh [4H, H],
//         h, c [B, H], saved gates [B, 4H] = (i, f, g, o) after the nonlinearities.
//         c_t = f c_{t-1} + i g,  h_t = o tanh(c_t).
//   GRU:  gates_x [B, 3H] (order r, z, n; b_ih folded in), w_hh [3H, H], b_hh [3H],
//         saved [B, 4H] = (r, z, n, hn) with hn = h_{t-1} W_hn^T + b_hn (PyTorch's form:
//         n = tanh(x_n + r * hn)), h_t = (1 - z) n + z h_{t-1}.
//
// Kernels (all: 256 threads = 32 hidden units x 8 batch rows, grid (ceil(H/32), ceil(B/8));
// the K dimension in chunks of 32 through shared memory, W tiles padded against bank
// conflicts):
//   lstm_forward_kernel     4 dot products of length H per thread, then the cell update.
//   lstm_backward_kernel    1 dot product of length 4H (dgates_{t+1} W_hh, column j), then
//                           dgates_t (pre-activation gradients) and dc_{t-1}.
//   gru_forward_kernel      3 dot products of length H, then the update.
//   gru_backward_kernel     1 dot product of length 3H (dgh_{t+1} W_hh), then dgx_t, dgh_t
//                           and the direct carry dh_t * z_t.
//   recurrent_hidden_backward_kernel  dh = dg W (+ carry): the gradient for h_0 after the loop.
// FLOPs per step: 2 * B * G * H * H (G = 4 LSTM, 3 GRU) plus O(B * H) gate math. Bytes: W_hh is
// read once per batch tile, ceil(B / 8) * G * H * H * 4 (from L2 after the first tile), plus
// O(B * G * H) for activations.
// Version 1: one output per thread; 2-4 batch rows per thread (fewer shared loads per FMA),
// W_hh held in shared memory across steps (persistent kernel) and tensor cores (TF32/bf16)
// come later. Predicted latency: cuda/kernels/README.md.
#include <math.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "simt/portable.cuh"

namespace lamina::cuda {

struct LstmForwardArgs {
  int batch = 0, hidden = 0;
  const float* gates_x = nullptr;  // [B, 4H]
  const float* w_hh = nullptr;     // [4H, H]
  const float* h_prev = nullptr;   // [B, H]
  const float* c_prev = nullptr;   // [B, H]
  float* h = nullptr;              // [B, H]
  float* c = nullptr;              // [B, H]
  float* gates = nullptr;          // [B, 4H] saved for the backward step
  const uint8_t* mask = nullptr;   // [B] or null
};

struct LstmBackwardArgs {
  int batch = 0, hidden = 0;
  const float* w_hh = nullptr;
  const float* gates = nullptr;        // saved by step t
  const float* c_prev = nullptr;       // c_{t-1}
  const float* c = nullptr;            // c_t
  const float* dh_out = nullptr;       // dL/dh_t from above, or null
  const float* dgates_next = nullptr;  // dgates of step t+1, or null at the last step
  const float* dc_next = nullptr;      // dL/dc_t carried from step t+1, or null
  float* dgates = nullptr;             // [B, 4H] pre-activation gradients of step t
  float* dc_prev = nullptr;            // [B, H]
  const uint8_t* mask = nullptr;       // [B] or null
  const float* dh_carry_next = nullptr;  // dL/dh_t that bypasses W_hh (a padded step t+1, or dh_T), or null
  float* dh_carry = nullptr;           // [B, H] or null: dh_t for padded rows, 0 for the others
};

struct GruForwardArgs {
  int batch = 0, hidden = 0;
  const float* gates_x = nullptr;  // [B, 3H]
  const float* w_hh = nullptr;     // [3H, H]
  const float* b_hh = nullptr;     // [3H]
  const float* h_prev = nullptr;   // [B, H]
  float* h = nullptr;              // [B, H]
  float* saved = nullptr;          // [B, 4H]: r, z, n, hn
  const uint8_t* mask = nullptr;   // [B] or null
};

struct GruBackwardArgs {
  int batch = 0, hidden = 0;
  const float* w_hh = nullptr;
  const float* saved = nullptr;          // saved by step t
  const float* h_prev = nullptr;         // h_{t-1}
  const float* dh_out = nullptr;         // dL/dh_t from above, or null
  const float* dgh_next = nullptr;       // dgh of step t+1, or null at the last step
  const float* dh_carry_next = nullptr;  // dh_{t+1} * z_{t+1}, or null at the last step
  float* dgx = nullptr;                  // [B, 3H]: gradient of gates_x (and of b_ih)
  float* dgh = nullptr;                  // [B, 3H]: gradient of h W_hh^T + b_hh
  float* dh_carry = nullptr;             // [B, H]: dh_t * z_t (dh_t for a padded row)
  const uint8_t* mask = nullptr;         // [B] or null
};

namespace device {
namespace rnn {

constexpr int kUnits = 32, kRows = 8, kThreads = kUnits * kRows, kChunk = 32;

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// acc[g] = sum_k x[b, k] * w[g * H + j, k] for the thread's (b, j); every thread of the block
// calls it (it holds barriers), out-of-range threads get zeros.
template <int G>
__device__ __forceinline__ void gate_products(float (&acc)[G], const float* __restrict__ x,
                                              const float* __restrict__ w, int batch, int H) {
  __shared__ float xs[kRows][kChunk];
  __shared__ float ws[G][kUnits][kChunk + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kUnits + tx;
  const int j0 = blockIdx.x * kUnits, b = blockIdx.y * kRows + ty;
#pragma unroll
  for (int g = 0; g < G; ++g) acc[g] = 0.0f;
  for (int k0 = 0; k0 < H; k0 += kChunk) {
    xs[ty][tx] = b < batch && k0 + tx < H ? x[size_t(b) * H + k0 + tx] : 0.0f;
    for (int e = tid; e < G * kUnits * kChunk; e += kThreads) {
      const int g = e / (kUnits * kChunk), jj = e / kChunk % kUnits, kk = e % kChunk;
      ws[g][jj][kk] = j0 + jj < H && k0 + kk < H ? w[(size_t(g) * H + j0 + jj) * H + k0 + kk] : 0.0f;
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kChunk; ++kk) {
      const float xv = xs[ty][kk];
#pragma unroll
      for (int g = 0; g < G; ++g) acc[g] = fmaf(xv, ws[g][tx][kk], acc[g]);
    }
    __syncthreads();
  }
}

// sum_r dg[b, r] * w[r, j] over r < G * H: the transposed product of the backward pass.
template <int G>
__device__ __forceinline__ float transposed_product(const float* __restrict__ dg,
                                                    const float* __restrict__ w, int batch, int H) {
  __shared__ float ds[kRows][kChunk];
  __shared__ float wt[kChunk][kUnits + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kUnits + tx;
  const int j0 = blockIdx.x * kUnits, b = blockIdx.y * kRows + ty, R = G * H;
  float acc = 0.0f;
  for (int r0 = 0; r0 < R; r0 += kChunk) {
    ds[ty][tx] = b < batch && r0 + tx < R ? dg[size_t(b) * R + r0 + tx] : 0.0f;
    for (int e = tid; e < kChunk * kUnits; e += kThreads) {
      const int rr = e / kUnits, jj = e % kUnits;
      wt[rr][jj] = r0 + rr < R && j0 + jj < H ? w[size_t(r0 + rr) * H + j0 + jj] : 0.0f;
    }
    __syncthreads();
#pragma unroll 8
    for (int rr = 0; rr < kChunk; ++rr) acc = fmaf(ds[ty][rr], wt[rr][tx], acc);
    __syncthreads();
  }
  return acc;
}

}  // namespace rnn

// ---- kernels --------------------------------------------------------------------------------

__global__ void __launch_bounds__(rnn::kThreads) lstm_forward_kernel(LstmForwardArgs p) {
  const int H = p.hidden, j = blockIdx.x * rnn::kUnits + threadIdx.x;
  const int b = blockIdx.y * rnn::kRows + threadIdx.y;
  float a[4];
  rnn::gate_products<4>(a, p.h_prev, p.w_hh, p.batch, H);
  if (b >= p.batch || j >= H) return;  // after the last barrier
  const size_t at = size_t(b) * H + j;
  float* saved = p.gates + size_t(b) * 4 * H;
  if (p.mask && !p.mask[b]) {
    p.c[at] = p.c_prev[at];
    p.h[at] = p.h_prev[at];
    saved[j] = saved[H + j] = saved[2 * H + j] = saved[3 * H + j] = 0.0f;
    return;
  }
  const float* gx = p.gates_x + size_t(b) * 4 * H;
  const float i = rnn::sigmoid(gx[j] + a[0]), f = rnn::sigmoid(gx[H + j] + a[1]);
  const float g = tanhf(gx[2 * H + j] + a[2]), o = rnn::sigmoid(gx[3 * H + j] + a[3]);
  const float c = f * p.c_prev[at] + i * g;
  p.c[at] = c;
  p.h[at] = o * tanhf(c);
  saved[j] = i, saved[H + j] = f, saved[2 * H + j] = g, saved[3 * H + j] = o;
}

__global__ void __launch_bounds__(rnn::kThreads) lstm_backward_kernel(LstmBackwardArgs p) {
  const int H = p.hidden, j = blockIdx.x * rnn::kUnits + threadIdx.x;
  const int b = blockIdx.y * rnn::kRows + threadIdx.y;
  // The branch is uniform over the grid, so every thread reaches the same barriers.
  const float recurrent = p.dgates_next ? rnn::transposed_product<4>(p.dgates_next, p.w_hh, p.batch, H) : 0.0f;
  if (b >= p.batch || j >= H) return;
  const size_t at = size_t(b) * H + j;
  const bool live = !p.mask || p.mask[b];
  const float dh = recurrent + (p.dh_carry_next ? p.dh_carry_next[at] : 0.0f) +
                   (live && p.dh_out ? p.dh_out[at] : 0.0f);
  const float dc_next = p.dc_next ? p.dc_next[at] : 0.0f;
  float* d = p.dgates + size_t(b) * 4 * H;
  if (p.dh_carry) p.dh_carry[at] = live ? 0.0f : dh;
  if (!live) {
    d[j] = d[H + j] = d[2 * H + j] = d[3 * H + j] = 0.0f;
    p.dc_prev[at] = dc_next;
    return;
  }
  const float* s = p.gates + size_t(b) * 4 * H;
  const float i = s[j], f = s[H + j], g = s[2 * H + j], o = s[3 * H + j];
  const float tc = tanhf(p.c[at]);
  const float dc = dc_next + dh * o * (1.0f - tc * tc);
  d[j] = dc * g * i * (1.0f - i);
  d[H + j] = dc * p.c_prev[at] * f * (1.0f - f);
  d[2 * H + j] = dc * i * (1.0f - g * g);
  d[3 * H + j] = dh * tc * o * (1.0f - o);
  p.dc_prev[at] = dc * f;
}

__global__ void __launch_bounds__(rnn::kThreads) gru_forward_kernel(GruForwardArgs p) {
  const int H = p.hidden, j = blockIdx.x * rnn::kUnits + threadIdx.x;
  const int b = blockIdx.y * rnn::kRows + threadIdx.y;
  float a[3];
  rnn::gate_products<3>(a, p.h_prev, p.w_hh, p.batch, H);
  if (b >= p.batch || j >= H) return;
  if (p.mask && !p.mask[b]) {
    const size_t at = size_t(b) * H + j;
    float* saved = p.saved + size_t(b) * 4 * H;
    p.h[at] = p.h_prev[at];
    saved[j] = saved[H + j] = saved[2 * H + j] = saved[3 * H + j] = 0.0f;
    return;
  }
  const float* gx = p.gates_x + size_t(b) * 3 * H;
  const float r = rnn::sigmoid(gx[j] + a[0] + p.b_hh[j]);
  const float z = rnn::sigmoid(gx[H + j] + a[1] + p.b_hh[H + j]);
  const float hn = a[2] + p.b_hh[2 * H + j];
  const float n = tanhf(gx[2 * H + j] + r * hn);
  const size_t at = size_t(b) * H + j;
  p.h[at] = (1.0f - z) * n + z * p.h_prev[at];
  float* saved = p.saved + size_t(b) * 4 * H;
  saved[j] = r, saved[H + j] = z, saved[2 * H + j] = n, saved[3 * H + j] = hn;
}

__global__ void __launch_bounds__(rnn::kThreads) gru_backward_kernel(GruBackwardArgs p) {
  const int H = p.hidden, j = blockIdx.x * rnn::kUnits + threadIdx.x;
  const int b = blockIdx.y * rnn::kRows + threadIdx.y;
  const float recurrent = p.dgh_next ? rnn::transposed_product<3>(p.dgh_next, p.w_hh, p.batch, H) : 0.0f;
  if (b >= p.batch || j >= H) return;
  const size_t at = size_t(b) * H + j;
  const bool live = !p.mask || p.mask[b];
  const float dh = recurrent + (live && p.dh_out ? p.dh_out[at] : 0.0f) +
                   (p.dh_carry_next ? p.dh_carry_next[at] : 0.0f);
  float* dgx = p.dgx + size_t(b) * 3 * H;
  float* dgh = p.dgh + size_t(b) * 3 * H;
  if (!live) {
    dgx[j] = dgx[H + j] = dgx[2 * H + j] = 0.0f;
    dgh[j] = dgh[H + j] = dgh[2 * H + j] = 0.0f;
    p.dh_carry[at] = dh;
    return;
  }
  const float* s = p.saved + size_t(b) * 4 * H;
  const float r = s[j], z = s[H + j], n = s[2 * H + j], hn = s[3 * H + j];
  const float dan = dh * (1.0f - z) * (1.0f - n * n);       // through n = tanh(.)
  const float dar = dan * hn * r * (1.0f - r);
  const float daz = dh * (p.h_prev[at] - n) * z * (1.0f - z);
  dgx[j] = dgh[j] = dar;
  dgx[H + j] = dgh[H + j] = daz;
  dgx[2 * H + j] = dan;
  dgh[2 * H + j] = dan * r;
  p.dh_carry[at] = dh * z;
}

// dh[b, j] = sum_r dg[b, r] w[r, j] (+ carry[b, j]), r < G * H.
template <int G>
__global__ void __launch_bounds__(rnn::kThreads)
    recurrent_hidden_backward_kernel(int batch, int H, const float* __restrict__ dg,
                                     const float* __restrict__ w, const float* __restrict__ carry,
                                     float* __restrict__ dh) {
  const int j = blockIdx.x * rnn::kUnits + threadIdx.x, b = blockIdx.y * rnn::kRows + threadIdx.y;
  const float sum = rnn::transposed_product<G>(dg, w, batch, H);
  if (b >= batch || j >= H) return;
  const size_t at = size_t(b) * H + j;
  dh[at] = sum + (carry ? carry[at] : 0.0f);
}

}  // namespace device

// ---- launchers ------------------------------------------------------------------------------

namespace rnn_host {

inline void require(bool ok, const char* op, const char* what) {
  if (!ok) throw std::invalid_argument(std::string(op) + ": " + what);
}
inline dim3 grid(int batch, int hidden) {
  return dim3((hidden + device::rnn::kUnits - 1) / device::rnn::kUnits,
              (batch + device::rnn::kRows - 1) / device::rnn::kRows);
}
inline void require_shape(const char* op, int batch, int hidden) {
  require(batch > 0 && hidden > 0, op, "empty shape");
  require((batch + device::rnn::kRows - 1) / device::rnn::kRows <= 65535, op, "batch too large");
}
inline dim3 block() { return dim3(device::rnn::kUnits, device::rnn::kRows); }

}  // namespace rnn_host

inline cudaError_t lstm_forward(const LstmForwardArgs& a, cudaStream_t stream = nullptr) {
  rnn_host::require_shape("lstm_forward", a.batch, a.hidden);
  rnn_host::require(a.gates_x && a.w_hh && a.h_prev && a.c_prev && a.h && a.c && a.gates,
                    "lstm_forward", "every buffer is required");
  return simt_launch(device::lstm_forward_kernel, rnn_host::grid(a.batch, a.hidden),
                     rnn_host::block(), 0, stream, a);
}

inline cudaError_t lstm_backward(const LstmBackwardArgs& a, cudaStream_t stream = nullptr) {
  rnn_host::require_shape("lstm_backward", a.batch, a.hidden);
  rnn_host::require(a.w_hh && a.gates && a.c_prev && a.c && a.dgates && a.dc_prev,
                    "lstm_backward", "w_hh, gates, c_prev, c, dgates and dc_prev are required");
  return simt_launch(device::lstm_backward_kernel, rnn_host::grid(a.batch, a.hidden),
                     rnn_host::block(), 0, stream, a);
}

inline cudaError_t gru_forward(const GruForwardArgs& a, cudaStream_t stream = nullptr) {
  rnn_host::require_shape("gru_forward", a.batch, a.hidden);
  rnn_host::require(a.gates_x && a.w_hh && a.b_hh && a.h_prev && a.h && a.saved, "gru_forward",
                    "every buffer is required");
  return simt_launch(device::gru_forward_kernel, rnn_host::grid(a.batch, a.hidden),
                     rnn_host::block(), 0, stream, a);
}

inline cudaError_t gru_backward(const GruBackwardArgs& a, cudaStream_t stream = nullptr) {
  rnn_host::require_shape("gru_backward", a.batch, a.hidden);
  rnn_host::require(a.w_hh && a.saved && a.h_prev && a.dgx && a.dgh && a.dh_carry, "gru_backward",
                    "w_hh, saved, h_prev, dgx, dgh and dh_carry are required");
  return simt_launch(device::gru_backward_kernel, rnn_host::grid(a.batch, a.hidden),
                     rnn_host::block(), 0, stream, a);
}

// The gradient for the initial state h_0 once the loop is done: dh0 = dg_0 W_hh (+ carry, the
// GRU's dh_0 z_0). gates = 4 for an LSTM (dg = dgates), 3 for a GRU (dg = dgh).
inline cudaError_t recurrent_hidden_backward(int batch, int hidden, int gates, const float* dg,
                                             const float* w_hh, const float* carry, float* dh,
                                             cudaStream_t stream = nullptr) {
  rnn_host::require_shape("recurrent_hidden_backward", batch, hidden);
  rnn_host::require(gates == 3 || gates == 4, "recurrent_hidden_backward", "gates must be 3 or 4");
  rnn_host::require(dg && w_hh && dh, "recurrent_hidden_backward", "dg, w_hh and dh are required");
  const dim3 grid = rnn_host::grid(batch, hidden);
  if (gates == 4)
    return simt_launch(device::recurrent_hidden_backward_kernel<4>, grid, rnn_host::block(), 0,
                       stream, batch, hidden, dg, w_hh, carry, dh);
  return simt_launch(device::recurrent_hidden_backward_kernel<3>, grid, rnn_host::block(), 0,
                     stream, batch, hidden, dg, w_hh, carry, dh);
}

}  // namespace lamina::cuda

// ---- op launchers ---------------------------------------------------------------------------
// The library build runs whole sequences over time-major tensors; the kernel lab includes this
// file without the core headers, so this part is compiled only there.
#if defined(LAMINA_HAVE_CUDA)
#include "core/errors.h"
#include "core/tensor.h"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace rnn_host {

inline const float* step(const Tensor& t, int64_t s) {
  return t.data<float>() + s * t.numel() / t.shape()[0];
}
inline float* step_out(const Tensor& t, int64_t s) { return t.data<float>() + s * t.numel() / t.shape()[0]; }
inline const uint8_t* mask_step(const Tensor& mask, int64_t s) {
  return mask.defined() ? mask.data<uint8_t>() + s * mask.shape()[1] : nullptr;
}

// Batch and hidden size of a time-major state (steps + 1, batch, hidden), checked once.
inline void check_sizes(const char* name, const Tensor& states, const Tensor& mask) {
  check<ValueError>(states.shape()[1] < (int64_t(1) << 30) && states.shape()[2] < (int64_t(1) << 30) &&
                        (states.shape()[1] + device::rnn::kRows - 1) / device::rnn::kRows <= 65535,
                    name, ": batch or hidden size too large for the CUDA recurrent kernels");
  check<TypeError>(!mask.defined() || (mask.dtype() == DType::Bool && mask.is_contiguous()), name,
                   ": the CUDA recurrent kernels take a contiguous bool mask");
}

inline void launched(const char* name, const char* kernel, cudaError_t status) { check_launch(status, name, kernel); }

}  // namespace rnn_host

void lstm_sequence_forward(const char* name, const Tensor& gates_x, const Tensor& w_hh, const Tensor& mask,
                           const Tensor& hs, const Tensor& cs, const Tensor& gates) {
  rnn_host::check_sizes(name, hs, mask);
  const int64_t S = gates_x.shape()[0];
  LstmForwardArgs a;
  a.batch = int(hs.shape()[1]), a.hidden = int(hs.shape()[2]);
  a.w_hh = w_hh.data<float>();
  for (int64_t t = 0; t < S; ++t) {
    a.gates_x = rnn_host::step(gates_x, t);
    a.h_prev = rnn_host::step(hs, t), a.c_prev = rnn_host::step(cs, t);
    a.h = rnn_host::step_out(hs, t + 1), a.c = rnn_host::step_out(cs, t + 1);
    a.gates = rnn_host::step_out(gates, t);
    a.mask = rnn_host::mask_step(mask, t);
    rnn_host::launched(name, "lstm_forward_kernel launch", lstm_forward(a, current_stream()));
  }
}

void lstm_sequence_backward(const char* name, const Tensor& w_hh, const Tensor& mask, const Tensor& gates,
                            const Tensor& cs, const Tensor& d_steps, const Tensor& dh_last, const Tensor& dc_last,
                            const Tensor& dgates, const Tensor& dh0, const Tensor& dc0) {
  rnn_host::check_sizes(name, cs, mask);
  const int64_t S = gates.shape()[0], B = cs.shape()[1], H = cs.shape()[2];
  // Carries alternate between two buffers: step t reads what step t + 1 wrote.
  Tensor dh_carry = Tensor::empty({2, B, H}, DType::Float32, cs.device());
  Tensor dc = Tensor::empty({2, B, H}, DType::Float32, cs.device());
  LstmBackwardArgs a;
  a.batch = int(B), a.hidden = int(H);
  a.w_hh = w_hh.data<float>();
  for (int64_t t = S - 1; t >= 0; --t) {
    const bool last = t == S - 1;
    a.gates = rnn_host::step(gates, t);
    a.c_prev = rnn_host::step(cs, t), a.c = rnn_host::step(cs, t + 1);
    a.dh_out = rnn_host::step(d_steps, t);
    a.dgates_next = last ? nullptr : rnn_host::step(dgates, t + 1);
    a.dh_carry_next = last ? dh_last.data<float>() : rnn_host::step(dh_carry, (t + 1) % 2);
    a.dc_next = last ? dc_last.data<float>() : rnn_host::step(dc, (t + 1) % 2);
    a.dgates = rnn_host::step_out(dgates, t);
    a.dh_carry = rnn_host::step_out(dh_carry, t % 2);
    a.dc_prev = t == 0 ? dc0.data<float>() : rnn_host::step_out(dc, t % 2);
    a.mask = rnn_host::mask_step(mask, t);
    rnn_host::launched(name, "lstm_backward_kernel launch", lstm_backward(a, current_stream()));
  }
  rnn_host::launched(name, "recurrent_hidden_backward_kernel launch",
                     recurrent_hidden_backward(int(B), int(H), 4, dgates.data<float>(), w_hh.data<float>(),
                                               rnn_host::step(dh_carry, 0), dh0.data<float>(), current_stream()));
}

void gru_sequence_forward(const char* name, const Tensor& gates_x, const Tensor& w_hh, const Tensor& b_hh,
                          const Tensor& mask, const Tensor& hs, const Tensor& saved) {
  rnn_host::check_sizes(name, hs, mask);
  const int64_t S = gates_x.shape()[0];
  GruForwardArgs a;
  a.batch = int(hs.shape()[1]), a.hidden = int(hs.shape()[2]);
  a.w_hh = w_hh.data<float>(), a.b_hh = b_hh.data<float>();
  for (int64_t t = 0; t < S; ++t) {
    a.gates_x = rnn_host::step(gates_x, t);
    a.h_prev = rnn_host::step(hs, t), a.h = rnn_host::step_out(hs, t + 1);
    a.saved = rnn_host::step_out(saved, t);
    a.mask = rnn_host::mask_step(mask, t);
    rnn_host::launched(name, "gru_forward_kernel launch", gru_forward(a, current_stream()));
  }
}

void gru_sequence_backward(const char* name, const Tensor& w_hh, const Tensor& mask, const Tensor& saved,
                           const Tensor& hs, const Tensor& d_steps, const Tensor& dh_last, const Tensor& dgx,
                           const Tensor& dgh, const Tensor& dh0) {
  rnn_host::check_sizes(name, hs, mask);
  const int64_t S = saved.shape()[0], B = hs.shape()[1], H = hs.shape()[2];
  Tensor dh_carry = Tensor::empty({2, B, H}, DType::Float32, hs.device());
  GruBackwardArgs a;
  a.batch = int(B), a.hidden = int(H);
  a.w_hh = w_hh.data<float>();
  for (int64_t t = S - 1; t >= 0; --t) {
    const bool last = t == S - 1;
    a.saved = rnn_host::step(saved, t);
    a.h_prev = rnn_host::step(hs, t);
    a.dh_out = rnn_host::step(d_steps, t);
    a.dgh_next = last ? nullptr : rnn_host::step(dgh, t + 1);
    a.dh_carry_next = last ? dh_last.data<float>() : rnn_host::step(dh_carry, (t + 1) % 2);
    a.dgx = rnn_host::step_out(dgx, t), a.dgh = rnn_host::step_out(dgh, t);
    a.dh_carry = rnn_host::step_out(dh_carry, t % 2);
    a.mask = rnn_host::mask_step(mask, t);
    rnn_host::launched(name, "gru_backward_kernel launch", gru_backward(a, current_stream()));
  }
  rnn_host::launched(name, "recurrent_hidden_backward_kernel launch",
                     recurrent_hidden_backward(int(B), int(H), 3, dgh.data<float>(), w_hh.data<float>(),
                                               rnn_host::step(dh_carry, 0), dh0.data<float>(), current_stream()));
}

}  // namespace lamina::cuda
#endif  // LAMINA_HAVE_CUDA
