// The conv family: conv1d, conv2d, conv_transpose2d, and the gradient ops they are built
// from.
//
// Layout (the PyTorch choice, so weights load from PyTorch checkpoints without a permute):
//   input NCHW (N, C, H, W); conv1d: (N, C, L)
//   conv weight (C_out, C_in / groups, kH, kW); conv1d: (C_out, C_in / groups, k)
//   conv_transpose2d weight (C_in, C_out / groups, kH, kW)
// Output size per spatial axis: (in + pad_before + pad_after - dilation * (k - 1) - 1) / stride + 1.
//
// Autograd: conv2d records one node; its backward calls conv2d_input_grad and
// conv2d_weight_grad (one fused kernel pass when both are needed and no graph of the
// backward is built). Those two are linear in each argument and are themselves
// differentiable (their gradients are conv2d / conv2d_input_grad / conv2d_weight_grad), so
// double backward through a convolution works. float32 and float64; other float dtypes
// compute in float32.
#pragma once
#include "core/tensor.h"

namespace lamina {

struct ConvParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  // 'same' (Keras): output size ceil(in / stride); the padding is split with the extra
  // row/column at the bottom/right. Otherwise the explicit amounts below ('valid' = 0).
  bool same = false;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
};

// bias: undefined Tensor for none. conv1d uses only the *_w fields of params (and the
// left/right padding).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvParams& params);
Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvParams& params);

// PyTorch semantics: the input gradient of conv2d. padding is symmetric per axis;
// output_padding (< stride) adds rows/columns at the bottom/right.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvParams& params,
                        int64_t output_padding_h, int64_t output_padding_w);

// d<conv2d(x, w), grad_out>/dx for an input of `input_shape`.
Tensor conv2d_input_grad(const Tensor& grad_out, const Tensor& w, const Shape& input_shape,
                         const ConvParams& params);
// d<conv2d(x, w), grad_out>/dw for a weight of `weight_shape`.
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& grad_out, const Shape& weight_shape,
                          const ConvParams& params);

}  // namespace lamina
