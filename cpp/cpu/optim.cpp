// Fused optimizer update kernels, version 1 (dual-compiled, see cpu/isa.h).
//
// One pass over each parameter: read p, g and the state, write p and the state. Adam:
// 4 reads + 3 writes of 4 bytes per float32 element, ~12 FLOP: bandwidth bound, so one
// pass instead of the composite's ~10 ops (each a full read/write sweep) is the gain.
// Every expression mirrors the composite in ops/optim.cpp: scalars are rounded to the
// tensor's dtype first (as a Python scalar operand is), and each op rounds once.
#include "cpu/optim.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "core/parallel.h"

namespace lamina::cpu::LAMINA_KERNELS {

namespace {

template <class T>
T* ptr(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

template <class T>
T nan_max(T a, T b) {  // numpy.maximum, as the composite's maximum
  if (a != a || b != b) return a + b;
  return a > b ? a : b;
}

// Decoupled decay (p -= (lr * wd) * p) or L2 (g + wd * p): the gradient actually used.
template <class T>
inline T decay(T& p, T g, bool decoupled, T lr_wd, T wd, bool on) {
  if (!on) return g;
  if (decoupled) {
    p = p - lr_wd * p;
    return g;
  }
  return g + wd * p;
}

template <class T, class Fn>
void for_elements(const Tensor& p, Fn&& fn) {
  parallel_for(0, p.numel(), 65536, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) fn(i);
  });
}

template <class T>
void sgd(const Tensor& pt, const Tensor& gt, const Tensor& bt, const SgdArgs& a) {
  T *p = ptr<T>(pt), *b = ptr<T>(bt);
  const T* g = ptr<T>(gt);
  const T lr = T(a.lr), mom = T(a.momentum), wd = T(a.weight_decay), lr_wd = T(a.lr * a.weight_decay);
  const bool on = a.weight_decay != 0, dec = a.decoupled;
  if (!a.momentum) {
    for_elements<T>(pt, [&](int64_t i) {
      T pi = p[i];
      const T gi = decay(pi, g[i], dec, lr_wd, wd, on);
      p[i] = pi - lr * gi;
    });
  } else if (a.nesterov) {
    for_elements<T>(pt, [&](int64_t i) {
      T pi = p[i];
      const T gi = decay(pi, g[i], dec, lr_wd, wd, on);
      const T bi = b[i] * mom - lr * gi;
      b[i] = bi;
      p[i] = pi + (mom * bi - lr * gi);
    });
  } else {
    for_elements<T>(pt, [&](int64_t i) {
      T pi = p[i];
      const T gi = decay(pi, g[i], dec, lr_wd, wd, on);
      const T bi = b[i] * mom - lr * gi;
      b[i] = bi;
      p[i] = pi + bi;
    });
  }
}

template <class T>
void adam(const Tensor& pt, const Tensor& gt, const Tensor& mt, const Tensor& vt, const Tensor& vmt,
          const AdamArgs& a) {
  T *p = ptr<T>(pt), *m = ptr<T>(mt), *v = ptr<T>(vt), *vm = ptr<T>(vmt);
  const T* g = ptr<T>(gt);
  const T b1 = T(a.beta1), c1 = T(1.0 - a.beta1), b2 = T(a.beta2), c2 = T(1.0 - a.beta2), eps = T(a.eps);
  const T step = T(a.step_size), wd = T(a.weight_decay), lr_wd = T(a.lr * a.weight_decay);
  const bool on = a.weight_decay != 0, dec = a.decoupled;
  for_elements<T>(pt, [&](int64_t i) {
    T pi = p[i];
    const T gi = decay(pi, g[i], dec, lr_wd, wd, on);
    const T mi = m[i] * b1 + c1 * gi;
    const T vi = v[i] * b2 + c2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    T second = vi;
    if (vm) {
      second = nan_max(vm[i], vi);
      vm[i] = second;
    }
    p[i] = pi - (step * mi) / (std::sqrt(second) + eps);
  });
}

template <class T>
void rmsprop(const Tensor& pt, const Tensor& gt, const Tensor& st, const Tensor& at, const Tensor& bt,
             const RmspropArgs& a) {
  T *p = ptr<T>(pt), *s = ptr<T>(st), *avg = ptr<T>(at), *b = ptr<T>(bt);
  const T* g = ptr<T>(gt);
  const T rho = T(a.rho), c = T(1.0 - a.rho), lr = T(a.lr), eps = T(a.eps), mom = T(a.momentum);
  const T wd = T(a.weight_decay), lr_wd = T(a.lr * a.weight_decay);
  const bool on = a.weight_decay != 0, dec = a.decoupled;
  for_elements<T>(pt, [&](int64_t i) {
    T pi = p[i];
    const T gi = decay(pi, g[i], dec, lr_wd, wd, on);
    const T si = s[i] * rho + c * (gi * gi);
    s[i] = si;
    T den = si;
    if (avg) {
      const T ai = avg[i] * rho + c * gi;
      avg[i] = ai;
      den = si - ai * ai;
    }
    const T inc = (lr * gi) / std::sqrt(den + eps);
    if (b) {
      const T bi = b[i] * mom + inc;
      b[i] = bi;
      p[i] = pi - bi;
    } else {
      p[i] = pi - inc;
    }
  });
}

template <class T>
void adagrad(const Tensor& pt, const Tensor& gt, const Tensor& acct, const AdagradArgs& a) {
  T *p = ptr<T>(pt), *acc = ptr<T>(acct);
  const T* g = ptr<T>(gt);
  const T lr = T(a.lr), eps = T(a.eps), wd = T(a.weight_decay), lr_wd = T(a.lr * a.weight_decay);
  const bool on = a.weight_decay != 0, dec = a.decoupled;
  for_elements<T>(pt, [&](int64_t i) {
    T pi = p[i];
    const T gi = decay(pi, g[i], dec, lr_wd, wd, on);
    const T ai = acc[i] + gi * gi;
    acc[i] = ai;
    p[i] = pi - (lr * gi) / std::sqrt(ai + eps);
  });
}

#define LAMINA_OPTIM_DISPATCH(name, fn, args)                       \
  if (p.dtype() == DType::Float32) return fn<float> args;           \
  if (p.dtype() == DType::Float64) return fn<double> args;          \
  throw TypeError(#name ": kernel expects float32 or float64");

}  // namespace

void sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, const SgdArgs& a) {
  LAMINA_OPTIM_DISPATCH(sgd_step, sgd, (p, g, buf, a))
}

void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const Tensor& v_max,
                 const AdamArgs& a) {
  LAMINA_OPTIM_DISPATCH(adam_step, adam, (p, g, m, v, v_max, a))
}

void rmsprop_update(const Tensor& p, const Tensor& g, const Tensor& avg_sq, const Tensor& avg_g, const Tensor& buf,
                    const RmspropArgs& a) {
  LAMINA_OPTIM_DISPATCH(rmsprop_step, rmsprop, (p, g, avg_sq, avg_g, buf, a))
}

void adagrad_update(const Tensor& p, const Tensor& g, const Tensor& acc, const AdagradArgs& a) {
  LAMINA_OPTIM_DISPATCH(adagrad_step, adagrad, (p, g, acc, a))
}

}  // namespace lamina::cpu::LAMINA_KERNELS
