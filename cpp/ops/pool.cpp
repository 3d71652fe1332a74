#include "ops/pool.h"

#include "core/backend.h"
#include "core/autograd.h"
#include "core/errors.h"
#include "cpu/pool.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/index.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"
#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

cpu::PoolGeometry resolve(const char* op, const Shape& xs, const Shape& shown, PoolParams p) {
  check<ValueError>(xs.size() == 4, op, ": expected a batched input with channels first, got shape ",
                    shape_str(shown));
  if (p.stride_h == 0) p.stride_h = p.kernel_h;
  if (p.stride_w == 0) p.stride_w = p.kernel_w;
  check<ValueError>(p.kernel_h >= 1 && p.kernel_w >= 1, op, ": kernel size must be >= 1, got (", p.kernel_h, ", ",
                    p.kernel_w, ")");
  check<ValueError>(p.stride_h >= 1 && p.stride_w >= 1, op, ": stride must be >= 1, got (", p.stride_h, ", ",
                    p.stride_w, ")");
  check<ValueError>(p.pad_h >= 0 && p.pad_w >= 0 && p.pad_h <= p.kernel_h / 2 && p.pad_w <= p.kernel_w / 2, op,
                    ": padding (", p.pad_h, ", ", p.pad_w, ") must be >= 0 and at most half the kernel (",
                    p.kernel_h, ", ", p.kernel_w, ")");
  check<ValueError>(p.kernel_h <= (int64_t(1) << 30) && p.kernel_w <= (int64_t(1) << 30) &&
                        p.stride_h <= (int64_t(1) << 30) && p.stride_w <= (int64_t(1) << 30),
                    op, ": kernel size and stride must be at most 2**30, got (", p.kernel_h, ", ", p.kernel_w, ") and (",
                    p.stride_h, ", ", p.stride_w, ")");
  // A window must hold at least one input element (padding is at most half the kernel, so
  // any non-empty input guarantees it); an empty spatial axis would leave windows of padding.
  check<ValueError>(xs[2] >= 1 && xs[3] >= 1, op, ": the input has an empty spatial axis: shape ", shape_str(shown));
  cpu::PoolGeometry g{xs[0], xs[1], xs[2], xs[3], p.kernel_h, p.kernel_w, 0, 0,
                      p.stride_h, p.stride_w, p.pad_h, p.pad_w};
  check<ValueError>(g.H + 2 * g.pad_h >= g.kh && g.W + 2 * g.pad_w >= g.kw, op, ": kernel (", g.kh, ", ", g.kw,
                    ") is larger than the padded input of shape ", shape_str(shown));
  g.OH = (g.H + 2 * g.pad_h - g.kh) / g.stride_h + 1;
  g.OW = (g.W + 2 * g.pad_w - g.kw) / g.stride_w + 1;
  return g;
}

DType pool_dtype(const char* op, const Tensor& x) {
  check<TypeError>(x.defined(), op, ": got an undefined tensor");
  check<TypeError>(is_floating(x.dtype()), op, ": expected a floating-point tensor, got ", dtype_name(x.dtype()));
  return kernel_dtype(x.dtype());
}

// dx = scatter of grad_out into the argmax positions; differentiable (its adjoint gathers).
Tensor max_pool2d_backward(const Tensor& gout, const Tensor& indices, const cpu::PoolGeometry& g) {
  Tensor dx = Tensor::empty({g.N, g.C, g.H, g.W}, gout.dtype(), gout.device());
  {
    GradModeGuard no_grad(false);
    if (is_cuda(dx.device()))
      LAMINA_CUDA_BRANCH("max_pool2d", cuda::max_pool2d_backward("max_pool2d", g, dx, contiguous(gout), indices));
    else
      cpu::max_pool2d_backward(g, dx, contiguous(gout), indices);
  }
  if (needs_grad({&gout})) {
    record("max_pool2d_backward", {gout}, dx, [indices, g](const Tensor& u) -> std::vector<Tensor> {
      Tensor flat = reshape(u, {g.N, g.C, g.H * g.W});
      return {reshape(gather(flat, 2, reshape(indices, {g.N, g.C, g.OH * g.OW})), {g.N, g.C, g.OH, g.OW})};
    });
  }
  return dx;
}

Tensor avg_pool2d_impl(const char* op, const Tensor& x, const cpu::PoolGeometry& g, bool include_pad);

// The adjoint of avg pooling; its own adjoint is avg pooling again.
Tensor avg_pool2d_backward(const Tensor& gout, const cpu::PoolGeometry& g, bool include_pad) {
  Tensor dx = Tensor::empty({g.N, g.C, g.H, g.W}, gout.dtype(), gout.device());
  {
    GradModeGuard no_grad(false);
    if (is_cuda(dx.device()))
      LAMINA_CUDA_BRANCH("avg_pool2d", cuda::avg_pool2d_backward("avg_pool2d", g, dx, contiguous(gout), include_pad));
    else
      cpu::avg_pool2d_backward(g, dx, contiguous(gout), include_pad);
  }
  if (needs_grad({&gout})) {
    record("avg_pool2d_backward", {gout}, dx, [g, include_pad](const Tensor& u) -> std::vector<Tensor> {
      return {avg_pool2d_impl("avg_pool2d", u, g, include_pad)};
    });
  }
  return dx;
}

Tensor avg_pool2d_impl(const char* op, const Tensor& x, const cpu::PoolGeometry& g, bool include_pad) {
  DType kd = pool_dtype(op, x);
  if (x.dtype() != kd) return astype(avg_pool2d_impl(op, astype(x, kd), g, include_pad), x.dtype());
  Tensor out = Tensor::empty({g.N, g.C, g.OH, g.OW}, kd, x.device());
  {
    GradModeGuard no_grad(false);
    if (is_cuda(out.device()))
      LAMINA_CUDA_BRANCH(op, cuda::avg_pool2d_forward(op, g, out, contiguous(x), include_pad));
    else
      cpu::avg_pool2d_forward(g, out, contiguous(x), include_pad);
  }
  if (needs_grad({&x})) {
    record(op, {x}, out, [g, include_pad](const Tensor& gout) -> std::vector<Tensor> {
      return {avg_pool2d_backward(gout, g, include_pad)};
    });
  }
  return out;
}

Tensor max_pool2d_impl(const char* op, const Tensor& x, const cpu::PoolGeometry& g) {
  DType kd = pool_dtype(op, x);
  if (x.dtype() != kd) return astype(max_pool2d_impl(op, astype(x, kd), g), x.dtype());
  Tensor out = Tensor::empty({g.N, g.C, g.OH, g.OW}, kd, x.device());
  Tensor indices = Tensor::empty({g.N, g.C, g.OH, g.OW}, DType::Int64, x.device());
  {
    GradModeGuard no_grad(false);
    if (is_cuda(out.device()))
      LAMINA_CUDA_BRANCH(op, cuda::max_pool2d_forward(op, g, out, indices, contiguous(x)));
    else
      cpu::max_pool2d_forward(g, out, indices, contiguous(x));
  }
  if (needs_grad({&x})) {
    record(op, {x}, out, [indices, g](const Tensor& gout) -> std::vector<Tensor> {
      return {max_pool2d_backward(gout, indices, g)};
    });
  }
  return out;
}

PoolParams params_1d(int64_t kernel, int64_t stride, int64_t padding) {
  PoolParams p;
  p.kernel_w = kernel;
  p.stride_h = 1;
  p.stride_w = stride;
  p.pad_w = padding;
  return p;
}

Tensor pool1d(const char* op, const Tensor& x, const PoolParams& p, bool is_max, bool include_pad) {
  pool_dtype(op, x);
  check<ValueError>(x.ndim() == 3, op, ": expected an input (N, C, L), got shape ", shape_str(x.shape()));
  Shape xs{x.shape()[0], x.shape()[1], 1, x.shape()[2]};
  cpu::PoolGeometry g = resolve(op, xs, x.shape(), p);
  Tensor x4 = unsqueeze(x, 2);
  Tensor out = is_max ? max_pool2d_impl(op, x4, g) : avg_pool2d_impl(op, x4, g, include_pad);
  return squeeze(out, {2});
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const PoolParams& params) {
  pool_dtype("max_pool2d", x);
  return max_pool2d_impl("max_pool2d", x, resolve("max_pool2d", x.shape(), x.shape(), params));
}

Tensor max_pool1d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  return pool1d("max_pool1d", x, params_1d(kernel, stride, padding), true, false);
}

Tensor avg_pool2d(const Tensor& x, const PoolParams& params, bool count_include_pad) {
  pool_dtype("avg_pool2d", x);
  return avg_pool2d_impl("avg_pool2d", x, resolve("avg_pool2d", x.shape(), x.shape(), params), count_include_pad);
}

Tensor avg_pool1d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding, bool count_include_pad) {
  return pool1d("avg_pool1d", x, params_1d(kernel, stride, padding), false, count_include_pad);
}

Tensor global_avg_pool2d(const Tensor& x, bool keepdims) {
  pool_dtype("global_avg_pool2d", x);
  check<ValueError>(x.ndim() == 4, "global_avg_pool2d: expected an input (N, C, H, W), got shape ",
                    shape_str(x.shape()));
  return mean(x, {2, 3}, keepdims);
}

Tensor upsample_nearest2d(const Tensor& x, int64_t scale_h, int64_t scale_w) {
  check<TypeError>(x.defined(), "upsample_nearest2d: got an undefined tensor");
  check<ValueError>(x.ndim() == 4, "upsample_nearest2d: expected an input (N, C, H, W), got shape ",
                    shape_str(x.shape()));
  check<ValueError>(scale_h >= 1 && scale_w >= 1, "upsample_nearest2d: scale_factor must be a positive integer, got (",
                    scale_h, ", ", scale_w, ")");
  // A broadcast view (N, C, H, s, W, s) made contiguous: the gradient sums each s x s block.
  const Shape& s = x.shape();
  Tensor v = reshape(x, {s[0], s[1], s[2], 1, s[3], 1});
  v = expand(v, {s[0], s[1], s[2], scale_h, s[3], scale_w});
  return reshape(v, {s[0], s[1], s[2] * scale_h, s[3] * scale_w});
}

}  // namespace lamina
