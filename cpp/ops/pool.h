// The pooling family over NCHW input: max/avg pooling (2-D, and 1-D over (N, C, L)),
// global average pooling, nearest-neighbour upsampling.
//
// Windows follow PyTorch (floor mode): out = (in + 2 * pad - kernel) / stride + 1, padding
// at most half the kernel; max pooling pads with -inf. Max pooling saves the argmax of each
// window for backward; both backward ops are themselves differentiable (the gradient of
// the max scatter is a gather, the adjoint of avg pooling's backward is avg pooling).
#pragma once
#include "core/tensor.h"

namespace lamina {

struct PoolParams {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 0, stride_w = 0;  // 0: the kernel size
  int64_t pad_h = 0, pad_w = 0;
};

Tensor max_pool2d(const Tensor& x, const PoolParams& params);
Tensor max_pool1d(const Tensor& x, int64_t kernel, int64_t stride = 0, int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, const PoolParams& params, bool count_include_pad = true);
Tensor avg_pool1d(const Tensor& x, int64_t kernel, int64_t stride = 0, int64_t padding = 0,
                  bool count_include_pad = true);
// Mean over the spatial axes: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with keepdims.
Tensor global_avg_pool2d(const Tensor& x, bool keepdims = false);
// out[n, c, h, w] = x[n, c, h / scale, w / scale].
Tensor upsample_nearest2d(const Tensor& x, int64_t scale_h, int64_t scale_w);

}  // namespace lamina
