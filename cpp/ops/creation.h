// Tensors made from nothing: constants, ranges, identity, and random draws.
#pragma once
#include "core/tensor.h"

namespace lamina {

Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = {});
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = {});
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = {});
Tensor full_like_value(const Tensor& like, double value);  // same shape, dtype and device
// Writes `value` into every element of `dst` (any strides, any device) and records no
// history: for buffers nothing differentiates, such as the engine's gradient sums.
void fill_memory(const Tensor& dst, double value);
Tensor scalar_tensor(double value, DType dtype);
Tensor arange(double start, double stop, double step, DType dtype);
Tensor linspace(double start, double stop, int64_t num, bool endpoint, DType dtype);
Tensor eye(int64_t n, int64_t m, int64_t k, DType dtype);

// Random draws advance the global generator (see core/random.h).
// Drawn on `device` (CUDA: the same numbers, by the device kernel).
Tensor rand(const Shape& shape, DType dtype = DType::Float32, Device device = {});  // U[0, 1)
Tensor uniform(const Shape& shape, double low, double high, DType dtype = DType::Float32, Device device = {});
Tensor randn(const Shape& shape, DType dtype = DType::Float32, Device device = {});  // N(0, 1)
Tensor normal(const Shape& shape, double mean, double std, DType dtype = DType::Float32, Device device = {});
Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype = DType::Int64);
// A random permutation of [0, n) (Fisher-Yates driven by the generator).
Tensor randperm(int64_t n);
// Keep-mask for dropout: 1/(1-p) with probability 1-p, else 0; same dtype and device as `like`.
Tensor dropout_mask(const Tensor& like, double p);

}  // namespace lamina
