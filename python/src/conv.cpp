// Neural-network ops: the conv and pooling families (lamina.conv2d, lamina.max_pool2d, ...).
// Argument conventions follow torch.nn.functional; padding also takes Keras' 'same'/'valid'.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <array>
#include <string>

#include "convert.h"
#include "core/errors.h"
#include "ops/conv.h"
#include "ops/pool.h"

namespace lamina::py {

namespace {

// An int, or a sequence of `n` ints (one per spatial axis).
template <size_t n>
std::array<int64_t, n> int_tuple(nb::handle h, const char* op, const char* name) {
  Shape s = shape_arg(h, op);
  check<ValueError>(s.size() == 1 || s.size() == n, op, ": ", name, " must be an int or a tuple of ", n,
                    " ints, got ", nb::cast<std::string>(nb::repr(h)));
  std::array<int64_t, n> out;
  for (size_t i = 0; i < n; ++i) out[i] = s.size() == 1 ? s[0] : s[i];
  return out;
}

// padding: 'same' | 'valid' | int | one int per spatial axis (symmetric) |
// one (before, after) pair per spatial axis.
void padding_arg(nb::handle h, const char* op, size_t n, ConvParams& p) {
  if (nb::isinstance<nb::str>(h)) {
    std::string s = nb::cast<std::string>(h);
    std::transform(s.begin(), s.end(), s.begin(), ::tolower);
    check<ValueError>(s == "same" || s == "valid", op, ": padding must be 'same', 'valid' or integers, got '", s,
                      "'");
    p.same = s == "same";
    return;
  }
  std::array<int64_t, 4> pads{};  // per axis (before, after), axes in order (h, w) or (w)
  bool nested = PySequence_Check(h.ptr()) && nb::len(h) > 0 && PySequence_Check(nb::borrow<nb::sequence>(h)[0].ptr());
  if (nested) {
    nb::sequence seq = nb::borrow<nb::sequence>(h);
    check<ValueError>(nb::len(seq) == n, op, ": padding pairs must be given for ", n, " axes");
    for (size_t i = 0; i < n; ++i) {
      auto pair = int_tuple<2>(seq[i], op, "padding");
      pads[2 * i] = pair[0], pads[2 * i + 1] = pair[1];
    }
  } else if (n == 2) {
    auto v = int_tuple<2>(h, op, "padding");
    pads = {v[0], v[0], v[1], v[1]};
  } else {
    auto v = int_tuple<1>(h, op, "padding");
    pads = {v[0], v[0], 0, 0};
  }
  if (n == 2) p.pad_top = pads[0], p.pad_bottom = pads[1], p.pad_left = pads[2], p.pad_right = pads[3];
  else p.pad_left = pads[0], p.pad_right = pads[1];
}

ConvParams conv2d_params(nb::handle stride, nb::handle padding, nb::handle dilation, int64_t groups, const char* op) {
  ConvParams p;
  auto s = int_tuple<2>(stride, op, "stride");
  auto d = int_tuple<2>(dilation, op, "dilation");
  p.stride_h = s[0], p.stride_w = s[1], p.dilation_h = d[0], p.dilation_w = d[1], p.groups = groups;
  padding_arg(padding, op, 2, p);
  return p;
}

// An explicit stride of 0 would read as "the kernel size" in PoolParams.
void check_stride(int64_t s, const char* op) {
  check<ValueError>(s >= 1, op, ": stride must be >= 1, got ", s);
}

PoolParams pool2d_params(nb::handle kernel, nb::handle stride, nb::handle padding, const char* op) {
  PoolParams p;
  auto k = int_tuple<2>(kernel, op, "kernel_size");
  auto s = stride.is_none() ? k : int_tuple<2>(stride, op, "stride");
  auto pad = int_tuple<2>(padding, op, "padding");
  check_stride(s[0], op);
  check_stride(s[1], op);
  p.kernel_h = k[0], p.kernel_w = k[1], p.stride_h = s[0], p.stride_w = s[1], p.pad_h = pad[0], p.pad_w = pad[1];
  return p;
}

}  // namespace

void init_conv(nb::module_& m) {
  m.def("conv2d", [](nb::handle x, nb::handle w, nb::handle b, nb::handle stride, nb::handle padding,
                     nb::handle dilation, int64_t groups) {
    ConvParams p = conv2d_params(stride, padding, dilation, groups, "conv2d");
    Tensor tx = as_tensor(x), tw = as_tensor(w), tb = optional_tensor(b);
    nb::gil_scoped_release unlocked;
    return conv2d(tx, tw, tb, p);
  }, nb::arg("x"), nb::arg("weight"), nb::arg("bias").none() = nb::none(), nb::arg("stride") = 1,
     nb::arg("padding") = 0, nb::arg("dilation") = 1, nb::arg("groups") = 1,
     "2-D convolution (cross-correlation) of x (N, C, H, W) with weight (C_out, C / groups, kH, kW).");
  m.def("conv1d", [](nb::handle x, nb::handle w, nb::handle b, int64_t stride, nb::handle padding, int64_t dilation,
                     int64_t groups) {
    ConvParams p;
    p.stride_w = stride, p.dilation_w = dilation, p.groups = groups;
    padding_arg(padding, "conv1d", 1, p);
    Tensor tx = as_tensor(x), tw = as_tensor(w), tb = optional_tensor(b);
    nb::gil_scoped_release unlocked;
    return conv1d(tx, tw, tb, p);
  }, nb::arg("x"), nb::arg("weight"), nb::arg("bias").none() = nb::none(), nb::arg("stride") = 1,
     nb::arg("padding") = 0, nb::arg("dilation") = 1, nb::arg("groups") = 1,
     "1-D convolution of x (N, C, L) with weight (C_out, C / groups, k).");
  m.def("conv_transpose2d", [](nb::handle x, nb::handle w, nb::handle b, nb::handle stride, nb::handle padding,
                               nb::handle output_padding, int64_t groups, nb::handle dilation) {
    ConvParams p = conv2d_params(stride, padding, dilation, groups, "conv_transpose2d");
    auto op = int_tuple<2>(output_padding, "conv_transpose2d", "output_padding");
    Tensor tx = as_tensor(x), tw = as_tensor(w), tb = optional_tensor(b);
    nb::gil_scoped_release unlocked;
    return conv_transpose2d(tx, tw, tb, p, op[0], op[1]);
  }, nb::arg("x"), nb::arg("weight"), nb::arg("bias").none() = nb::none(), nb::arg("stride") = 1,
     nb::arg("padding") = 0, nb::arg("output_padding") = 0, nb::arg("groups") = 1, nb::arg("dilation") = 1,
     "Transposed 2-D convolution (PyTorch semantics); weight (C_in, C_out / groups, kH, kW).");
  m.def("conv2d_input_grad", [](nb::handle g, nb::handle w, nb::handle input_shape, nb::handle stride,
                                nb::handle padding, nb::handle dilation, int64_t groups) {
    ConvParams p = conv2d_params(stride, padding, dilation, groups, "conv2d_input_grad");
    return conv2d_input_grad(as_tensor(g), as_tensor(w), shape_arg(input_shape, "conv2d_input_grad"), p);
  }, nb::arg("grad_out"), nb::arg("weight"), nb::arg("input_shape"), nb::arg("stride") = 1, nb::arg("padding") = 0,
     nb::arg("dilation") = 1, nb::arg("groups") = 1, "Gradient of conv2d with respect to its input.");
  m.def("conv2d_weight_grad", [](nb::handle x, nb::handle g, nb::handle weight_shape, nb::handle stride,
                                 nb::handle padding, nb::handle dilation, int64_t groups) {
    ConvParams p = conv2d_params(stride, padding, dilation, groups, "conv2d_weight_grad");
    return conv2d_weight_grad(as_tensor(x), as_tensor(g), shape_arg(weight_shape, "conv2d_weight_grad"), p);
  }, nb::arg("x"), nb::arg("grad_out"), nb::arg("weight_shape"), nb::arg("stride") = 1, nb::arg("padding") = 0,
     nb::arg("dilation") = 1, nb::arg("groups") = 1, "Gradient of conv2d with respect to its weight.");

  m.def("max_pool2d", [](nb::handle x, nb::handle k, nb::handle s, nb::handle pad) {
    return max_pool2d(as_tensor(x), pool2d_params(k, s, pad, "max_pool2d"));
  }, nb::arg("x"), nb::arg("kernel_size"), nb::arg("stride").none() = nb::none(), nb::arg("padding") = 0,
     "2-D max pooling over (N, C, H, W); stride defaults to the kernel size.");
  m.def("avg_pool2d", [](nb::handle x, nb::handle k, nb::handle s, nb::handle pad, bool include_pad) {
    return avg_pool2d(as_tensor(x), pool2d_params(k, s, pad, "avg_pool2d"), include_pad);
  }, nb::arg("x"), nb::arg("kernel_size"), nb::arg("stride").none() = nb::none(), nb::arg("padding") = 0,
     nb::arg("count_include_pad") = true, "2-D average pooling over (N, C, H, W).");
  m.def("max_pool1d", [](nb::handle x, int64_t k, std::optional<int64_t> s, int64_t pad) {
    check_stride(s.value_or(k), "max_pool1d");
    return max_pool1d(as_tensor(x), k, s.value_or(k), pad);
  }, nb::arg("x"), nb::arg("kernel_size"), nb::arg("stride").none() = nb::none(), nb::arg("padding") = 0,
     "1-D max pooling over (N, C, L).");
  m.def("avg_pool1d", [](nb::handle x, int64_t k, std::optional<int64_t> s, int64_t pad, bool include_pad) {
    check_stride(s.value_or(k), "avg_pool1d");
    return avg_pool1d(as_tensor(x), k, s.value_or(k), pad, include_pad);
  }, nb::arg("x"), nb::arg("kernel_size"), nb::arg("stride").none() = nb::none(), nb::arg("padding") = 0,
     nb::arg("count_include_pad") = true, "1-D average pooling over (N, C, L).");
  m.def("global_avg_pool2d", [](nb::handle x, bool keepdims) { return global_avg_pool2d(as_tensor(x), keepdims); },
        nb::arg("x"), nb::arg("keepdims") = false, "Mean over H and W: (N, C, H, W) -> (N, C).");
  m.def("upsample_nearest2d", [](nb::handle x, nb::handle scale) {
    auto s = int_tuple<2>(scale, "upsample_nearest2d", "scale_factor");
    return upsample_nearest2d(as_tensor(x), s[0], s[1]);
  }, nb::arg("x"), nb::arg("scale_factor"), "Nearest-neighbour upsampling by integer factors.");
}

}  // namespace lamina::py
