#include "cpu/reduce.h"

#include "cpu/convert.h"
#include "cpu/reduce_loops.h"

namespace lamina::cpu {

namespace {

// Eight independent partial sums: vectorizable without reassociation flags, and more
// accurate than one running sum.
template <class In, class Acc>
struct SumReducer {
  struct State {
    Acc lanes[8] = {};
  };
  State init() const { return {}; }
  void add(State& s, In v, int64_t) const { s.lanes[0] += Acc(v); }
  void add_run(State& s, const In* p, int64_t n, int64_t) const {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int k = 0; k < 8; ++k) s.lanes[k] += Acc(p[i + k]);
    for (; i < n; ++i) s.lanes[0] += Acc(p[i]);
  }
  Acc finish(const State& s, int64_t) const {
    return ((s.lanes[0] + s.lanes[1]) + (s.lanes[2] + s.lanes[3])) +
           ((s.lanes[4] + s.lanes[5]) + (s.lanes[6] + s.lanes[7]));
  }
};

}  // namespace

void sum(const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes) {
  visit_compute_dtype(in.dtype(), [&](auto tag) {
    using In = decltype(tag);
    visit_compute_dtype(out.dtype(), [&](auto out_tag) {
      using Out = decltype(out_tag);
      if constexpr (std::is_same_v<Out, bool>) {
        throw TypeError("sum: bool accumulator");
      } else {
        reduce_kernel<In, Out>(out, in, axes, SumReducer<In, Out>{});
      }
    });
  });
}

}  // namespace lamina::cpu
