// Fused optimizer updates: one native call updates every parameter of a list in place,
// under no-grad, bumping the versions of what it writes. Each has a composite reference
// written with plain ops (`*_reference`); the fused kernels reproduce it bit for bit.
//
// Weight decay: decoupled (p -= lr * wd * p before the update, Keras / AdamW) or, with
// decoupled = false, L2 (g + wd * p is the gradient used). State lists are empty when the
// option that needs them is off (momentum == 0, not centered, not AMSGrad).
#pragma once
#include <vector>

#include "core/tensor.h"

namespace lamina {

using TensorList = std::vector<Tensor>;

struct SgdOptions {
  double lr = 0.01, momentum = 0.0, weight_decay = 0.0;
  bool nesterov = false, decoupled = true;
};
// momentum: b = b * mu - lr * g; p += b (Nesterov: p += mu * b - lr * g). Else p -= lr * g.
void sgd_step(const TensorList& params, const TensorList& grads, const TensorList& bufs, const SgdOptions& o,
              bool reference = false);

struct AdamOptions {
  int64_t step = 1;  // the update's number, from 1 (bias correction)
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-7, weight_decay = 0.0;
  bool decoupled = true;
};
// m = m * b1 + (1 - b1) g; v = v * b2 + (1 - b2) g^2; [v_max = max(v_max, v)];
// p -= (lr sqrt(1 - b2^t) / (1 - b1^t)) * m / (sqrt(v) + eps)  (Keras's epsilon-hat form).
void adam_step(const TensorList& params, const TensorList& grads, const TensorList& m, const TensorList& v,
               const TensorList& v_max, const AdamOptions& o, bool reference = false);

struct RmspropOptions {
  double lr = 1e-3, rho = 0.9, momentum = 0.0, eps = 1e-7, weight_decay = 0.0;
  bool decoupled = true;
};
// s = s * rho + (1 - rho) g^2; centered (avg_grads given): a = a * rho + (1 - rho) g, d = s - a^2;
// inc = lr g / sqrt(d + eps); momentum (bufs given): b = b * mu + inc, p -= b; else p -= inc.
void rmsprop_step(const TensorList& params, const TensorList& grads, const TensorList& avg_sq,
                  const TensorList& avg_grads, const TensorList& bufs, const RmspropOptions& o,
                  bool reference = false);

struct AdagradOptions {
  double lr = 1e-3, eps = 1e-7, weight_decay = 0.0;
  bool decoupled = true;
};
// acc += g^2; p -= lr g / sqrt(acc + eps).
void adagrad_step(const TensorList& params, const TensorList& grads, const TensorList& acc, const AdagradOptions& o,
                  bool reference = false);

}  // namespace lamina
