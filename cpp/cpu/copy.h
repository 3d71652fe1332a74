#pragma once
#include "core/tensor.h"

namespace lamina::cpu {
// dst[...] = cast(src[...]) with src broadcast to dst's shape; any dtype pair, any strides.
void copy_cast(const Tensor& dst, const Tensor& src);
// Every element of dst (any strides) = value, converted to dst's dtype.
void fill(const Tensor& dst, double value);
}  // namespace lamina::cpu
