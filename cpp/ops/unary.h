// Elementwise math and activations, with gradients written as ops.
#pragma once
#include <optional>

#include "core/tensor.h"

namespace lamina {

Tensor neg(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor sign(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor log1p(const Tensor& a);
Tensor expm1(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor sin(const Tensor& a);
Tensor cos(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
// relu's gradient: g where x > 0, else 0 (x: relu's input or output). One pass; when
// differentiating again, the composite g * (x > 0), so that the graph continues.
Tensor relu_grad(const Tensor& g, const Tensor& x);
Tensor leaky_relu(const Tensor& a, double negative_slope = 0.01);
Tensor elu(const Tensor& a, double alpha = 1.0);
Tensor selu(const Tensor& a);
Tensor gelu(const Tensor& a, bool tanh_approximation = false);
Tensor silu(const Tensor& a);
Tensor softplus(const Tensor& a);
Tensor erf(const Tensor& a);
Tensor square(const Tensor& a);
Tensor reciprocal(const Tensor& a);
Tensor floor(const Tensor& a);
Tensor ceil(const Tensor& a);
Tensor round(const Tensor& a);
Tensor clip(const Tensor& a, std::optional<double> lo, std::optional<double> hi);

}  // namespace lamina
