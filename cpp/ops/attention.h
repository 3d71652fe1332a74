// The attention family: scaled-dot-product attention as one fused op on the CPU (tiled,
// online softmax, backward recomputed from the saved row log-sum-exp) with a composite of
// plain ops as the reference and fallback.
#pragma once
#include <optional>

#include "core/tensor.h"

namespace lamina {

// softmax(q k^T * scale + mask) v over the last two axes. q (..., Lq, D), k (..., Lk, D),
// v (..., Lk, Dv) with equal leading axes (e.g. batch, heads). scale defaults to 1/sqrt(D).
// mask (optional) broadcasts to (..., Lq, Lk): bool (true = attend) or an additive float
// mask. causal: query i sees keys j <= i (top-left aligned, like PyTorch). dropout > 0 drops
// attention weights and runs the composite path; so does a float mask that requires grad.
// A query row that sees no key outputs zeros (the composite gives NaN there).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = {},
                                    bool causal = false, double dropout = 0.0,
                                    std::optional<double> scale = std::nullopt);

// The same computation from matmul / softmax / where: the test oracle and the fallback.
Tensor scaled_dot_product_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const Tensor& mask = {}, bool causal = false, double dropout = 0.0,
                                              std::optional<double> scale = std::nullopt);

}  // namespace lamina
