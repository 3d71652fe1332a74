// CPU kernels of the pooling family: 2-D max and average pooling over NCHW planes, forward
// and backward. Tensors contiguous, float32 or float64; the op layer checks shapes.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace lamina::cpu {

struct PoolGeometry {
  int64_t N, C, H, W;  // input (N, C, H, W); output (N, C, OH, OW)
  int64_t kh, kw, OH, OW;
  int64_t stride_h, stride_w, pad_h, pad_w;  // padding is symmetric, at most half the kernel
};

// out = window maxima (NaN wins); indices (int64, shape of out) = flat h * W + w of each
// maximum in its input plane.
void max_pool2d_forward(const PoolGeometry& g, const Tensor& out, const Tensor& indices, const Tensor& x);
// dx = zeros, then dx[plane][indices] += grad_out.
void max_pool2d_backward(const PoolGeometry& g, const Tensor& dx, const Tensor& grad_out, const Tensor& indices);
// Window means; the divisor is kh * kw when count_include_pad, else the in-image count.
void avg_pool2d_forward(const PoolGeometry& g, const Tensor& out, const Tensor& x, bool count_include_pad);
void avg_pool2d_backward(const PoolGeometry& g, const Tensor& dx, const Tensor& grad_out, bool count_include_pad);

}  // namespace lamina::cpu
