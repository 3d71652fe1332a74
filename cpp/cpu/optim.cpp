// Fused optimizer update kernels, version 2 (dual-compiled, see cpu/isa.h): vectorized.
//
// One pass over each parameter: read p, g and the state, write p and the state. Adam:
// 4 reads + 3 writes of 4 bytes per float32 element, ~12 FLOP: bandwidth bound, so one
// pass instead of the composite's ~10 ops (each a full read/write sweep) is the gain.
// Every expression mirrors the composite in ops/optim.cpp: scalars are rounded to the
// tensor's dtype first (as a Python scalar operand is), and each op rounds once.
#include "cpu/optim.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/errors.h"
#include "core/parallel.h"
#include "cpu/static_switch.h"

namespace lamina::cpu::LAMINA_KERNELS {

namespace {

template <class T>
T* ptr(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

template <class T>
inline T nan_max(T a, T b) {  // numpy.maximum, as the composite's maximum
  if (a != a || b != b) return a + b;
  return a > b ? a : b;
}

// Decoupled decay (p -= (lr * wd) * p) or L2 (g + wd * p): the gradient actually used.
template <bool kDecay, bool kDecoupled, class T>
inline T decay(T& p, T g, T lr_wd, T wd) {
  if constexpr (!kDecay) return g;
  if constexpr (kDecoupled) {
    p = p - lr_wd * p;
    return g;
  }
  return g + wd * p;
}

// The loops take __restrict pointers and their scalars by value, in a struct copied into
// the function: in version 1 they were a lambda's by-reference captures, which the
// compiler had to reload after every store (they might alias p), and the loops stayed
// scalar (16% of an MLP training step went to Adam's update).
template <class F>
void for_ranges(int64_t n, F&& f) {
  parallel_for(0, n, 65536, [&](int64_t lo, int64_t hi) { f(lo, hi); });
}

template <class T>
struct SgdScalars {
  T lr, mom, wd, lr_wd;
};

template <bool kDecay, bool kDecoupled, int kMomentum, class T>  // kMomentum: 0 none, 1 plain, 2 Nesterov
void sgd_range(int64_t lo, int64_t hi, T* __restrict p, const T* __restrict g, T* __restrict b, const SgdScalars<T> s) {
  for (int64_t i = lo; i < hi; ++i) {
    T pi = p[i];
    const T gi = decay<kDecay, kDecoupled>(pi, g[i], s.lr_wd, s.wd);
    if constexpr (kMomentum == 0) {
      p[i] = pi - s.lr * gi;
    } else {
      const T bi = b[i] * s.mom - s.lr * gi;
      b[i] = bi;
      if constexpr (kMomentum == 2) p[i] = pi + (s.mom * bi - s.lr * gi);
      else p[i] = pi + bi;
    }
  }
}

template <class T>
void sgd(const Tensor& pt, const Tensor& gt, const Tensor& bt, const SgdArgs& a) {
  T *p = ptr<T>(pt), *b = ptr<T>(bt);
  const T* g = ptr<T>(gt);
  const SgdScalars<T> s{T(a.lr), T(a.momentum), T(a.weight_decay), T(a.lr * a.weight_decay)};
  const int momentum = !a.momentum ? 0 : a.nesterov ? 2 : 1;
  with_flag(a.weight_decay != 0, [&](auto on) {
    with_flag(a.decoupled, [&](auto dec) {
      for_ranges(pt.numel(), [&](int64_t lo, int64_t hi) {
        if (momentum == 0) sgd_range<on(), dec(), 0>(lo, hi, p, g, b, s);
        else if (momentum == 1) sgd_range<on(), dec(), 1>(lo, hi, p, g, b, s);
        else sgd_range<on(), dec(), 2>(lo, hi, p, g, b, s);
      });
    });
  });
}

template <class T>
struct AdamScalars {
  T b1, c1, b2, c2, eps, step, wd, lr_wd;
};

template <bool kDecay, bool kDecoupled, bool kAmsgrad, class T>
void adam_range(int64_t lo, int64_t hi, T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v,
                T* __restrict vm, const AdamScalars<T> s) {
  for (int64_t i = lo; i < hi; ++i) {
    T pi = p[i];
    const T gi = decay<kDecay, kDecoupled>(pi, g[i], s.lr_wd, s.wd);
    const T mi = m[i] * s.b1 + s.c1 * gi;
    const T vi = v[i] * s.b2 + s.c2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    T second = vi;
    if constexpr (kAmsgrad) {
      second = nan_max(vm[i], vi);
      vm[i] = second;
    }
    p[i] = pi - (s.step * mi) / (std::sqrt(second) + s.eps);
  }
}

template <class T>
void adam(const Tensor& pt, const Tensor& gt, const Tensor& mt, const Tensor& vt, const Tensor& vmt,
          const AdamArgs& a) {
  T *p = ptr<T>(pt), *m = ptr<T>(mt), *v = ptr<T>(vt), *vm = ptr<T>(vmt);
  const T* g = ptr<T>(gt);
  const AdamScalars<T> s{T(a.beta1), T(1.0 - a.beta1), T(a.beta2), T(1.0 - a.beta2), T(a.eps),
                         T(a.step_size), T(a.weight_decay), T(a.lr * a.weight_decay)};
  with_flag(a.weight_decay != 0, [&](auto on) {
    with_flag(a.decoupled, [&](auto dec) {
      with_flag(vm != nullptr, [&](auto ams) {
        for_ranges(pt.numel(), [&](int64_t lo, int64_t hi) { adam_range<on(), dec(), ams()>(lo, hi, p, g, m, v, vm, s); });
      });
    });
  });
}

template <class T>
struct RmspropScalars {
  T rho, c, lr, eps, mom, wd, lr_wd;
};

template <bool kDecay, bool kDecoupled, bool kCentered, bool kMomentum, class T>
void rmsprop_range(int64_t lo, int64_t hi, T* __restrict p, const T* __restrict g, T* __restrict sq,
                   T* __restrict avg, T* __restrict b, const RmspropScalars<T> s) {
  for (int64_t i = lo; i < hi; ++i) {
    T pi = p[i];
    const T gi = decay<kDecay, kDecoupled>(pi, g[i], s.lr_wd, s.wd);
    const T si = sq[i] * s.rho + s.c * (gi * gi);
    sq[i] = si;
    T den = si;
    if constexpr (kCentered) {
      const T ai = avg[i] * s.rho + s.c * gi;
      avg[i] = ai;
      den = si - ai * ai;
    }
    const T inc = (s.lr * gi) / std::sqrt(den + s.eps);
    if constexpr (kMomentum) {
      const T bi = b[i] * s.mom + inc;
      b[i] = bi;
      p[i] = pi - bi;
    } else {
      p[i] = pi - inc;
    }
  }
}

template <class T>
void rmsprop(const Tensor& pt, const Tensor& gt, const Tensor& st, const Tensor& at, const Tensor& bt,
             const RmspropArgs& a) {
  T *p = ptr<T>(pt), *sq = ptr<T>(st), *avg = ptr<T>(at), *b = ptr<T>(bt);
  const T* g = ptr<T>(gt);
  const RmspropScalars<T> s{T(a.rho), T(1.0 - a.rho), T(a.lr), T(a.eps), T(a.momentum), T(a.weight_decay),
                            T(a.lr * a.weight_decay)};
  with_flag(a.weight_decay != 0, [&](auto on) {
    with_flag(a.decoupled, [&](auto dec) {
      with_flag(avg != nullptr, [&](auto centered) {
        with_flag(b != nullptr, [&](auto mom) {
          for_ranges(pt.numel(), [&](int64_t lo, int64_t hi) {
            rmsprop_range<on(), dec(), centered(), mom()>(lo, hi, p, g, sq, avg, b, s);
          });
        });
      });
    });
  });
}

template <class T>
struct AdagradScalars {
  T lr, eps, wd, lr_wd;
};

template <bool kDecay, bool kDecoupled, class T>
void adagrad_range(int64_t lo, int64_t hi, T* __restrict p, const T* __restrict g, T* __restrict acc,
                   const AdagradScalars<T> s) {
  for (int64_t i = lo; i < hi; ++i) {
    T pi = p[i];
    const T gi = decay<kDecay, kDecoupled>(pi, g[i], s.lr_wd, s.wd);
    const T ai = acc[i] + gi * gi;
    acc[i] = ai;
    p[i] = pi - (s.lr * gi) / std::sqrt(ai + s.eps);
  }
}

template <class T>
void adagrad(const Tensor& pt, const Tensor& gt, const Tensor& acct, const AdagradArgs& a) {
  T *p = ptr<T>(pt), *acc = ptr<T>(acct);
  const T* g = ptr<T>(gt);
  const AdagradScalars<T> s{T(a.lr), T(a.eps), T(a.weight_decay), T(a.lr * a.weight_decay)};
  with_flag(a.weight_decay != 0, [&](auto on) {
    with_flag(a.decoupled, [&](auto dec) {
      for_ranges(pt.numel(), [&](int64_t lo, int64_t hi) { adagrad_range<on(), dec()>(lo, hi, p, g, acc, s); });
    });
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
