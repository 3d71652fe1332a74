#include "ops/norm.h"

#include "core/autograd.h"
#include "core/backend.h"
#include "core/errors.h"
#include "cpu/norm.h"
#include "ops/arith.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"
#include "ops/unary.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

constexpr const char* kLayerNorm = "layer_norm";
constexpr const char* kBatchNorm = "batch_norm";

void check_input(const char* op, const Tensor& x, int64_t min_ndim) {
  check<TypeError>(x.defined(), op, ": got an undefined tensor");
  check<TypeError>(is_floating(x.dtype()), op, ": expected a floating-point input, got ", dtype_name(x.dtype()));
  check<ValueError>(x.ndim() >= min_ndim, op, ": expected an input with at least ", min_ndim,
                    " dimension(s), got shape ", shape_str(x.shape()));
}

void check_param(const char* op, const char* what, const Tensor& p, const Shape& want, const Tensor& x) {
  if (!p.defined()) return;
  check<ValueError>(p.device() == x.device(), op, ": ", what, " is on ", p.device().str(), " but the input is on ",
                    x.device().str());
  check<TypeError>(is_floating(p.dtype()), op, ": ", what, " must be floating-point, got ", dtype_name(p.dtype()));
  check<ValueError>(p.shape() == want, op, ": ", what, " of shape ", shape_str(p.shape()),
                    " does not match the normalized shape ", shape_str(want));
}

// A contiguous copy (or the tensor itself) in the kernel dtype; undefined stays undefined.
Tensor for_kernel(const Tensor& t, DType kt) {
  if (!t.defined()) return t;
  return contiguous(astype(t.detach(), kt));
}

Axes range_axes(int64_t lo, int64_t hi, int64_t skip = -1) {
  Axes out;
  for (int64_t a = lo; a < hi; ++a)
    if (a != skip) out.push_back(a);
  return out;
}

int64_t product(const Shape& s, size_t lo, size_t hi) {
  int64_t n = 1;
  for (size_t i = lo; i < hi; ++i) n *= s[i];
  return n;
}

// sum over `axes` (none: the tensor itself, since sum({}) would reduce everything).
Tensor sum_over(const Tensor& g, const Axes& axes) { return axes.empty() ? g : sum(g, axes); }

// d(layer_norm) written with ops, so that it can be differentiated again.
std::vector<Tensor> layer_norm_vjp_ops(const Tensor& g, const Tensor& x, const Tensor& gamma, bool has_beta,
                                       int64_t axis, double eps) {
  const Axes norm = range_axes(axis, x.ndim()), lead = range_axes(0, axis);
  Tensor rs = rsqrt(add(var(x, norm, true), eps));
  Tensor xhat = mul(sub(x, mean(x, norm, true)), rs);
  Tensor gg = gamma.defined() ? mul(g, gamma) : g;
  Tensor dx = mul(rs, sub(sub(gg, mean(gg, norm, true)), mul(xhat, mean(mul(gg, xhat), norm, true))));
  Tensor dgamma = gamma.defined() ? sum_over(mul(g, xhat), lead) : Tensor();
  Tensor dbeta = has_beta ? sum_over(g, lead) : Tensor();
  return {dx, dgamma, dbeta};
}

int64_t layer_norm_axis(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t axis_in, double eps) {
  check_input(kLayerNorm, x, 1);
  const int64_t axis = normalize_axis(axis_in, x.ndim(), kLayerNorm);
  const Shape pshape(x.shape().begin() + axis, x.shape().end());
  check_param(kLayerNorm, "gamma", gamma, pshape, x);
  check_param(kLayerNorm, "beta", beta, pshape, x);
  check<ValueError>(eps >= 0, kLayerNorm, ": eps must be non-negative, got ", eps);
  return axis;
}

struct BnDims {
  int64_t axis, outer, channels, inner;
  Shape bshape;  // channels on `axis`, 1 elsewhere
};

BnDims batch_norm_dims(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& rm, const Tensor& rv,
                       bool training, double momentum, double eps, int64_t axis_in) {
  check_input(kBatchNorm, x, 2);
  BnDims d;
  d.axis = normalize_axis(axis_in, x.ndim(), kBatchNorm);
  d.channels = x.shape()[d.axis];
  d.outer = product(x.shape(), 0, size_t(d.axis));
  d.inner = product(x.shape(), size_t(d.axis) + 1, x.shape().size());
  d.bshape = Shape(x.shape().size(), 1);
  d.bshape[d.axis] = d.channels;
  const Shape cs{d.channels};
  check_param(kBatchNorm, "gamma", gamma, cs, x);
  check_param(kBatchNorm, "beta", beta, cs, x);
  check_param(kBatchNorm, "running_mean", rm, cs, x);
  check_param(kBatchNorm, "running_var", rv, cs, x);
  check<ValueError>(training || (rm.defined() && rv.defined()), kBatchNorm,
                    ": inference (training=False) needs running_mean and running_var");
  check<ValueError>(rm.defined() == rv.defined(), kBatchNorm, ": give both running_mean and running_var, or neither");
  check<ValueError>(eps >= 0, kBatchNorm, ": eps must be non-negative, got ", eps);
  check<ValueError>(momentum >= 0 && momentum <= 1, kBatchNorm, ": momentum must be in [0, 1], got ", momentum);
  return d;
}

// running = momentum * running + (1 - momentum) * batch, in place and without gradient.
void update_running(const Tensor& running, const Tensor& batch, double momentum) {
  if (!running.defined()) return;
  GradModeGuard no_grad(false);
  Tensor b = astype(reshape(batch.detach(), {running.numel()}), running.dtype());
  copy_(running, add(mul(running.detach(), momentum), mul(b, 1.0 - momentum)));
}

// d(batch_norm) in training mode, written with ops (differentiable again).
std::vector<Tensor> batch_norm_vjp_ops(const Tensor& g, const Tensor& x, const Tensor& gamma, bool has_beta,
                                       const BnDims& d, double eps) {
  const Axes ax = range_axes(0, x.ndim(), d.axis);
  Tensor rs = rsqrt(add(var(x, ax, true), eps));
  Tensor xhat = mul(sub(x, mean(x, ax, true)), rs);
  Tensor gg = gamma.defined() ? mul(g, reshape(gamma, d.bshape)) : g;
  Tensor dx = mul(rs, sub(sub(gg, mean(gg, ax, true)), mul(xhat, mean(mul(gg, xhat), ax, true))));
  Tensor dgamma = gamma.defined() ? sum(mul(g, xhat), ax) : Tensor();
  Tensor dbeta = has_beta ? sum(g, ax) : Tensor();
  return {dx, dgamma, dbeta};
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t axis_in, double eps) {
  const int64_t axis = layer_norm_axis(x, gamma, beta, axis_in, eps);
  const DType kt = kernel_dtype(x.dtype());
  const int64_t cols = product(x.shape(), size_t(axis), x.shape().size());
  const int64_t rows = product(x.shape(), 0, size_t(axis));
  Tensor y, mu, rstd, xc, gc;
  {
    GradModeGuard no_grad(false);
    xc = for_kernel(x, kt);
    gc = for_kernel(gamma, kt);
    Tensor bc = for_kernel(beta, kt);
    y = Tensor::empty(x.shape(), kt, x.device());
    mu = Tensor::empty({rows}, kt, x.device());
    rstd = Tensor::empty({rows}, kt, x.device());
    if (rows * cols > 0) {
      const Tensor y2 = reshape(y, {rows, cols}), x2 = reshape(xc, {rows, cols});
      const Tensor g1 = gc.defined() ? reshape(gc, {cols}) : gc, b1 = bc.defined() ? reshape(bc, {cols}) : bc;
      if (is_cuda(x.device())) LAMINA_CUDA_BRANCH(kLayerNorm, cuda::layer_norm_forward(kLayerNorm, y2, mu, rstd, x2, g1, b1, eps));
      else cpu::layer_norm_forward(y2, mu, rstd, x2, g1, b1, eps);
    }
  }
  if (needs_grad({&x, &gamma, &beta})) {
    SavedTensor sx(x), sg(gamma), sxc(xc), sgc(gc), smu(mu), srs(rstd);
    const bool has_beta = beta.defined();
    const Shape pshape(x.shape().begin() + axis, x.shape().end());
    record(kLayerNorm, {x, gamma, beta}, y, [=](const Tensor& g) -> std::vector<Tensor> {
      if (GradMode::is_enabled()) return layer_norm_vjp_ops(g, sx.get(), sg.get(), has_beta, axis, eps);
      GradModeGuard no_grad(false);
      const Device dev = sxc.get().device();
      Tensor dy = contiguous(astype(g, kt));
      Tensor dx = Tensor::empty(sxc.get().shape(), kt, dev);
      Tensor dgamma = sgc.get().defined() ? Tensor::empty({cols}, kt, dev) : Tensor();
      Tensor dbeta = has_beta ? Tensor::empty({cols}, kt, dev) : Tensor();
      if (rows * cols > 0) {
        const Tensor dx2 = reshape(dx, {rows, cols}), dy2 = reshape(dy, {rows, cols});
        const Tensor x2 = reshape(sxc.get(), {rows, cols});
        const Tensor g1 = sgc.get().defined() ? reshape(sgc.get(), {cols}) : Tensor();
        if (is_cuda(dev))
          LAMINA_CUDA_BRANCH(kLayerNorm, cuda::layer_norm_backward(kLayerNorm, dx2, dgamma, dbeta, dy2, x2, smu.get(),
                                                                   srs.get(), g1));
        else cpu::layer_norm_backward(dx2, dgamma, dbeta, dy2, x2, smu.get(), srs.get(), g1);
      } else {
        if (dgamma.defined()) dgamma = zeros({cols}, kt, dev);
        if (dbeta.defined()) dbeta = zeros({cols}, kt, dev);
      }
      return {dx, dgamma.defined() ? reshape(dgamma, pshape) : dgamma, dbeta.defined() ? reshape(dbeta, pshape) : dbeta};
    });
  }
  return kt == x.dtype() ? y : astype(y, x.dtype());
}

Tensor layer_norm_reference(const Tensor& x, const Tensor& gamma, const Tensor& beta, int64_t axis_in, double eps) {
  const int64_t axis = layer_norm_axis(x, gamma, beta, axis_in, eps);
  const Axes norm = range_axes(axis, x.ndim());
  Tensor y = mul(sub(x, mean(x, norm, true)), rsqrt(add(var(x, norm, true), eps)));
  if (gamma.defined()) y = mul(y, gamma);
  if (beta.defined()) y = add(y, beta);
  return y;
}

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps, int64_t axis) {
  const BnDims d = batch_norm_dims(x, gamma, beta, running_mean, running_var, training, momentum, eps, axis);
  const DType kt = kernel_dtype(x.dtype());
  const Shape cs{d.channels};
  Tensor y, mu, rstd, xc, gc;
  {
    GradModeGuard no_grad(false);
    xc = for_kernel(x, kt);
    gc = for_kernel(gamma, kt);
    Tensor bc = for_kernel(beta, kt);
    y = Tensor::empty(x.shape(), kt, x.device());
    if (training) {
      check<ValueError>(d.outer * d.inner > 0, kBatchNorm, ": training needs at least one value per channel, got shape ",
                        shape_str(x.shape()));
      mu = Tensor::empty(cs, kt, x.device());
      rstd = Tensor::empty(cs, kt, x.device());
      Tensor bvar = Tensor::empty(cs, kt, x.device());
      if (is_cuda(x.device()))
        LAMINA_CUDA_BRANCH(kBatchNorm, cuda::batch_norm_stats(kBatchNorm, mu, bvar, rstd, xc, d.outer, d.channels,
                                                              d.inner, eps));
      else cpu::batch_norm_stats(mu, bvar, rstd, xc, d.outer, d.channels, d.inner, eps);
      update_running(running_mean, mu, momentum);
      update_running(running_var, bvar, momentum);
    } else {
      mu = for_kernel(running_mean, kt);
      rstd = contiguous(rsqrt(add(for_kernel(running_var, kt), eps)));
    }
    if (x.numel() > 0) {
      if (is_cuda(x.device()))
        LAMINA_CUDA_BRANCH(kBatchNorm,
                           cuda::batch_norm_apply(kBatchNorm, y, xc, mu, rstd, gc, bc, d.outer, d.channels, d.inner));
      else cpu::batch_norm_apply(y, xc, mu, rstd, gc, bc, d.outer, d.channels, d.inner);
    }
  }
  if (needs_grad({&x, &gamma, &beta})) {
    SavedTensor sx(x), sg(gamma), sxc(xc), sgc(gc), smu(mu), srs(rstd);
    const bool has_beta = beta.defined();
    if (training) {
      record(kBatchNorm, {x, gamma, beta}, y, [=](const Tensor& g) -> std::vector<Tensor> {
        if (GradMode::is_enabled()) return batch_norm_vjp_ops(g, sx.get(), sg.get(), has_beta, d, eps);
        GradModeGuard no_grad(false);
        const Device dev = sxc.get().device();
        Tensor dy = contiguous(astype(g, kt));
        Tensor dx = Tensor::empty(sxc.get().shape(), kt, dev);
        Tensor dgamma = sgc.get().defined() ? Tensor::empty(cs, kt, dev) : Tensor();
        Tensor dbeta = has_beta ? Tensor::empty(cs, kt, dev) : Tensor();
        if (is_cuda(dev))
          LAMINA_CUDA_BRANCH(kBatchNorm, cuda::batch_norm_backward(kBatchNorm, dx, dgamma, dbeta, dy, sxc.get(),
                                                                   smu.get(), srs.get(), sgc.get(), d.outer,
                                                                   d.channels, d.inner));
        else cpu::batch_norm_backward(dx, dgamma, dbeta, dy, sxc.get(), smu.get(), srs.get(), sgc.get(), d.outer,
                                      d.channels, d.inner);
        return {dx, dgamma, dbeta};
      });
    } else {
      // Inference: an affine map per channel; its gradient is cheap with ops.
      record(kBatchNorm, {x, gamma, beta}, y, [=](const Tensor& g) -> std::vector<Tensor> {
        Tensor rs = reshape(srs.get(), d.bshape);
        const Axes ax = range_axes(0, g.ndim(), d.axis);
        Tensor gamma_v = sg.get();
        Tensor dx = mul(g, gamma_v.defined() ? mul(rs, reshape(gamma_v, d.bshape)) : rs);
        Tensor dgamma = gamma_v.defined() ? sum(mul(g, mul(sub(sx.get(), reshape(smu.get(), d.bshape)), rs)), ax)
                                          : Tensor();
        Tensor dbeta = has_beta ? sum(g, ax) : Tensor();
        return {dx, dgamma, dbeta};
      });
    }
  }
  return kt == x.dtype() ? y : astype(y, x.dtype());
}

Tensor batch_norm_reference(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, bool training, double momentum, double eps, int64_t axis) {
  const BnDims d = batch_norm_dims(x, gamma, beta, running_mean, running_var, training, momentum, eps, axis);
  const Axes ax = range_axes(0, x.ndim(), d.axis);
  Tensor mu, v;
  if (training) {
    mu = mean(x, ax, true);
    v = var(x, ax, true);
    update_running(running_mean, mu, momentum);
    update_running(running_var, v, momentum);
  } else {
    mu = reshape(astype(running_mean, x.dtype()), d.bshape);
    v = reshape(astype(running_var, x.dtype()), d.bshape);
  }
  Tensor y = mul(sub(x, mu), rsqrt(add(v, eps)));
  if (gamma.defined()) y = mul(y, reshape(gamma, d.bshape));
  if (beta.defined()) y = add(y, reshape(beta, d.bshape));
  return y;
}

}  // namespace lamina
