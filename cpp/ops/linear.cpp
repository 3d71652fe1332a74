#include "ops/linear.h"

#include "core/autograd.h"
#include "core/backend.h"
#include "core/errors.h"
#include "cpu/matmul.h"
#include "ops/arith.h"
#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"
#include "ops/unary.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

void check_linear_args(const Tensor& x, const Tensor& w, const Tensor& b, const std::string& activation) {
  check<ValueError>(activation == "linear" || activation == "relu" || activation == "gelu_tanh",
                    "linear: activation must be 'linear', 'relu' or 'gelu_tanh', got '", activation, "'");
  check<ValueError>(x.ndim() >= 1, "linear: x must be at least 1-D, got shape ", shape_str(x.shape()));
  check<ValueError>(w.ndim() == 2, "linear: w must be (in_features, out_features), got shape ", shape_str(w.shape()));
  check<ValueError>(x.shape().back() == w.shape()[0], "linear: x of shape ", shape_str(x.shape()),
                    " has ", x.shape().back(), " features but w of shape ", shape_str(w.shape()), " expects ",
                    w.shape()[0]);
  if (b.defined())
    check<ValueError>(b.ndim() == 1 && b.shape()[0] == w.shape()[1], "linear: expected b of shape (",
                      w.shape()[1], ",), got ", shape_str(b.shape()));
  check_same_device("linear", x, w);
  if (b.defined()) check_same_device("linear", x, b);
}

// With a bias, float32 on the CPU or one floating dtype on a CUDA device: the fused GEMM applies.
bool fused_path(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (!b.defined() || w.dtype() != x.dtype() || b.dtype() != x.dtype()) return false;
  return is_cuda(x.device()) ? is_floating(x.dtype()) : x.dtype() == DType::Float32;
}

cpu::Epilogue bias_epilogue(const std::string& activation) {
  if (activation == "relu") return cpu::Epilogue::BiasRelu;
  if (activation == "gelu_tanh") return cpu::Epilogue::BiasGelu;
  return cpu::Epilogue::Bias;
}

Tensor activate(const Tensor& y, const std::string& activation) {
  if (activation == "relu") return relu(y);
  if (activation == "gelu_tanh") return gelu(y, true);
  return y;
}

// out2 (rows, out) = epilogue(x2 (rows, in) @ w + b) on the device: 16-bit operands on tensor
// cores with fp32 accumulation and an fp32 bias, rounded once to their dtype; float32 exact
// or TF32 (set_float32_matmul_precision); float64 exact.
void linear_cuda(const Tensor& out2, const Tensor& x2, const Tensor& w, const Tensor& b, cpu::Epilogue epilogue) {
  const DType t = x2.dtype();
  const bool half = t == DType::BFloat16 || t == DType::Float16;
  const Tensor bias = contiguous(astype(b, half ? DType::Float32 : t));
  LAMINA_CUDA_BRANCH("linear", cuda::matmul("linear", out2, contiguous(x2), contiguous(w), epilogue, bias,
                                            allow_tf32(t)));
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, const std::string& activation) {
  check_linear_args(x, w, b, activation);
  const bool relu_after = activation == "relu";
  if (!fused_path(x, w, b)) {
    Tensor y = matmul(x, w);
    if (b.defined()) y = add(y, b);
    return activate(y, activation);
  }
  // GELU's derivative needs the pre-activation: with a graph, it is its own op after the GEMM.
  if (activation == "gelu_tanh" && needs_grad({&x, &w, &b})) return gelu(linear(x, w, b, "linear"), true);
  const int64_t in = w.shape()[0], out_features = w.shape()[1];
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < x.shape().size(); ++d) rows *= x.shape()[d];
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  {
    GradModeGuard no_grad(false);
    const Tensor x2 = reshape(x, {rows, in}), out2 = reshape(out, {rows, out_features});
    if (is_cuda(x.device()))
      linear_cuda(out2, x2, w, b, bias_epilogue(activation));
    else
      cpu::matmul_bias(out2, x2, w, contiguous(b), bias_epilogue(activation));
  }
  if (needs_grad({&x, &w, &b})) {
    SavedTensor sx(x), sw(w), sy(relu_after ? out : Tensor());
    const bool gx = x.requires_grad(), gw = w.requires_grad(), gb = b.requires_grad();
    record("linear", {x, w, b}, out, [sx, sw, sy, gx, gw, gb, relu_after, rows, in, out_features](const Tensor& g) {
      // Through relu: the gradient passes where the output is positive (relu's own rule).
      const Tensor dz = relu_after ? relu_grad(g, sy.get()) : g;
      const Tensor dz2 = reshape(dz, {rows, out_features});
      Tensor dx, dw, db;
      if (gx) dx = matmul(dz, matrix_transpose(sw.get()));
      if (gw) dw = matmul(matrix_transpose(reshape(sx.get(), {rows, in})), dz2);
      if (gb) db = sum(dz2, {0});
      return std::vector<Tensor>{dx, dw, db};
    });
  }
  return out;
}

}  // namespace lamina
