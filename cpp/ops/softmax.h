// Softmax and log-softmax along one axis (fused, stable CPU kernels) and their gradients.
// Integer inputs give float32. logsumexp lives with the reductions (ops/reduce.h).
#pragma once
#include "core/tensor.h"

namespace lamina {

Tensor softmax(const Tensor& a, int64_t axis = -1);
Tensor log_softmax(const Tensor& a, int64_t axis = -1);

}  // namespace lamina
