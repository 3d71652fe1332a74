// The normalization family: layer norm and batch norm as fused ops with native backward
// kernels, each with a composite reference made of plain ops (the test oracle, and the
// path that second-order gradients take).
#pragma once
#include "core/tensor.h"

namespace lamina {

// Normalizes over the trailing axes [axis, ndim): y = (x - mean) * rstd * gamma + beta with
// rstd = 1 / sqrt(var + eps) (biased variance). gamma and beta (each optional, undefined =
// absent) have shape x.shape[axis:]. Half types compute in float32.
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t axis = -1, double eps = 1e-5);
Tensor layer_norm_reference(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t axis = -1,
                            double eps = 1e-5);

// Normalizes each channel (along `axis`: 1 for NCHW, -1 for channels-last) over every other
// axis. training: batch mean and biased variance, and running_mean / running_var (when
// defined) are updated in place, without gradient, as running = momentum * running +
// (1 - momentum) * batch (the Keras convention). Otherwise the running statistics are used.
// gamma, beta, running_*: shape [channels]; gamma and beta optional.
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum = 0.99, double eps = 1e-3,
                  int64_t axis = 1);
Tensor batch_norm_reference(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, bool training, double momentum = 0.99, double eps = 1e-3,
                            int64_t axis = 1);

}  // namespace lamina
