// Convolution kernels, version 1: im2col + packed GEMM, and a direct path for depthwise.
//
// GEMM path, per image n and group g (Kg = C/groups * kh * kw, P = OH * OW):
//   forward      out[n, g]  (Cog x P) = W[g] (Cog x Kg) @ col (Kg x P)       bias preloaded in C
//   input grad   dcol       (Kg x P)  = W[g]^T @ grad_out[n, g]; col2im adds dcol into dx[n, g]
//   weight grad  dW[g]     (Cog x Kg) += grad_out[n, g] @ col^T
// A 1x1 kernel with stride 1 and no padding needs no col: x[n, g] is already (Kg x P).
// FLOPs: 2 * N * Co * Kg * P per pass (forward, input grad and weight grad cost the same).
// Bytes: col is Kg x P per image (written once, read once by the GEMM), kept in a per-thread
// buffer that is reused across calls; for the layers we care about (P <= 1024, Kg <= 576)
// it stays in L2/L3, so the passes are bound by the GEMM, not by im2col.
//
// Threads: with at least as many images as threads, each thread takes a contiguous run of
// images (its GEMMs run single-threaded, no synchronisation; the weight gradient is summed
// into one partial per thread, then reduced in a fixed order, so results do not depend on
// scheduling). With fewer images the images run in order and each GEMM uses every thread.
//
// Depthwise path (C/groups == 1): a direct loop per (image, channel) plane. For each kernel
// tap the output row gets w * (a shifted input row) — contiguous when the stride is 1, so
// the loop vectorises; an AVX2+FMA clone is chosen at run time. 2 * kh * kw FLOPs per output
// element against ~8 bytes of traffic per element (planes stay in L1): bandwidth bound.
#include "cpu/conv.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/errors.h"
#include "core/parallel.h"
#include "core/scratch.h"
#include "cpu/isa.h"
#include "cpu/gemm.h"

namespace lamina::cpu {

namespace {

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
          T beta, T* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) gemm_f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  else gemm_f64(ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

template <class T>
T* scratch_of(ScratchSlot slot, int64_t elements) {
  return static_cast<T*>(thread_scratch(slot, size_t(elements) * sizeof(T), "conv2d"));
}

// Output positions o in [lo, hi) whose input coordinate o * s + off lies in [0, L).
struct Range {
  int64_t lo, hi;
};
Range valid_range(int64_t O, int64_t L, int64_t s, int64_t off) {
  int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
  int64_t hi = L - 1 - off < 0 ? 0 : (L - 1 - off) / s + 1;
  lo = std::min(lo, O);
  hi = std::clamp(hi, lo, O);
  return {lo, hi};
}

bool is_pointwise(const ConvGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 && g.pad_left == 0 &&
         g.OH == g.H && g.OW == g.W;
}

// col (Cg*kh*kw x OH*OW, rows `ld` apart) from x (Cg x H x W); out-of-image taps are zero.
template <class T>
void im2col(const ConvGeometry& g, int64_t Cg, const T* x, T* col, int64_t ld) {
  const int64_t P = g.OH * g.OW;
  for (int64_t c = 0; c < Cg; ++c) {
    const T* xc = x + c * g.H * g.W;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t offh = ki * g.dil_h - g.pad_top;
      const Range rh = valid_range(g.OH, g.H, g.stride_h, offh);
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        T* row = col + ((c * g.kh + ki) * g.kw + kj) * ld;
        const int64_t offw = kj * g.dil_w - g.pad_left;
        const Range rw = valid_range(g.OW, g.W, g.stride_w, offw);
        std::fill(row, row + rh.lo * g.OW, T(0));
        for (int64_t oh = rh.lo; oh < rh.hi; ++oh) {
          T* r = row + oh * g.OW;
          const T* xr = xc + (oh * g.stride_h + offh) * g.W + offw;
          std::fill(r, r + rw.lo, T(0));
          if (g.stride_w == 1) {
            std::memcpy(r + rw.lo, xr + rw.lo, size_t(rw.hi - rw.lo) * sizeof(T));
          } else {
            for (int64_t ow = rw.lo; ow < rw.hi; ++ow) r[ow] = xr[ow * g.stride_w];
          }
          std::fill(r + rw.hi, r + g.OW, T(0));
        }
        std::fill(row + rh.hi * g.OW, row + P, T(0));
      }
    }
  }
}

// dx (Cg x H x W, zeroed by the caller) += the scatter of col (rows `ld` apart) back
// onto the image.
template <class T>
void col2im(const ConvGeometry& g, int64_t Cg, const T* col, int64_t ld, T* dx) {
  for (int64_t c = 0; c < Cg; ++c) {
    T* dc = dx + c * g.H * g.W;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t offh = ki * g.dil_h - g.pad_top;
      const Range rh = valid_range(g.OH, g.H, g.stride_h, offh);
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const T* row = col + ((c * g.kh + ki) * g.kw + kj) * ld;
        const int64_t offw = kj * g.dil_w - g.pad_left;
        const Range rw = valid_range(g.OW, g.W, g.stride_w, offw);
        for (int64_t oh = rh.lo; oh < rh.hi; ++oh) {
          const T* r = row + oh * g.OW;
          T* dr = dc + (oh * g.stride_h + offh) * g.W + offw;
          if (g.stride_w == 1) {
            for (int64_t ow = rw.lo; ow < rw.hi; ++ow) dr[ow] += r[ow];
          } else {
            for (int64_t ow = rw.lo; ow < rw.hi; ++ow) dr[ow * g.stride_w] += r[ow];
          }
        }
      }
    }
  }
}

// Splits [0, N) images into `chunks` contiguous runs and calls fn(chunk, lo, hi) for each,
// in parallel; a single run lets each GEMM use the whole pool instead.
template <class F>
void for_image_chunks(int64_t N, int64_t chunks, F fn) {
  if (chunks <= 1) return fn(0, 0, N);
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) fn(c, c * N / chunks, (c + 1) * N / chunks);
  });
}

int64_t image_chunks(const ConvGeometry& g) {
  const int64_t threads = get_num_threads();
  return g.N >= threads ? threads : 1;
}

// The backward pass sums the weight gradient over images in per-chunk partials; the chunk
// count must not depend on the thread count, or the summation order (and so the rounding)
// would change with set_num_threads. A fixed count, from the batch size alone, keeps the
// result bitwise identical for any number of threads; below it the images run in order and
// each GEMM uses every thread (the GEMM's own reduction order does not depend on threads).
constexpr int64_t kWeightGradChunks = 8;
int64_t weight_grad_chunks(const ConvGeometry& g) { return g.N >= kWeightGradChunks ? kWeightGradChunks : 1; }

// ---- GEMM path -------------------------------------------------------------------------

// Images per GEMM: small outputs (P columns) are batched side by side so that each GEMM
// has ~kBlockColumns columns and its packing cost is spread over more work.
constexpr int64_t kBlockColumns = 1024;
int64_t images_per_block(const ConvGeometry& g, int64_t images) {
  if (is_pointwise(g)) return 1;
  const int64_t P = std::max<int64_t>(1, g.OH * g.OW);
  return std::clamp<int64_t>((kBlockColumns + P - 1) / P, 1, std::max<int64_t>(images, 1));
}

template <class T>
void forward_gemm(const ConvGeometry& g, T* out, const T* x, const T* w, const T* bias) {
  const int64_t Cg = g.C / g.groups, Cog = g.Co / g.groups, Kg = Cg * g.kh * g.kw, P = g.OH * g.OW;
  const bool direct = is_pointwise(g);
  const int64_t chunks = image_chunks(g);
  for_image_chunks(g.N, chunks, [&](int64_t, int64_t lo, int64_t hi) {
    const int64_t nb = images_per_block(g, hi - lo);
    T* col = direct ? nullptr : scratch_of<T>(ScratchSlot::ConvColumns, Kg * nb * P);
    T* block = nb > 1 ? scratch_of<T>(ScratchSlot::ConvOutputBlock, Cog * nb * P) : nullptr;
    for (int64_t n0 = lo; n0 < hi; n0 += nb) {
      const int64_t m = std::min(nb, hi - n0), ld = m * P;
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const T* wg = w + gi * Cog * Kg;
        if (m == 1) {
          // One image: the GEMM writes straight into the output, bias preloaded.
          const T* xg = x + (n0 * g.C + gi * Cg) * g.H * g.W;
          T* og = out + (n0 * g.Co + gi * Cog) * P;
          if (!direct) im2col(g, Cg, xg, col, P);
          if (bias) {
            for (int64_t o = 0; o < Cog; ++o) std::fill(og + o * P, og + (o + 1) * P, bias[gi * Cog + o]);
          }
          gemm<T>(false, false, Cog, P, Kg, wg, Kg, direct ? xg : col, P, bias ? T(1) : T(0), og, P);
          continue;
        }
        for (int64_t j = 0; j < m; ++j) im2col(g, Cg, x + ((n0 + j) * g.C + gi * Cg) * g.H * g.W, col + j * P, ld);
        gemm<T>(false, false, Cog, ld, Kg, wg, Kg, col, ld, T(0), block, ld);
        for (int64_t j = 0; j < m; ++j) {
          for (int64_t o = 0; o < Cog; ++o) {
            const T* src = block + o * ld + j * P;
            T* dst = out + ((n0 + j) * g.Co + gi * Cog + o) * P;
            const T b = bias ? bias[gi * Cog + o] : T(0);
            for (int64_t q = 0; q < P; ++q) dst[q] = src[q] + b;
          }
        }
      }
    }
  });
}

template <class T>
void backward_gemm(const ConvGeometry& g, T* dx, T* dw, const T* x, const T* w, const T* gout) {
  const int64_t Cg = g.C / g.groups, Cog = g.Co / g.groups, Kg = Cg * g.kh * g.kw, P = g.OH * g.OW;
  const bool direct = is_pointwise(g);
  const int64_t chunks = dw ? weight_grad_chunks(g) : image_chunks(g), wsize = g.Co * Kg;
  // Chunk 0 sums its weight gradient straight into dw, the others into partials.
  std::vector<T> partial(dw && chunks > 1 ? size_t((chunks - 1) * wsize) : 0);
  if (dw && g.N == 0) std::fill(dw, dw + wsize, T(0));
  for_image_chunks(g.N, chunks, [&](int64_t chunk, int64_t lo, int64_t hi) {
    T* dwc = dw ? (chunk == 0 ? dw : partial.data() + (chunk - 1) * wsize) : nullptr;
    if (dwc && lo == hi) std::fill(dwc, dwc + wsize, T(0));
    const int64_t nb = images_per_block(g, hi - lo);
    T* col = direct ? nullptr : scratch_of<T>(ScratchSlot::ConvColumns, Kg * nb * P);
    T* block = nb > 1 ? scratch_of<T>(ScratchSlot::ConvOutputBlock, Cog * nb * P) : nullptr;
    for (int64_t n0 = lo; n0 < hi; n0 += nb) {
      const int64_t m = std::min(nb, hi - n0), ld = m * P;
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const T* wg = w ? w + gi * Cog * Kg : nullptr;
        // The grad_out block (Cog x m*P): the image's own rows when m == 1, else a copy.
        const T* go = gout + (n0 * g.Co + gi * Cog) * P;
        if (m > 1) {
          for (int64_t j = 0; j < m; ++j)
            for (int64_t o = 0; o < Cog; ++o)
              std::memcpy(block + o * ld + j * P, gout + ((n0 + j) * g.Co + gi * Cog + o) * P, size_t(P) * sizeof(T));
          go = block;
        }
        if (dwc) {
          const T* xg = x + (n0 * g.C + gi * Cg) * g.H * g.W;
          if (!direct) {
            for (int64_t j = 0; j < m; ++j) im2col(g, Cg, xg + j * g.C * g.H * g.W, col + j * P, ld);
          }
          gemm<T>(false, true, Cog, Kg, ld, go, ld, direct ? xg : col, ld, n0 == lo ? T(0) : T(1),
                  dwc + gi * Cog * Kg, Kg);
        }
        if (dx) {
          T* dxg = dx + (n0 * g.C + gi * Cg) * g.H * g.W;
          if (direct) {
            gemm<T>(true, false, Kg, P, Cog, wg, Kg, go, P, T(0), dxg, P);
          } else {
            gemm<T>(true, false, Kg, ld, Cog, wg, Kg, go, ld, T(0), col, ld);
            for (int64_t j = 0; j < m; ++j) {
              T* dxj = dxg + j * g.C * g.H * g.W;
              std::fill(dxj, dxj + Cg * g.H * g.W, T(0));
              col2im(g, Cg, col + j * P, ld, dxj);
            }
          }
        }
      }
    }
  });
  for (int64_t c = 1; c < chunks && dw; ++c) {
    const T* p = partial.data() + (c - 1) * wsize;
    for (int64_t i = 0; i < wsize; ++i) dw[i] += p[i];
  }
}

// ---- Depthwise path --------------------------------------------------------------------

// y[i] += a * x[i * stride] for i in [0, n): the inner loop of every depthwise kernel.
template <class T>
inline __attribute__((always_inline)) void axpy_strided(T* y, const T* x, T a, int64_t n, int64_t stride) {
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i * stride];
  }
}
// y[i * stride] += a * x[i] (the scatter of the input gradient).
template <class T>
inline __attribute__((always_inline)) void axpy_scatter(T* y, const T* x, T a, int64_t n, int64_t stride) {
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i * stride] += a * x[i];
  }
}
// out plane (OH x OW) = bias + sum over taps of w[tap] * shifted x plane.
template <class T>
inline __attribute__((always_inline)) void dw_forward_plane(const ConvGeometry& g, T* o, const T* xp, const T* wk,
                                                            T bias) {
  std::fill(o, o + g.OH * g.OW, bias);
  for (int64_t ki = 0; ki < g.kh; ++ki) {
    const int64_t offh = ki * g.dil_h - g.pad_top;
    const Range rh = valid_range(g.OH, g.H, g.stride_h, offh);
    for (int64_t kj = 0; kj < g.kw; ++kj) {
      const int64_t offw = kj * g.dil_w - g.pad_left;
      const Range rw = valid_range(g.OW, g.W, g.stride_w, offw);
      const T wv = wk[ki * g.kw + kj];
      for (int64_t oh = rh.lo; oh < rh.hi; ++oh) {
        const T* xr = xp + (oh * g.stride_h + offh) * g.W + offw + rw.lo * g.stride_w;
        axpy_strided(o + oh * g.OW + rw.lo, xr, wv, rw.hi - rw.lo, g.stride_w);
      }
    }
  }
}

// dx plane (zeroed by the caller) += the scatter of one output channel's gradient.
template <class T>
inline __attribute__((always_inline)) void dw_input_grad_plane(const ConvGeometry& g, T* dxp, const T* gp,
                                                               const T* wk) {
  for (int64_t ki = 0; ki < g.kh; ++ki) {
    const int64_t offh = ki * g.dil_h - g.pad_top;
    const Range rh = valid_range(g.OH, g.H, g.stride_h, offh);
    for (int64_t kj = 0; kj < g.kw; ++kj) {
      const int64_t offw = kj * g.dil_w - g.pad_left;
      const Range rw = valid_range(g.OW, g.W, g.stride_w, offw);
      const T wv = wk[ki * g.kw + kj];
      for (int64_t oh = rh.lo; oh < rh.hi; ++oh) {
        T* dr = dxp + (oh * g.stride_h + offh) * g.W + offw + rw.lo * g.stride_w;
        axpy_scatter(dr, gp + oh * g.OW + rw.lo, wv, rw.hi - rw.lo, g.stride_w);
      }
    }
  }
}

// dwk[tap] += <grad plane, shifted x plane> for every tap. The products are summed
// elementwise into acc (one OW row per tap, so the loop vectorises like an axpy) and
// reduced once per tap at the end, instead of a horizontal sum per row.
template <class T>
inline __attribute__((always_inline)) void dw_weight_grad_plane(const ConvGeometry& g, T* dwk, const T* gp,
                                                                const T* xp, T* acc) {
  for (int64_t ki = 0; ki < g.kh; ++ki) {
    const int64_t offh = ki * g.dil_h - g.pad_top;
    const Range rh = valid_range(g.OH, g.H, g.stride_h, offh);
    for (int64_t kj = 0; kj < g.kw; ++kj) {
      const int64_t offw = kj * g.dil_w - g.pad_left;
      const Range rw = valid_range(g.OW, g.W, g.stride_w, offw);
      const int64_t len = rw.hi - rw.lo;
      std::fill(acc, acc + len, T(0));
      for (int64_t oh = rh.lo; oh < rh.hi; ++oh) {
        const T* xr = xp + (oh * g.stride_h + offh) * g.W + offw + rw.lo * g.stride_w;
        const T* gr = gp + oh * g.OW + rw.lo;
        if (g.stride_w == 1) {
          for (int64_t i = 0; i < len; ++i) acc[i] += gr[i] * xr[i];
        } else {
          for (int64_t i = 0; i < len; ++i) acc[i] += gr[i] * xr[i * g.stride_w];
        }
      }
      T sum = 0;
      for (int64_t i = 0; i < len; ++i) sum += acc[i];
      dwk[ki * g.kw + kj] += sum;
    }
  }
}

#define LAMINA_CONV_AVX2 __attribute__((target("avx2,fma")))

template <class T>
LAMINA_CONV_AVX2 void dw_forward_plane_avx2(const ConvGeometry& g, T* o, const T* xp, const T* wk, T bias) {
  dw_forward_plane(g, o, xp, wk, bias);
}
template <class T>
LAMINA_CONV_AVX2 void dw_input_grad_plane_avx2(const ConvGeometry& g, T* dxp, const T* gp, const T* wk) {
  dw_input_grad_plane(g, dxp, gp, wk);
}
template <class T>
LAMINA_CONV_AVX2 void dw_weight_grad_plane_avx2(const ConvGeometry& g, T* dwk, const T* gp, const T* xp, T* acc) {
  dw_weight_grad_plane(g, dwk, gp, xp, acc);
}

bool have_avx2() { return use_avx2_kernels(); }

// Planes per task so that each task does at least ~32K multiply-adds.
int64_t plane_grain(const ConvGeometry& g) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, g.OH * g.OW * g.kh * g.kw));
}

template <class T>
void forward_depthwise(const ConvGeometry& g, T* out, const T* x, const T* w, const T* bias) {
  const int64_t mult = g.Co / g.C, P = g.OH * g.OW, taps = g.kh * g.kw;
  const bool avx2 = have_avx2();
  parallel_for(0, g.N * g.Co, plane_grain(g), [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t n = p / g.Co, co = p % g.Co;
      const T* xp = x + (n * g.C + co / mult) * g.H * g.W;
      const T b = bias ? bias[co] : T(0);
      if (avx2) dw_forward_plane_avx2(g, out + p * P, xp, w + co * taps, b);
      else dw_forward_plane(g, out + p * P, xp, w + co * taps, b);
    }
  });
}

template <class T>
void backward_depthwise(const ConvGeometry& g, T* dx, T* dw, const T* x, const T* w, const T* gout) {
  const int64_t mult = g.Co / g.C, P = g.OH * g.OW, taps = g.kh * g.kw, HW = g.H * g.W;
  const bool avx2 = have_avx2();
  if (dx) {
    parallel_for(0, g.N * g.C, std::max<int64_t>(1, plane_grain(g) / mult), [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p) {
        const int64_t n = p / g.C, c = p % g.C;
        T* dxp = dx + p * HW;
        std::fill(dxp, dxp + HW, T(0));
        for (int64_t co = c * mult; co < (c + 1) * mult; ++co) {
          const T* gp = gout + (n * g.Co + co) * P;
          if (avx2) dw_input_grad_plane_avx2(g, dxp, gp, w + co * taps);
          else dw_input_grad_plane(g, dxp, gp, w + co * taps);
        }
      }
    });
  }
  if (dw) {
    // One task per output channel sums over the images: no two tasks write the same tap.
    parallel_for(0, g.Co, std::max<int64_t>(1, plane_grain(g) / std::max<int64_t>(1, g.N)),
                 [&](int64_t lo, int64_t hi) {
      std::vector<T> acc(size_t(std::max<int64_t>(g.OW, 1)));
      for (int64_t co = lo; co < hi; ++co) {
        T* dwk = dw + co * taps;
        std::fill(dwk, dwk + taps, T(0));
        for (int64_t n = 0; n < g.N; ++n) {
          const T* gp = gout + (n * g.Co + co) * P;
          const T* xp = x + (n * g.C + co / mult) * HW;
          if (avx2) dw_weight_grad_plane_avx2(g, dwk, gp, xp, acc.data());
          else dw_weight_grad_plane(g, dwk, gp, xp, acc.data());
        }
      }
    });
  }
}

bool is_depthwise(const ConvGeometry& g) { return g.groups > 1 && g.groups == g.C; }

template <class T>
void forward(const ConvGeometry& g, const Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) {
  const T* b = bias ? bias->data<T>() : nullptr;
  if (out.numel() == 0) return;
  if (is_depthwise(g)) forward_depthwise<T>(g, out.data<T>(), x.data<T>(), w.data<T>(), b);
  else forward_gemm<T>(g, out.data<T>(), x.data<T>(), w.data<T>(), b);
}

template <class T>
void backward(const ConvGeometry& g, const Tensor* dx, const Tensor* dw, const Tensor& x, const Tensor& w,
              const Tensor& gout) {
  T* dxp = dx ? dx->data<T>() : nullptr;
  T* dwp = dw ? dw->data<T>() : nullptr;
  const T* xp = dw ? x.data<T>() : nullptr;
  const T* wp = dx ? w.data<T>() : nullptr;
  if (g.OH * g.OW == 0 || g.N == 0 || g.Co == 0) {
    // Nothing flows back: an empty output (or batch) contributes zero gradients.
    if (dxp) std::fill(dxp, dxp + dx->numel(), T(0));
    if (dwp) std::fill(dwp, dwp + dw->numel(), T(0));
    return;
  }
  if (is_depthwise(g)) backward_depthwise<T>(g, dxp, dwp, xp, wp, gout.data<T>());
  else backward_gemm<T>(g, dxp, dwp, xp, wp, gout.data<T>());
}

}  // namespace

void conv2d_forward(const ConvGeometry& g, const Tensor& out, const Tensor& x, const Tensor& w,
                    const Tensor* bias) {
  if (x.dtype() == DType::Float32) return forward<float>(g, out, x, w, bias);
  if (x.dtype() == DType::Float64) return forward<double>(g, out, x, w, bias);
  throw TypeError(std::string("conv2d: unsupported dtype ") + dtype_name(x.dtype()));
}

void conv2d_backward(const ConvGeometry& g, const Tensor* dx, const Tensor* dw, const Tensor& x,
                     const Tensor& w, const Tensor& grad_out) {
  if (grad_out.dtype() == DType::Float32) return backward<float>(g, dx, dw, x, w, grad_out);
  if (grad_out.dtype() == DType::Float64) return backward<double>(g, dx, dw, x, w, grad_out);
  throw TypeError(std::string("conv2d: unsupported dtype ") + dtype_name(grad_out.dtype()));
}

}  // namespace lamina::cpu
