// Normalization kernels, version 2 (dual-compiled: baseline and AVX2+FMA, see cpu/isa.h).
//
// Row and plane statistics use the vectorized blocked sums of cpu/lane_sum.h (float32
// lanes, block totals in double). The variance is two-pass over data that is still in L1
// (a row, or one [inner] plane of a channel): the second pass sums d = x - m and d^2 around
// the rounded mean m, and var = E[d^2] - E[d]^2 removes the rounding of m exactly.
//
// layer_norm_forward: rows split across threads; per row three passes in L1 (sum, centred
//   sums, write y). Memory: read x, write y.
// layer_norm_backward: rows in fixed blocks of kRowBlock; per row the two sums sum(g) and
//   sum(g * xhat) (g = dy * gamma), then, while the row is in L1, its dx and its dy * xhat
//   and dy terms added to the block's dgamma / dbeta partials; the partials are added in
//   block order (in double) afterwards. One pass over x and dy instead of two, and the
//   result does not depend on the thread count.
// batch_norm_*: x is [outer, C, inner]. Statistics per (outer, channel) plane (mean and M2,
//   two-pass within the plane), combined per channel in a fixed order (Chan et al.:
//   M2 = sum M2_p + inner * sum (mean_p - mean)^2): one pass over x. Backward's two sums
//   are per plane as well, then one pass writes dx. Planes smaller than kSmallPlane (dense
//   [batch, features] inputs have inner = 1) take column sums along rows instead.
#include "cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/errors.h"
#include "core/parallel.h"
#include "cpu/lane_sum.h"
#include "cpu/static_switch.h"

namespace lamina::cpu::LAMINA_KERNELS {

namespace {

template <class T>
const T* opt(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }
template <class T>
T* opt_mut(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

int64_t grain_for(int64_t work_per_item) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(work_per_item, 1)); }

// Partial sums buffer of the calling thread, kept between calls: a fresh allocation of this
// size would fault in new pages on every training step.
template <class T>
T* scratch(size_t n) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

// Calls fn with std::true_type when p is non-null, std::false_type otherwise, so that the
// element loops are compiled without a per-element test.
template <class P, class F>
void with_optional(const P* p, F&& fn) {
  with_flag(p != nullptr, fn);
}

// The two passes of a variance over n values still in L1: returns their mean m rounded to
// T, with sd = sum(x - m) and sd2 = sum((x - m)^2) (the header says why both).
template <class T>
T centered_sums(const T* p, int64_t n, double& sd, double& sd2) {
  const T m = T(lane_sum<T>(n, [](auto v) { return v; }, p) / double(n));
  lane_sum2<T>(
      n, sd, sd2, [m](auto v) { return v - m; },
      [m](auto v) {
        const auto d = v - m;
        return d * d;
      },
      p);
  return m;
}

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
  with_optional(gp, [&](auto has_gamma) {
    with_optional(bp, [&](auto has_beta) {
      parallel_for(0, rows, grain_for(cols), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          const T* p = xp + r * cols;
          T* q = yp + r * cols;
          double sd, sd2;
          const T m = centered_sums(p, cols, sd, sd2);
          const double dm = sd / double(cols);
          const double var = std::max(0.0, sd2 / double(cols) - dm * dm);
          const double rs = 1.0 / std::sqrt(var + eps);
          mp[r] = T(double(m) + dm);
          rp[r] = T(rs);
          const T mt = T(double(m) + dm), rt = T(rs);
          for (int64_t c = 0; c < cols; ++c) {
            T v = (p[c] - mt) * rt;
            if constexpr (has_gamma) v *= gp[c];
            if constexpr (has_beta) v += bp[c];
            q[c] = v;
          }
        }
      });
    });
  });
}

// One row of layer norm's input gradient: dx = rs (g - a - xhat b), g = dy * gamma. The
// restrict-qualified parameters let the loop vectorize without run-time alias checks.
template <class T, bool kGamma>
void ln_dx_row(int64_t cols, T* __restrict dx, const T* __restrict dy, const T* __restrict x,
               const T* __restrict gamma, T mean, T rs, T a, T b) {
  for (int64_t c = 0; c < cols; ++c) {
    const T g = kGamma ? dy[c] * gamma[c] : dy[c];
    dx[c] = rs * (g - a - (x[c] - mean) * rs * b);
  }
}

// One row's contribution to the dgamma (sum dy * xhat) and dbeta (sum dy) partials.
template <class T>
void ln_param_row(int64_t cols, T* __restrict dgamma, T* __restrict dbeta, const T* __restrict dy,
                  const T* __restrict x, T mean, T rs) {
  for (int64_t c = 0; c < cols; ++c) {
    dgamma[c] += dy[c] * ((x[c] - mean) * rs);
    dbeta[c] += dy[c];
  }
}

template <class T>
void ln_backward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta, const Tensor& dy, const Tensor& x,
                 const Tensor& mean, const Tensor& rstd, const Tensor& gamma) {
  const int64_t cols = x.ndim() ? x.shape().back() : 1, rows = cols ? x.numel() / cols : 0;
  const T *xp = x.data<T>(), *dyp = dy.data<T>(), *mp = mean.data<T>(), *rp = rstd.data<T>();
  const T* gp = opt<T>(gamma);
  T* dxp = opt_mut<T>(dx);
  T* dgp = opt_mut<T>(dgamma);
  T* dbp = opt_mut<T>(dbeta);
  constexpr int64_t kRowBlock = 32;
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  // Per block: dgamma partials [cols], then dbeta partials [cols].
  T* part = (dgp || dbp) ? scratch<T>(size_t(blocks * 2 * cols)) : nullptr;
  if (!dxp && !part) return;
  with_optional(gp, [&](auto has_gamma) {
    with_optional(part, [&](auto want_params) {
      parallel_for(0, blocks, grain_for(cols * kRowBlock), [&](int64_t lo, int64_t hi) {
        for (int64_t blk = lo; blk < hi; ++blk) {
          T* pg = nullptr;
          T* pb = nullptr;
          if constexpr (want_params) {
            pg = part + blk * 2 * cols;
            pb = pg + cols;
            std::fill(pg, pg + 2 * cols, T(0));
          }
          const int64_t r1 = std::min(rows, (blk + 1) * kRowBlock);
          for (int64_t r = blk * kRowBlock; r < r1; ++r) {
            const T *p = xp + r * cols, *d = dyp + r * cols;
            const T m = mp[r], rs = rp[r];
            if (dxp) {
              double sg, sgx;
              if constexpr (has_gamma)
                lane_sum2<T>(
                    cols, sg, sgx, [](auto dv, auto, auto gv) { return dv * gv; },
                    [m, rs](auto dv, auto pv, auto gv) { return dv * gv * ((pv - m) * rs); }, d, p, gp);
              else
                lane_sum2<T>(
                    cols, sg, sgx, [](auto dv, auto) { return dv; },
                    [m, rs](auto dv, auto pv) { return dv * ((pv - m) * rs); }, d, p);
              ln_dx_row<T, has_gamma>(cols, dxp + r * cols, d, p, gp, m, rs, T(sg / double(cols)),
                                      T(sgx / double(cols)));
            }
            if constexpr (want_params) ln_param_row(cols, pg, pb, d, p, m, rs);
          }
        }
      });
    });
  });
  if (!part) return;
  constexpr int64_t kColBlock = 64;
  parallel_for(0, (cols + kColBlock - 1) / kColBlock, grain_for(blocks * 2 * kColBlock), [&](int64_t lo, int64_t hi) {
    double ag[kColBlock], ab[kColBlock];
    for (int64_t cb = lo; cb < hi; ++cb) {
      const int64_t c0 = cb * kColBlock, n = std::min(kColBlock, cols - c0);
      std::fill(ag, ag + n, 0.0);
      std::fill(ab, ab + n, 0.0);
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const T* pg = part + blk * 2 * cols + c0;
        const T* pb = pg + cols;
        for (int64_t c = 0; c < n; ++c) {
          ag[c] += double(pg[c]);
          ab[c] += double(pb[c]);
        }
      }
      for (int64_t c = 0; c < n; ++c) {
        if (dgp) dgp[c0 + c] = T(ag[c]);
        if (dbp) dbp[c0 + c] = T(ab[c]);
      }
    }
  });
}

// Batch norm over small planes (inner < kSmallPlane, e.g. [batch, features] after a dense
// layer): per-plane sums would be a few elements each. x is then viewed as rows of
// J = channels * inner values; columns are summed over fixed blocks of kColumnRowBlock rows
// (vectorized along the row, float32 partials per block), and the blocks are added in
// double in block order.
constexpr int64_t kSmallPlane = 32, kColumnRowBlock = 64;

template <class T>
void add_row(int64_t n, T* __restrict sum, const T* __restrict x) {
  for (int64_t j = 0; j < n; ++j) sum[j] += x[j];
}

template <class T>
void add_centred_row(int64_t n, T* __restrict sum, T* __restrict sum_sq, const T* __restrict x,
                     const T* __restrict mean) {
  for (int64_t j = 0; j < n; ++j) {
    const T d = x[j] - mean[j];
    sum[j] += d;
    sum_sq[j] += d * d;
  }
}

template <class T>
void add_grad_row(int64_t n, T* __restrict sum_dy, T* __restrict sum_dyx, const T* __restrict dy,
                  const T* __restrict x, const T* __restrict mean) {
  for (int64_t j = 0; j < n; ++j) {
    sum_dy[j] += dy[j];
    sum_dyx[j] += dy[j] * (x[j] - mean[j]);
  }
}

// y = (x - mean) * scale + shift, or dx = k0 dy - k1 - k2 (x - mean), per column.
template <class T>
void affine_row(int64_t n, T* __restrict y, const T* __restrict x, const T* __restrict mean,
                const T* __restrict scale, const T* __restrict shift) {
  for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - mean[j]) * scale[j] + shift[j];
}

template <class T>
void dx_row(int64_t n, T* __restrict dx, const T* __restrict dy, const T* __restrict x, const T* __restrict mean,
            const T* __restrict k0, const T* __restrict k1, const T* __restrict k2) {
  for (int64_t j = 0; j < n; ++j) dx[j] = k0[j] * dy[j] - k1[j] - k2[j] * (x[j] - mean[j]);
}

// out_a[j], out_b[j] = column sums over rows of what add(r, partial_a, partial_b) adds.
template <class T, class AddRow>
void column_sums(int64_t rows, int64_t cols, double* out_a, double* out_b, AddRow add) {
  const int64_t blocks = (rows + kColumnRowBlock - 1) / kColumnRowBlock;
  T* part = scratch<T>(size_t(blocks * 2 * cols));
  parallel_for(0, blocks, grain_for(cols * kColumnRowBlock), [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk) {
      T* a = part + blk * 2 * cols;
      std::fill(a, a + 2 * cols, T(0));
      for (int64_t r = blk * kColumnRowBlock; r < std::min(rows, (blk + 1) * kColumnRowBlock); ++r)
        add(r, a, a + cols);
    }
  });
  std::fill(out_a, out_a + cols, 0.0);
  std::fill(out_b, out_b + cols, 0.0);
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const T* a = part + blk * 2 * cols;
    for (int64_t j = 0; j < cols; ++j) {
      out_a[j] += double(a[j]);
      out_b[j] += double(a[cols + j]);
    }
  }
}

// Per-column copies of per-channel values (column j belongs to channel j / inner).
template <class T>
std::vector<T> per_column(int64_t C, int64_t inner, const T* per_channel) {
  std::vector<T> out(size_t(C * inner));
  for (int64_t j = 0; j < C * inner; ++j) out[size_t(j)] = per_channel[j / inner];
  return out;
}

template <class T>
void bn_stats_small_planes(T* mp, T* vp, T* rp, const T* xp, int64_t outer, int64_t C, int64_t inner, double eps) {
  const int64_t J = C * inner;
  std::vector<double> s1(static_cast<size_t>(J)), s2(static_cast<size_t>(J));
  column_sums<T>(outer, J, s1.data(), s2.data(), [&](int64_t r, T* a, T*) { add_row(J, a, xp + r * J); });
  std::vector<T> mj(static_cast<size_t>(J));
  for (int64_t j = 0; j < J; ++j) mj[size_t(j)] = T(s1[size_t(j)] / double(outer));
  column_sums<T>(outer, J, s1.data(), s2.data(),
                 [&](int64_t r, T* a, T* b) { add_centred_row(J, a, b, xp + r * J, mj.data()); });
  const double n = double(outer * inner);
  for (int64_t c = 0; c < C; ++c) {  // Chan et al. over the channel's columns (equal counts)
    double s = 0;
    for (int64_t j = c * inner; j < (c + 1) * inner; ++j) s += double(mj[size_t(j)]) + s1[size_t(j)] / double(outer);
    const double m = s / double(inner);
    double m2 = 0;
    for (int64_t j = c * inner; j < (c + 1) * inner; ++j) {
      const double col_mean = double(mj[size_t(j)]) + s1[size_t(j)] / double(outer);
      m2 += std::max(0.0, s2[size_t(j)] - s1[size_t(j)] * s1[size_t(j)] / double(outer)) +
            double(outer) * (col_mean - m) * (col_mean - m);
    }
    const double v = m2 / n;
    mp[c] = T(m);
    vp[c] = T(v);
    rp[c] = T(1.0 / std::sqrt(v + eps));
  }
}

template <class T>
void bn_stats(const Tensor& mean, const Tensor& var, const Tensor& rstd, const Tensor& x, int64_t outer, int64_t C,
              int64_t inner, double eps) {
  const T* xp = x.data<T>();
  T *mp = mean.data<T>(), *vp = var.data<T>(), *rp = rstd.data<T>();
  if (inner < kSmallPlane) return bn_stats_small_planes(mp, vp, rp, xp, outer, C, inner, eps);
  const int64_t planes = outer * C;
  double* part = scratch<double>(size_t(2 * planes));  // per plane: mean, M2
  parallel_for(0, planes, grain_for(inner), [&](int64_t lo, int64_t hi) {
    for (int64_t pl = lo; pl < hi; ++pl) {
      const T* p = xp + pl * inner;
      double sd, sd2;
      const T m = centered_sums(p, inner, sd, sd2);
      part[2 * pl] = double(m) + sd / double(inner);
      part[2 * pl + 1] = std::max(0.0, sd2 - sd * sd / double(inner));
    }
  });
  const double n = double(outer * inner);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t o = 0; o < outer; ++o) s += part[2 * (o * C + c)];
    const double m = s / double(outer);
    double m2 = 0, spread = 0;
    for (int64_t o = 0; o < outer; ++o) {
      const double dm = part[2 * (o * C + c)] - m;
      m2 += part[2 * (o * C + c) + 1];
      spread += dm * dm;
    }
    const double v = (m2 + double(inner) * spread) / n;
    mp[c] = T(m);
    vp[c] = T(v);
    rp[c] = T(1.0 / std::sqrt(v + eps));
  }
}

template <class T>
void bn_apply(const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& gamma,
              const Tensor& beta, int64_t outer, int64_t C, int64_t inner) {
  const T *xp = x.data<T>(), *mp = mean.data<T>(), *rp = rstd.data<T>();
  const T* gp = opt<T>(gamma);
  const T* bp = opt<T>(beta);
  T* yp = y.data<T>();
  if (inner < kSmallPlane) {
    std::vector<T> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C), T(0));
    for (int64_t c = 0; c < C; ++c) {
      scale[size_t(c)] = gp ? rp[c] * gp[c] : rp[c];
      if (bp) shift[size_t(c)] = bp[c];
    }
    const std::vector<T> mj = per_column(C, inner, mp), sj = per_column(C, inner, scale.data()),
                         tj = per_column(C, inner, shift.data());
    const int64_t J = C * inner;
    parallel_for(0, outer, grain_for(J), [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) affine_row(J, yp + o * J, xp + o * J, mj.data(), sj.data(), tj.data());
    });
    return;
  }
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
  const bool small = inner < kSmallPlane;
  const int64_t J = C * inner;
  std::vector<double> sdy(size_t(C), 0.0), sdyx(size_t(C), 0.0);
  if (small) {
    const std::vector<T> mj = per_column(C, inner, mp);
    std::vector<double> s1(static_cast<size_t>(J)), s2(static_cast<size_t>(J));
    column_sums<T>(outer, J, s1.data(), s2.data(), [&](int64_t r, T* a, T* b) {
      add_grad_row(J, a, b, dyp + r * J, xp + r * J, mj.data());
    });
    for (int64_t j = 0; j < J; ++j) {
      sdy[size_t(j / inner)] += s1[size_t(j)];
      sdyx[size_t(j / inner)] += s2[size_t(j)];
    }
  } else {
    const int64_t planes = outer * C;
    double* part = scratch<double>(size_t(2 * planes));  // per plane: sum dy, sum dy (x - mean)
    parallel_for(0, planes, grain_for(inner), [&](int64_t lo, int64_t hi) {
      for (int64_t pl = lo; pl < hi; ++pl) {
        const T *p = xp + pl * inner, *d = dyp + pl * inner;
        const T m = mp[pl % C];
        lane_sum2<T>(
            inner, part[2 * pl], part[2 * pl + 1], [](auto dv, auto) { return dv; },
            [m](auto dv, auto pv) { return dv * (pv - m); }, d, p);
      }
    });
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < C; ++c) {
        sdy[size_t(c)] += part[2 * (o * C + c)];
        sdyx[size_t(c)] += part[2 * (o * C + c) + 1];
      }
  }
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
  if (small) {
    const std::vector<T> mj = per_column(C, inner, mp), k0j = per_column(C, inner, k0.data()),
                         k1j = per_column(C, inner, k1.data()), k2j = per_column(C, inner, k2.data());
    parallel_for(0, outer, grain_for(J), [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o)
        dx_row(J, dxp + o * J, dyp + o * J, xp + o * J, mj.data(), k0j.data(), k1j.data(), k2j.data());
    });
    return;
  }
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
