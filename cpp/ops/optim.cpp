#include "ops/optim.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <utility>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/errors.h"
#include "cpu/optim.h"
#include "ops/arith.h"
#include "ops/copy.h"
#include "ops/unary.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

// Checks one parameter's group (param, grad, states): shapes, dtypes, device.
void check_group(const char* op, size_t i, const Tensor& p, const Tensor& g, std::initializer_list<const Tensor*> states) {
  check<TypeError>(p.defined() && g.defined(), op, ": parameter ", i, " or its gradient is undefined");
  check<TypeError>(is_floating(p.dtype()), op, ": parameter ", i, " must be floating-point, got ", dtype_name(p.dtype()));
  check<ValueError>(g.shape() == p.shape(), op, ": gradient ", i, " of shape ", shape_str(g.shape()),
                    " does not match its parameter of shape ", shape_str(p.shape()));
  check<ValueError>(g.device() == p.device(), op, ": gradient ", i, " is on ", g.device().str(), " but its parameter is on ",
                    p.device().str());
  for (const Tensor* s : states) {
    if (!s->defined()) continue;
    check<ValueError>(s->device() == p.device(), op, ": state ", i, " is on ", s->device().str(),
                      " but its parameter is on ", p.device().str());
    check<ValueError>(s->shape() == p.shape() && s->dtype() == p.dtype(), op, ": state ", i, " (shape ",
                      shape_str(s->shape()), ", ", dtype_name(s->dtype()), ") does not match its parameter (shape ",
                      shape_str(p.shape()), ", ", dtype_name(p.dtype()), ")");
  }
}

// A state list must match the parameters one to one; an optional one may also be empty.
void check_len(const char* op, const TensorList& params, const TensorList& list, const char* name, bool required) {
  if (!required && list.empty()) return;
  check<ValueError>(list.size() == params.size(), op, ": got ", params.size(), " parameters but ", list.size(), " ",
                    name);
}

Tensor at(const TensorList& l, size_t i) { return l.empty() ? Tensor() : l[i].detach(); }

// The fused kernels take contiguous float32/float64 tensors; anything else takes the composite.
bool fusable(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->defined() && (!t->is_contiguous() || (t->dtype() != DType::Float32 && t->dtype() != DType::Float64)))
      return false;
  return true;
}

void bump(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->defined()) t->bump_version();
}

// The fusable CUDA parameters of one step, gathered per (device, dtype): each group is
// updated by one multi-tensor launch (`launch(lists)`, lists[0] the parameters, lists[1] their
// gradients, then their states, undefined where absent) once the whole list is seen. A
// parameter whose written storage is already in its group (the same tensor listed twice)
// launches the group first, so that repeated updates keep their order.
template <size_t K, class Launch>
class CudaGroups {
 public:
  explicit CudaGroups(Launch launch) : launch_(std::move(launch)) {}

  void add(std::array<Tensor, K> tensors) {
    const Device& device = tensors[0].device();
    const DType dtype = tensors[0].dtype();
    auto it = std::find_if(groups_.begin(), groups_.end(),
                           [&](const Group& g) { return g.device == device && g.dtype == dtype; });
    if (it == groups_.end()) it = groups_.insert(groups_.end(), Group{device, dtype, {}, {}});
    for (size_t k = 0; k < K; ++k) {
      if (k == 1 || !tensors[k].defined()) continue;
      const Storage* written = tensors[k].storage().get();
      if (std::find(it->written.begin(), it->written.end(), written) != it->written.end()) {
        flush(*it);
        break;
      }
    }
    for (size_t k = 0; k < K; ++k) {
      if (k != 1 && tensors[k].defined()) it->written.push_back(tensors[k].storage().get());
      it->lists[k].push_back(std::move(tensors[k]));
    }
  }

  void finish() {
    for (Group& g : groups_) flush(g);
  }

 private:
  struct Group {
    Device device;
    DType dtype;
    std::array<TensorList, K> lists;
    std::vector<const Storage*> written;
  };

  void flush(Group& g) {
    if (g.lists[0].empty()) return;
    launch_(g.lists);
    for (size_t k = 0; k < K; ++k) {
      if (k != 1)
        for (const Tensor& t : g.lists[k])
          if (t.defined()) t.bump_version();
      g.lists[k].clear();
    }
    g.written.clear();
  }

  Launch launch_;
  std::vector<Group> groups_;
};

template <size_t K, class Launch>
CudaGroups<K, Launch> cuda_groups(Launch launch) {
  return CudaGroups<K, Launch>(std::move(launch));
}

// Composite building blocks: dst = value (dst keeps its storage), as `dst op= ...` would.
void set(const Tensor& dst, const Tensor& value) { copy_(dst, value); }

// The gradient in the parameter's dtype, after decoupled decay of p or with L2 added.
Tensor decayed_grad(const Tensor& p, const Tensor& g, double lr, double wd, bool decoupled) {
  Tensor gp = astype(g, p.dtype());
  if (wd == 0) return gp;
  if (decoupled) {
    set(p, sub(p, mul(p, lr * wd)));
    return gp;
  }
  return add(gp, mul(p, wd));
}

}  // namespace

void sgd_step(const TensorList& params, const TensorList& grads, const TensorList& bufs, const SgdOptions& o,
              bool reference) {
  constexpr const char* op = "sgd_step";
  check_len(op, params, grads, "gradients", true);
  check_len(op, params, bufs, "momentum buffers", o.momentum != 0);
  GradModeGuard no_grad(false);
  const cpu::SgdArgs args{o.lr, o.momentum, o.weight_decay, o.nesterov, o.decoupled};
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor p = params[i].detach(), g = grads[i].detach(), b = o.momentum ? at(bufs, i) : Tensor();
    check_group(op, i, p, g, {&b});
    check<ValueError>(!o.momentum || b.defined(), op, ": momentum needs a buffer for parameter ", i);
  }
  auto on_cuda = cuda_groups<3>([&]([[maybe_unused]] const auto& l) {
    LAMINA_CUDA_BRANCH(op, cuda::sgd_update_multi(op, l[0], l[1], l[2], args));
  });
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor p = params[i].detach(), g = grads[i].detach(), b = o.momentum ? at(bufs, i) : Tensor();
    if (!reference && fusable({&p, &b})) {
      Tensor gc = contiguous(astype(g, p.dtype()));
      if (is_cuda(p.device())) {
        on_cuda.add({p, std::move(gc), b});
        continue;
      }
      cpu::sgd_update(p, gc, b, args);
      bump({&p, &b});
      continue;
    }
    Tensor gp = decayed_grad(p, g, o.lr, o.weight_decay, o.decoupled);
    if (!o.momentum) {
      set(p, sub(p, mul(gp, o.lr)));
      continue;
    }
    set(b, mul(b, o.momentum));
    set(b, sub(b, mul(gp, o.lr)));
    if (o.nesterov) set(p, add(p, sub(mul(b, o.momentum), mul(gp, o.lr))));
    else set(p, add(p, b));
  }
  on_cuda.finish();
}

void adam_step(const TensorList& params, const TensorList& grads, const TensorList& m, const TensorList& v,
               const TensorList& v_max, const AdamOptions& o, bool reference) {
  constexpr const char* op = "adam_step";
  check_len(op, params, grads, "gradients", true);
  check_len(op, params, m, "first moments", true);
  check_len(op, params, v, "second moments", true);
  check_len(op, params, v_max, "v_max tensors", false);
  check<ValueError>(o.step >= 1, op, ": step counts updates from 1, got ", o.step);
  GradModeGuard no_grad(false);
  const double t = double(o.step);
  const double step_size = o.lr * std::sqrt(1.0 - std::pow(o.beta2, t)) / (1.0 - std::pow(o.beta1, t));
  const cpu::AdamArgs args{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, step_size, o.decoupled};
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor p = params[i].detach(), g = grads[i].detach(), mi = m[i].detach(), vi = v[i].detach(),
                 vm = at(v_max, i);
    check_group(op, i, p, g, {&mi, &vi, &vm});
  }
  auto on_cuda = cuda_groups<5>([&]([[maybe_unused]] const auto& l) {
    LAMINA_CUDA_BRANCH(op, cuda::adam_update_multi(op, l[0], l[1], l[2], l[3], l[4], args));
  });
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor p = params[i].detach(), g = grads[i].detach(), mi = m[i].detach(), vi = v[i].detach(), vm = at(v_max, i);
    if (!reference && fusable({&p, &mi, &vi, &vm})) {
      Tensor gc = contiguous(astype(g, p.dtype()));
      if (is_cuda(p.device())) {
        on_cuda.add({p, std::move(gc), mi, vi, vm});
        continue;
      }
      cpu::adam_update(p, gc, mi, vi, vm, args);
      bump({&p, &mi, &vi, &vm});
      continue;
    }
    Tensor gp = decayed_grad(p, g, o.lr, o.weight_decay, o.decoupled);
    set(mi, mul(mi, o.beta1));
    set(mi, add(mi, mul(gp, 1.0 - o.beta1)));
    set(vi, mul(vi, o.beta2));
    set(vi, add(vi, mul(mul(gp, gp), 1.0 - o.beta2)));
    Tensor second = vi;
    if (vm.defined()) {
      set(vm, maximum(vm, vi));
      second = vm;
    }
    set(p, sub(p, div(mul(mi, step_size), add(sqrt(second), o.eps))));
  }
  on_cuda.finish();
}

void rmsprop_step(const TensorList& params, const TensorList& grads, const TensorList& avg_sq,
                  const TensorList& avg_grads, const TensorList& bufs, const RmspropOptions& o, bool reference) {
  constexpr const char* op = "rmsprop_step";
  check_len(op, params, grads, "gradients", true);
  check_len(op, params, avg_sq, "squared averages", true);
  check_len(op, params, avg_grads, "gradient averages", false);
  check_len(op, params, bufs, "momentum buffers", o.momentum != 0);
  GradModeGuard no_grad(false);
  const cpu::RmspropArgs args{o.lr, o.rho, o.momentum, o.eps, o.weight_decay, !avg_grads.empty(), o.decoupled};
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor p = params[i].detach(), g = grads[i].detach(), s = avg_sq[i].detach(), a = at(avg_grads, i);
    const Tensor b = o.momentum ? at(bufs, i) : Tensor();
    check_group(op, i, p, g, {&s, &a, &b});
  }
  auto on_cuda = cuda_groups<5>([&]([[maybe_unused]] const auto& l) {
    LAMINA_CUDA_BRANCH(op, cuda::rmsprop_update_multi(op, l[0], l[1], l[2], l[3], l[4], args));
  });
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor p = params[i].detach(), g = grads[i].detach(), s = avg_sq[i].detach(), a = at(avg_grads, i);
    Tensor b = o.momentum ? at(bufs, i) : Tensor();
    if (!reference && fusable({&p, &s, &a, &b})) {
      Tensor gc = contiguous(astype(g, p.dtype()));
      if (is_cuda(p.device())) {
        on_cuda.add({p, std::move(gc), s, a, b});
        continue;
      }
      cpu::rmsprop_update(p, gc, s, a, b, args);
      bump({&p, &s, &a, &b});
      continue;
    }
    Tensor gp = decayed_grad(p, g, o.lr, o.weight_decay, o.decoupled);
    set(s, mul(s, o.rho));
    set(s, add(s, mul(mul(gp, gp), 1.0 - o.rho)));
    Tensor den = s;
    if (a.defined()) {
      set(a, mul(a, o.rho));
      set(a, add(a, mul(gp, 1.0 - o.rho)));
      den = sub(s, mul(a, a));
    }
    Tensor inc = div(mul(gp, o.lr), sqrt(add(den, o.eps)));
    if (b.defined()) {
      set(b, mul(b, o.momentum));
      set(b, add(b, inc));
      set(p, sub(p, b));
    } else {
      set(p, sub(p, inc));
    }
  }
  on_cuda.finish();
}

void adagrad_step(const TensorList& params, const TensorList& grads, const TensorList& acc, const AdagradOptions& o,
                  bool reference) {
  constexpr const char* op = "adagrad_step";
  check_len(op, params, grads, "gradients", true);
  check_len(op, params, acc, "accumulators", true);
  GradModeGuard no_grad(false);
  const cpu::AdagradArgs args{o.lr, o.eps, o.weight_decay, o.decoupled};
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor p = params[i].detach(), g = grads[i].detach(), a = acc[i].detach();
    check_group(op, i, p, g, {&a});
  }
  auto on_cuda = cuda_groups<3>([&]([[maybe_unused]] const auto& l) {
    LAMINA_CUDA_BRANCH(op, cuda::adagrad_update_multi(op, l[0], l[1], l[2], args));
  });
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor p = params[i].detach(), g = grads[i].detach(), a = acc[i].detach();
    if (!reference && fusable({&p, &a})) {
      Tensor gc = contiguous(astype(g, p.dtype()));
      if (is_cuda(p.device())) {
        on_cuda.add({p, std::move(gc), a});
        continue;
      }
      cpu::adagrad_update(p, gc, a, args);
      bump({&p, &a});
      continue;
    }
    Tensor gp = decayed_grad(p, g, o.lr, o.weight_decay, o.decoupled);
    set(a, add(a, mul(gp, gp)));
    set(p, sub(p, div(mul(gp, o.lr), sqrt(add(a, o.eps)))));
  }
  on_cuda.finish();
}

}  // namespace lamina
