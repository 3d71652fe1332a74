// The loss family: softmax cross-entropy and binary cross-entropy with logits as fused ops
// with native backward kernels, each with a composite reference made of plain ops.
#pragma once
#include <string>

#include "core/tensor.h"

namespace lamina {

// Cross-entropy of softmax(logits) (classes on the last axis) against `labels`: integer
// class indices of shape logits.shape[:-1] (sparse; out of range is an IndexError), or
// floating probabilities of logits' shape (dense). weight: optional per-class weights [C]
// (no gradient). reduction: "mean" (sparse: sum(w_y * loss) / sum(w_y) as in PyTorch;
// dense: over the rows), "sum" or "none" (shape logits.shape[:-1]).
Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& weight = {},
                             const std::string& reduction = "mean");
Tensor softmax_cross_entropy_reference(const Tensor& logits, const Tensor& labels, const Tensor& weight = {},
                                       const std::string& reduction = "mean");

// max(x, 0) - x * t + log(1 + exp(-|x|)) elementwise (targets of logits' shape), reduced.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        const std::string& reduction = "mean");
Tensor binary_cross_entropy_with_logits_reference(const Tensor& logits, const Tensor& targets,
                                                  const std::string& reduction = "mean");

}  // namespace lamina
