// One dispatcher per dual-compiled kernel (see cpu/isa.h): a table line each.
#include <cstdlib>
#include <cstring>

#include "cpu/binary.h"
#include "cpu/isa.h"
#include "cpu/reduce.h"
#include "cpu/softmax.h"
#include "cpu/unary.h"

namespace lamina::cpu {

bool use_avx2_kernels() {
  static const bool avx2 = [] {
    const char* forced = std::getenv("LAMINA_CPU_ISA");
    if (forced && std::strcmp(forced, "generic") == 0) return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
  }();
  return avx2;
}

#define LAMINA_DISPATCH(name, params, args) \
  void name params { use_avx2_kernels() ? kernels_avx2::name args : kernels_generic::name args; }

LAMINA_DISPATCH(unary, (UnaryOp op, const Tensor& out, const Tensor& a, double param), (op, out, a, param))
LAMINA_DISPATCH(binary, (BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b), (op, out, a, b))
LAMINA_DISPATCH(softmax, (const Tensor& out, const Tensor& in, int64_t axis, bool log), (out, in, axis, log))
LAMINA_DISPATCH(sum, (const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes), (out, in, axes))
LAMINA_DISPATCH(prod, (const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes), (out, in, axes))
LAMINA_DISPATCH(extremum, (const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes, bool is_max),
                (out, in, axes, is_max))
LAMINA_DISPATCH(arg_extremum, (const Tensor& out, const Tensor& in, int64_t axis, bool is_max), (out, in, axis, is_max))
LAMINA_DISPATCH(variance, (const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes, double ddof),
                (out, in, axes, ddof))
LAMINA_DISPATCH(logsumexp, (const Tensor& out, const Tensor& in, const std::vector<int64_t>& axes), (out, in, axes))

}  // namespace lamina::cpu
