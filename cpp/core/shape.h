// Shapes, strides (in elements) and broadcasting.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lamina {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
// Element count; throws ValueError for negative sizes and MemoryError on 64-bit overflow.
int64_t checked_numel(const Shape& s, const char* op);
Shape contiguous_strides(const Shape& s);
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Wraps a possibly negative axis into [0, ndim); throws IndexError naming the op.
int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op);
// Axes to reduce: empty `axes` with `all_if_empty` means every axis. Sorted, unique.
std::vector<int64_t> normalize_axes(const std::vector<int64_t>& axes, int64_t ndim, const char* op);

}  // namespace lamina
