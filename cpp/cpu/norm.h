// CPU kernels of the normalization family: layer norm over the trailing axes and batch norm
// over every axis but the channel axis, forward and backward, float32 or float64.
#pragma once
#include "core/tensor.h"
#include "cpu/isa.h"

namespace lamina::cpu {

// x, y: contiguous [rows, cols]; mean, rstd: [rows]; gamma, beta: [cols] or undefined.
LAMINA_DUAL_KERNEL(layer_norm_forward, (const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                                        const Tensor& gamma, const Tensor& beta, double eps))
// dx: [rows, cols]; dgamma, dbeta: [cols] or undefined (not wanted).
LAMINA_DUAL_KERNEL(layer_norm_backward, (const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                                         const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                                         const Tensor& gamma))

// x viewed as contiguous [outer, channels, inner]. mean, var, rstd: [channels]; var is the
// biased batch variance (for the running statistics).
LAMINA_DUAL_KERNEL(batch_norm_stats, (const Tensor& mean, const Tensor& var, const Tensor& rstd, const Tensor& x,
                                      int64_t outer, int64_t channels, int64_t inner, double eps))
// y = (x - mean) * rstd * gamma + beta per channel.
LAMINA_DUAL_KERNEL(batch_norm_apply, (const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                                      const Tensor& gamma, const Tensor& beta, int64_t outer, int64_t channels,
                                      int64_t inner))
// Backward of the training-mode forward (batch statistics depend on x).
LAMINA_DUAL_KERNEL(batch_norm_backward, (const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                                         const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                                         const Tensor& gamma, int64_t outer, int64_t channels, int64_t inner))

}  // namespace lamina::cpu
