#pragma once
#include "core/tensor.h"

namespace lamina::cpu {
// out[pre, j, post] = a[pre, idx[j], post] for contiguous a/out and int64 idx (already
// wrapped into range).
void take(const Tensor& out, const Tensor& a, const Tensor& idx, int64_t axis);
// out[pre, idx[j], post] += src[pre, j, post] (serial over j: duplicates accumulate).
void index_add(const Tensor& out, const Tensor& idx, const Tensor& src, int64_t axis);
// take_along_axis / its scatter-add inverse, all contiguous, index int64 in range.
void gather(const Tensor& out, const Tensor& a, const Tensor& index, int64_t axis);
void scatter_add(const Tensor& out, const Tensor& index, const Tensor& src, int64_t axis);
}  // namespace lamina::cpu
