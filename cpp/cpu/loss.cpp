// Loss kernels, version 2 (dual-compiled: baseline and AVX2+FMA, see cpu/isa.h).
//
// softmax_cross_entropy_forward: per row of C logits, a max pass and a sum-of-exp pass
//   (both with the vectorized lane reductions of cpu/lane_sum.h, exp from cpu/vmath.h)
//   and, for dense targets, one pass for sum_c w_c t_c (lse - x_c). Reads C elements (2C
//   dense), writes 2. The softmax is never stored: backward recomputes exp(x - lse) from
//   the saved lse.
// softmax_cross_entropy_backward: one pass per row, dlogits = g (p W - w t), the fused
//   form of "softmax minus one-hot" (times the class weights).
// bce_with_logits_*: elementwise (float32 exp and log1p from cpu/vmath.h, so the loops
//   vectorize), split across threads by element ranges.
#include "cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/errors.h"
#include "core/parallel.h"
#include "cpu/lane_sum.h"
#include "cpu/vmath.h"

namespace lamina::cpu::LAMINA_KERNELS {

namespace {

int64_t grain_for(int64_t work_per_item) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(work_per_item, 1)); }

template <class T>
void sce_forward(const Tensor& loss, const Tensor& lse, const Tensor& logits, const Tensor& labels,
                 const Tensor& targets, const Tensor& weight) {
  const int64_t C = logits.shape().back(), rows = C ? logits.numel() / C : loss.numel();
  const T* xp = logits.data<T>();
  const int64_t* lp = labels.defined() ? labels.data<int64_t>() : nullptr;
  const T* tp = targets.defined() ? targets.data<T>() : nullptr;
  const T* wp = weight.defined() ? weight.data<T>() : nullptr;
  T *outp = loss.data<T>(), *lsep = lse.data<T>();
  parallel_for(0, rows, grain_for(C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* p = xp + r * C;
      // A NaN logit is skipped here and makes the sum of exp below NaN, so lse is NaN.
      T m = lane_max_skipping_nan(C, p);
      if (m == -std::numeric_limits<T>::infinity()) m = 0;  // all -inf (or NaN): no NaN from inf - inf
      const double s = lane_sum_of<T>(C, [p, m](int64_t c) { return fast_exp_nonpositive(T(p[c] - m)); });
      const double l = double(m) + std::log(s);
      lsep[r] = T(l);
      if (lp) {
        const int64_t y = lp[r];
        const double w = wp ? double(wp[y]) : 1.0;
        outp[r] = T(w * (l - double(p[y])));
      } else {
        // A zero target weight contributes nothing, even where x = -inf.
        const T* t = tp + r * C;
        const T lt = T(l);
        auto term = [lt](auto wt, auto x) { return wt != 0 ? wt * (lt - x) : wt; };
        const double acc =
            wp ? lane_sum<T>(C, [term](auto tv, auto wv, auto x) { return term(wv * tv, x); }, t, wp, p)
               : lane_sum<T>(C, term, t, p);
        outp[r] = T(acc);
      }
    }
  });
}

template <class T>
void sce_backward(const Tensor& dlogits, const Tensor& g, const Tensor& logits, const Tensor& lse,
                  const Tensor& labels, const Tensor& targets, const Tensor& weight) {
  const int64_t C = logits.shape().back(), rows = C ? logits.numel() / C : 0;
  const T *xp = logits.data<T>(), *gp = g.data<T>(), *lsep = lse.data<T>();
  const int64_t* lp = labels.defined() ? labels.data<int64_t>() : nullptr;
  const T* tp = targets.defined() ? targets.data<T>() : nullptr;
  const T* wp = weight.defined() ? weight.data<T>() : nullptr;
  T* dp = dlogits.data<T>();
  parallel_for(0, rows, grain_for(C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* p = xp + r * C;
      T* q = dp + r * C;
      const T l = lsep[r], gr = gp[r];
      if (lp) {
        const int64_t y = lp[r];
        const T w = wp ? wp[y] : T(1), scale = gr * w;
        for (int64_t c = 0; c < C; ++c) q[c] = scale * fast_exp_nonpositive(T(p[c] - l));
        q[y] -= scale;
      } else {
        const T* t = tp + r * C;
        if (wp) {
          const T scale = gr * T(lane_sum<T>(C, [](auto tv, auto wv) { return wv * tv; }, t, wp));
          for (int64_t c = 0; c < C; ++c) q[c] = scale * fast_exp_nonpositive(T(p[c] - l)) - gr * wp[c] * t[c];
        } else {
          const T scale = gr * T(lane_sum<T>(C, [](auto tv) { return tv; }, t));
          for (int64_t c = 0; c < C; ++c) q[c] = scale * fast_exp_nonpositive(T(p[c] - l)) - gr * t[c];
        }
      }
    }
  });
}

template <class T>
void bce_forward(const Tensor& loss, const Tensor& x, const Tensor& t) {
  const T *xp = x.data<T>(), *tp = t.data<T>();
  T* op = loss.data<T>();
  parallel_for(0, x.numel(), 32768, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T v = xp[i];
      const T relu = v > 0 ? v : T(0), av = v < 0 ? -v : v;
      op[i] = relu - v * tp[i] + fast_log1p_unit(fast_exp(-av));
    }
  });
}

template <class T>
void bce_backward(const Tensor& dx, const Tensor& g, const Tensor& x, const Tensor& t) {
  const T *xp = x.data<T>(), *tp = t.data<T>(), *gp = g.data<T>();
  T* dp = dx.data<T>();
  parallel_for(0, x.numel(), 32768, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) dp[i] = gp[i] * (T(1) / (T(1) + fast_exp(-xp[i])) - tp[i]);
  });
}

#define LAMINA_LOSS_DISPATCH(name, fn, dt, args)                        \
  if ((dt) == DType::Float32) return fn<float> args;                    \
  if ((dt) == DType::Float64) return fn<double> args;                   \
  throw TypeError(#name ": kernel expects float32 or float64");

}  // namespace

void softmax_cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& logits, const Tensor& labels,
                                   const Tensor& targets, const Tensor& weight) {
  LAMINA_LOSS_DISPATCH(softmax_cross_entropy, sce_forward, logits.dtype(),
                       (loss, lse, logits, labels, targets, weight))
}

void softmax_cross_entropy_backward(const Tensor& dlogits, const Tensor& g, const Tensor& logits, const Tensor& lse,
                                    const Tensor& labels, const Tensor& targets, const Tensor& weight) {
  LAMINA_LOSS_DISPATCH(softmax_cross_entropy, sce_backward, logits.dtype(),
                       (dlogits, g, logits, lse, labels, targets, weight))
}

void bce_with_logits_forward(const Tensor& loss, const Tensor& x, const Tensor& t) {
  LAMINA_LOSS_DISPATCH(binary_cross_entropy_with_logits, bce_forward, x.dtype(), (loss, x, t))
}

void bce_with_logits_backward(const Tensor& dx, const Tensor& g, const Tensor& x, const Tensor& t) {
  LAMINA_LOSS_DISPATCH(binary_cross_entropy_with_logits, bce_backward, x.dtype(), (dx, g, x, t))
}

}  // namespace lamina::cpu::LAMINA_KERNELS
