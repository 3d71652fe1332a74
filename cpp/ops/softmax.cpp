#include "ops/softmax.h"

#include "core/autograd.h"
#include "core/backend.h"
#include "core/errors.h"
#include "cpu/softmax.h"
#include "ops/arith.h"
#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"
#include "ops/unary.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

Tensor softmax_impl(const Tensor& a, int64_t axis_in, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check<TypeError>(a.defined(), name, ": got an undefined tensor");
  if (a.ndim() == 0) {  // a 0-d tensor is one row of one element, like PyTorch
    normalize_axis(axis_in, 1, name);
    return reshape(softmax_impl(reshape(a, {1}), 0, log), {});
  }
  const int64_t axis = normalize_axis(axis_in, a.ndim(), name);
  const DType out_t = is_floating(a.dtype()) ? a.dtype() : DType::Float32;
  const DType kt = kernel_dtype(out_t);
  Tensor out;
  {
    GradModeGuard no_grad(false);
    Tensor src = a.dtype() == kt ? a : astype(a, kt);
    out = Tensor::empty(a.shape(), kt, a.device());
    if (is_cuda(out.device())) LAMINA_CUDA_BRANCH(name, cuda::softmax(name, out, src, axis, log));
    else cpu::softmax(out, src, axis, log);
    if (kt != out_t) out = astype(out, out_t);
  }
  if (needs_grad({&a})) {
    // A detached output avoids a node -> output -> node cycle; when differentiating
    // again y is recomputed from x so that the second-order graph is complete.
    SavedTensor sa(a), sy(out.detach());
    record(name, {a}, out, [sa, sy, axis, log](const Tensor& g) -> std::vector<Tensor> {
      Tensor y = GradMode::is_enabled() ? softmax_impl(sa.get(), axis, log) : sy.get();
      if (log) return {sub(g, mul(exp(y), sum(g, {axis}, true)))};
      return {mul(y, sub(g, sum(mul(g, y), {axis}, true)))};
    });
  }
  return out;
}

}  // namespace

Tensor softmax(const Tensor& a, int64_t axis) { return softmax_impl(a, axis, false); }
Tensor log_softmax(const Tensor& a, int64_t axis) { return softmax_impl(a, axis, true); }

}  // namespace lamina
