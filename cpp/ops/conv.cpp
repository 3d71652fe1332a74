#include "ops/conv.h"

#include <optional>

#include "core/backend.h"
#include "core/autograd.h"
#include "core/errors.h"
#include "cpu/conv.h"
#include "ops/arith.h"
#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"
#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

// The names and shapes an error message shows (conv1d shows its 3-D shapes).
struct Shown {
  const char* op;
  Shape x, w;
};

std::string shapes_of(const Shown& s) { return " (input " + shape_str(s.x) + ", weight " + shape_str(s.w) + ")"; }

// Strides, dilations and paddings beyond this are refused before any size arithmetic, which
// then cannot overflow (sides of real or broadcast tensors are < 2**62).
constexpr int64_t kMaxConvParam = int64_t(1) << 30;

void check_param_ranges(const char* op, const ConvParams& p) {
  for (int64_t v : {p.stride_h, p.stride_w, p.dilation_h, p.dilation_w, p.groups, p.pad_top, p.pad_bottom, p.pad_left,
                    p.pad_right})
    check<ValueError>(v <= kMaxConvParam && v >= -kMaxConvParam, op, ": stride, dilation, groups and padding must be "
                      "at most 2**30 in size, got ", v);
}

// Output length of one spatial axis, after resolving 'same' padding into before/after.
int64_t resolve_axis(const Shown& s, const char* axis, int64_t in, int64_t k, int64_t stride, int64_t dil, bool same,
                     int64_t& before, int64_t& after) {
  check<ValueError>(k <= kMaxConvParam, s.op, ": the kernel ", axis, " ", k, " is too large", shapes_of(s));
  const int64_t eff = dil * (k - 1) + 1;
  if (same) {
    const int64_t out = (in + stride - 1) / stride;
    const int64_t total = std::max<int64_t>((out - 1) * stride + eff - in, 0);
    before = total / 2;
    after = total - before;
  }
  check<ValueError>(before >= 0 && after >= 0, s.op, ": padding must be >= 0, got ", before, " and ", after,
                    shapes_of(s));
  check<ValueError>(in + before + after >= eff, s.op, ": kernel (", axis, " extent ", eff,
                    " with dilation) is larger than the padded input (", in + before + after, ")", shapes_of(s));
  return (in + before + after - eff) / stride + 1;
}

// Checks the arguments of a conv2d over x_shape/w_shape and returns its geometry; `p` is
// rewritten with explicit padding so that later ops (the gradients) need no 'same'.
cpu::ConvGeometry resolve(const Shown& s, const Shape& xs, const Shape& ws, ConvParams& p) {
  check<ValueError>(xs.size() == 4, s.op, ": expected a batched input with channels first", shapes_of(s));
  check<ValueError>(ws.size() == 4, s.op, ": expected a weight (C_out, C_in / groups, kernel...)", shapes_of(s));
  check_param_ranges(s.op, p);
  check<ValueError>(p.groups >= 1, s.op, ": groups must be >= 1, got ", p.groups);
  check<ValueError>(p.stride_h >= 1 && p.stride_w >= 1, s.op, ": stride must be >= 1, got (", p.stride_h, ", ",
                    p.stride_w, ")");
  check<ValueError>(p.dilation_h >= 1 && p.dilation_w >= 1, s.op, ": dilation must be >= 1, got (", p.dilation_h,
                    ", ", p.dilation_w, ")");
  cpu::ConvGeometry g{};
  g.N = xs[0], g.C = xs[1], g.H = xs[2], g.W = xs[3];
  g.Co = ws[0], g.kh = ws[2], g.kw = ws[3];
  check<ValueError>(g.C % p.groups == 0 && g.Co % p.groups == 0, s.op, ": groups (", p.groups,
                    ") must divide the input channels (", g.C, ") and the output channels (", g.Co, ")", shapes_of(s));
  check<ValueError>(ws[1] * p.groups == g.C, s.op, ": the input has ", g.C, " channels but the weight expects ",
                    ws[1] * p.groups, " (", ws[1], " per group x ", p.groups, " groups)", shapes_of(s));
  check<ValueError>(g.kh >= 1 && g.kw >= 1, s.op, ": the kernel must not be empty", shapes_of(s));
  g.OH = resolve_axis(s, "height", g.H, g.kh, p.stride_h, p.dilation_h, p.same, p.pad_top, p.pad_bottom);
  g.OW = resolve_axis(s, "width", g.W, g.kw, p.stride_w, p.dilation_w, p.same, p.pad_left, p.pad_right);
  p.same = false;
  g.stride_h = p.stride_h, g.stride_w = p.stride_w, g.pad_top = p.pad_top, g.pad_left = p.pad_left;
  g.dil_h = p.dilation_h, g.dil_w = p.dilation_w, g.groups = p.groups;
  return g;
}

void check_grad_out(const char* op, const Tensor& gout, const cpu::ConvGeometry& g) {
  Shape want{g.N, g.Co, g.OH, g.OW};
  check<ValueError>(gout.shape() == want, op, ": grad_out has shape ", shape_str(gout.shape()), ", expected ",
                    shape_str(want));
}

// The dtype a conv computes in, or a TypeError.
DType conv_dtype(const char* op, std::initializer_list<const Tensor*> ts) {
  DType t = (*ts.begin())->dtype();
  for (const Tensor* x : ts) t = promote_types(t, x->dtype());
  check<TypeError>(is_floating(t), op, ": expected floating-point tensors, got ", dtype_name(t));
  return t;
}

// Tensor cores: the conv ops compute in float32, also for bfloat16 and float16 operands (cast
// to float32 first). On CUDA, when both operands of a GEMM hold values of one 16-bit dtype, the
// tensor-core kernels read them in that dtype: a product of two bf16 (or two fp16) values is
// exact in fp32 and the kernels accumulate in fp32, so only the summation order differs from the
// FMA kernels on the float32 casts; the op's semantics are unchanged.
//   forward: x and w of one 16-bit dtype (the originals are kept: HalfOperands).
//   gradients: grad_out must hold 16-bit values too. It does when the forward's output dtype is
//   that 16-bit dtype: autograd hands a tensor the gradient in its own dtype, and the backward
//   of the final cast widens it exactly, so rounding it back is the identity. With a float32 or
//   float64 output (e.g. a float32 bias) grad_out is a genuine float32 and the FMA kernels run.
//   conv2d_input_grad / conv2d_weight_grad (and conv_transpose2d) take tensor cores when their
//   two operands share a 16-bit dtype. The float32 operands are cast back (exactly) on device.
struct HalfOperands {
  Tensor x, w;
};

bool one_16bit_dtype(std::initializer_list<const Tensor*> ts) {
  const DType t = (*ts.begin())->dtype();
  if (t != DType::BFloat16 && t != DType::Float16) return false;
  for (const Tensor* x : ts)
    if (x->dtype() != t) return false;
  return true;
}

#if defined(LAMINA_HAVE_CUDA)
// The kernels are channels-last (NHWC activations, (Co, kh, kw, C / groups) weights) and take
// every group in one launch: x and w are transposed to that layout (and cast to `dtype`) in one
// pass, the result transposed back.
Tensor channels_last(const char* op, const Tensor& t, DType dtype) {
  const Shape& s = t.shape();
  Tensor out = Tensor::empty({s[0], s[2], s[3], s[1]}, dtype, t.device());
  cuda::copy_cast(op, out, permute(t, {0, 2, 3, 1}));
  return out;
}

void store_channels_first(const char* op, const Tensor& dst, const Tensor& nhwc) {
  cuda::copy_cast(op, dst, permute(nhwc, {0, 3, 1, 2}));
}

void device_forward(const char* op, const cpu::ConvGeometry& g, const Tensor& out, const Tensor& x, const Tensor& w,
                    const Tensor* bias, const HalfOperands& half) {
  if (out.numel() == 0) return;
  if (g.C == 0 || g.H == 0 || g.W == 0) {
    // Every window reads padding only: sum(0 * w) per output channel (0, or NaN where a
    // weight is not finite, as on the CPU).
    cuda::copy_cast(op, out, reshape(sum(mul(w, 0.0), {1, 2, 3}), {1, g.Co, 1, 1}));
  } else {
    Tensor y = Tensor::empty({g.N, g.OH, g.OW, g.Co}, out.dtype(), out.device());
    if (half.x.defined())
      cuda::conv2d_forward_mma_nhwc(op, g, y, channels_last(op, half.x, half.x.dtype()),
                                    channels_last(op, half.w, half.w.dtype()));
    else
      cuda::conv2d_forward_nhwc(op, g, y, channels_last(op, x, x.dtype()), channels_last(op, w, w.dtype()));
    store_channels_first(op, out, y);
  }
  if (bias) cuda::copy_cast(op, out, add(out, reshape(*bias, {1, g.Co, 1, 1})));
}

// dx and/or dw. `half`: x, w and gout hold values of that 16-bit dtype (see above).
void device_backward(const char* op, const cpu::ConvGeometry& g, const Tensor* dx, const Tensor* dw, const Tensor& x,
                     const Tensor& w, const Tensor& gout, std::optional<DType> half) {
  if (g.N == 0 || g.C == 0 || g.Co == 0 || g.H == 0 || g.W == 0) {
    // No input pixel meets a weight: dx has no terms; dw sums dy times padding zeros.
    if (dx && dx->numel() > 0) cuda::fill(op, *dx, 0.0);
    if (dw && dw->numel() > 0) cuda::copy_cast(op, *dw, reshape(sum(mul(gout, 0.0), {0, 2, 3}), {g.Co, 1, 1, 1}));
    return;
  }
  const DType operands = half ? *half : gout.dtype();
  Tensor dx_nhwc = dx ? Tensor::empty({g.N, g.H, g.W, g.C}, dx->dtype(), gout.device()) : Tensor();
  Tensor dw_khwc = dw ? Tensor::empty({g.Co, g.kh, g.kw, g.C / g.groups}, dw->dtype(), gout.device()) : Tensor();
  Tensor x_nhwc = dw ? channels_last(op, x, operands) : Tensor();
  Tensor w_khwc = dx ? channels_last(op, w, operands) : Tensor();
  Tensor dy_nhwc = channels_last(op, gout, operands);
  if (half)
    cuda::conv2d_backward_mma_nhwc(op, g, dx ? &dx_nhwc : nullptr, dw ? &dw_khwc : nullptr, x_nhwc, w_khwc, dy_nhwc);
  else
    cuda::conv2d_backward_nhwc(op, g, dx ? &dx_nhwc : nullptr, dw ? &dw_khwc : nullptr, x_nhwc, w_khwc, dy_nhwc);
  if (dx) store_channels_first(op, *dx, dx_nhwc);
  if (dw) store_channels_first(op, *dw, dw_khwc);
}
#endif

Tensor conv2d_impl(const Shown& s, const Tensor& x, const Tensor& w, const Tensor& bias, ConvParams p,
                   [[maybe_unused]] const HalfOperands& half = {},
                   std::optional<DType> backward_half = std::nullopt) {
  check<TypeError>(x.defined() && w.defined(), s.op, ": got an undefined tensor");
  check_same_device(s.op, x, w);
  cpu::ConvGeometry g = resolve(s, x.shape(), w.shape(), p);
  if (bias.defined()) {
    check_same_device(s.op, x, bias);
    check<ValueError>(bias.ndim() == 1 && bias.shape()[0] == g.Co, s.op, ": bias must have shape (", g.Co,
                      ",), got ", shape_str(bias.shape()));
  }
  DType t = bias.defined() ? conv_dtype(s.op, {&x, &w, &bias}) : conv_dtype(s.op, {&x, &w});
  DType kd = kernel_dtype(t);
  if (x.dtype() != kd || w.dtype() != kd || (bias.defined() && bias.dtype() != kd)) {
    // Mixed or half dtypes: cast (differentiably) and run in the kernel dtype.
    const bool tensor_cores = is_cuda(x.device()) && kd == DType::Float32 && one_16bit_dtype({&x, &w});
    Tensor out = conv2d_impl(s, astype(x, kd), astype(w, kd), bias.defined() ? astype(bias, kd) : bias, p,
                             tensor_cores ? HalfOperands{x, w} : HalfOperands{},
                             tensor_cores && t == x.dtype() ? std::optional<DType>(t) : std::nullopt);
    return kd == t ? out : astype(out, t);
  }
  Tensor out = Tensor::empty({g.N, g.Co, g.OH, g.OW}, kd, x.device());
  checked_numel(out.shape(), s.op);
  {
    GradModeGuard no_grad(false);
    Tensor xc = contiguous(x), wc = contiguous(w), bc = bias.defined() ? contiguous(bias) : bias;
    if (is_cuda(out.device()))
      LAMINA_CUDA_BRANCH(s.op, device_forward(s.op, g, out, xc, wc, bc.defined() ? &bc : nullptr, half));
    else
      cpu::conv2d_forward(g, out, xc, wc, bc.defined() ? &bc : nullptr);
  }
  std::vector<Tensor> inputs{x, w};
  if (bias.defined()) inputs.push_back(bias);
  if (needs_grad(inputs)) {
    SavedTensor sx(x), sw(w);
    const bool gx = x.requires_grad(), gw = w.requires_grad(), gb = bias.defined() && bias.requires_grad();
    record("conv2d", inputs, out,
           [sx, sw, gx, gw, gb, g, p, backward_half](const Tensor& gout) -> std::vector<Tensor> {
      const Tensor &x = sx.get(), &w = sw.get();
      Tensor dx, dw, db;
      if ((gx || gw) && !GradMode::is_enabled()) {
        // No graph of the backward: one pass (on the CPU sharing im2col between the gradients,
        // and the bias gradient's pass over grad_out with the weight gradient's).
        Tensor gc = contiguous(gout), xc = contiguous(x), wc = contiguous(w);
        if (gx) dx = Tensor::empty(x.shape(), x.dtype(), x.device());
        if (gw) dw = Tensor::empty(w.shape(), w.dtype(), w.device());
        if (is_cuda(gc.device())) {
          LAMINA_CUDA_BRANCH("conv2d", device_backward("conv2d", g, gx ? &dx : nullptr, gw ? &dw : nullptr, xc, wc,
                                                       gc, backward_half));
        } else {
          if (gb) db = Tensor::empty({g.Co}, gc.dtype(), gc.device());
          cpu::conv2d_backward(g, gx ? &dx : nullptr, gw ? &dw : nullptr, gb ? &db : nullptr, xc, wc, gc);
        }
      } else {
        if (gx) dx = conv2d_input_grad(gout, w, x.shape(), p);
        if (gw) dw = conv2d_weight_grad(x, gout, w.shape(), p);
      }
      if (gb && !db.defined()) db = sum(gout, {0, 2, 3});
      return {dx, dw, db};
    });
  }
  return out;
}

Tensor input_grad_impl(const Shown& s, const Tensor& gout, const Tensor& w, const Shape& input_shape,
                       ConvParams p, [[maybe_unused]] std::optional<DType> half = std::nullopt) {
  check<TypeError>(gout.defined() && w.defined(), s.op, ": got an undefined tensor");
  check_same_device(s.op, gout, w);
  cpu::ConvGeometry g = resolve(s, input_shape, w.shape(), p);
  check_grad_out(s.op, gout, g);
  DType t = conv_dtype(s.op, {&gout, &w});
  DType kd = kernel_dtype(t);
  if (gout.dtype() != kd || w.dtype() != kd) {
    const bool tensor_cores = is_cuda(gout.device()) && kd == DType::Float32 && one_16bit_dtype({&gout, &w});
    Tensor out = input_grad_impl(s, astype(gout, kd), astype(w, kd), input_shape, p,
                                 tensor_cores ? std::optional<DType>(t) : std::nullopt);
    return kd == t ? out : astype(out, t);
  }
  checked_numel(input_shape, s.op);
  Tensor dx = Tensor::empty(input_shape, kd, gout.device());
  {
    GradModeGuard no_grad(false);
    Tensor gc = contiguous(gout), wc = contiguous(w);
    if (is_cuda(gc.device())) LAMINA_CUDA_BRANCH(s.op, device_backward(s.op, g, &dx, nullptr, Tensor(), wc, gc, half));
    else cpu::conv2d_backward(g, &dx, nullptr, nullptr, Tensor(), wc, gc);
  }
  if (needs_grad({&gout, &w})) {
    SavedTensor sg(gout), sw(w);
    const bool gg = gout.requires_grad(), gw = w.requires_grad();
    record("conv2d_input_grad", {gout, w}, dx, [sg, sw, gg, gw, p](const Tensor& u) -> std::vector<Tensor> {
      // dx = A_w^T gout, linear in both: d gout = A_w u = conv2d(u, w); d w = weight_grad(u, gout).
      Tensor d_gout, d_w;
      if (gg) d_gout = conv2d(u, sw.get(), Tensor(), p);
      if (gw) d_w = conv2d_weight_grad(u, sg.get(), sw.get().shape(), p);
      return {d_gout, d_w};
    });
  }
  return dx;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvParams& params) {
  return conv2d_impl({"conv2d", x.defined() ? x.shape() : Shape{}, w.defined() ? w.shape() : Shape{}}, x, w, bias,
                     params);
}

Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvParams& params) {
  check<TypeError>(x.defined() && w.defined(), "conv1d: got an undefined tensor");
  Shown s{"conv1d", x.shape(), w.shape()};
  check<ValueError>(x.ndim() == 3, "conv1d: expected an input (N, C, L)", shapes_of(s));
  check<ValueError>(w.ndim() == 3, "conv1d: expected a weight (C_out, C_in / groups, k)", shapes_of(s));
  ConvParams p = params;
  p.stride_h = p.dilation_h = 1;
  p.pad_top = p.pad_bottom = 0;
  return squeeze(conv2d_impl(s, unsqueeze(x, 2), unsqueeze(w, 2), bias, p), {2});
}

Tensor conv2d_input_grad(const Tensor& grad_out, const Tensor& w, const Shape& input_shape,
                         const ConvParams& params) {
  return input_grad_impl({"conv2d_input_grad", input_shape, w.defined() ? w.shape() : Shape{}}, grad_out, w,
                         input_shape, params);
}

namespace {

Tensor weight_grad_impl(const Tensor& x, const Tensor& grad_out, const Shape& weight_shape, const ConvParams& params,
                        [[maybe_unused]] std::optional<DType> half = std::nullopt) {
  Shown s{"conv2d_weight_grad", x.defined() ? x.shape() : Shape{}, weight_shape};
  check<TypeError>(x.defined() && grad_out.defined(), s.op, ": got an undefined tensor");
  check_same_device(s.op, x, grad_out);
  ConvParams p = params;
  cpu::ConvGeometry g = resolve(s, x.shape(), weight_shape, p);
  check_grad_out(s.op, grad_out, g);
  DType t = conv_dtype(s.op, {&x, &grad_out});
  DType kd = kernel_dtype(t);
  if (x.dtype() != kd || grad_out.dtype() != kd) {
    const bool tensor_cores = is_cuda(x.device()) && kd == DType::Float32 && one_16bit_dtype({&x, &grad_out});
    Tensor out = weight_grad_impl(astype(x, kd), astype(grad_out, kd), weight_shape, p,
                                  tensor_cores ? std::optional<DType>(t) : std::nullopt);
    return kd == t ? out : astype(out, t);
  }
  checked_numel(weight_shape, s.op);
  Tensor dw = Tensor::empty(weight_shape, kd, x.device());
  {
    GradModeGuard no_grad(false);
    Tensor xc = contiguous(x), gc = contiguous(grad_out);
    if (is_cuda(gc.device())) LAMINA_CUDA_BRANCH(s.op, device_backward(s.op, g, nullptr, &dw, xc, Tensor(), gc, half));
    else cpu::conv2d_backward(g, nullptr, &dw, nullptr, xc, Tensor(), gc);
  }
  if (needs_grad({&x, &grad_out})) {
    SavedTensor sx(x), sg(grad_out);
    const bool gx = x.requires_grad(), gg = grad_out.requires_grad();
    record("conv2d_weight_grad", {x, grad_out}, dw, [sx, sg, gx, gg, p](const Tensor& v) -> std::vector<Tensor> {
      // dw = sum gout x^T, linear in both: d x = input_grad(gout, v); d gout = conv2d(x, v).
      Tensor d_x, d_gout;
      if (gx) d_x = conv2d_input_grad(sg.get(), v, sx.get().shape(), p);
      if (gg) d_gout = conv2d(sx.get(), v, Tensor(), p);
      return {d_x, d_gout};
    });
  }
  return dw;
}

}  // namespace

Tensor conv2d_weight_grad(const Tensor& x, const Tensor& grad_out, const Shape& weight_shape,
                          const ConvParams& params) {
  return weight_grad_impl(x, grad_out, weight_shape, params);
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvParams& params,
                        int64_t output_padding_h, int64_t output_padding_w) {
  const char* op = "conv_transpose2d";
  check<TypeError>(x.defined() && w.defined(), op, ": got an undefined tensor");
  Shown s{op, x.shape(), w.shape()};
  check<ValueError>(x.ndim() == 4, op, ": expected an input (N, C_in, H, W)", shapes_of(s));
  check<ValueError>(w.ndim() == 4, op, ": expected a weight (C_in, C_out / groups, kH, kW)", shapes_of(s));
  check<ValueError>(!params.same, op, ": padding='same' is not supported; give explicit padding");
  ConvParams p = params;
  check_param_ranges(op, p);
  check<ValueError>(p.pad_top >= 0 && p.pad_bottom >= 0 && p.pad_left >= 0 && p.pad_right >= 0, op,
                    ": padding must be >= 0");
  check<ValueError>(w.shape()[2] <= kMaxConvParam && w.shape()[3] <= kMaxConvParam && x.shape()[2] <= kMaxConvParam &&
                        x.shape()[3] <= kMaxConvParam,
                    op, ": input or kernel side larger than 2**30", shapes_of(s));
  check<ValueError>(p.groups >= 1 && p.stride_h >= 1 && p.stride_w >= 1 && p.dilation_h >= 1 && p.dilation_w >= 1,
                    op, ": stride, dilation and groups must be >= 1");
  check<ValueError>(x.shape()[1] == w.shape()[0], op, ": the input has ", x.shape()[1],
                    " channels but the weight expects ", w.shape()[0], shapes_of(s));
  check<ValueError>(x.shape()[1] % p.groups == 0, op, ": groups (", p.groups, ") must divide the input channels (",
                    x.shape()[1], ")", shapes_of(s));
  check<ValueError>(output_padding_h >= 0 && output_padding_w >= 0 && output_padding_h < p.stride_h &&
                        output_padding_w < p.stride_w,
                    op, ": output_padding (", output_padding_h, ", ", output_padding_w,
                    ") must be >= 0 and smaller than the stride (", p.stride_h, ", ", p.stride_w, ")");
  const int64_t H = (x.shape()[2] - 1) * p.stride_h - p.pad_top - p.pad_bottom + p.dilation_h * (w.shape()[2] - 1) +
                    output_padding_h + 1;
  const int64_t W = (x.shape()[3] - 1) * p.stride_w - p.pad_left - p.pad_right + p.dilation_w * (w.shape()[3] - 1) +
                    output_padding_w + 1;
  check<ValueError>(H >= 1 && W >= 1, op, ": the output would be empty (", H, " x ", W, ")", shapes_of(s));
  const int64_t Co = w.shape()[1] * p.groups;
  if (bias.defined())
    check<ValueError>(bias.ndim() == 1 && bias.shape()[0] == Co, op, ": bias must have shape (", Co, ",), got ",
                      shape_str(bias.shape()));
  Tensor out = input_grad_impl(s, x, w, {x.shape()[0], Co, H, W}, p);
  if (bias.defined()) out = add(out, reshape(bias, {1, Co, 1, 1}));
  return out;
}

}  // namespace lamina
