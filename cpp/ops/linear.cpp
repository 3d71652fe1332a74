#include "ops/linear.h"

#include "core/autograd.h"
#include "core/backend.h"
#include "core/errors.h"
#include "cpu/matmul.h"
#include "ops/arith.h"
#include "ops/compare.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"
#include "ops/unary.h"

namespace lamina {

namespace {

void check_linear_args(const Tensor& x, const Tensor& w, const Tensor& b, const std::string& activation) {
  check<ValueError>(activation == "linear" || activation == "relu",
                    "linear: activation must be 'linear' or 'relu', got '", activation, "'");
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

// float32 on the CPU with a bias: the fused GEMM applies.
bool fused_path(const Tensor& x, const Tensor& w, const Tensor& b) {
  return b.defined() && !is_cuda(x.device()) && x.dtype() == DType::Float32 && w.dtype() == DType::Float32 &&
         b.dtype() == DType::Float32;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, const std::string& activation) {
  check_linear_args(x, w, b, activation);
  const bool relu_after = activation == "relu";
  if (!fused_path(x, w, b)) {
    Tensor y = matmul(x, w);
    if (b.defined()) y = add(y, b);
    return relu_after ? relu(y) : y;
  }
  const int64_t in = w.shape()[0], out_features = w.shape()[1];
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < x.shape().size(); ++d) rows *= x.shape()[d];
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out = Tensor::empty(out_shape, DType::Float32, x.device());
  {
    GradModeGuard no_grad(false);
    const Tensor x2 = reshape(x, {rows, in});
    cpu::matmul_bias(reshape(out, {rows, out_features}), x2, w, contiguous(b),
                     relu_after ? cpu::Epilogue::BiasRelu : cpu::Epilogue::Bias);
  }
  if (needs_grad({&x, &w, &b})) {
    SavedTensor sx(x), sw(w), sy(relu_after ? out : Tensor());
    const bool gx = x.requires_grad(), gw = w.requires_grad(), gb = b.requires_grad();
    record("linear", {x, w, b}, out, [sx, sw, sy, gx, gw, gb, relu_after, rows, in, out_features](const Tensor& g) {
      // Through relu: the gradient passes where the output is positive (relu's own rule).
      const Tensor dz = relu_after ? mul(g, astype(gt(sy.get(), zeros({}, DType::Float32)), DType::Float32)) : g;
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
