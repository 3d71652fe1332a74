// One dispatcher per dual-compiled kernel (see cpu/isa.h): a table line each.

#include "cpu/binary.h"
#include "cpu/isa.h"
#include "cpu/loss.h"
#include "cpu/norm.h"
#include "cpu/optim.h"
#include "cpu/reduce.h"
#include "cpu/softmax.h"
#include "cpu/unary.h"

namespace lamina::cpu {

bool use_avx2_kernels() {
  static const bool avx2 = [] {
    if (isa_cap_from_environment() < 1) return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
  }();
  return avx2;
}

bool use_avx512_kernels() {
  static const bool avx512 = [] {
    if (isa_cap_from_environment() < 2) return false;
#if defined(__x86_64__) || defined(__i386__)
    return use_avx2_kernels() && __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
  }();
  return avx512;
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

LAMINA_DISPATCH(layer_norm_forward, (const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                                     const Tensor& gamma, const Tensor& beta, double eps),
                (y, mean, rstd, x, gamma, beta, eps))
LAMINA_DISPATCH(layer_norm_backward, (const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta, const Tensor& dy,
                                      const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& gamma),
                (dx, dgamma, dbeta, dy, x, mean, rstd, gamma))
LAMINA_DISPATCH(batch_norm_stats, (const Tensor& mean, const Tensor& var, const Tensor& rstd, const Tensor& x,
                                   int64_t outer, int64_t channels, int64_t inner, double eps),
                (mean, var, rstd, x, outer, channels, inner, eps))
LAMINA_DISPATCH(batch_norm_apply, (const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                                   const Tensor& gamma, const Tensor& beta, int64_t outer, int64_t channels,
                                   int64_t inner),
                (y, x, mean, rstd, gamma, beta, outer, channels, inner))
LAMINA_DISPATCH(batch_norm_backward, (const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta, const Tensor& dy,
                                      const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& gamma,
                                      int64_t outer, int64_t channels, int64_t inner),
                (dx, dgamma, dbeta, dy, x, mean, rstd, gamma, outer, channels, inner))
LAMINA_DISPATCH(softmax_cross_entropy_forward, (const Tensor& loss, const Tensor& lse, const Tensor& logits,
                                                const Tensor& labels, const Tensor& targets, const Tensor& weight),
                (loss, lse, logits, labels, targets, weight))
LAMINA_DISPATCH(softmax_cross_entropy_backward, (const Tensor& dlogits, const Tensor& g, const Tensor& logits,
                                                 const Tensor& lse, const Tensor& labels, const Tensor& targets,
                                                 const Tensor& weight),
                (dlogits, g, logits, lse, labels, targets, weight))
LAMINA_DISPATCH(bce_with_logits_forward, (const Tensor& loss, const Tensor& x, const Tensor& t), (loss, x, t))
LAMINA_DISPATCH(bce_with_logits_backward, (const Tensor& dx, const Tensor& g, const Tensor& x, const Tensor& t),
                (dx, g, x, t))
LAMINA_DISPATCH(sgd_update, (const Tensor& p, const Tensor& g, const Tensor& buf, const SgdArgs& a), (p, g, buf, a))
LAMINA_DISPATCH(adam_update, (const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const Tensor& v_max,
                              const AdamArgs& a),
                (p, g, m, v, v_max, a))
LAMINA_DISPATCH(rmsprop_update, (const Tensor& p, const Tensor& g, const Tensor& avg_sq, const Tensor& avg_g,
                                 const Tensor& buf, const RmspropArgs& a),
                (p, g, avg_sq, avg_g, buf, a))
LAMINA_DISPATCH(adagrad_update, (const Tensor& p, const Tensor& g, const Tensor& acc, const AdagradArgs& a),
                (p, g, acc, a))

}  // namespace lamina::cpu
