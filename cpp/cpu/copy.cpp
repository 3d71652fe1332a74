#include "cpu/copy.h"

#include <cstring>

#include "cpu/convert.h"
#include "cpu/loops.h"

namespace lamina::cpu {

void copy_cast(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;  // empty storage may have no buffer at all
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous() &&
      dst.shape() == src.shape()) {
    std::memcpy(dst.raw_data(), src.raw_data(), size_t(dst.numel()) * dst.itemsize());
    return;
  }
  visit_dtype(dst.dtype(), [&](auto out_tag) {
    using Out = decltype(out_tag);
    visit_dtype(src.dtype(), [&](auto in_tag) {
      using In = decltype(in_tag);
      unary_kernel<In, Out>(dst, src, [](In v) { return convert<Out>(v); });
    });
  });
}

void fill(const Tensor& dst, double value) {
  visit_dtype(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = convert<T>(value);
    for_each_run<1>(dst.shape(), {static_cast<char*>(dst.raw_data())}, {dst.strides()},
                    {int64_t(sizeof(T))}, [&](std::array<char*, 1> p, std::array<int64_t, 1> s, int64_t n) {
                      if (s[0] == sizeof(T)) {
                        T* o = reinterpret_cast<T*>(p[0]);
                        for (int64_t i = 0; i < n; ++i) o[i] = v;
                      } else {
                        for (int64_t i = 0; i < n; ++i) *reinterpret_cast<T*>(p[0] + i * s[0]) = v;
                      }
                    });
  });
}

}  // namespace lamina::cpu
