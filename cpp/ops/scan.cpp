#include "ops/scan.h"

#include "core/backend.h"
#include "core/autograd.h"
#include "core/errors.h"
#include "cpu/scan.h"
#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/shape_ops.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

// Forward or reverse running sum; each direction's gradient is the other direction.
Tensor cumsum_dir(const Tensor& a, int64_t axis, bool reverse) {
  const DType out_t = is_floating(a.dtype()) ? a.dtype() : DType::Int64;
  const DType kt = kernel_dtype(out_t);
  Tensor out;
  {
    GradModeGuard no_grad(false);
    Tensor src = is_floating(a.dtype()) && a.dtype() != kt ? astype(a, kt) : a;
    out = Tensor::empty(a.shape(), kt, a.device());
    if (is_cuda(out.device())) LAMINA_CUDA_BRANCH("cumsum", cuda::cumsum("cumsum", out, src, axis, reverse));
    else cpu::cumsum(out, src, axis, reverse);
    if (kt != out_t) out = astype(out, out_t);
  }
  if (needs_grad({&a})) {
    record("cumsum", {a}, out, [axis, reverse](const Tensor& g) -> std::vector<Tensor> {
      return {cumsum_dir(g, axis, !reverse)};
    });
  }
  return out;
}

}  // namespace

Tensor cumsum(const Tensor& a, std::optional<int64_t> axis) {
  check<TypeError>(a.defined(), "cumsum: got an undefined tensor");
  if (!axis) return cumsum_dir(reshape(a, {a.numel()}), 0, false);
  if (a.ndim() == 0) {  // numpy: a 0-d input along axis 0 / -1 gives shape (1,)
    normalize_axis(*axis, 0, "cumsum");
    return cumsum_dir(reshape(a, {1}), 0, false);
  }
  return cumsum_dir(a, normalize_axis(*axis, a.ndim(), "cumsum"), false);
}

}  // namespace lamina
