// CPU kernels of the loss family: softmax cross-entropy (sparse labels or dense targets,
// optional class weights) and binary cross-entropy with logits, forward and backward.
#pragma once
#include "core/tensor.h"
#include "cpu/isa.h"

namespace lamina::cpu {

// logits: contiguous [rows, C]; exactly one of labels (int64 [rows], checked in range) and
// targets (contiguous [rows, C], logits' dtype) is defined; weight: [C] or undefined.
// loss[r] = sum_c w_c t_rc (lse_r - x_rc) (sparse: w_y (lse_r - x_ry)); lse: [rows].
LAMINA_DUAL_KERNEL(softmax_cross_entropy_forward, (const Tensor& loss, const Tensor& lse, const Tensor& logits,
                                                   const Tensor& labels, const Tensor& targets, const Tensor& weight))
// dlogits[r, c] = g[r] * (softmax_rc * sum_c' w_c' t_rc' - w_c t_rc); g: [rows].
LAMINA_DUAL_KERNEL(softmax_cross_entropy_backward, (const Tensor& dlogits, const Tensor& g, const Tensor& logits,
                                                    const Tensor& lse, const Tensor& labels, const Tensor& targets,
                                                    const Tensor& weight))
// Elementwise on contiguous tensors of one shape: loss = max(x, 0) - x t + log1p(exp(-|x|)).
LAMINA_DUAL_KERNEL(bce_with_logits_forward, (const Tensor& loss, const Tensor& x, const Tensor& t))
// dx = g * (sigmoid(x) - t).
LAMINA_DUAL_KERNEL(bce_with_logits_backward, (const Tensor& dx, const Tensor& g, const Tensor& x, const Tensor& t))

}  // namespace lamina::cpu
