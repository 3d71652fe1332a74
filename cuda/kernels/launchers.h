// Host launchers of the CUDA kernels, one block per family (cuda/kernels/<family>.cu). Ops
// call them from their device switch (LAMINA_CUDA_BRANCH in core/backend.h); this header
// has no CUDA types, so it compiles in every build. Tensors are on one CUDA device; `name`
// is the user-facing op, used in error messages.
#pragma once
#include <vector>

#include "core/random.h"
#include "core/tensor.h"
#include "cpu/binary.h"
#include "cpu/conv.h"
#include "cpu/gemm.h"
#include "cpu/optim.h"
#include "cpu/pool.h"
#include "cpu/unary.h"

namespace lamina::cuda {

// elementwise.cu: out (contiguous) = op(a) / op(a, b); operands broadcast to out's shape
// with any strides, in the compute dtype (bool outputs for predicates), as cpu::unary/binary.
void unary(const char* name, cpu::UnaryOp op, const Tensor& out, const Tensor& a, double param);
void binary(const char* name, cpu::BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b);

// out (contiguous) = cond ? a : b, all broadcast to out's shape; cond bool, a and b out's dtype.
void select(const char* name, const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b);

// copy.cu: dst[...] = cast(src[...]) with src broadcast to dst (any strides, any dtypes);
// every element of dst = value.
void copy_cast(const char* name, const Tensor& dst, const Tensor& src);
void fill(const char* name, const Tensor& dst, double value);

// reduce.cu: out (contiguous, kept axes) = sum of in over `axes`; out is float32, float64
// or int64 (the op's accumulation dtype), in has out's dtype or a narrower integer one.
void sum(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes);

// softmax.cu: out (contiguous, in's shape) = softmax or log_softmax of in along `axis`.
void softmax(const char* name, const Tensor& out, const Tensor& in, int64_t axis, bool log);

// matmul.cu: out (..., M, N) = epilogue(a (..., M, K) @ b (..., K, N)), one launch over the
// batch. Each operand is contiguous and either the whole batch or one matrix that every batch
// shares. float32/float64: the tiled SIMT GEMM (exact FMA), or for float32 with allow_tf32 the
// TF32 tensor-core GEMM; bfloat16/float16 inputs: the tensor-core GEMM with fp32
// accumulation, out of the input dtype (rounded once). The epilogue (cpu::Epilogue) adds
// `bias` (N values in the accumulator dtype: float32 for 16-bit inputs, else out's dtype) and
// applies relu/gelu_tanh before that rounding.
void matmul(const char* name, const Tensor& out, const Tensor& a, const Tensor& b,
            cpu::Epilogue epilogue = cpu::Epilogue::None, const Tensor& bias = Tensor(), bool allow_tf32 = false);

// ---- Training ops: norm.cu, loss.cu, random.cu, optim.cu. Each launcher has the contract
// of the CPU kernel of the same name (cpu/norm.h, cpu/loss.h, cpu/optim.h): contiguous
// float32/float64 tensors on one device, optional tensors undefined when absent.

// norm.cu: layer norm over the last axis of [rows, cols]; batch norm over [outer, C, inner].
void layer_norm_forward(const char* name, const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                        const Tensor& gamma, const Tensor& beta, double eps);
void layer_norm_backward(const char* name, const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                         const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                         const Tensor& gamma);
void batch_norm_stats(const char* name, const Tensor& mean, const Tensor& var, const Tensor& rstd, const Tensor& x,
                      int64_t outer, int64_t channels, int64_t inner, double eps);
void batch_norm_apply(const char* name, const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                      const Tensor& gamma, const Tensor& beta, int64_t outer, int64_t channels, int64_t inner);
void batch_norm_backward(const char* name, const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                         const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                         const Tensor& gamma, int64_t outer, int64_t channels, int64_t inner);

// loss.cu: labels are int64 on the device, already checked to lie in [0, C).
void softmax_cross_entropy_forward(const char* name, const Tensor& loss, const Tensor& lse, const Tensor& logits,
                                   const Tensor& labels, const Tensor& targets, const Tensor& weight);
void softmax_cross_entropy_backward(const char* name, const Tensor& dlogits, const Tensor& g, const Tensor& logits,
                                    const Tensor& lse, const Tensor& labels, const Tensor& targets,
                                    const Tensor& weight);
void bce_with_logits_forward(const char* name, const Tensor& loss, const Tensor& x, const Tensor& t);
void bce_with_logits_backward(const char* name, const Tensor& dx, const Tensor& g, const Tensor& x, const Tensor& t);

// random.cu: out (contiguous, floating) = the draw `spec` of Philox blocks start, start + 1,
// ... under `seed`, the numbers the CPU draws (core/random.h).
void philox_draw(const char* name, const Tensor& out, uint64_t seed, uint64_t start, const DrawSpec& spec);

// optim.cu: one parameter's fused update, in place, bit-for-bit equal to the CPU kernel.
void sgd_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& buf, const cpu::SgdArgs& a);
void adam_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                 const Tensor& v_max, const cpu::AdamArgs& a);
void rmsprop_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& avg_sq, const Tensor& avg_g,
                    const Tensor& buf, const cpu::RmspropArgs& a);
void adagrad_update(const char* name, const Tensor& p, const Tensor& g, const Tensor& acc, const cpu::AdagradArgs& a);

}  // namespace lamina::cuda

// ---- Reductions other than sum, scans and indexing (device coverage of the index,
// reduction and scan families). Same conventions as above: out contiguous, half inputs
// widened to float32 by the op, integer indices int64, already wrapped into range.
namespace lamina::cuda {

// reduce.cu: out (contiguous, kept axes) = the reduction of in over `axes`, as the cpu::
// kernels of the same name: prod (out float32/float64/int64), extremum (out in's dtype; the
// block must not be empty), arg_extremum (one axis, out int64), variance (out float32/64,
// divisor max(n - ddof, 0)) and logsumexp (out float32/64).
void prod(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes);
void extremum(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes, bool is_max);
void arg_extremum(const char* name, const Tensor& out, const Tensor& in, int64_t axis, bool is_max);
void variance(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes, double ddof);
void logsumexp(const char* name, const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes);

// scan.cu: out (contiguous, in's shape) = running sum of in along `axis` (from the end when
// `reverse`); out float32/float64/int64, floats accumulated in float64 like the CPU.
void cumsum(const char* name, const Tensor& out, const Tensor& in, int64_t axis, bool reverse);

// index.cu, all tensors contiguous:
// take:        out[pre, j, post] = a[pre, idx[j], post] (idx any shape, flattened), any dtype.
// index_add:   out[pre, idx[j], post] += src[pre, j, post].
// gather:      out[i] = a[i with its `axis` coordinate replaced by index[i]], any dtype.
// scatter_add: out[i with its `axis` coordinate replaced by index[i]] += src[i].
// The adds are atomic (float32, float64, int32, int64 outputs): with repeated indices the
// float sums are not bitwise deterministic.
void take(const char* name, const Tensor& out, const Tensor& a, const Tensor& idx, int64_t axis);
void index_add(const char* name, const Tensor& out, const Tensor& idx, const Tensor& src, int64_t axis);
void gather(const char* name, const Tensor& out, const Tensor& a, const Tensor& index, int64_t axis);
void scatter_add(const char* name, const Tensor& out, const Tensor& index, const Tensor& src, int64_t axis);

}  // namespace lamina::cuda

// ---- fused families: attention.cu, recurrent.cu, conv.cu ----------------------------------
namespace lamina::cuda {

// attention.cu: flash attention on tensor cores. q (heads, nq, D), k and v (heads, nk, D),
// contiguous, 16-byte aligned, all bfloat16 or all float16, D = 64 or 128; out like q; lse
// (heads, nq) float32, saved for the backward pass. causal is top-left aligned.
bool attention_fused_supported(DType dtype, int64_t head_dim);
void attention_forward(const char* name, const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                       const Tensor& v, double scale, bool causal);
// dq, dk, dv (q's dtype, contiguous) from d_out (contiguous, aligned) and the saved out, lse.
void attention_backward(const char* name, const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& d_out,
                        double scale, bool causal);

// recurrent.cu: whole sequences, time-major, float32, contiguous; one fused step kernel per
// time step. gates_x (S, B, G*H) = x W_ih^T + b for every step; hs, cs (S + 1, B, H) with
// hs[0], cs[0] filled with the initial state; saved gates (S, B, 4H); mask (S, B) bool or
// undefined (a false step keeps the state). G = 4 (LSTM) or 3 (GRU).
void lstm_sequence_forward(const char* name, const Tensor& gates_x, const Tensor& w_hh, const Tensor& mask,
                           const Tensor& hs, const Tensor& cs, const Tensor& gates);
// d_steps (S, B, H): gradient of each step's output; dh_last, dc_last (B, H): of h_T, c_T.
// Writes dgates (S, B, 4H) (pre-activation), dh0 and dc0 (B, H).
void lstm_sequence_backward(const char* name, const Tensor& w_hh, const Tensor& mask, const Tensor& gates,
                            const Tensor& cs, const Tensor& d_steps, const Tensor& dh_last, const Tensor& dc_last,
                            const Tensor& dgates, const Tensor& dh0, const Tensor& dc0);
void gru_sequence_forward(const char* name, const Tensor& gates_x, const Tensor& w_hh, const Tensor& b_hh,
                          const Tensor& mask, const Tensor& hs, const Tensor& saved);
// Writes dgx (S, B, 3H) (gradient of gates_x), dgh (S, B, 3H) (of h W_hh^T + b_hh) and dh0.
void gru_sequence_backward(const char* name, const Tensor& w_hh, const Tensor& mask, const Tensor& saved,
                           const Tensor& hs, const Tensor& d_steps, const Tensor& dh_last, const Tensor& dgx,
                           const Tensor& dgh, const Tensor& dh0);

// conv.cu: a conv2d, every group in one launch, through the FMA implicit-GEMM kernels,
// channels-last: x and dx (N, H, W, C), w and dw (Co, kh, kw, C / groups), y and dy
// (N, OH, OW, Co), all contiguous, non-empty, float32 or all float64. dx, dw may be null.
void conv2d_forward_nhwc(const char* name, const cpu::ConvGeometry& g, const Tensor& y, const Tensor& x,
                         const Tensor& w);
void conv2d_backward_nhwc(const char* name, const cpu::ConvGeometry& g, const Tensor* dx, const Tensor* dw,
                          const Tensor& x, const Tensor& w, const Tensor& dy);

// pool.cu: 2-D max / average pooling over contiguous NCHW float32 or float64 tensors, with
// the CPU's windows (cpu/pool.h); indices int64, as cpu::max_pool2d_forward saves them.
void max_pool2d_forward(const char* name, const cpu::PoolGeometry& g, const Tensor& out, const Tensor& indices,
                        const Tensor& x);
void max_pool2d_backward(const char* name, const cpu::PoolGeometry& g, const Tensor& dx, const Tensor& grad_out,
                         const Tensor& indices);
void avg_pool2d_forward(const char* name, const cpu::PoolGeometry& g, const Tensor& out, const Tensor& x,
                        bool count_include_pad);
void avg_pool2d_backward(const char* name, const cpu::PoolGeometry& g, const Tensor& dx, const Tensor& grad_out,
                         bool count_include_pad);

}  // namespace lamina::cuda

// ---- attention with key padding (attention.cu) ---------------------------------------------
namespace lamina::cuda {

// attention_forward / attention_backward with kv_lens, int32 (heads,) on q's device: keys
// j >= kv_lens[h] of head h are padding. A head with kv_lens[h] == 0 gets out = 0,
// lse = -inf and zero gradients.
void attention_forward(const char* name, const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                       const Tensor& v, double scale, bool causal, const Tensor& kv_lens);
void attention_backward(const char* name, const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, const Tensor& d_out,
                        double scale, bool causal, const Tensor& kv_lens);

}  // namespace lamina::cuda

// ---- conv.cu: bfloat16 / float16 on tensor cores: forward, input and weight gradients -------
namespace lamina::cuda {

// A conv2d on tensor cores (mma.sync with fp32 accumulation), every group in one launch, same
// layouts as conv2d_forward_nhwc / conv2d_backward_nhwc: x, w and dy all bfloat16 or all
// float16; y, dx and dw float32. dx, dw may be null.
void conv2d_forward_mma_nhwc(const char* name, const cpu::ConvGeometry& g, const Tensor& y, const Tensor& x,
                             const Tensor& w);
void conv2d_backward_mma_nhwc(const char* name, const cpu::ConvGeometry& g, const Tensor* dx, const Tensor* dw,
                              const Tensor& x, const Tensor& w, const Tensor& dy);

}  // namespace lamina::cuda

// ---- attention.cu: float32 / float64 flash attention on FMA, general masks -------------------
namespace lamina::cuda {

// A mask as the FMA attention kernels read it (the CPU kernel's description): `values`, bool
// (false = masked out) or of q's dtype (added to the scores), on the device; element (h, i, j)
// of the (heads, nq, nk) scores reads values' first element + head_offsets[h] + i * row_stride +
// j * col_stride (strides may be 0: broadcast). head_offsets: int64 (heads,) on the device.
// An undefined `values` means no mask.
struct AttentionMaskView {
  Tensor values, head_offsets;
  int64_t row_stride = 0, col_stride = 0;
};

// Whether the FMA kernels take this dtype and these head sizes: float32 with d, dv in 1..128,
// float64 with d, dv in 1..64 (their tiles must fit 48 KiB of shared memory).
bool attention_fma_supported(DType dtype, int64_t head_dim, int64_t value_dim);

// q (heads, nq, d), k (heads, nk, d), v (heads, nk, dv), all float32 or all float64,
// contiguous, attention_fma_supported, at most 65535 heads, nq, nk > 0; out (heads, nq, dv) and
// lse (heads, nq) of the same dtype (lse = +inf for a row that sees no key, whose output is 0).
// causal is top-left aligned.
void attention_forward_fma(const char* name, const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                           const Tensor& v, double scale, bool causal, const AttentionMaskView& mask);
// dq, dk, dv (contiguous, shaped like q, k, v) from d_out (like out) and the saved out and lse.
// Deterministic (no atomics).
void attention_backward_fma(const char* name, const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& q,
                            const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                            const Tensor& d_out, double scale, bool causal, const AttentionMaskView& mask);

}  // namespace lamina::cuda

// ---- optim.cu: multi-tensor optimizer updates ----------------------------------------------
namespace lamina::cuda {

// The updates of sgd_update, adam_update, ... for a list of parameters of one device and one
// dtype, each bit-for-bit equal to its per-parameter update. One launch covers up to ~70
// (Adam, RMSprop) or ~100 (SGD, Adagrad) tensors: their pointers travel in the kernel's
// parameter block. Longer lists take one launch per that many; a list of one takes the
// per-parameter kernel. Every list has one entry per parameter (an undefined tensor where a
// parameter has no such state); no two parameters may share storage.
void sgd_update_multi(const char* name, const std::vector<Tensor>& p, const std::vector<Tensor>& g,
                      const std::vector<Tensor>& buf, const cpu::SgdArgs& a);
void adam_update_multi(const char* name, const std::vector<Tensor>& p, const std::vector<Tensor>& g,
                       const std::vector<Tensor>& m, const std::vector<Tensor>& v, const std::vector<Tensor>& v_max,
                       const cpu::AdamArgs& a);
void rmsprop_update_multi(const char* name, const std::vector<Tensor>& p, const std::vector<Tensor>& g,
                          const std::vector<Tensor>& avg_sq, const std::vector<Tensor>& avg_g,
                          const std::vector<Tensor>& buf, const cpu::RmspropArgs& a);
void adagrad_update_multi(const char* name, const std::vector<Tensor>& p, const std::vector<Tensor>& g,
                          const std::vector<Tensor>& acc, const cpu::AdagradArgs& a);

}  // namespace lamina::cuda

// ---- conv.cu: the direct depthwise kernels ---------------------------------------------------
// conv2d_forward_nhwc / conv2d_backward_nhwc and their _mma_nhwc twins run the direct depthwise
// kernels when there are several groups of one input channel each (groups == C_in > 1), the
// implicit GEMMs otherwise.
namespace lamina::cuda {

// How many conv passes (one forward, or one backward for dx and/or dw) each path has run in
// this process: lets tests check which kernels a geometry reaches.
struct ConvPathCounts {
  int64_t depthwise = 0, implicit_gemm = 0;
};
ConvPathCounts conv_path_counts();

}  // namespace lamina::cuda
