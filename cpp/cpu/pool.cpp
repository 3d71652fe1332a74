// Pooling kernels, version 1: direct loops, one (image, channel) plane per task item.
// Max pooling reads each input element about (kh / stride_h) * (kw / stride_w) times from
// L1 and writes the output plus an int64 index per output; both directions are bound by
// memory traffic (~4 + 12 bytes per output element for float32), not arithmetic.
#include "cpu/pool.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "core/parallel.h"

namespace lamina::cpu {

namespace {

struct Window {
  int64_t h0, h1, w0, w1;  // clipped to the image
  int64_t count_padded;    // size of the window clipped to the padded image
};

Window window(const PoolGeometry& g, int64_t oh, int64_t ow) {
  const int64_t hs = oh * g.stride_h - g.pad_h, ws = ow * g.stride_w - g.pad_w;
  const int64_t he = std::min(hs + g.kh, g.H + g.pad_h), we = std::min(ws + g.kw, g.W + g.pad_w);
  Window w{std::max<int64_t>(hs, 0), std::min(he, g.H), std::max<int64_t>(ws, 0), std::min(we, g.W),
           (he - hs) * (we - ws)};
  return w;
}

int64_t plane_grain(const PoolGeometry& g) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, g.OH * g.OW * g.kh * g.kw));
}

template <class T>
void max_forward(const PoolGeometry& g, T* out, int64_t* idx, const T* x) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W;
  parallel_for(0, g.N * g.C, plane_grain(g), [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const T* xp = x + p * HW;
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const Window w = window(g, oh, ow);
          T best = -INFINITY;
          int64_t arg = w.h0 * g.W + w.w0;
          for (int64_t h = w.h0; h < w.h1; ++h) {
            for (int64_t c = w.w0; c < w.w1; ++c) {
              const T v = xp[h * g.W + c];
              if (v > best || std::isnan(v)) {
                best = v;
                arg = h * g.W + c;
                if (std::isnan(v)) goto done;
              }
            }
          }
        done:
          out[p * P + oh * g.OW + ow] = best;
          idx[p * P + oh * g.OW + ow] = arg;
        }
      }
    }
  });
}

template <class T>
void max_backward(const PoolGeometry& g, T* dx, const T* gout, const int64_t* idx) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W;
  parallel_for(0, g.N * g.C, plane_grain(g), [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      T* dp = dx + p * HW;
      std::fill(dp, dp + HW, T(0));
      for (int64_t o = 0; o < P; ++o) dp[idx[p * P + o]] += gout[p * P + o];
    }
  });
}

template <class T>
T divisor(const PoolGeometry& g, const Window& w, bool count_include_pad) {
  const int64_t n = count_include_pad ? w.count_padded : (w.h1 - w.h0) * (w.w1 - w.w0);
  return T(std::max<int64_t>(n, 1));
}

template <class T>
void avg_forward(const PoolGeometry& g, T* out, const T* x, bool include_pad) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W;
  parallel_for(0, g.N * g.C, plane_grain(g), [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const T* xp = x + p * HW;
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const Window w = window(g, oh, ow);
          T s = 0;
          for (int64_t h = w.h0; h < w.h1; ++h)
            for (int64_t c = w.w0; c < w.w1; ++c) s += xp[h * g.W + c];
          out[p * P + oh * g.OW + ow] = s / divisor<T>(g, w, include_pad);
        }
      }
    }
  });
}

template <class T>
void avg_backward(const PoolGeometry& g, T* dx, const T* gout, bool include_pad) {
  const int64_t P = g.OH * g.OW, HW = g.H * g.W;
  parallel_for(0, g.N * g.C, plane_grain(g), [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      T* dp = dx + p * HW;
      std::fill(dp, dp + HW, T(0));
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const Window w = window(g, oh, ow);
          const T v = gout[p * P + oh * g.OW + ow] / divisor<T>(g, w, include_pad);
          for (int64_t h = w.h0; h < w.h1; ++h)
            for (int64_t c = w.w0; c < w.w1; ++c) dp[h * g.W + c] += v;
        }
      }
    }
  });
}

template <class F>
void dispatch(const char* op, DType t, F fn) {
  if (t == DType::Float32) return fn(float{});
  if (t == DType::Float64) return fn(double{});
  throw TypeError(std::string(op) + ": unsupported dtype " + dtype_name(t));
}

}  // namespace

void max_pool2d_forward(const PoolGeometry& g, const Tensor& out, const Tensor& indices, const Tensor& x) {
  dispatch("max_pool2d", x.dtype(), [&](auto z) {
    using T = decltype(z);
    max_forward<T>(g, out.data<T>(), indices.data<int64_t>(), x.data<T>());
  });
}

void max_pool2d_backward(const PoolGeometry& g, const Tensor& dx, const Tensor& grad_out, const Tensor& indices) {
  dispatch("max_pool2d", dx.dtype(), [&](auto z) {
    using T = decltype(z);
    max_backward<T>(g, dx.data<T>(), grad_out.data<T>(), indices.data<int64_t>());
  });
}

void avg_pool2d_forward(const PoolGeometry& g, const Tensor& out, const Tensor& x, bool count_include_pad) {
  dispatch("avg_pool2d", x.dtype(), [&](auto z) {
    using T = decltype(z);
    avg_forward<T>(g, out.data<T>(), x.data<T>(), count_include_pad);
  });
}

void avg_pool2d_backward(const PoolGeometry& g, const Tensor& dx, const Tensor& grad_out, bool count_include_pad) {
  dispatch("avg_pool2d", dx.dtype(), [&](auto z) {
    using T = decltype(z);
    avg_backward<T>(g, dx.data<T>(), grad_out.data<T>(), count_include_pad);
  });
}

}  // namespace lamina::cpu
