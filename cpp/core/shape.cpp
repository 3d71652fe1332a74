#include "core/shape.h"

#include <algorithm>

#include "core/errors.h"

namespace lamina {

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    out += std::to_string(s[i]);
    if (s.size() == 1 || i + 1 < s.size()) out += s.size() == 1 ? "," : ", ";
  }
  return out + ")";
}

int64_t checked_numel(const Shape& s, const char* op) {
  // The product of the non-zero sides must fit too: strides are products of them, so a
  // shape like (0, 2**40, 2**40) would give overflowing strides even with no elements.
  int64_t n = 1;
  bool empty = false;
  for (int64_t d : s) {
    check<ValueError>(d >= 0, op, ": negative dimension in shape ", shape_str(s));
    if (d == 0) {
      empty = true;
      continue;
    }
    if (n > INT64_MAX / d)
      throw MemoryError(detail::concat(op, ": shape ", shape_str(s), " has too many elements"));
    n *= d;
  }
  return empty ? 0 : n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw ValueError(detail::concat(op, ": shapes ", shape_str(a), " and ", shape_str(b),
                                      " cannot be broadcast together"));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op) {
  int64_t lo = -std::max<int64_t>(ndim, 1), hi = std::max<int64_t>(ndim, 1) - 1;
  if (axis < lo || axis > hi)
    throw IndexError(detail::concat(op, ": axis ", axis, " is out of range for a tensor with ",
                                    ndim, " dimension", ndim == 1 ? "" : "s"));
  return axis < 0 ? axis + std::max<int64_t>(ndim, 1) : axis;
}

std::vector<int64_t> normalize_axes(const std::vector<int64_t>& axes, int64_t ndim, const char* op) {
  std::vector<int64_t> out;
  for (int64_t a : axes) {
    if (ndim == 0 && (a == 0 || a == -1)) continue;
    out.push_back(normalize_axis(a, ndim, op));
  }
  std::sort(out.begin(), out.end());
  check<ValueError>(std::adjacent_find(out.begin(), out.end()) == out.end(), op,
                    ": repeated axis in ", axes.size(), " axes");
  return out;
}

}  // namespace lamina
