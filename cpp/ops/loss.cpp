#include "ops/loss.h"

#include "core/autograd.h"
#include "core/backend.h"
#include "core/errors.h"
#include "cpu/loss.h"
#include "ops/arith.h"
#include "ops/compare.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/index.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"
#include "ops/softmax.h"
#include "ops/unary.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

constexpr const char* kSce = "softmax_cross_entropy";
constexpr const char* kBce = "binary_cross_entropy_with_logits";

enum class Reduction { None, Mean, Sum };

Reduction parse_reduction(const std::string& r, const char* op) {
  if (r == "mean") return Reduction::Mean;
  if (r == "sum") return Reduction::Sum;
  if (r == "none") return Reduction::None;
  throw ValueError(std::string(op) + ": reduction must be 'mean', 'sum' or 'none', got '" + r + "'");
}

void check_same_device(const char* op, const char* what, const Tensor& t, const Tensor& logits) {
  check<ValueError>(t.device() == logits.device(), op, ": ", what, " are on ", t.device().str(),
                    " but the logits are on ", logits.device().str());
}

Tensor for_kernel(const Tensor& t, DType kt) {
  if (!t.defined()) return t;
  return contiguous(astype(t.detach(), kt));
}

struct SceArgs {
  bool sparse;
  int64_t classes, rows;
  Shape lead;
  Reduction reduction;
};

SceArgs check_sce(const Tensor& logits, const Tensor& labels, const Tensor& weight, const std::string& reduction) {
  check<TypeError>(logits.defined() && labels.defined(), kSce, ": got an undefined tensor");
  check<TypeError>(is_floating(logits.dtype()), kSce, ": logits must be floating-point, got ",
                   dtype_name(logits.dtype()));
  check<ValueError>(logits.ndim() >= 1, kSce, ": logits need a class axis, got a 0-d tensor");
  check_same_device(kSce, "labels", labels, logits);
  if (weight.defined()) check_same_device(kSce, "weight", weight, logits);
  SceArgs a;
  a.reduction = parse_reduction(reduction, kSce);
  a.classes = logits.shape().back();
  a.lead = Shape(logits.shape().begin(), logits.shape().end() - 1);
  a.rows = 1;
  for (int64_t s : a.lead) a.rows *= s;
  check<TypeError>(labels.dtype() != DType::Bool, kSce, ": labels must be integer class indices or float probabilities");
  a.sparse = !is_floating(labels.dtype());
  if (a.sparse)
    check<ValueError>(labels.shape() == a.lead, kSce, ": integer labels of shape ", shape_str(labels.shape()),
                      " do not match logits of shape ", shape_str(logits.shape()), " (expected ", shape_str(a.lead), ")");
  else
    check<ValueError>(labels.shape() == logits.shape(), kSce, ": target probabilities of shape ",
                      shape_str(labels.shape()), " do not match logits of shape ", shape_str(logits.shape()));
  if (weight.defined()) {
    check<TypeError>(is_floating(weight.dtype()), kSce, ": weight must be floating-point");
    check<ValueError>(weight.shape() == Shape{a.classes}, kSce, ": weight of shape ", shape_str(weight.shape()),
                      " does not match ", a.classes, " classes");
  }
  return a;
}

// Integer labels as contiguous int64 [rows] on the host, each checked to lie in [0, classes)
// (device labels are copied to the host for the check: one synchronising copy).
Tensor checked_labels(const Tensor& labels, const SceArgs& a) {
  Tensor lab = contiguous(astype(to_device(labels.detach(), Device{}), DType::Int64));
  const int64_t* p = lab.data<int64_t>();
  for (int64_t i = 0; i < lab.numel(); ++i)
    if (p[i] < 0 || p[i] >= a.classes)
      throw IndexError(std::string(kSce) + ": label " + std::to_string(p[i]) + " is out of range for " +
                       std::to_string(a.classes) + " classes");
  return lab;
}

Tensor reduce_loss(const Tensor& per_row, Reduction r, const Tensor& row_weight) {
  if (r == Reduction::None) return per_row;
  if (r == Reduction::Sum) return sum(per_row);
  if (row_weight.defined()) {
    Tensor total;
    {
      GradModeGuard no_grad(false);
      total = astype(sum(row_weight.detach()), per_row.dtype());
    }
    return div(sum(per_row), total);
  }
  return mean(per_row);
}

// d(loss)/d(logits) with ops: g * (softmax * sum(w t) - w t) (differentiable again).
Tensor sce_dlogits_ops(const Tensor& g, const Tensor& logits, const Tensor& labels, const Tensor& weight,
                       const SceArgs& a) {
  Tensor p = softmax(logits, -1), gu = unsqueeze(g, -1);
  if (a.sparse) {
    Tensor onehot = one_hot(labels, a.classes, logits.dtype());
    Tensor diff = sub(p, onehot);
    if (weight.defined()) gu = mul(gu, unsqueeze(take(astype(weight, logits.dtype()), labels, 0), -1));
    return mul(gu, diff);
  }
  Tensor wt = weight.defined() ? mul(labels, weight) : labels;
  return mul(gu, sub(mul(p, sum(wt, {-1}, true)), wt));
}

}  // namespace

Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& weight,
                             const std::string& reduction) {
  const SceArgs a = check_sce(logits, labels, weight, reduction);
  const DType kt = kernel_dtype(logits.dtype());
  const Device dev = logits.device();
  Tensor loss, lse, xc, lab, tgt, wc, row_weight;
  {
    GradModeGuard no_grad(false);
    xc = for_kernel(logits, kt);
    wc = for_kernel(weight, kt);
    if (a.sparse) {
      Tensor host_labels = checked_labels(labels, a);
      if (wc.defined() && a.reduction == Reduction::Mean)
        row_weight = to_device(take(to_device(wc, Device{}), host_labels, 0), dev);
      lab = to_device(host_labels, dev);
    } else {
      tgt = for_kernel(labels, kt);
    }
    loss = Tensor::empty(a.lead, kt, dev);
    lse = Tensor::empty({a.rows}, kt, dev);
    if (a.classes == 0) {
      loss = zeros(a.lead, kt, dev);
    } else if (a.rows > 0) {
      const Tensor x2 = reshape(xc, {a.rows, a.classes});
      const Tensor t2 = tgt.defined() ? reshape(tgt, {a.rows, a.classes}) : tgt;
      if (is_cuda(dev)) LAMINA_CUDA_BRANCH(kSce, cuda::softmax_cross_entropy_forward(kSce, loss, lse, x2, lab, t2, wc));
      else cpu::softmax_cross_entropy_forward(loss, lse, x2, lab, t2, wc);
    }
  }
  if (needs_grad({&logits, &labels})) {
    SavedTensor sx(logits), st(labels), sxc(xc), slab(lab), stgt(tgt), sw(wc), slse(lse);
    const bool targets_grad = !a.sparse && labels.requires_grad();
    const Tensor dense_in = a.sparse ? Tensor() : labels;
    record(kSce, {logits, dense_in}, loss, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor dtargets;
      if (targets_grad) {  // d/dt = -g * w * log_softmax(x)
        Tensor lsm = log_softmax(sx.get(), -1);
        Tensor w = sw.get().defined() ? mul(lsm, sw.get()) : lsm;
        dtargets = neg(mul(unsqueeze(g, -1), w));
      }
      if (GradMode::is_enabled())
        return {sce_dlogits_ops(g, sx.get(), a.sparse ? reshape(slab.get(), a.lead) : st.get(), sw.get(), a), dtargets};
      GradModeGuard no_grad(false);
      Tensor gc = contiguous(astype(reshape(g, {a.rows}), kt));
      Tensor dl = Tensor::empty({a.rows, a.classes}, kt, dev);
      if (a.rows * a.classes > 0) {
        const Tensor x2 = reshape(sxc.get(), {a.rows, a.classes});
        const Tensor t2 = stgt.get().defined() ? reshape(stgt.get(), {a.rows, a.classes}) : Tensor();
        if (is_cuda(dev))
          LAMINA_CUDA_BRANCH(kSce, cuda::softmax_cross_entropy_backward(kSce, dl, gc, x2, slse.get(), slab.get(), t2,
                                                                        sw.get()));
        else cpu::softmax_cross_entropy_backward(dl, gc, x2, slse.get(), slab.get(), t2, sw.get());
      }
      return {reshape(dl, sxc.get().shape()), dtargets};
    });
  }
  Tensor out = reduce_loss(loss, a.reduction, row_weight);
  return kt == logits.dtype() ? out : astype(out, logits.dtype());
}

Tensor softmax_cross_entropy_reference(const Tensor& logits, const Tensor& labels, const Tensor& weight,
                                       const std::string& reduction) {
  const SceArgs a = check_sce(logits, labels, weight, reduction);
  Tensor lsm = log_softmax(logits, -1), per_row, row_weight;
  if (a.sparse) {
    Tensor lab = checked_labels(labels, a);
    per_row = neg(squeeze(gather(lsm, -1, unsqueeze(reshape(lab, a.lead), -1)), {-1}));
    if (weight.defined()) {
      row_weight = take(astype(weight, logits.dtype()), reshape(lab, a.lead), 0);
      per_row = mul(per_row, row_weight);
    }
  } else {
    Tensor t = weight.defined() ? mul(labels, weight) : labels;
    per_row = neg(sum(mul(t, lsm), {-1}));
  }
  return reduce_loss(per_row, a.reduction, a.reduction == Reduction::Mean ? row_weight : Tensor());
}

namespace {

Reduction check_bce(const Tensor& x, const Tensor& t, const std::string& reduction) {
  check<TypeError>(x.defined() && t.defined(), kBce, ": got an undefined tensor");
  check<TypeError>(is_floating(x.dtype()), kBce, ": logits must be floating-point, got ", dtype_name(x.dtype()));
  check<ValueError>(x.shape() == t.shape(), kBce, ": targets of shape ", shape_str(t.shape()),
                    " do not match logits of shape ", shape_str(x.shape()));
  check_same_device(kBce, "targets", t, x);
  return parse_reduction(reduction, kBce);
}

}  // namespace

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets, const std::string& reduction) {
  const Reduction r = check_bce(logits, targets, reduction);
  const DType kt = kernel_dtype(logits.dtype());
  Tensor loss, xc, tc;
  {
    GradModeGuard no_grad(false);
    xc = for_kernel(logits, kt);
    tc = for_kernel(targets, kt);
    loss = Tensor::empty(logits.shape(), kt, logits.device());
    if (loss.numel() > 0) {
      if (is_cuda(logits.device())) LAMINA_CUDA_BRANCH(kBce, cuda::bce_with_logits_forward(kBce, loss, xc, tc));
      else cpu::bce_with_logits_forward(loss, xc, tc);
    }
  }
  const Tensor tin = is_floating(targets.dtype()) ? targets : Tensor();
  if (needs_grad({&logits, &tin})) {
    SavedTensor sx(logits), st(tin), sxc(xc), stc(tc);
    const bool targets_grad = tin.defined() && tin.requires_grad();
    record(kBce, {logits, tin}, loss, [=](const Tensor& g) -> std::vector<Tensor> {
      if (GradMode::is_enabled())
        return {mul(g, sub(sigmoid(sx.get()), tin.defined() ? st.get() : stc.get())),
                targets_grad ? neg(mul(g, sx.get())) : Tensor()};
      GradModeGuard no_grad(false);
      Tensor gc = contiguous(astype(g, kt));
      Tensor dx = Tensor::empty(sxc.get().shape(), kt, sxc.get().device());
      if (dx.numel() > 0) {
        if (is_cuda(dx.device()))
          LAMINA_CUDA_BRANCH(kBce, cuda::bce_with_logits_backward(kBce, dx, gc, sxc.get(), stc.get()));
        else cpu::bce_with_logits_backward(dx, gc, sxc.get(), stc.get());
      }
      return {dx, targets_grad ? neg(mul(gc, sxc.get())) : Tensor()};
    });
  }
  Tensor out = reduce_loss(loss, r, Tensor());
  return kt == logits.dtype() ? out : astype(out, logits.dtype());
}

Tensor binary_cross_entropy_with_logits_reference(const Tensor& logits, const Tensor& targets,
                                                  const std::string& reduction) {
  const Reduction r = check_bce(logits, targets, reduction);
  Tensor t = is_floating(targets.dtype()) ? targets : astype(targets, logits.dtype());
  Tensor per = add(sub(relu(logits), mul(logits, t)), log1p(exp(neg(abs(logits)))));
  return reduce_loss(per, r, Tensor());
}

}  // namespace lamina
