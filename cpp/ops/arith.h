// Binary arithmetic with broadcasting and numpy-style promotion, and its gradients.
#pragma once
#include "core/tensor.h"

namespace lamina {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);           // true division: ints give float32
Tensor floor_divide(const Tensor& a, const Tensor& b);  // Python semantics; no gradient
Tensor remainder(const Tensor& a, const Tensor& b);     // Python semantics (sign of b)
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);       // NaN propagates; ties split the gradient
Tensor minimum(const Tensor& a, const Tensor& b);

// Scalar conveniences used by gradient formulas (the scalar takes a's dtype).
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor rsub(double a, const Tensor& b);  // a - b

}  // namespace lamina
