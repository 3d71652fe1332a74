#include "cpu/select.h"

#include "cpu/loops.h"

namespace lamina::cpu {

void select(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  visit_compute_dtype(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Shape& shape = out.shape();
    for_each_run<4>(
        shape,
        {static_cast<char*>(out.raw_data()), static_cast<char*>(cond.raw_data()),
         static_cast<char*>(a.raw_data()), static_cast<char*>(b.raw_data())},
        {out.strides(), broadcast_strides(cond, shape), broadcast_strides(a, shape), broadcast_strides(b, shape)},
        {int64_t(sizeof(T)), 1, int64_t(sizeof(T)), int64_t(sizeof(T))},
        [](std::array<char*, 4> p, std::array<int64_t, 4> s, int64_t n) {
          for (int64_t i = 0; i < n; ++i)
            *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const bool*>(p[1] + i * s[1])
                                                         ? *reinterpret_cast<const T*>(p[2] + i * s[2])
                                                         : *reinterpret_cast<const T*>(p[3] + i * s[3]);
        });
  });
}

}  // namespace lamina::cpu
