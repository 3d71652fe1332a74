#include "cpu/scan.h"

#include <type_traits>

#include "core/errors.h"
#include "cpu/reduce_loops.h"
#include "cpu/wrapping.h"

namespace lamina::cpu {

namespace {

template <class In, class Out>
void cumsum_rows(const Tensor& out, const Tensor& in, int64_t axis, bool reverse) {
  using Acc = std::conditional_t<std::is_floating_point_v<Out>, double, Out>;
  const In* ib = in.data<In>();
  Out* ob = out.data<Out>();
  const int64_t len = in.shape()[axis], is = in.strides()[axis], os = out_row_stride(in, axis);
  for_each_row(in, axis, [&](int64_t ioff, int64_t ooff) {
    Acc acc = 0;
    for (int64_t j = 0; j < len; ++j) {
      int64_t k = reverse ? len - 1 - j : j;
      acc = wrapping_add(acc, Acc(ib[ioff + k * is]));
      ob[ooff + k * os] = Out(acc);
    }
  });
}

}  // namespace

void cumsum(const Tensor& out, const Tensor& in, int64_t axis, bool reverse) {
  visit_compute_dtype(in.dtype(), [&](auto tag) {
    using In = decltype(tag);
    visit_compute_dtype(out.dtype(), [&](auto out_tag) {
      using Out = decltype(out_tag);
      if constexpr (std::is_same_v<Out, bool>) {
        throw TypeError("cumsum: bool accumulator");
      } else {
        cumsum_rows<In, Out>(out, in, axis, reverse);
      }
    });
  });
}

}  // namespace lamina::cpu
