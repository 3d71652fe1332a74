// Convolution kernels, version 3: an implicit-GEMM path for float32 on AVX2 CPUs (below),
// which reads a zero-padded copy of each image in place instead of packing (PaddedImage: the
// weight gradient at any stride, and with AVX-512 the forward at unit stride; the strided
// forward packs its panels from that copy); im2col +
// packed GEMM otherwise (float64, CPUs without AVX2, and the weight gradient of batches under
// kWeightGradChunks images); and a direct path for depthwise.
//
// GEMM path, per image n and group g (Kg = C/groups * kh * kw, P = OH * OW):
//   forward      out[n, g]  (Cog x P) = W[g] (Cog x Kg) @ col (Kg x P)       bias preloaded in C
//   input grad   dcol       (Kg x P)  = W[g]^T @ grad_out[n, g]; col2im adds dcol into dx[n, g]
//   weight grad  dW[g]     (Cog x Kg) += grad_out[n, g] @ col^T
// A 1x1 kernel with stride 1 and no padding needs no col: x[n, g] is already (Kg x P).
// FLOPs: 2 * N * Co * Kg * P per pass (forward, input grad and weight grad cost the same).
// Bytes: col is Kg x P per image, written by im2col, read again by the GEMM's packing, which
// writes it once more: each col element costs three passes for Cog multiply-adds. The
// implicit path packs from the image directly (one pass, into L1) and so removes two.
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

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/errors.h"
#include "core/parallel.h"
#include "core/scratch.h"
#include "cpu/isa.h"
#include "cpu/gemm.h"
#include "cpu/gemm_internal.h"
#include "cpu/simd_avx2.h"

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

// ---- Implicit GEMM path (float32 with AVX2+FMA) -------------------------------------------
//
// The same three products as the GEMM path, but the conv owns the loop nest around the GEMM
// microkernel (gemm_internal.h) so that no col matrix and no grad_out block copy is ever
// written: each operand is packed straight from the tensors into the microkernel's layout.
//   forward     for each 16-position column panel of one image: im2col of the panel into a
//               packed B panel (Kg x 16, in L1), then every 6-row tile of [W | bias] (packed
//               once per call); bias is one more K row (B row of ones), so C is written once.
//               With AVX-512 at unit stride (and >= 4 images a thread), the B rows are read
//               in place from a zero-padded copy of the image instead (PaddedImage below);
//               at stride > 1 the panels are packed from that copy (no masks or gathers).
//   input grad  at unit stride with >= 64 channels a group (>= 32 on the padded path): the
//               forward above, run on grad_out with the flipped kernel (see
//               input_grad_as_forward). Otherwise per
//               (image, channel block), output rows in chunks whose dcol (rows x chunk)
//               stays in L2: dcol = W^T (packed once) @ grad_out chunk (packed per chunk),
//               then col2im of the chunk sums the kw taps of an input row in registers.
//   weight grad dW^T (Kg x Cog) = col @ grad_out^T, so the im2col rows become the A operand:
//               6 rows x 8 positions are loaded from the image and transposed in registers;
//               grad_out^T is packed with 8x8 transposes. Partials per fixed image chunk.
//               When the padded copy wastes at most 25% of its columns, the A rows are read
//               in place from it instead. A row of ones gives the bias gradient in the same
//               product.
// Every C element is one microkernel dot product in a fixed order; tile and task boundaries
// do not change the rounding, so results do not depend on the thread count.
// One thread, 64->64 3x3 @32, batch 32 (2.42 GFLOP a pass), medians of alternating runs:
// forward 33 -> 28 ms, input grad 29 -> 27 ms, weight grad 33 -> 29 ms. What remains: the
// microkernel at ~85-90% of the AVX2 peak, and packing B panels from the image (~20% of the
// forward, measured by skipping it; prefetching, plain loads and an L1-sized panel did not
// shrink it).

namespace implicit {

using gemm_detail::StoreArgs;
constexpr int MR = gemm_detail::Tile<float>::MR, NR = gemm_detail::Tile<float>::NR;
// K rows per microkernel call: a kc x 16 B panel block (16 KB) stays in L1.
constexpr int64_t kKBlock = 256;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t k_block(int64_t K) { return K > 0 ? ceil_div(K, ceil_div(K, kKBlock)) : 1; }

// An empty K (no input channels) is left to the GEMM path, which writes bias-only outputs.
bool available(const ConvGeometry& g) {
  return g.C / g.groups * g.kh * g.kw > 0 && have_avx2() && gemm_detail::cpu_has_avx2_fma();
}

// A microkernel with the heights (mr) of the A panels and widths (nr) of the B panels it
// reads, and their packs. With the GEMM on AVX-512 the products take AVX-512 tiles shaped for
// their packing: the forward's B panels are 16 image positions wide (24 x 16 tile), the
// gradients' A panels 6 rows high (6 x 32). Every tile rounds the same ordered sums, so the
// results are bit-identical to the AVX2 6 x 16 tile's.
struct ConvTile {
  int64_t mr, nr;
  gemm_detail::MicroKernel<float> micro;
  gemm_detail::PackFn<float> pack_a, pack_b;
};
const ConvTile kAvx2Tile{MR, NR, gemm_detail::microkernel_f32_avx2, gemm_detail::pack_a_f32_avx2<MR>,
                         gemm_detail::pack_b_f32_avx2<NR>};
bool avx512() { return gemm_detail::isa_in_use() == gemm_detail::Isa::Avx512; }

// For `rows` output channels: 16 x 16 when it pads fewer rows than 24 x 16 (32 channels: 32
// rows instead of 48, measured 4.45 -> 4.07 ms for 32->64 @14, batch 64, one thread; 128
// channels: 128 instead of 144, 64->128 s2 @32 forward 4.37-4.45 -> 4.09-4.23 ms, 2 threads;
// 64: 64 instead of 72, 64->64 s2 2.58-2.71 -> 2.51-2.66 ms), else 24 x 16, which reads each
// B panel from L1 a third fewer times.
ConvTile forward_tile(int64_t rows) {
  if (!avx512()) return kAvx2Tile;
  if (round_up(rows, 16) < round_up(rows, 24))
    return {16, NR, gemm_detail::microkernel_f32_avx512_16x16, gemm_detail::pack_a<float, 16>,
            gemm_detail::pack_b_f32_avx2<NR>};
  return {24, NR, gemm_detail::microkernel_f32_avx512_24x16, gemm_detail::pack_a<float, 24>,
          gemm_detail::pack_b_f32_avx2<NR>};
}

ConvTile gradient_tile() {
  if (!avx512()) return kAvx2Tile;
  return {MR, 32, gemm_detail::microkernel_f32_avx512_6x32, gemm_detail::pack_a_f32_avx2<MR>,
          gemm_detail::pack_b_f32_avx2<32>};
}

// C[0:mr, 0:nr] = (accumulate ? C : 0) + a panel . b panel over kc.
inline void tile(const ConvTile& t, int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate,
                 int64_t mr, int64_t nr) {
  const StoreArgs<float> s{1.0f, accumulate ? 1.0f : 0.0f, Epilogue::None, nullptr};
  t.micro(kc, a, b, c, ldc, s, int(mr), int(nr));
}

// op(A) (M x K) packed for the microkernel, every K block: the block of rows from k0 starts
// at k0 * round_up(M, mr), and its mr-row panel i at i * (that block's kc) after it.
class PackedA {
 public:
  PackedA(int64_t mr, gemm_detail::PackFn<float> pack, bool trans, int64_t M, int64_t K, const float* A, int64_t lda)
      : K_(K), Mr_(round_up(M, mr)), kc_(k_block(K)), data_(size_t(Mr_ * K)) {
    for (int64_t k0 = 0; k0 < K; k0 += kc_)
      pack(trans, trans ? A + k0 * lda : A + k0, lda, M, std::min(kc_, K - k0), data_.data() + k0 * Mr_);
  }
  const float* panel(int64_t k0, int64_t i) const { return data_.data() + k0 * Mr_ + i * std::min(kc_, K_ - k0); }
  int64_t kc() const { return kc_; }

 private:
  int64_t K_, Mr_, kc_;
  std::vector<float> data_;
};

// Where the lanes of a 16-column panel (output positions p0 .. p0 + lanes - 1 of one image)
// read the input: runs of lanes on one output row ("segments"); per kernel row and segment
// the input row offset (-1: outside the image); per kernel column and segment the input
// column of lane 0 and the lanes whose input column lies inside the image.
struct PanelMap {
  int64_t segments = 0;
  std::vector<int64_t> row_off, col_off;
  std::vector<int32_t> masks;  // [kj][segment][16 lanes]: -1 reads, 0 stays zero

  void build(const ConvGeometry& g, int64_t p0, int64_t lanes) {
    int64_t first[NR], count[NR], oh[NR], ow[NR];
    segments = 0;
    for (int64_t lane = 0; lane < lanes; ++segments) {
      const int64_t p = p0 + lane;
      first[segments] = lane;
      oh[segments] = p / g.OW;
      ow[segments] = p % g.OW;
      count[segments] = std::min(lanes - lane, g.OW - ow[segments]);
      lane += count[segments];
    }
    row_off.resize(size_t(g.kh * segments));
    col_off.resize(size_t(g.kw * segments));
    masks.resize(size_t(g.kw * segments * NR));
    for (int64_t ki = 0; ki < g.kh; ++ki)
      for (int64_t s = 0; s < segments; ++s) {
        const int64_t ih = oh[s] * g.stride_h + ki * g.dil_h - g.pad_top;
        row_off[ki * segments + s] = ih >= 0 && ih < g.H ? ih * g.W : -1;
      }
    for (int64_t kj = 0; kj < g.kw; ++kj)
      for (int64_t s = 0; s < segments; ++s) {
        // Lane j reads input column base + j * stride.
        const int64_t base = (ow[s] - first[s]) * g.stride_w + kj * g.dil_w - g.pad_left;
        const int64_t lo = std::max(first[s], -floor_div(base, g.stride_w));
        const int64_t hi = std::min(first[s] + count[s], floor_div(g.W - 1 - base, g.stride_w) + 1);
        col_off[kj * segments + s] = base;
        int32_t* m = masks.data() + (kj * segments + s) * NR;
        for (int64_t j = 0; j < NR; ++j) m[j] = j >= lo && j < hi ? -1 : 0;
      }
  }
};

// The packed B panel (Kg rows of 16 floats) of the forward product, from the image group x.
LAMINA_CONV_AVX2 void pack_columns(const ConvGeometry& g, int64_t Cg, const float* x, const PanelMap& m, float* out) {
  const int64_t S = m.segments;
  const __m256i idx0 = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(int(g.stride_w)));
  const __m256i idx1 = _mm256_add_epi32(idx0, _mm256_set1_epi32(int(8 * g.stride_w)));
  const bool unit = g.stride_w == 1;
  for (int64_t c = 0; c < Cg; ++c) {
    const float* xc = x + c * g.H * g.W;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t* rows = m.row_off.data() + ki * S;
      for (int64_t kj = 0; kj < g.kw; ++kj, out += NR) {
        const int64_t* cols = m.col_off.data() + kj * S;
        const int32_t* mk = m.masks.data() + kj * S * NR;
        __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
        for (int64_t s = 0; s < S; ++s) {
          if (rows[s] < 0) continue;
          // Lanes outside the mask are neither read nor counted: src may point before xc.
          const float* src = xc + rows[s] + cols[s];
          const __m256i m0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mk + s * NR));
          const __m256i m1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mk + s * NR + 8));
          if (unit) {
            v0 = _mm256_or_ps(v0, _mm256_maskload_ps(src, m0));
            v1 = _mm256_or_ps(v1, _mm256_maskload_ps(src + 8, m1));
          } else {
            const __m256 zero = _mm256_setzero_ps();
            v0 = _mm256_or_ps(v0, _mm256_mask_i32gather_ps(zero, src, idx0, _mm256_castsi256_ps(m0), 4));
            v1 = _mm256_or_ps(v1, _mm256_mask_i32gather_ps(zero, src, idx1, _mm256_castsi256_ps(m1), 4));
          }
        }
        _mm256_store_ps(out, v0);
        _mm256_store_ps(out + 8, v1);
      }
    }
  }
}

// The forward's A operand per group: [W | bias] (Cog x Kb, the bias as one more column that
// meets a B row of ones), in mr-row panels.
std::vector<PackedA> forward_weights(const ConvGeometry& g, const float* w, const float* bias, int64_t mr,
                                     gemm_detail::PackFn<float> pack) {
  const int64_t Cg = g.C / g.groups, Cog = g.Co / g.groups, Kg = Cg * g.kh * g.kw, Kb = Kg + (bias ? 1 : 0);
  std::vector<PackedA> a;
  a.reserve(size_t(g.groups));
  std::vector<float> with_bias(bias ? size_t(Cog * Kb) : 0);
  for (int64_t gi = 0; gi < g.groups; ++gi) {
    const float* wg = w + gi * Cog * Kg;
    if (bias) {
      for (int64_t o = 0; o < Cog; ++o) {
        std::copy(wg + o * Kg, wg + (o + 1) * Kg, with_bias.data() + o * Kb);
        with_bias[size_t(o * Kb + Kg)] = bias[gi * Cog + o];
      }
    }
    a.emplace_back(mr, pack, false, Cog, Kb, bias ? with_bias.data() : wg, bias ? Kb : Kg);
  }
  return a;
}

// dst[0, n) = src[0, n) in 8-float moves, the last one masked (rows of 14 floats took a
// 4-float loop and a scalar tail).
LAMINA_CONV_AVX2 void copy_floats(float* dst, const float* src, int64_t n) {
  int64_t m = 0;
  for (; m + 8 <= n; m += 8) _mm256_storeu_ps(dst + m, _mm256_loadu_ps(src + m));
  if (m < n) {
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n - m)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(dst + m, tail, _mm256_maskload_ps(src + m, tail));
  }
}

// dst[m] = src[2 m] for m < n, reading no further than src[2 n - 2]: the stride-2 phase
// split of a row as 16-float loads and a deinterleave instead of one scalar copy per float
// (6.5% of the 64->128 s2 training step; 3.7% after, most of it the image's first reads).
LAMINA_CONV_AVX2 void copy_every_second(float* dst, const float* src, int64_t n) {
  const __m256i first7 = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0);
  int64_t m = 0;
  for (; m + 8 <= n; m += 8) {
    // The last vector leaves out src[2 n - 1], which may lie past the tensor.
    const __m256 high = m + 8 < n ? _mm256_loadu_ps(src + 2 * m + 8) : _mm256_maskload_ps(src + 2 * m + 8, first7);
    const __m256 even = _mm256_shuffle_ps(_mm256_loadu_ps(src + 2 * m), high, _MM_SHUFFLE(2, 0, 2, 0));
    _mm256_storeu_ps(dst + m, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0))));
  }
  for (; m < n; ++m) dst[m] = src[2 * m];
}

// A zero-padded copy of one image, split by stride phase, that a conv reads in place: phase
// plane (c, a, b) holds the padded input at rows s_h * r + a, columns s_w * m + b (r < Hq,
// m < Wq). Output position (oh, ow) becomes flat position q = oh * Wq + ow, and kernel tap
// (c, ki, kj) reads plane (c, ki dil_h % s_h, kj dil_w % s_w) at q + (ki dil_h / s_h) Wq +
// kj dil_w / s_w: for every tap, consecutive output positions read consecutive floats (a
// strided conv becomes a unit-stride one over s_h s_w times the channels). Positions with
// ow >= OW are computed and dropped where a whole window is read (Wq / OW - 1 extra work: 2/14
// at 14 x 14, 2/32 at 32 x 32, 1/16 for 3 x 3 stride 2 on 32 x 32).
class PaddedImage {
 public:
  int64_t Hq, Wq, channel;  // rows and columns of a phase plane, floats per channel
  int64_t slack;            // zeros after the last plane: a 32-float window from any q < span

  explicit PaddedImage(const ConvGeometry& g)
      : Hq(g.OH + ceil_div(g.dil_h * (g.kh - 1), g.stride_h)),
        Wq(g.OW + ceil_div(g.dil_w * (g.kw - 1), g.stride_w)),
        channel(g.stride_h * g.stride_w * Hq * Wq),
        slack(Wq + 64),
        g_(g) {}

  // When the dropped columns cost at most 25%.
  static bool fits(const ConvGeometry& g) { return PaddedImage(g).Wq * 4 <= g.OW * 5; }

  int64_t floats() const { return g_.C * channel + slack; }
  int64_t span() const { return (g_.OH - 1) * Wq + g_.OW; }  // flat positions up to the last output

  // Offset of kernel tap (c, ki, kj) of a group from flat position q.
  std::vector<int64_t> tap_offsets() const {
    const ConvGeometry& g = g_;
    std::vector<int64_t> offset;
    for (int64_t c = 0; c < g.C / g.groups; ++c)
      for (int64_t ki = 0; ki < g.kh; ++ki)
        for (int64_t kj = 0; kj < g.kw; ++kj) {
          const int64_t dh = ki * g.dil_h, dw = kj * g.dil_w;
          const int64_t phase = dh % g.stride_h * g.stride_w + dw % g.stride_w;
          offset.push_back(c * channel + phase * Hq * Wq + dh / g.stride_h * Wq + dw / g.stride_w);
        }
    return offset;
  }

  // Writes the image x (C x H x W) into xp (floats() floats), whose other floats are zero
  // from clear(): every image of a geometry leaves the same floats untouched, so a buffer
  // is cleared once per call instead of its borders once per image (per-row fills of one
  // or two floats cost a library call each).
  void clear(float* xp) const { std::fill(xp, xp + floats(), 0.0f); }
  void fill(const float* x, float* xp) const {
    const ConvGeometry& g = g_;
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t a = 0; a < g.stride_h; ++a)
        for (int64_t b = 0; b < g.stride_w; ++b) {
          float* plane = xp + c * channel + (a * g.stride_w + b) * Hq * Wq;
          // Columns m whose input column s_w m + b - pad_left lies inside the image.
          const int64_t lo = std::clamp<int64_t>(ceil_div(std::max<int64_t>(g.pad_left - b, 0), g.stride_w), 0, Wq);
          const int64_t hi = std::clamp<int64_t>(ceil_div(std::max<int64_t>(g.pad_left + g.W - b, 0), g.stride_w), lo, Wq);
          for (int64_t r = 0; r < Hq; ++r) {
            const int64_t ih = g.stride_h * r + a - g.pad_top;
            if (ih < 0 || ih >= g.H) continue;
            float* dst = plane + r * Wq;
            const float* src = x + (c * g.H + ih) * g.W;
            const int64_t shift = b - g.pad_left;
            if (g.stride_w == 1)
              copy_floats(dst + lo, src + lo + shift, hi - lo);
            else if (g.stride_w == 2)
              copy_every_second(dst + lo, src + 2 * lo + shift, hi - lo);
            else
              for (int64_t m = lo; m < hi; ++m) dst[m] = src[g.stride_w * m + shift];
          }
        }
  }

 private:
  const ConvGeometry& g_;
};

// The forward from the PaddedImage of each image instead of packed B panels: the B rows of a
// 32-position panel are 32-float windows of the copy, read in place
// (microkernel_f32_avx512_rows_8x32). The 8-row tile fills 64- and 128-channel layers exactly,
// where the packed path's 24 rows pad 64 to 72. Same K blocks and order as the packed path,
// so the same bits.
// Images are split over the threads, so each needs a few. At stride 2 the packed path was
// as fast or faster (64->128 @32: 4.17-4.33 ms packed, 4.43-4.89 padded), so unit stride only.
bool padded_forward_pays(const ConvGeometry& g) {
  return avx512() && PaddedImage::fits(g) && g.stride_h == 1 && g.stride_w == 1 && g.N >= 4 * get_num_threads();
}

void forward_padded(const ConvGeometry& g, float* out, const float* x, const float* w, const float* bias) {
  constexpr int64_t kMr = 8, kLanes = 32;
  const int64_t Cg = g.C / g.groups, Cog = g.Co / g.groups, Kg = Cg * g.kh * g.kw, P = g.OH * g.OW;
  const int64_t Kb = Kg + (bias ? 1 : 0);
  const PaddedImage pad(g);
  const int64_t Wq = pad.Wq;
  const std::vector<PackedA> a = forward_weights(g, w, bias, kMr, gemm_detail::pack_a<float, kMr>);
  const int64_t span = pad.span(), kc = a[0].kc();
  // B row k of the panel at q0 is the window at xg + q0 + offset[k]; the bias row reads a run
  // of ones kept after the image copy (its offset depends on the group).
  std::vector<int64_t> offset = pad.tap_offsets();
  offset.resize(size_t(Kb));
  const int64_t ones_at = pad.floats(), ones = span + kLanes;
  // Where each panel's vectors store: their real output positions (ow < OW, q < span) follow
  // each other in the output, from that of the first one.
  std::vector<gemm_detail::RowPanelStore> stores(size_t(ceil_div(span, kLanes)));
  for (int64_t q = 0; q < span; ++q) {
    if (q % Wq >= g.OW) continue;
    gemm_detail::RowPanelStore& st = stores[size_t(q / kLanes)];
    const int64_t v = q % kLanes / 16, lane = q % 16;
    if (st.keep[v] == 0) st.offset[v] = q / Wq * g.OW + q % Wq;
    st.keep[v] = uint16_t(st.keep[v] | (1u << lane));
  }
  parallel_for(0, g.N, 1, [&](int64_t lo, int64_t hi) {
    float* xp = scratch_of<float>(ScratchSlot::ConvColumns, ones_at + ones);
    pad.clear(xp);
    std::fill(xp + ones_at, xp + ones_at + ones, 1.0f);
    std::vector<int64_t> rows = offset;
    for (int64_t n = lo; n < hi; ++n) {
      pad.fill(x + n * g.C * g.H * g.W, xp);
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const float* xg = xp + gi * Cg * pad.channel;
        if (bias) rows[size_t(Kg)] = ones_at - gi * Cg * pad.channel;
        float* o = out + (n * g.Co + gi * Cog) * P;
        for (int64_t q0 = 0; q0 < span; q0 += kLanes) {
          const gemm_detail::RowPanelStore& store = stores[size_t(q0 / kLanes)];
          for (int64_t k0 = 0; k0 < Kb; k0 += kc) {
            const StoreArgs<float> st{1.0f, k0 > 0 ? 1.0f : 0.0f, Epilogue::None, nullptr};
            for (int64_t i = 0; i < Cog; i += kMr)
              gemm_detail::microkernel_f32_avx512_rows_8x32(std::min(kc, Kb - k0), a[size_t(gi)].panel(k0, i), xg + q0,
                                                            rows.data() + k0, o + i * P, P, st,
                                                            int(std::min(kMr, Cog - i)), store);
          }
        }
      }
    }
  });
}

// One forward B panel (Kg rows of 16 floats) from the PaddedImage of an image group: lane j of
// row k is xg[tap[k] + position[j]]. One output row's 16 positions are consecutive floats.
LAMINA_CONV_AVX2 void pack_padded_panel(const float* xg, const int64_t* tap, int64_t Kg, const int32_t* position,
                                        float* out) {
  if (position[NR - 1] - position[0] == NR - 1) {
    for (int64_t k = 0; k < Kg; ++k, out += NR) {
      const float* src = xg + tap[k] + position[0];
      _mm256_store_ps(out, _mm256_loadu_ps(src));
      _mm256_store_ps(out + 8, _mm256_loadu_ps(src + 8));
    }
    return;
  }
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(position));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(position + 8));
  for (int64_t k = 0; k < Kg; ++k, out += NR) {
    _mm256_store_ps(out, _mm256_i32gather_ps(xg + tap[k], lo, 4));
    _mm256_store_ps(out + 8, _mm256_i32gather_ps(xg + tap[k], hi, 4));
  }
}

// At stride > 1 the forward packs its B panels as above, from the stride-phase split
// PaddedImage of each image, instead of from the image: no masks or gathers per panel
// (stride 2: consecutive outputs read consecutive floats of one phase plane), and channel
// planes that are not 4 KB apart (a 32 x 32 image's channels all fall into the same L1 sets).
// Reading the B rows in place instead (forward_padded) was slower at stride 2. Same panels,
// K blocks and tiles as forward(), so the same bits. Plain AVX2 code, so it runs on either
// set (as only real output positions are packed, the copy's extra columns cost nothing):
// 64->128 s2 @32 forward 4.16 -> 3.91 ms with AVX-512; with AVX2 alone 5.92 -> 5.91 ms, as
// its 6 x 16 tiles, not the packing, bound it there.
bool strided_padded_forward_pays(const ConvGeometry& g) {
  return (g.stride_h > 1 || g.stride_w > 1) && g.N >= 4 * get_num_threads();
}

void forward_strided_padded(const ConvGeometry& g, float* out, const float* x, const float* w, const float* bias) {
  const int64_t Cg = g.C / g.groups, Cog = g.Co / g.groups, Kg = Cg * g.kh * g.kw, P = g.OH * g.OW;
  const int64_t Kb = Kg + (bias ? 1 : 0);
  const ConvTile rt = forward_tile(Cog);
  const std::vector<PackedA> a = forward_weights(g, w, bias, rt.mr, rt.pack_a);
  const PaddedImage pad(g);
  const std::vector<int64_t> tap = pad.tap_offsets();
  const int64_t panels = ceil_div(P, NR), kc = a[0].kc();
  // Lanes past the last output repeat its position: read in bounds, computed and dropped.
  std::vector<int32_t> position(size_t(panels * NR));
  for (int64_t p = 0; p < panels * NR; ++p) {
    const int64_t q = std::min(p, P - 1);
    position[size_t(p)] = int32_t(q / g.OW * pad.Wq + q % g.OW);
  }
  parallel_for(0, g.N, 1, [&](int64_t lo, int64_t hi) {
    float* xp = scratch_of<float>(ScratchSlot::ConvOutputBlock, pad.floats());
    float* panel = scratch_of<float>(ScratchSlot::ConvColumns, Kb * NR);
    pad.clear(xp);
    std::fill(panel + Kg * NR, panel + Kb * NR, 1.0f);
    for (int64_t n = lo; n < hi; ++n) {
      pad.fill(x + n * g.C * g.H * g.W, xp);
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const float* xg = xp + gi * Cg * pad.channel;
        for (int64_t pi = 0; pi < panels; ++pi) {
          const int64_t p0 = pi * NR, lanes = std::min<int64_t>(NR, P - p0);
          pack_padded_panel(xg, tap.data(), Kg, position.data() + p0, panel);
          float* o = out + (n * g.Co + gi * Cog) * P + p0;
          for (int64_t k0 = 0; k0 < Kb; k0 += kc)
            for (int64_t i = 0; i < Cog; i += rt.mr)
              tile(rt, std::min(kc, Kb - k0), a[size_t(gi)].panel(k0, i), panel + k0 * NR, o + i * P, P, k0 > 0,
                   std::min(rt.mr, Cog - i), lanes);
        }
      }
    }
  });
}

void forward(const ConvGeometry& g, float* out, const float* x, const float* w, const float* bias) {
  if (padded_forward_pays(g)) return forward_padded(g, out, x, w, bias);
  if (strided_padded_forward_pays(g)) return forward_strided_padded(g, out, x, w, bias);
  const int64_t Cg = g.C / g.groups, Cog = g.Co / g.groups, Kg = Cg * g.kh * g.kw, P = g.OH * g.OW;
  const int64_t Kb = Kg + (bias ? 1 : 0);
  const ConvTile rt = forward_tile(Cog);
  const std::vector<PackedA> a = forward_weights(g, w, bias, rt.mr, rt.pack_a);
  const int64_t panels = ceil_div(P, NR), kc = a[0].kc();
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 18) / (Cog * Kb * NR));
  parallel_for(0, g.N * g.groups * panels, grain, [&](int64_t lo, int64_t hi) {
    float* panel = scratch_of<float>(ScratchSlot::ConvColumns, Kb * NR);
    PanelMap map;
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t pi = t % panels, gi = t / panels % g.groups, n = t / panels / g.groups;
      const int64_t p0 = pi * NR, lanes = std::min<int64_t>(NR, P - p0);
      map.build(g, p0, lanes);
      pack_columns(g, Cg, x + (n * g.C + gi * Cg) * g.H * g.W, map, panel);
      if (bias) std::fill(panel + Kg * NR, panel + Kb * NR, 1.0f);
      float* o = out + (n * g.Co + gi * Cog) * P + p0;
      for (int64_t k0 = 0; k0 < Kb; k0 += kc)
        for (int64_t i = 0; i < Cog; i += rt.mr)
          tile(rt, std::min(kc, Kb - k0), a[size_t(gi)].panel(k0, i), panel + k0 * NR, o + i * P, P, k0 > 0,
               std::min(rt.mr, Cog - i), lanes);
    }
  });
}

// dx row (W floats) += sum over kj of the dcol rows (rows[kj * ld + ow], ow in [0, OW)) of one
// (channel, ki, output row) at unit stride: input column iw takes ow = iw - (kj * dil - pad).
// The taps are summed in registers, so each dx element is loaded and stored once per kernel
// row instead of once per tap (overlapping shifted stores would stall store forwarding).
LAMINA_CONV_AVX2 void add_taps_unit_stride(const ConvGeometry& g, float* drow, const float* rows, int64_t ld) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t iw0 = 0; iw0 < g.W; iw0 += 8) {
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::min<int64_t>(8, g.W - iw0))), lane);
    __m256 acc = _mm256_maskload_ps(drow + iw0, tail);
    for (int64_t kj = 0; kj < g.kw; ++kj) {
      const int64_t off = kj * g.dil_w - g.pad_left, lo = off - iw0, hi = off + g.OW - iw0;
      if (hi <= 0 || lo >= 8) continue;
      const __m256i in = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::max<int64_t>(lo, -1))), lane),
                                             _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::min<int64_t>(hi, 8))), lane));
      // Lanes outside `in` are not read: the pointer may lie before the row.
      acc = _mm256_add_ps(acc, _mm256_maskload_ps(rows + kj * ld + iw0 - off, _mm256_and_si256(in, tail)));
    }
    _mm256_maskstore_ps(drow + iw0, tail, acc);
  }
}

// add_taps_unit_stride at stride 2: input column iw = 2 m + phase. Tap kj (offset
// off = kj * dil - pad_left) adds row kj's ow to phase off mod 2 at m = ow + floor(off / 2), so
// each phase is a sum of shifted rows, as above; the two phases are then interleaved and
// added to 16 dx floats at a time (was a scalar scatter: 8% of the 64->128 s2 training step).
LAMINA_CONV_AVX2 void add_taps_stride2(const ConvGeometry& g, float* drow, const float* rows, int64_t ld) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t iw0 = 0; iw0 < g.W; iw0 += 16) {
    const int64_t m0 = iw0 / 2;
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    for (int64_t kj = 0; kj < g.kw; ++kj) {
      const int64_t off = kj * g.dil_w - g.pad_left, shift = floor_div(off, 2);
      const int64_t lo = shift - m0, hi = shift + g.OW - m0;
      if (hi <= 0 || lo >= 8) continue;
      const __m256i in = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::max<int64_t>(lo, -1))), lane),
                                             _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::min<int64_t>(hi, 8))), lane));
      // Lanes outside `in` are not read: the pointer may lie before the row.
      const __m256 r = _mm256_maskload_ps(rows + kj * ld + m0 - shift, in);
      if (off == 2 * shift)
        even = _mm256_add_ps(even, r);
      else
        odd = _mm256_add_ps(odd, r);
    }
    const __m256 lo_pairs = _mm256_unpacklo_ps(even, odd), hi_pairs = _mm256_unpackhi_ps(even, odd);
    const __m256 first = _mm256_permute2f128_ps(lo_pairs, hi_pairs, 0x20);
    const __m256 second = _mm256_permute2f128_ps(lo_pairs, hi_pairs, 0x31);
    const __m256i tail0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::min<int64_t>(8, g.W - iw0))), lane);
    const __m256i tail1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::clamp<int64_t>(g.W - iw0 - 8, 0, 8))), lane);
    _mm256_maskstore_ps(drow + iw0, tail0, _mm256_add_ps(_mm256_maskload_ps(drow + iw0, tail0), first));
    _mm256_maskstore_ps(drow + iw0 + 8, tail1, _mm256_add_ps(_mm256_maskload_ps(drow + iw0 + 8, tail1), second));
  }
}

// dx channels [c0, c1) of one image group += the scatter of dcol (rows (c - c0, ki, kj),
// `ld` apart, holding output rows [oh0, oh1)).
LAMINA_CONV_AVX2 void col2im_rows(const ConvGeometry& g, float* dx, int64_t c0, int64_t c1, const float* dcol,
                                  int64_t ld, int64_t oh0, int64_t oh1) {
  const int64_t taps = g.kh * g.kw;
  for (int64_t c = c0; c < c1; ++c) {
    float* dc = dx + c * g.H * g.W;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const float* krows = dcol + ((c - c0) * taps + ki * g.kw) * ld;
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        const int64_t ih = oh * g.stride_h + ki * g.dil_h - g.pad_top;
        if (ih < 0 || ih >= g.H) continue;
        float* drow = dc + ih * g.W;
        const float* rows = krows + (oh - oh0) * g.OW;
        if (g.stride_w == 1) {
          add_taps_unit_stride(g, drow, rows, ld);
          continue;
        }
        if (g.stride_w == 2) {
          add_taps_stride2(g, drow, rows, ld);
          continue;
        }
        for (int64_t kj = 0; kj < g.kw; ++kj) {
          const int64_t offw = kj * g.dil_w - g.pad_left;
          const Range rw = valid_range(g.OW, g.W, g.stride_w, offw);
          const float* r = rows + kj * ld;
          for (int64_t ow = rw.lo; ow < rw.hi; ++ow) drow[ow * g.stride_w + offw] += r[ow];
        }
      }
    }
  }
}

// At unit stride the input gradient is itself a convolution: grad_out correlated with the
// kernel flipped in both axes and transposed per group (C/groups outputs, Co/groups inputs),
// top/left padding dil * (k - 1) - pad (taps that fall outside grad_out read zero, so a
// negative value works too). The forward path then computes it with K = Co/groups * kh * kw
// instead of Co/groups, and without the dcol buffer and its col2im scatter.
ConvGeometry flipped_geometry(const ConvGeometry& g) {
  ConvGeometry t = g;
  t.C = g.Co;
  t.H = g.OH;
  t.W = g.OW;
  t.Co = g.C;
  t.OH = g.H;
  t.OW = g.W;
  t.pad_top = g.dil_h * (g.kh - 1) - g.pad_top;
  t.pad_left = g.dil_w * (g.kw - 1) - g.pad_left;
  return t;
}

bool input_grad_as_forward(const ConvGeometry& g) {
  // Its B panels are packed from grad_out once per 16 positions and reused by C/groups
  // output rows: measured a gain at 64 (-9% time, 64->64 @32) and a loss at 32 (+24%,
  // 32->64 @14, where the 6-row tiles also pad 32 rows to 36). The padded-image forward
  // (no packing, 8-row tiles) gains at 32 too: 32->64 @14 input gradient 1.96 -> 1.56-1.75 ms.
  if (g.stride_h != 1 || g.stride_w != 1) return false;
  const int64_t Cg = g.C / g.groups;
  return Cg >= 64 || (Cg >= 32 && padded_forward_pays(flipped_geometry(g)));
}

void input_grad_by_forward(const ConvGeometry& g, float* dx, const float* w, const float* gout) {
  const int64_t Cg = g.C / g.groups, Cog = g.Co / g.groups, taps = g.kh * g.kw;
  const ConvGeometry t = flipped_geometry(g);
  // flipped[gi * Cg + c][o][ki][kj] = w[gi * Cog + o][c][kh - 1 - ki][kw - 1 - kj]
  std::vector<float> flipped(size_t(g.C * Cog * taps));
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t o = 0; o < Cog; ++o)
      for (int64_t c = 0; c < Cg; ++c) {
        const float* src = w + ((gi * Cog + o) * Cg + c) * taps;
        float* dst = flipped.data() + ((gi * Cg + c) * Cog + o) * taps;
        for (int64_t k = 0; k < taps; ++k) dst[k] = src[taps - 1 - k];
      }
  forward(t, dx, gout, flipped.data(), nullptr);
}

void input_grad(const ConvGeometry& g, float* dx, const float* w, const float* gout) {
  if (input_grad_as_forward(g)) return input_grad_by_forward(g, dx, w, gout);
  const int64_t Cg = g.C / g.groups, Cog = g.Co / g.groups, Kg = Cg * g.kh * g.kw, P = g.OH * g.OW;
  const int64_t taps = g.kh * g.kw, HW = g.H * g.W;
  std::vector<PackedA> a;
  a.reserve(size_t(g.groups));
  const ConvTile rt = gradient_tile();
  for (int64_t gi = 0; gi < g.groups; ++gi) a.emplace_back(rt.mr, rt.pack_a, true, Kg, Cog, w + gi * Cog * Kg, Kg);
  // Channel blocks give every thread work when there are few images; a block starts on a
  // 6-row panel of W^T, so its size is a multiple of `align` channels.
  const int64_t align = MR / std::gcd<int64_t>(taps, MR);
  const int64_t wanted = ceil_div(get_num_threads(), g.N * g.groups);
  const int64_t cb = std::min(Cg, round_up(ceil_div(Cg, wanted), align)), blocks = ceil_div(Cg, cb);
  // Output rows per chunk: the chunk's dcol (cb * taps rows) stays within ~512 KB of L2.
  const int64_t cols = std::clamp<int64_t>((int64_t(1) << 17) / (cb * taps), rt.nr, 512);
  const int64_t chunk_rows = std::clamp<int64_t>(cols / g.OW, 1, g.OH);
  const int64_t width = round_up(chunk_rows * g.OW, rt.nr), kc = a[0].kc();
  parallel_for(0, g.N * g.groups * blocks, 1, [&](int64_t lo, int64_t hi) {
    float* packed = scratch_of<float>(ScratchSlot::ConvColumns, (Cog + cb * taps) * width);
    float* dcol = packed + Cog * width;
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t b = t % blocks, gi = t / blocks % g.groups, n = t / blocks / g.groups;
      const int64_t c0 = b * cb, c1 = std::min(Cg, c0 + cb), r0 = c0 * taps, r1 = c1 * taps;
      float* dxg = dx + (n * g.C + gi * Cg) * HW;
      std::fill(dxg + c0 * HW, dxg + c1 * HW, 0.0f);
      const float* go = gout + (n * g.Co + gi * Cog) * P;
      for (int64_t oh0 = 0; oh0 < g.OH; oh0 += chunk_rows) {
        const int64_t oh1 = std::min(g.OH, oh0 + chunk_rows), p0 = oh0 * g.OW, n_cols = (oh1 - oh0) * g.OW;
        const int64_t ld = round_up(n_cols, rt.nr);
        for (int64_t k0 = 0; k0 < Cog; k0 += kc)
          rt.pack_b(false, go + k0 * P + p0, P, std::min(kc, Cog - k0), n_cols, packed + k0 * ld);
        for (int64_t j = 0; j < n_cols; j += rt.nr)
          for (int64_t i = r0; i < r1; i += MR)
            for (int64_t k0 = 0; k0 < Cog; k0 += kc) {
              const int64_t kcb = std::min(kc, Cog - k0);
              tile(rt, kcb, a[size_t(gi)].panel(k0, i), packed + k0 * ld + j * kcb, dcol + (i - r0) * ld + j, ld, k0 > 0,
                   std::min<int64_t>(MR, r1 - i), std::min(rt.nr, n_cols - j));
            }
        col2im_rows(g, dxg, c0, c1, dcol, ld, oh0, oh1);
      }
    }
  });
}

// src[0], src[2], ..., src[14], reading only src[lo .. hi) (the rest are zero): at stride 2
// two masked loads and a deinterleave replace an 8-lane gather (its ~8 load uops each).
LAMINA_CONV_AVX2 __m256 even_lanes(const float* src, int64_t lo, int64_t hi) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i from = _mm256_set1_epi32(int(lo) - 1), to = _mm256_set1_epi32(int(hi));
  const __m256i in0 = _mm256_andnot_si256(_mm256_cmpgt_epi32(from, lane), _mm256_cmpgt_epi32(to, lane));
  const __m256i lane8 = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
  const __m256i in1 = _mm256_andnot_si256(_mm256_cmpgt_epi32(from, lane8), _mm256_cmpgt_epi32(to, lane8));
  const __m256 v0 = _mm256_maskload_ps(src, in0), v1 = _mm256_maskload_ps(src + 8, in1);
  // (0 2 8 10 | 4 6 12 14) -> (0 2 4 6 8 10 12 14)
  const __m256 even = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0)));
}

// The 6-row A panel of the weight-gradient product: col rows [r0, r0 + rows) (rows <= 6,
// the others zero; rows from Kg on are ones, for the bias gradient) at positions
// [p0, p0 + len) of one image, packed [k][6]. Rows are read
// from the image group x 8 positions of one output row at a time (masked where a tap falls
// in the padding) and transposed in registers. Each position's 8-float store spills 2
// floats into the next position's slot, so `out` needs 2 floats of slack past len * 6.
LAMINA_CONV_AVX2 void pack_col_rows(const ConvGeometry& g, const float* x, int64_t r0, int64_t rows, int64_t p0,
                                    int64_t len, float* out) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i idx = _mm256_mullo_epi32(lane, _mm256_set1_epi32(int(g.stride_w)));
  const int64_t Kg = g.C / g.groups * g.kh * g.kw;
  const int64_t taps = std::max<int64_t>(0, std::min(rows, Kg - r0));  // rows past Kg are all ones
  const float* plane[MR];
  int64_t offh[MR], offw[MR];
  for (int64_t q = 0; q < taps; ++q) {
    const int64_t r = r0 + q, ki = r / g.kw % g.kh, kj = r % g.kw;
    plane[q] = x + r / (g.kh * g.kw) * g.H * g.W;
    offh[q] = ki * g.dil_h - g.pad_top;
    offw[q] = kj * g.dil_w - g.pad_left;
  }
  const int64_t s = g.stride_w;
  for (int64_t p = p0, oh = p0 / g.OW, ow = p0 % g.OW; p < p0 + len;) {
    const int64_t n = std::min({int64_t(8), g.OW - ow, p0 + len - p});
    __m256 r[8];
    for (int q = 0; q < 8; ++q) r[q] = q >= taps && q < rows ? _mm256_set1_ps(1.0f) : _mm256_setzero_ps();
    for (int64_t q = 0; q < taps; ++q) {
      const int64_t ih = oh * g.stride_h + offh[q];
      if (ih < 0 || ih >= g.H) continue;
      // Lane j reads input column iw0 + j * s (no division on the unit-stride path).
      const int64_t iw0 = ow * s + offw[q];
      const int64_t lo = s == 1 ? std::max<int64_t>(0, -iw0) : std::max<int64_t>(0, -floor_div(iw0, s));
      const int64_t hi = std::min(n, s == 1 ? g.W - iw0 : floor_div(g.W - 1 - iw0, s) + 1);
      const float* src = plane[q] + ih * g.W + iw0;  // lanes outside [lo, hi) are not read
      if (s == 1 && lo == 0 && hi == 8) {
        r[q] = _mm256_loadu_ps(src);
      } else if (s == 2 && lo < hi) {
        r[q] = even_lanes(src, 2 * lo, 2 * hi - 1);
      } else if (lo < hi) {
        const __m256i in = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(lo)), lane),
                                               _mm256_cmpgt_epi32(_mm256_set1_epi32(int(hi)), lane));
        r[q] = s == 1 ? _mm256_maskload_ps(src, in)
                      : _mm256_mask_i32gather_ps(_mm256_setzero_ps(), src, idx, _mm256_castsi256_ps(in), 4);
      }
    }
    simd::transpose8(r);
    float* o = out + (p - p0) * MR;
    for (int64_t c = 0; c < n; ++c) _mm256_storeu_ps(o + c * MR, r[c]);
    p += n;
    ow += n;
    if (ow == g.OW) {
      ow = 0;
      ++oh;
    }
  }
}

// dw, and db when non-null. The bias gradient is one more row of dW^T whose A row is all
// ones: db[o] = sum over positions of grad_out[o] * 1, summed with the weight gradient's
// pass over grad_out instead of in a pass of its own (and rounded alike on both paths).
void weight_grad(const ConvGeometry& g, float* dw, float* db, const float* x, const float* gout) {
  const int64_t Cg = g.C / g.groups, Cog = g.Co / g.groups, Kg = Cg * g.kh * g.kw, P = g.OH * g.OW;
  const int64_t Kr = Kg + (db ? 1 : 0);  // rows of each group's dW^T partial
  const int64_t wsize = g.groups * Kr * Cog, kc = k_block(P), chunks = kWeightGradChunks;
  // The A rows are read in place from the PaddedImage of each image (8 x 32 tiles with
  // AVX-512, 6 x 16 with AVX2) instead of packed by pack_col_rows: output position p reads
  // the copy at position[p] = oh * Wq + ow plus the tap's offset. The sums and their K
  // blocks are the packed path's, so the bits are too.
  const bool padded = PaddedImage::fits(g);
  const int64_t offset_rows = avx512() ? 8 : MR;
  const auto offsets_kernel = avx512() ? gemm_detail::microkernel_f32_avx512_offsets_8x32
                                       : gemm_detail::microkernel_f32_avx2_offsets_6x16;
  const PaddedImage pad(g);
  const std::vector<int64_t> tap = padded ? pad.tap_offsets() : std::vector<int64_t>();
  std::vector<int32_t> position(padded ? size_t(P) : 0);
  for (int64_t p = 0; p < int64_t(position.size()); ++p) position[size_t(p)] = int32_t(p / g.OW * pad.Wq + p % g.OW);
  const std::vector<float> ones(db ? size_t(pad.span()) : 0, 1.0f);
  // Chunk c sums its images into partial c, laid out per group as dW^T (Kr x Cog).
  std::vector<float> partial(size_t(chunks * wsize));
  for_image_chunks(g.N, chunks, [&](int64_t chunk, int64_t lo, int64_t hi) {
    float* dwt = partial.data() + chunk * wsize;
    if (lo == hi) std::fill(dwt, dwt + wsize, 0.0f);
    const ConvTile rt = gradient_tile();
    float* packed_b = scratch_of<float>(ScratchSlot::ConvColumns, round_up(Cog, rt.nr) * kc);
    float* packed_a = padded ? nullptr : scratch_of<float>(ScratchSlot::ConvOutputBlock, MR * kc + 8);
    float* xp = padded ? scratch_of<float>(ScratchSlot::ConvOutputBlock, pad.floats()) : nullptr;
    if (padded) pad.clear(xp);
    for (int64_t n = lo; n < hi; ++n) {
      if (padded) pad.fill(x + n * g.C * g.H * g.W, xp);
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const float* xg = x + (n * g.C + gi * Cg) * g.H * g.W;
        float* dwg = dwt + gi * Kr * Cog;
        for (int64_t p0 = 0; p0 < P; p0 += kc) {
          const int64_t kcb = std::min(kc, P - p0);
          const bool accumulate = n > lo || p0 > 0;
          rt.pack_b(true, gout + (n * g.Co + gi * Cog) * P + p0, P, kcb, Cog, packed_b);
          if (padded) {
            // Row r of the A panel is kernel tap i + r read across the padded image, or the
            // row of ones.
            const float* xpg = xp + gi * Cg * pad.channel;
            const StoreArgs<float> st{1.0f, accumulate ? 1.0f : 0.0f, Epilogue::None, nullptr};
            for (int64_t i = 0; i < Kr; i += offset_rows) {
              const int64_t mr = std::min(offset_rows, Kr - i);
              const float* rows[8];
              for (int64_t r = 0; r < offset_rows; ++r) {
                const int64_t k = i + std::min(r, mr - 1);
                rows[r] = k < Kg ? xpg + tap[size_t(k)] : ones.data();
              }
              for (int64_t j = 0; j < Cog; j += rt.nr)
                offsets_kernel(kcb, rows, position.data() + p0, packed_b + j * kcb, dwg + i * Cog + j, Cog, st,
                               int(mr), int(std::min(rt.nr, Cog - j)));
            }
            continue;
          }
          for (int64_t i = 0; i < Kr; i += MR) {
            const int64_t mr = std::min<int64_t>(MR, Kr - i);
            pack_col_rows(g, xg, i, mr, p0, kcb, packed_a);
            for (int64_t j = 0; j < Cog; j += rt.nr)
              tile(rt, kcb, packed_a, packed_b + j * kcb, dwg + i * Cog + j, Cog, accumulate, mr,
                   std::min(rt.nr, Cog - j));
          }
        }
      }
    }
  });
  // Fixed order over the chunks, whatever the thread count. Blocks of kRows rows of dW^T are
  // summed along their contiguous rows, then written transposed a short run per channel.
  constexpr int64_t kRows = 16;
  const int64_t blocks = ceil_div(Kr, kRows);
  parallel_for(0, g.groups * blocks, 1, [&](int64_t lo, int64_t hi) {
    float* sum = scratch_of<float>(ScratchSlot::ConvOutputBlock, kRows * Cog);
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t gi = t / blocks, k0 = t % blocks * kRows, rows = std::min(kRows, Kr - k0);
      const float* first = partial.data() + gi * Kr * Cog + k0 * Cog;
      std::copy(first, first + rows * Cog, sum);
      for (int64_t c = 1; c < chunks; ++c) {
        const float* part = first + c * wsize;
        for (int64_t i = 0; i < rows * Cog; ++i) sum[i] += part[i];
      }
      for (int64_t o = 0; o < Cog; ++o)
        for (int64_t k = 0; k < rows; ++k) {
          const float v = sum[k * Cog + o];
          if (k0 + k < Kg) dw[gi * Cog * Kg + o * Kg + k0 + k] = v;
          else db[gi * Cog + o] = v;
        }
    }
  });
}

}  // namespace implicit

bool is_depthwise(const ConvGeometry& g) { return g.groups > 1 && g.groups == g.C; }

template <class T>
void forward(const ConvGeometry& g, const Tensor& out, const Tensor& x, const Tensor& w, const Tensor* bias) {
  const T* b = bias ? bias->data<T>() : nullptr;
  if (out.numel() == 0) return;
  if (is_depthwise(g)) return forward_depthwise<T>(g, out.data<T>(), x.data<T>(), w.data<T>(), b);
  if constexpr (std::is_same_v<T, float>) {
    if (implicit::available(g)) return implicit::forward(g, out.data<T>(), x.data<T>(), w.data<T>(), b);
  }
  forward_gemm<T>(g, out.data<T>(), x.data<T>(), w.data<T>(), b);
}

// db[c] = sum of grad_out over images and positions: per image a plane sum in 16 partial
// sums, images in order, so the result does not depend on the thread count.
template <class T>
void bias_grad(const ConvGeometry& g, T* db, const T* gout) {
  const int64_t P = g.OH * g.OW;
  parallel_for(0, g.Co, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      T total = 0;
      for (int64_t n = 0; n < g.N; ++n) {
        const T* plane = gout + (n * g.Co + c) * P;
        T part[16] = {};
        int64_t i = 0;
        for (; i + 16 <= P; i += 16)
          for (int u = 0; u < 16; ++u) part[u] += plane[i + u];
        for (; i < P; ++i) part[0] += plane[i];
        for (T v : part) total += v;
      }
      db[c] = total;
    }
  });
}

template <class T>
void backward(const ConvGeometry& g, const Tensor* dx, const Tensor* dw, const Tensor* db, const Tensor& x,
              const Tensor& w, const Tensor& gout) {
  T* dxp = dx ? dx->data<T>() : nullptr;
  T* dwp = dw ? dw->data<T>() : nullptr;
  T* dbp = db ? db->data<T>() : nullptr;
  const T* xp = dw ? x.data<T>() : nullptr;
  const T* wp = dx ? w.data<T>() : nullptr;
  if (g.OH * g.OW == 0 || g.N == 0 || g.Co == 0) {
    // Nothing flows back: an empty output (or batch) contributes zero gradients.
    if (dxp) std::fill(dxp, dxp + dx->numel(), T(0));
    if (dwp) std::fill(dwp, dwp + dw->numel(), T(0));
    if (dbp) std::fill(dbp, dbp + db->numel(), T(0));
    return;
  }
  if (is_depthwise(g)) {
    backward_depthwise<T>(g, dxp, dwp, xp, wp, gout.data<T>());
  } else {
    bool bias_done = false;
    if constexpr (std::is_same_v<T, float>) {
      if (implicit::available(g)) {
        if (dxp) implicit::input_grad(g, dxp, wp, gout.data<T>());
        // The weight gradient's chunk count is fixed (see kWeightGradChunks); with fewer images
        // the GEMM path spreads each product over the threads instead.
        if (dwp && g.N >= kWeightGradChunks) {
          implicit::weight_grad(g, dwp, dbp, xp, gout.data<T>());
          bias_done = true;
        } else if (dwp) {
          backward_gemm<T>(g, nullptr, dwp, xp, wp, gout.data<T>());
        }
      } else {
        backward_gemm<T>(g, dxp, dwp, xp, wp, gout.data<T>());
      }
    } else {
      backward_gemm<T>(g, dxp, dwp, xp, wp, gout.data<T>());
    }
    if (bias_done) return;
  }
  if (dbp) bias_grad<T>(g, dbp, gout.data<T>());
}

}  // namespace

void conv2d_forward(const ConvGeometry& g, const Tensor& out, const Tensor& x, const Tensor& w,
                    const Tensor* bias) {
  if (x.dtype() == DType::Float32) return forward<float>(g, out, x, w, bias);
  if (x.dtype() == DType::Float64) return forward<double>(g, out, x, w, bias);
  throw TypeError(std::string("conv2d: unsupported dtype ") + dtype_name(x.dtype()));
}

void conv2d_backward(const ConvGeometry& g, const Tensor* dx, const Tensor* dw, const Tensor* db, const Tensor& x,
                     const Tensor& w, const Tensor& grad_out) {
  if (grad_out.dtype() == DType::Float32) return backward<float>(g, dx, dw, db, x, w, grad_out);
  if (grad_out.dtype() == DType::Float64) return backward<double>(g, dx, dw, db, x, w, grad_out);
  throw TypeError(std::string("conv2d: unsupported dtype ") + dtype_name(grad_out.dtype()));
}

}  // namespace lamina::cpu
