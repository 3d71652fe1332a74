// Implicit-GEMM convolution (cuda/kernels/conv.cu) against direct double-precision loops: the
// tensor-core forward, input gradient and weight gradient (bf16 and fp16, both the cp.async
// path, C % 8 == 0 and K % 8 == 0, and the gathered path) and the fp32 ones; strides, padding,
// dilation and groups (one launch for all of them), with every GEMM dimension ragged against
// the 64 x 64 x {16, 32} tiles; and the direct depthwise kernels (float, bf16, fp16).
// Tolerances (max |got - want| / (1 + |want|)): the 16-bit inputs are exact (the model sees
// the rounded values) and products of two bf16 or two fp16 are exact in fp32, so only the fp32
// accumulation over at most a few hundred terms errs; 1e-5 for every kernel (observed 5e-8 to
// 2e-6).
#pragma once

#include "kernels/conv.cu"
#include "tensor_tests.cuh"

namespace lamina::cuda::test {

struct ConvModel {
  std::vector<double> y, dx, dw;
};

// Direct loops over every (group, output pixel, tap, channel): y, and the gradients of
// sum(y * dy). x [n, h, w, G c], w [G k, r, s, c], y and dy [n, p, q, G k].
inline ConvModel conv_model(const Conv2dShape& s, const std::vector<float>& x,
                            const std::vector<float>& w, const std::vector<float>& dy) {
  const int P = s.out_h(), Q = s.out_w(), G = s.groups, xc = G * s.c, yc = G * s.k;
  ConvModel m;
  m.y.assign(size_t(s.n) * P * Q * yc, 0.0);
  m.dx.assign(x.size(), 0.0);
  m.dw.assign(w.size(), 0.0);
  for (int gi = 0; gi < G; ++gi)
    for (int n = 0; n < s.n; ++n)
      for (int p = 0; p < P; ++p)
        for (int q = 0; q < Q; ++q)
          for (int r = 0; r < s.r; ++r)
            for (int t = 0; t < s.s; ++t) {
              const int ih = p * s.stride_h - s.pad_h + r * s.dil_h, iw = q * s.stride_w - s.pad_w + t * s.dil_w;
              if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
              const size_t xi = ((size_t(n) * s.h + ih) * s.w + iw) * xc + size_t(gi) * s.c;
              const size_t yi = ((size_t(n) * P + p) * Q + q) * yc + size_t(gi) * s.k;
              for (int k = 0; k < s.k; ++k) {
                const size_t wi = ((size_t(gi * s.k + k) * s.r + r) * s.s + t) * s.c;
                for (int c = 0; c < s.c; ++c) {
                  m.y[yi + k] += double(x[xi + c]) * w[wi + c];
                  m.dx[xi + c] += double(dy[yi + k]) * w[wi + c];
                  m.dw[wi + c] += double(dy[yi + k]) * x[xi + c];
                }
              }
            }
  return m;
}

inline std::string conv_name(const char* what, const Conv2dShape& s) {
  char buf[192];
  snprintf(buf, sizeof buf, "conv2d %s n%d %dx%dx%d k%d %dx%d pad %d,%d stride %d,%d dil %d,%d groups %d", what,
           s.n, s.h, s.w, s.c, s.k, s.r, s.s, s.pad_h, s.pad_w, s.stride_h, s.stride_w, s.dil_h, s.dil_w, s.groups);
  return buf;
}

struct ConvData {
  std::vector<float> x, w, dy;
};

inline ConvData conv_data(const Conv2dShape& s, unsigned seed) {
  return {random_floats(size_t(s.n) * s.h * s.w * s.c * s.groups, seed),
          random_floats(size_t(s.k) * s.groups * s.r * s.s * s.c, seed + 1),
          random_floats(size_t(s.n) * s.out_h() * s.out_w() * s.k * s.groups, seed + 2)};
}

// Forward, dgrad and wgrad on tensor cores, with T operands (rounded in place, so the model
// sees the values the kernels see).
template <class T>
inline void test_conv_mma(const Conv2dShape& s, unsigned seed) {
  ConvData d = conv_data(s, seed);
  DeviceBuffer<T> d_x(to_16bit_vector<T>(d.x)), d_w(to_16bit_vector<T>(d.w)), d_dy(to_16bit_vector<T>(d.dy));
  const ConvModel want = conv_model(s, d.x, d.w, d.dy);
  DeviceBuffer<float> d_y(d.dy.size()), d_dx(d.x.size()), d_dw(d.w.size());
  const size_t partial = conv2d_weight_grad_workspace(s);
  DeviceBuffer<float> d_partial(std::max<size_t>(partial, 1));
  const bool fwd_vec = s.c % 8 == 0, bwd_vec = fwd_vec && s.k % 8 == 0;
  char what[64];
  snprintf(what, sizeof what, "forward %s (%s)", type_name<T>(), fwd_vec ? "cp.async" : "gathered");
  const std::string fwd = conv_name(what, s);
  snprintf(what, sizeof what, "backward %s (%s, dw in %d parts)", type_name<T>(), bwd_vec ? "cp.async" : "gathered",
           partial ? conv_host::weight_grad_split(s).splits : 1);
  const std::string bwd = conv_name(what, s);
  if (launched(fwd, conv2d_forward(s, d_x.get(), d_w.get(), d_y.get())))
    check_close(fwd, d_y.download(), want.y, 1e-5);
  if (!launched(bwd, conv2d_backward(s, d_x.get(), d_w.get(), d_dy.get(), d_dx.get(), d_dw.get(),
                                     partial ? d_partial.get() : nullptr)))
    return;
  check_close(bwd + " dx", d_dx.download(), want.dx, 1e-5);
  check_close(bwd + " dw", d_dw.download(), want.dw, 1e-5);
  if (!partial) return;
  const std::string whole = bwd + " dw without a workspace (one part)";
  if (launched(whole, conv2d_backward(s, d_x.get(), d_w.get(), d_dy.get(), nullptr, d_dw.get())))
    check_close(whole, d_dw.download(), want.dw, 1e-5);
}

inline void test_conv_fp32(const Conv2dShape& s, unsigned seed) {
  const ConvData d = conv_data(s, seed);
  const ConvModel want = conv_model(s, d.x, d.w, d.dy);
  DeviceBuffer<float> d_x(d.x), d_w(d.w), d_dy(d.dy), d_y(d.dy.size()), d_dx(d.x.size()), d_dw(d.w.size());
  const std::string fwd = conv_name("forward fp32", s), bwd = conv_name("backward fp32", s);
  if (launched(fwd, conv2d_forward(s, d_x.get(), d_w.get(), d_y.get())))
    check_close(fwd, d_y.download(), want.y, 1e-5);
  if (!launched(bwd, conv2d_backward(s, d_x.get(), d_w.get(), d_dy.get(), d_dx.get(), d_dw.get())))
    return;
  check_close(bwd + " dx", d_dx.download(), want.dx, 1e-5);
  check_close(bwd + " dw", d_dw.download(), want.dw, 1e-5);
}

// The direct depthwise kernels (C = 1 per group, groups > 1) with T operands (float, or bf16 /
// fp16 rounded in place as above) and float results; the weight gradient with its pixel slices
// summed through the workspace, and without one (a single slice).
template <class T>
inline void test_conv_depthwise(const Conv2dShape& s, unsigned seed) {
  ConvData d = conv_data(s, seed);
  const auto operand = [](std::vector<float>& v) {
    if constexpr (std::is_same_v<T, float>) return v;
    else return to_16bit_vector<T>(v);
  };
  DeviceBuffer<T> d_x(operand(d.x)), d_w(operand(d.w)), d_dy(operand(d.dy));
  const ConvModel want = conv_model(s, d.x, d.w, d.dy);
  DeviceBuffer<float> d_y(d.dy.size()), d_dx(d.x.size()), d_dw(d.w.size());
  const size_t partial = conv2d_depthwise_workspace(s);
  DeviceBuffer<float> d_partial(std::max<size_t>(partial, 1));
  const char* type = std::is_same_v<T, float> ? "fp32" : type_name<T>();
  char what[64];
  snprintf(what, sizeof what, "depthwise forward %s", type);
  const std::string fwd = conv_name(what, s);
  snprintf(what, sizeof what, "depthwise backward %s (dw in %d slices)", type,
           partial ? conv_host::depthwise_weight_split(s).splits : 1);
  const std::string bwd = conv_name(what, s);
  if (launched(fwd, conv2d_depthwise_forward<T, float>(s, d_x.get(), d_w.get(), d_y.get())))
    check_close(fwd, d_y.download(), want.y, 1e-5);
  if (!launched(bwd, conv2d_depthwise_backward<T, float>(s, d_x.get(), d_w.get(), d_dy.get(), d_dx.get(),
                                                         d_dw.get(), partial ? d_partial.get() : nullptr)))
    return;
  check_close(bwd + " dx", d_dx.download(), want.dx, 1e-5);
  check_close(bwd + " dw", d_dw.download(), want.dw, 1e-5);
  if (!partial) return;
  const std::string whole = bwd + " dw without a workspace (one slice)";
  if (launched(whole, conv2d_depthwise_backward<T, float>(s, d_x.get(), nullptr, d_dy.get(), nullptr, d_dw.get(),
                                                          nullptr)))
    check_close(whole, d_dw.download(), want.dw, 1e-5);
}

inline Conv2dShape conv_shape(int n, int h, int w, int c, int k, int r, int s, int pad_h, int pad_w,
                              int stride_h, int stride_w, int dil_h, int dil_w, int groups = 1) {
  Conv2dShape sh;
  sh.n = n, sh.h = h, sh.w = w, sh.c = c, sh.k = k, sh.r = r, sh.s = s;
  sh.pad_h = pad_h, sh.pad_w = pad_w, sh.stride_h = stride_h, sh.stride_w = stride_w;
  sh.dil_h = dil_h, sh.dil_w = dil_w, sh.groups = groups;
  return sh;
}

inline void run_conv_tests() {
  // cp.async paths: M 126 (forward) / 126 (dgrad), Kg 144 (forward) / 216 (dgrad), wgrad
  // reduces over 126 pixels into a 24 x 144 tile grid.
  test_conv_mma<__nv_bfloat16>(conv_shape(2, 9, 7, 16, 24, 3, 3, 1, 1, 1, 1, 1, 1), 301);
  test_conv_mma<__half>(conv_shape(2, 9, 7, 16, 24, 3, 3, 1, 1, 1, 1, 1, 1), 302);
  // dilation, N 72 (two N tiles), stride 2 in the dgrad's gather (pixels no output reads)
  test_conv_mma<__nv_bfloat16>(conv_shape(1, 8, 9, 8, 72, 3, 3, 2, 1, 2, 1, 2, 1), 311);
  test_conv_mma<__half>(conv_shape(1, 9, 8, 8, 16, 2, 3, 0, 1, 2, 3, 1, 2), 312);
  // gathered: C = 3 (a first layer), and K = 5 (channel runs whole, output-channel runs not)
  test_conv_mma<__nv_bfloat16>(conv_shape(1, 11, 10, 3, 8, 3, 3, 1, 1, 2, 2, 1, 1), 321);
  test_conv_mma<__half>(conv_shape(2, 7, 6, 8, 5, 3, 3, 1, 1, 1, 1, 1, 1), 322);
  // dw split over the pixels: 8 parts of 4 k-steps; 3 ragged parts (14 steps) with stride 1;
  // 4 parts with two groups
  test_conv_mma<__nv_bfloat16>(conv_shape(4, 16, 16, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1), 341);
  test_conv_mma<__half>(conv_shape(3, 13, 11, 8, 16, 3, 3, 1, 1, 1, 1, 1, 1), 342);
  test_conv_mma<__nv_bfloat16>(conv_shape(2, 16, 16, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 2), 343);
  // groups in one launch: two groups of 8 -> 16 (cp.async), depthwise over 5 channels (gathered)
  test_conv_mma<__nv_bfloat16>(conv_shape(1, 6, 7, 8, 16, 3, 3, 1, 1, 1, 1, 1, 1, 2), 331);
  test_conv_mma<__half>(conv_shape(2, 5, 6, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 5), 332);
  test_conv_fp32(conv_shape(2, 7, 9, 5, 6, 3, 2, 1, 0, 2, 1, 1, 1), 341);
  test_conv_fp32(conv_shape(1, 6, 6, 4, 3, 3, 3, 1, 1, 1, 1, 2, 2), 351);
  test_conv_fp32(conv_shape(3, 10, 9, 7, 67, 1, 1, 0, 0, 1, 1, 1, 1), 361);   // 1x1, N 67
  test_conv_fp32(conv_shape(1, 6, 5, 2, 3, 3, 3, 1, 1, 2, 1, 1, 1, 3), 371);  // 3 groups
  // direct depthwise: 5 channels, K = 1 and 2, stride, dilation, 11 taps (two chunks of 9),
  // 40 channels (two 32-lane tiles), 2 and 3 pixel slices in the weight gradient
  test_conv_depthwise<float>(conv_shape(2, 7, 9, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 5), 381);
  test_conv_depthwise<float>(conv_shape(2, 9, 8, 1, 2, 5, 3, 2, 1, 2, 1, 1, 2, 5), 382);
  test_conv_depthwise<float>(conv_shape(1, 9, 6, 1, 1, 11, 1, 5, 0, 1, 1, 1, 1, 3), 383);
  test_conv_depthwise<float>(conv_shape(1, 4, 5, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 40), 384);
  test_conv_depthwise<float>(conv_shape(2, 13, 13, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 3), 385);
  test_conv_depthwise<__nv_bfloat16>(conv_shape(2, 14, 15, 1, 2, 3, 3, 1, 1, 1, 1, 1, 1, 2), 386);
  test_conv_depthwise<__half>(conv_shape(1, 8, 7, 1, 2, 3, 2, 0, 1, 2, 2, 2, 1, 3), 387);
}

}  // namespace lamina::cuda::test
