// CPU kernels of the fused optimizer updates: one parameter tensor per call, in place.
// All tensors are contiguous with the parameter's shape and dtype (float32 or float64).
// The float arithmetic follows the composite updates of ops/optim.cpp operation by
// operation (same order, same rounding of the scalars, no contraction into FMA; the file
// builds with -ffp-contract=off), so the results are bit-for-bit equal.
#pragma once
#include "core/tensor.h"
#include "cpu/isa.h"

namespace lamina::cpu {

struct SgdArgs {
  double lr, momentum, weight_decay;
  bool nesterov, decoupled;
};
struct AdamArgs {
  double lr, beta1, beta2, eps, weight_decay, step_size;  // step_size: bias-corrected lr
  bool decoupled;
};
struct RmspropArgs {
  double lr, rho, momentum, eps, weight_decay;
  bool centered, decoupled;
};
struct AdagradArgs {
  double lr, eps, weight_decay;
  bool decoupled;
};

// buf: momentum buffer (undefined without momentum).
LAMINA_DUAL_KERNEL(sgd_update, (const Tensor& p, const Tensor& g, const Tensor& buf, const SgdArgs& a))
// v_max: running maximum of v (AMSGrad) or undefined.
LAMINA_DUAL_KERNEL(adam_update, (const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                                 const Tensor& v_max, const AdamArgs& a))
// avg_g: mean gradient (centered) or undefined; buf: momentum buffer or undefined.
LAMINA_DUAL_KERNEL(rmsprop_update, (const Tensor& p, const Tensor& g, const Tensor& avg_sq, const Tensor& avg_g,
                                    const Tensor& buf, const RmspropArgs& a))
LAMINA_DUAL_KERNEL(adagrad_update, (const Tensor& p, const Tensor& g, const Tensor& acc, const AdagradArgs& a))

}  // namespace lamina::cpu
