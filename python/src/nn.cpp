// Fused training ops: normalization (layer_norm, batch_norm), losses (softmax cross-entropy,
// binary cross-entropy with logits) and optimizer updates over lists of parameters. Each
// has a `*_reference` twin built from plain ops (the test oracle).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "convert.h"
#include "core/errors.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/optim.h"

namespace lamina::py {

namespace {

// None -> an empty list (the optional state is off); otherwise a list of tensors.
TensorList tensor_list(nb::handle h, const char* op, const char* what) {
  if (h.is_none()) return {};
  check<TypeError>(!nb::isinstance<Tensor>(h) && PySequence_Check(h.ptr()), op, ": ", what,
                   " must be a list of tensors");
  TensorList out;
  for (nb::handle item : nb::borrow<nb::sequence>(h)) {
    check<TypeError>(nb::isinstance<Tensor>(item), op, ": ", what, " must hold tensors (updated in place)");
    out.push_back(nb::cast<Tensor>(item));
  }
  return out;
}

template <class Fn>
Tensor released(Fn&& fn) {
  nb::gil_scoped_release release;
  return fn();
}

void def_norm(nb::module_& m) {
  for (bool ref : {false, true}) {
    auto ln = ref ? &layer_norm_reference : &layer_norm;
    m.def(ref ? "layer_norm_reference" : "layer_norm", [ln](nb::handle x, nb::handle gamma, nb::handle beta,
                                                            int64_t axis, double eps) {
      Tensor a[3] = {as_tensor(x), optional_tensor(gamma), optional_tensor(beta)};
      return released([&] { return ln(a[0], a[1], a[2], axis, eps); });
    }, nb::arg("x"), nb::arg("gamma").none() = nb::none(), nb::arg("beta").none() = nb::none(),
          nb::arg("axis") = -1, nb::arg("eps") = 1e-5,
          nb::sig(ref ? "def layer_norm_reference(x: Tensor, gamma: Tensor | None = None, beta: Tensor | None = None, "
                        "axis: int = -1, eps: float = 1e-05) -> Tensor"
                      : "def layer_norm(x: Tensor, gamma: Tensor | None = None, beta: Tensor | None = None, "
                        "axis: int = -1, eps: float = 1e-05) -> Tensor"),
          ref ? "layer_norm from mean / var / rsqrt (the reference)."
              : "Layer normalization over the axes [axis, ndim): (x - mean) / sqrt(var + eps) * gamma + beta.\n"
                "gamma and beta have shape x.shape[axis:]. Fused CPU and CUDA kernels, forward and backward.");
    auto bn = ref ? &batch_norm_reference : &batch_norm;
    m.def(ref ? "batch_norm_reference" : "batch_norm",
          [bn](nb::handle x, nb::handle gamma, nb::handle beta, nb::handle rm, nb::handle rv, bool training,
               double momentum, double eps, int64_t axis) {
      Tensor a[5] = {as_tensor(x), optional_tensor(gamma), optional_tensor(beta), optional_tensor(rm),
                     optional_tensor(rv)};
      return released([&] { return bn(a[0], a[1], a[2], a[3], a[4], training, momentum, eps, axis); });
    }, nb::arg("x"), nb::arg("gamma").none() = nb::none(), nb::arg("beta").none() = nb::none(),
          nb::arg("running_mean").none() = nb::none(), nb::arg("running_var").none() = nb::none(),
          nb::arg("training") = true, nb::arg("momentum") = 0.99, nb::arg("eps") = 1e-3, nb::arg("axis") = 1,
          ref ? "batch_norm from mean / var / rsqrt (the reference)."
              : "Batch normalization of each channel (axis: 1 for NCHW, -1 for channels-last) over the other axes.\n"
                "training: batch statistics, and running_mean / running_var updated in place (no grad) as\n"
                "momentum * running + (1 - momentum) * batch (biased variance). Otherwise the running stats.");
  }
}

void def_losses(nb::module_& m) {
  for (bool ref : {false, true}) {
    auto sce = ref ? &softmax_cross_entropy_reference : &softmax_cross_entropy;
    m.def(ref ? "softmax_cross_entropy_reference" : "softmax_cross_entropy",
          [sce](nb::handle logits, nb::handle labels, nb::handle weight, const std::string& reduction) {
      Tensor a[3] = {as_tensor(logits), as_tensor(labels), optional_tensor(weight)};
      return released([&] { return sce(a[0], a[1], a[2], reduction); });
    }, nb::arg("logits"), nb::arg("labels"), nb::arg("weight").none() = nb::none(), nb::arg("reduction") = "mean",
          ref ? "softmax_cross_entropy from log_softmax / gather (the reference)."
              : "Cross-entropy of softmax(logits) over the last axis against integer labels (shape\n"
                "logits.shape[:-1]) or probabilities (logits' shape). weight: per-class weights.\n"
                "reduction: 'mean' (weighted mean for sparse labels, as in PyTorch), 'sum' or 'none'.\n"
                "Stable (log-sum-exp) with a fused backward (softmax - onehot).");
    auto bce = ref ? &binary_cross_entropy_with_logits_reference : &binary_cross_entropy_with_logits;
    m.def(ref ? "binary_cross_entropy_with_logits_reference" : "binary_cross_entropy_with_logits",
          [bce](nb::handle logits, nb::handle targets, const std::string& reduction) {
      Tensor a[2] = {as_tensor(logits), as_tensor(targets)};
      return released([&] { return bce(a[0], a[1], reduction); });
    }, nb::arg("logits"), nb::arg("targets"), nb::arg("reduction") = "mean",
          ref ? "binary_cross_entropy_with_logits from relu / log1p / exp (the reference)."
              : "max(x, 0) - x * t + log(1 + exp(-|x|)) elementwise, then reduced ('mean', 'sum', 'none').");
  }
}

void def_optim(nb::module_& m) {
  for (bool ref : {false, true}) {
    m.def(ref ? "sgd_step_reference" : "sgd_step",
          [ref](nb::handle params, nb::handle grads, nb::handle bufs, double lr, double momentum, bool nesterov,
                double weight_decay, bool decoupled) {
      const char* op = "sgd_step";
      TensorList p = tensor_list(params, op, "params"), g = tensor_list(grads, op, "grads");
      TensorList b = tensor_list(bufs, op, "bufs");
      nb::gil_scoped_release release;
      sgd_step(p, g, b, SgdOptions{lr, momentum, weight_decay, nesterov, decoupled}, ref);
    }, nb::arg("params"), nb::arg("grads"), nb::arg("bufs").none() = nb::none(), nb::arg("lr") = 0.01,
          nb::arg("momentum") = 0.0, nb::arg("nesterov") = false, nb::arg("weight_decay") = 0.0,
          nb::arg("decoupled") = true,
          "SGD over lists of tensors, in place (one native call). bufs: momentum buffers (None\n"
          "without momentum). weight_decay: decoupled (p -= lr * wd * p) or, with decoupled=False, L2.");
    m.def(ref ? "adam_step_reference" : "adam_step",
          [ref](nb::handle params, nb::handle grads, nb::handle mm, nb::handle vv, int64_t step, double lr,
                double beta1, double beta2, double eps, double weight_decay, bool decoupled, nb::handle v_max) {
      const char* op = "adam_step";
      TensorList p = tensor_list(params, op, "params"), g = tensor_list(grads, op, "grads");
      TensorList m1 = tensor_list(mm, op, "m"), v1 = tensor_list(vv, op, "v"), vm = tensor_list(v_max, op, "v_max");
      nb::gil_scoped_release release;
      adam_step(p, g, m1, v1, vm, AdamOptions{step, lr, beta1, beta2, eps, weight_decay, decoupled}, ref);
    }, nb::arg("params"), nb::arg("grads"), nb::arg("m"), nb::arg("v"), nb::arg("step"), nb::arg("lr") = 1e-3,
          nb::arg("beta1") = 0.9, nb::arg("beta2") = 0.999, nb::arg("eps") = 1e-7, nb::arg("weight_decay") = 0.0,
          nb::arg("decoupled") = true, nb::arg("v_max").none() = nb::none(),
          "Adam / AdamW over lists of tensors, in place (one native call). step: this update's number\n"
          "(from 1). v_max: AMSGrad maxima (None: plain Adam). decoupled weight decay is AdamW's.");
    m.def(ref ? "rmsprop_step_reference" : "rmsprop_step",
          [ref](nb::handle params, nb::handle grads, nb::handle avg_sq, nb::handle avg_grads, nb::handle bufs,
                double lr, double rho, double momentum, double eps, double weight_decay, bool decoupled) {
      const char* op = "rmsprop_step";
      TensorList p = tensor_list(params, op, "params"), g = tensor_list(grads, op, "grads");
      TensorList s = tensor_list(avg_sq, op, "avg_sq"), a = tensor_list(avg_grads, op, "avg_grads");
      TensorList b = tensor_list(bufs, op, "bufs");
      nb::gil_scoped_release release;
      rmsprop_step(p, g, s, a, b, RmspropOptions{lr, rho, momentum, eps, weight_decay, decoupled}, ref);
    }, nb::arg("params"), nb::arg("grads"), nb::arg("avg_sq"), nb::arg("avg_grads").none() = nb::none(),
          nb::arg("bufs").none() = nb::none(), nb::arg("lr") = 1e-3, nb::arg("rho") = 0.9, nb::arg("momentum") = 0.0,
          nb::arg("eps") = 1e-7, nb::arg("weight_decay") = 0.0, nb::arg("decoupled") = true,
          "RMSprop over lists of tensors, in place. avg_grads given: centered. bufs given: momentum.");
    m.def(ref ? "adagrad_step_reference" : "adagrad_step",
          [ref](nb::handle params, nb::handle grads, nb::handle acc, double lr, double eps, double weight_decay,
                bool decoupled) {
      const char* op = "adagrad_step";
      TensorList p = tensor_list(params, op, "params"), g = tensor_list(grads, op, "grads");
      TensorList a = tensor_list(acc, op, "accumulators");
      nb::gil_scoped_release release;
      adagrad_step(p, g, a, AdagradOptions{lr, eps, weight_decay, decoupled}, ref);
    }, nb::arg("params"), nb::arg("grads"), nb::arg("acc"), nb::arg("lr") = 1e-3, nb::arg("eps") = 1e-7,
          nb::arg("weight_decay") = 0.0, nb::arg("decoupled") = true,
          "Adagrad over lists of tensors, in place (one native call).");
  }
}

}  // namespace

void init_nn(nb::module_& m) {
  def_norm(m);
  def_losses(m);
  def_optim(m);
}

}  // namespace lamina::py
