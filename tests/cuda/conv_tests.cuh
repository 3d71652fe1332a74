// Implicit-GEMM convolution (cuda/kernels/conv.cu) against direct double-precision loops:
// forward on tensor cores (bf16, both the cp.async path, C % 8 == 0, and the gathered path)
// and in fp32, and the fp32 input and weight gradients; strides, padding and dilation, with
// every GEMM dimension ragged against the 64 x 64 x {16, 32} tiles.
// Tolerances (max |got - want| / (1 + |want|)): the bf16 inputs are exact (the model sees the
// rounded values) and products of two bf16 are exact in fp32, so only the fp32 accumulation
// over at most 270 terms errs; 1e-5 for every kernel (observed 5e-8 to 2e-6).
#pragma once

#include "kernels/conv.cu"
#include "tensor_tests.cuh"

namespace lamina::cuda::test {

struct ConvModel {
  std::vector<double> y, dx, dw;
};

// Direct loops over every (output pixel, tap, channel): y, and the gradients of sum(y * dy).
inline ConvModel conv_model(const Conv2dShape& s, const std::vector<float>& x,
                            const std::vector<float>& w, const std::vector<float>& dy) {
  const int P = s.out_h(), Q = s.out_w();
  ConvModel m;
  m.y.assign(size_t(s.n) * P * Q * s.k, 0.0);
  m.dx.assign(x.size(), 0.0);
  m.dw.assign(w.size(), 0.0);
  for (int n = 0; n < s.n; ++n)
    for (int p = 0; p < P; ++p)
      for (int q = 0; q < Q; ++q)
        for (int r = 0; r < s.r; ++r)
          for (int t = 0; t < s.s; ++t) {
            const int ih = p * s.stride_h - s.pad_h + r * s.dil_h, iw = q * s.stride_w - s.pad_w + t * s.dil_w;
            if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
            const size_t xi = ((size_t(n) * s.h + ih) * s.w + iw) * s.c;
            const size_t yi = ((size_t(n) * P + p) * Q + q) * s.k;
            for (int k = 0; k < s.k; ++k) {
              const size_t wi = ((size_t(k) * s.r + r) * s.s + t) * s.c;
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
  char buf[160];
  snprintf(buf, sizeof buf, "conv2d %s n%d %dx%dx%d k%d %dx%d pad %d,%d stride %d,%d dil %d,%d",
           what, s.n, s.h, s.w, s.c, s.k, s.r, s.s, s.pad_h, s.pad_w, s.stride_h, s.stride_w,
           s.dil_h, s.dil_w);
  return buf;
}

inline void test_conv_bf16(const Conv2dShape& s, unsigned seed) {
  const std::string name = conv_name(s.c % 8 ? "forward bf16 (gathered)" : "forward bf16 (cp.async)", s);
  std::vector<float> x = random_floats(size_t(s.n) * s.h * s.w * s.c, seed),
                     w = random_floats(size_t(s.k) * s.r * s.s * s.c, seed + 1);
  DeviceBuffer<__nv_bfloat16> d_x(to_16bit_vector<__nv_bfloat16>(x)),
      d_w(to_16bit_vector<__nv_bfloat16>(w));
  const size_t ny = size_t(s.n) * s.out_h() * s.out_w() * s.k;
  DeviceBuffer<float> d_y(ny);
  if (!launched(name, conv2d_forward(s, d_x.get(), d_w.get(), d_y.get()))) return;
  check_close(name, d_y.download(), conv_model(s, x, w, std::vector<float>(ny, 0.0f)).y, 1e-5);
}

inline void test_conv_fp32(const Conv2dShape& s, unsigned seed) {
  const std::vector<float> x = random_floats(size_t(s.n) * s.h * s.w * s.c, seed),
                           w = random_floats(size_t(s.k) * s.r * s.s * s.c, seed + 1),
                           dy = random_floats(size_t(s.n) * s.out_h() * s.out_w() * s.k, seed + 2);
  const ConvModel want = conv_model(s, x, w, dy);
  DeviceBuffer<float> d_x(x), d_w(w), d_dy(dy), d_y(dy.size()), d_dx(x.size()), d_dw(w.size());
  const std::string fwd = conv_name("forward fp32", s), bwd = conv_name("backward fp32", s);
  if (launched(fwd, conv2d_forward(s, d_x.get(), d_w.get(), d_y.get())))
    check_close(fwd, d_y.download(), want.y, 1e-5);
  if (!launched(bwd, conv2d_backward(s, d_x.get(), d_w.get(), d_dy.get(), d_dx.get(), d_dw.get())))
    return;
  check_close(bwd + " dx", d_dx.download(), want.dx, 1e-5);
  check_close(bwd + " dw", d_dw.download(), want.dw, 1e-5);
}

inline Conv2dShape conv_shape(int n, int h, int w, int c, int k, int r, int s, int pad_h, int pad_w,
                              int stride_h, int stride_w, int dil_h, int dil_w) {
  Conv2dShape sh;
  sh.n = n, sh.h = h, sh.w = w, sh.c = c, sh.k = k, sh.r = r, sh.s = s;
  sh.pad_h = pad_h, sh.pad_w = pad_w, sh.stride_h = stride_h, sh.stride_w = stride_w;
  sh.dil_h = dil_h, sh.dil_w = dil_w;
  return sh;
}

inline void run_conv_tests() {
  test_conv_bf16(conv_shape(2, 9, 7, 16, 24, 3, 3, 1, 1, 1, 1, 1, 1), 301);   // M 126, Kg 144
  test_conv_bf16(conv_shape(1, 8, 8, 8, 70, 3, 3, 2, 2, 1, 1, 2, 2), 311);    // dilation, N 70
  test_conv_bf16(conv_shape(1, 11, 10, 3, 8, 3, 3, 1, 1, 2, 2, 1, 1), 321);   // C = 3, stride 2
  test_conv_fp32(conv_shape(2, 7, 9, 5, 6, 3, 2, 1, 0, 2, 1, 1, 1), 331);
  test_conv_fp32(conv_shape(1, 6, 6, 4, 3, 3, 3, 1, 1, 1, 1, 2, 2), 341);
  test_conv_fp32(conv_shape(3, 10, 9, 7, 67, 1, 1, 0, 0, 1, 1, 1, 1), 351);   // 1x1, N 67
}

}  // namespace lamina::cuda::test
