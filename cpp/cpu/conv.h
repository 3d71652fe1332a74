// CPU kernels of the conv family: 2-D convolution forward, and the input- and weight-
// gradient kernels (conv1d and conv_transpose2d reuse them). Layout NCHW, weights
// (C_out, C_in / groups, kH, kW) as in PyTorch. All tensors contiguous, one dtype
// (float32 or float64); the op layer checks shapes before calling.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace lamina::cpu {

// A convolution with every size resolved. Padding is given by its top/left amounts; the
// bottom/right amounts follow from OH/OW (they may differ: 'same' pads asymmetrically).
struct ConvGeometry {
  int64_t N, C, H, W;  // input
  int64_t Co, kh, kw;  // weight (Co, C / groups, kh, kw)
  int64_t OH, OW;      // output (N, Co, OH, OW)
  int64_t stride_h, stride_w, pad_top, pad_left, dil_h, dil_w, groups;
};

// out = conv(x, w) + bias (bias: length Co, or nullptr).
void conv2d_forward(const ConvGeometry& g, const Tensor& out, const Tensor& x, const Tensor& w,
                    const Tensor* bias);
// The gradients of <conv(x, w) + bias, grad_out>: dx (shape of x), dw (shape of w) and db
// (Co). Any pointer may be null; computed together they share passes over the operands (one
// im2col per image on the GEMM path; the bias gradient rides on the weight gradient's
// product where it can). x is needed only for dw, w only for dx.
void conv2d_backward(const ConvGeometry& g, const Tensor* dx, const Tensor* dw, const Tensor* db, const Tensor& x,
                     const Tensor& w, const Tensor& grad_out);

}  // namespace lamina::cpu
