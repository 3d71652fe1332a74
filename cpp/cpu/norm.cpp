// Normalization kernels, version 1 (dual-compiled: baseline and AVX2+FMA, see cpu/isa.h).
//
// layer_norm_forward: one pass per row for the mean, one for the centred variance (both
//   accumulated in double), one to write y. Rows split across threads. Per element:
//   ~3 reads + 1 write, ~6 FLOP: bandwidth bound.
// layer_norm_backward: per row, sum(g) and sum(g * xhat) with g = dy * gamma, then
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). dgamma / dbeta are column sums
//   over rows, split by column blocks so that no two threads write the same column.
// batch_norm_*: x is [outer, C, inner]; statistics are per channel over outer * inner
//   elements, split by channel blocks; apply and backward's dx pass split by outer.
#include "cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/errors.h"
#include "core/parallel.h"

namespace lamina::cpu::LAMINA_KERNELS {

namespace {

template <class T>
const T* opt(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }
template <class T>
T* opt_mut(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

int64_t grain_for(int64_t work_per_item) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(work_per_item, 1)); }

template <class T>
void ln_forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x, const Tensor& gamma,
                const Tensor& beta, double eps) {
  const int64_t cols = x.ndim() ? x.shape().back() : 1, rows = cols ? x.numel() / cols : 0;
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  T* mp = mean.data<T>();
  T* rp = rstd.data<T>();
  const T* gp = opt<T>(gamma);
  const T* bp = opt<T>(beta);
  parallel_for(0, rows, grain_for(cols), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* p = xp + r * cols;
      T* q = yp + r * cols;
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += double(p[c]);
      const double m = cols ? s / double(cols) : 0.0;
      double v = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const double d = double(p[c]) - m;
        v += d * d;
      }
      const double rs = 1.0 / std::sqrt((cols ? v / double(cols) : 0.0) + eps);
      mp[r] = T(m);
      rp[r] = T(rs);
      const T mt = T(m), rt = T(rs);
      if (gp && bp) {
        for (int64_t c = 0; c < cols; ++c) q[c] = (p[c] - mt) * rt * gp[c] + bp[c];
      } else if (gp) {
        for (int64_t c = 0; c < cols; ++c) q[c] = (p[c] - mt) * rt * gp[c];
      } else if (bp) {
        for (int64_t c = 0; c < cols; ++c) q[c] = (p[c] - mt) * rt + bp[c];
      } else {
        for (int64_t c = 0; c < cols; ++c) q[c] = (p[c] - mt) * rt;
      }
    }
  });
}

template <class T>
void ln_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta, const Tensor& dy, const Tensor& x,
                 const Tensor& mean, const Tensor& rstd, const Tensor& gamma) {
  const int64_t cols = x.ndim() ? x.shape().back() : 1, rows = cols ? x.numel() / cols : 0;
  const T *xp = x.data<T>(), *dyp = dy.data<T>(), *mp = mean.data<T>(), *rp = rstd.data<T>();
  const T* gp = opt<T>(gamma);
  if (dx.defined()) {
    T* dxp = dx.data<T>();
    parallel_for(0, rows, grain_for(cols), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const T *p = xp + r * cols, *d = dyp + r * cols;
        T* q = dxp + r * cols;
        const T m = mp[r], rs = rp[r];
        double sg = 0, sgx = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const T g = gp ? d[c] * gp[c] : d[c];
          sg += double(g);
          sgx += double(g * (p[c] - m));
        }
        const T a = T(sg / double(cols)), b = T(sgx / double(cols) * double(rs) * double(rs));
        for (int64_t c = 0; c < cols; ++c) {
          const T g = gp ? d[c] * gp[c] : d[c];
          q[c] = rs * (g - a - (p[c] - m) * b);
        }
      }
    });
  }
  if (!dgamma.defined() && !dbeta.defined()) return;
  T* dgp = opt_mut<T>(dgamma);
  T* dbp = opt_mut<T>(dbeta);
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (cols + kBlock - 1) / kBlock;
  parallel_for(0, blocks, grain_for(rows * kBlock), [&](int64_t lo, int64_t hi) {
    double ag[kBlock], ab[kBlock];
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t c0 = blk * kBlock, n = std::min(kBlock, cols - c0);
      std::fill(ag, ag + n, 0.0);
      std::fill(ab, ab + n, 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const T *p = xp + r * cols + c0, *d = dyp + r * cols + c0;
        const T m = mp[r], rs = rp[r];
        for (int64_t c = 0; c < n; ++c) {
          ag[c] += double(d[c] * ((p[c] - m) * rs));
          ab[c] += double(d[c]);
        }
      }
      for (int64_t c = 0; c < n; ++c) {
        if (dgp) dgp[c0 + c] = T(ag[c]);
        if (dbp) dbp[c0 + c] = T(ab[c]);
      }
    }
  });
}

template <class T>
void bn_stats(const Tensor& mean, const Tensor& var, const Tensor& rstd, const Tensor& x, int64_t outer, int64_t C,
              int64_t inner, double eps) {
  const T* xp = x.data<T>();
  T *mp = mean.data<T>(), *vp = var.data<T>(), *rp = rstd.data<T>();
  const double n = double(outer * inner);
  parallel_for(0, C, grain_for(outer * inner), [&](int64_t lo, int64_t hi) {
    std::vector<double> s(size_t(hi - lo), 0.0), q(size_t(hi - lo), 0.0);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = lo; c < hi; ++c) {
        const T* p = xp + (o * C + c) * inner;
        double a = 0;
        for (int64_t i = 0; i < inner; ++i) a += double(p[i]);
        s[size_t(c - lo)] += a;
      }
    for (int64_t c = lo; c < hi; ++c) s[size_t(c - lo)] = n > 0 ? s[size_t(c - lo)] / n : 0.0;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = lo; c < hi; ++c) {
        const T* p = xp + (o * C + c) * inner;
        const double m = s[size_t(c - lo)];
        double a = 0;
        for (int64_t i = 0; i < inner; ++i) {
          const double d = double(p[i]) - m;
          a += d * d;
        }
        q[size_t(c - lo)] += a;
      }
    for (int64_t c = lo; c < hi; ++c) {
      const double v = n > 0 ? q[size_t(c - lo)] / n : 0.0;
      mp[c] = T(s[size_t(c - lo)]);
      vp[c] = T(v);
      rp[c] = T(1.0 / std::sqrt(v + eps));
    }
  });
}

template <class T>
void bn_apply(const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& gamma,
              const Tensor& beta, int64_t outer, int64_t C, int64_t inner) {
  const T *xp = x.data<T>(), *mp = mean.data<T>(), *rp = rstd.data<T>();
  const T* gp = opt<T>(gamma);
  const T* bp = opt<T>(beta);
  T* yp = y.data<T>();
  parallel_for(0, outer, grain_for(C * inner), [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o)
      for (int64_t c = 0; c < C; ++c) {
        const T *p = xp + (o * C + c) * inner;
        T* q = yp + (o * C + c) * inner;
        const T m = mp[c], scale = gp ? rp[c] * gp[c] : rp[c], shift = bp ? bp[c] : T(0);
        for (int64_t i = 0; i < inner; ++i) q[i] = (p[i] - m) * scale + shift;
      }
  });
}

template <class T>
void bn_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta, const Tensor& dy, const Tensor& x,
                 const Tensor& mean, const Tensor& rstd, const Tensor& gamma, int64_t outer, int64_t C,
                 int64_t inner) {
  const T *xp = x.data<T>(), *dyp = dy.data<T>(), *mp = mean.data<T>(), *rp = rstd.data<T>();
  const T* gp = opt<T>(gamma);
  std::vector<double> sdy(size_t(C), 0.0), sdyx(size_t(C), 0.0);
  parallel_for(0, C, grain_for(outer * inner), [&](int64_t lo, int64_t hi) {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = lo; c < hi; ++c) {
        const int64_t off = (o * C + c) * inner;
        const T *p = xp + off, *d = dyp + off;
        const T m = mp[c];
        double a = 0, b = 0;
        for (int64_t i = 0; i < inner; ++i) {
          a += double(d[i]);
          b += double(d[i] * (p[i] - m));
        }
        sdy[size_t(c)] += a;
        sdyx[size_t(c)] += b;
      }
  });
  if (T* dgp = opt_mut<T>(dgamma))
    for (int64_t c = 0; c < C; ++c) dgp[c] = T(sdyx[size_t(c)] * double(rp[c]));
  if (T* dbp = opt_mut<T>(dbeta))
    for (int64_t c = 0; c < C; ++c) dbp[c] = T(sdy[size_t(c)]);
  if (!dx.defined()) return;
  const double n = double(outer * inner);
  const size_t nc = size_t(C);
  std::vector<T> k0(nc), k1(nc), k2(nc);
  for (int64_t c = 0; c < C; ++c) {  // dx = k0 * dy - k1 - k2 * (x - mean)
    const double rs = double(rp[c]), g = gp ? double(gp[c]) : 1.0;
    k0[size_t(c)] = T(g * rs);
    k1[size_t(c)] = T(g * rs * sdy[size_t(c)] / n);
    k2[size_t(c)] = T(g * rs * rs * rs * sdyx[size_t(c)] / n);
  }
  T* dxp = dx.data<T>();
  parallel_for(0, outer, grain_for(C * inner), [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t off = (o * C + c) * inner;
        const T *p = xp + off, *d = dyp + off;
        T* q = dxp + off;
        const T a = k0[size_t(c)], b = k1[size_t(c)], e = k2[size_t(c)], m = mp[c];
        for (int64_t i = 0; i < inner; ++i) q[i] = a * d[i] - b - e * (p[i] - m);
      }
  });
}

#define LAMINA_NORM_DISPATCH(name, fn, args)                                        \
  if (x.dtype() == DType::Float32) return fn<float> args;                           \
  if (x.dtype() == DType::Float64) return fn<double> args;                          \
  throw TypeError(#name ": kernel expects float32 or float64");

}  // namespace

void layer_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, double eps) {
  LAMINA_NORM_DISPATCH(layer_norm, ln_forward, (y, mean, rstd, x, gamma, beta, eps))
}

void layer_norm_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta, const Tensor& dy,
                         const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& gamma) {
  LAMINA_NORM_DISPATCH(layer_norm, ln_backward, (dx, dgamma, dbeta, dy, x, mean, rstd, gamma))
}

void batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& rstd, const Tensor& x, int64_t outer,
                      int64_t channels, int64_t inner, double eps) {
  LAMINA_NORM_DISPATCH(batch_norm, bn_stats, (mean, var, rstd, x, outer, channels, inner, eps))
}

void batch_norm_apply(const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& gamma,
                      const Tensor& beta, int64_t outer, int64_t channels, int64_t inner) {
  LAMINA_NORM_DISPATCH(batch_norm, bn_apply, (y, x, mean, rstd, gamma, beta, outer, channels, inner))
}

void batch_norm_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta, const Tensor& dy,
                         const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& gamma, int64_t outer,
                         int64_t channels, int64_t inner) {
  LAMINA_NORM_DISPATCH(batch_norm, bn_backward, (dx, dgamma, dbeta, dy, x, mean, rstd, gamma, outer, channels, inner))
}

}  // namespace lamina::cpu::LAMINA_KERNELS
