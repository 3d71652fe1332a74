#include "cpu/index.h"

#include <cstring>

#include "cpu/convert.h"

namespace lamina::cpu {

namespace {
struct Split {
  int64_t pre = 1, mid = 1, post = 1;
};
Split split_at(const Shape& s, int64_t axis) {
  Split r;
  for (int64_t d = 0; d < int64_t(s.size()); ++d) {
    if (d < axis) r.pre *= s[size_t(d)];
    else if (d == axis) r.mid = s[size_t(d)];
    else r.post *= s[size_t(d)];
  }
  return r;
}
}  // namespace

void take(const Tensor& out, const Tensor& a, const Tensor& idx, int64_t axis) {
  Split sa = split_at(a.shape(), axis);
  const int64_t n = idx.numel(), isz = int64_t(a.itemsize()), row = sa.post * isz;
  const int64_t* ix = idx.data<int64_t>();
  const char* src = static_cast<const char*>(a.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  for (int64_t p = 0; p < sa.pre; ++p)
    for (int64_t j = 0; j < n; ++j)
      std::memcpy(dst + (p * n + j) * row, src + (p * sa.mid + ix[j]) * row, size_t(row));
}

void index_add(const Tensor& out, const Tensor& idx, const Tensor& src, int64_t axis) {
  Split so = split_at(out.shape(), axis);
  const int64_t n = idx.numel();
  const int64_t* ix = idx.data<int64_t>();
  visit_compute_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* s = src.data<T>();
    for (int64_t p = 0; p < so.pre; ++p)
      for (int64_t j = 0; j < n; ++j) {
        T* orow = o + (p * so.mid + ix[j]) * so.post;
        const T* srow = s + (p * n + j) * so.post;
        for (int64_t q = 0; q < so.post; ++q) orow[q] = T(orow[q] + srow[q]);
      }
  });
}

void gather(const Tensor& out, const Tensor& a, const Tensor& index, int64_t axis) {
  const int64_t* ix = index.data<int64_t>();
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* src = a.data<T>();
    T* o = out.data<T>();
    const Shape& is = index.shape();
    const Shape& as = a.shape();
    Shape ast = contiguous_strides(as);
    int64_t total = index.numel();
    Shape coord(is.size(), 0);
    for (int64_t i = 0; i < total; ++i) {
      int64_t off = 0;
      for (size_t d = 0; d < is.size(); ++d) off += (int64_t(d) == axis ? ix[i] : coord[d]) * ast[d];
      o[i] = src[off];
      for (size_t d = is.size(); d-- > 0;) {
        if (++coord[d] < is[d]) break;
        coord[d] = 0;
      }
    }
  });
}

void scatter_add(const Tensor& out, const Tensor& index, const Tensor& src, int64_t axis) {
  const int64_t* ix = index.data<int64_t>();
  visit_compute_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* s = src.data<T>();
    const Shape& is = index.shape();
    Shape ost = contiguous_strides(out.shape());
    int64_t total = index.numel();
    Shape coord(is.size(), 0);
    for (int64_t i = 0; i < total; ++i) {
      int64_t off = 0;
      for (size_t d = 0; d < is.size(); ++d) off += (int64_t(d) == axis ? ix[i] : coord[d]) * ost[d];
      o[off] = T(o[off] + s[i]);
      for (size_t d = is.size(); d-- > 0;) {
        if (++coord[d] < is[d]) break;
        coord[d] = 0;
      }
    }
  });
}

}  // namespace lamina::cpu
