#include "ops/matmul.h"

#include <atomic>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/errors.h"
#include "cpu/matmul.h"
#include "ops/copy.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

std::atomic<Float32MatmulPrecision> float32_precision{Float32MatmulPrecision::Highest};

bool is_half(DType t) { return t == DType::BFloat16 || t == DType::Float16; }

int64_t batch_numel(const Shape& s) {
  int64_t n = 1;
  for (size_t i = 0; i + 2 < s.size(); ++i) n *= s[i];
  return n;
}

// The CUDA GEMM takes contiguous operands; 16-bit pairs of one dtype run on tensor cores with
// fp32 accumulation, and the kernel rounds the result to their dtype once (as the CPU does).
// An operand whose batch axes are all 1 (or absent) stays one matrix that every batch shares,
// and when that is b, the batch folds into the rows of a single GEMM (better tile use than
// one grid.z slice per batch); otherwise one launch covers the batch with grid.z.
Tensor matmul_cuda(const Tensor& a, const Tensor& b, const Shape& full_a, const Shape& full_b,
                   const Shape& full_out, DType t) {
  const DType in_t = a.dtype() == b.dtype() && is_half(a.dtype()) ? a.dtype() : kernel_dtype(t);
  auto operand = [&](const Tensor& x, const Shape& full) {
    const Tensor xt = astype(x, in_t);
    if (batch_numel(x.shape()) == 1)
      return contiguous(reshape(xt, {full[full.size() - 2], full[full.size() - 1]}));
    return contiguous(expand(xt, full));
  };
  Tensor ac = operand(a, full_a), bc = operand(b, full_b);
  const DType out_t = is_half(in_t) ? in_t : kernel_dtype(t);
  Tensor out = Tensor::empty(full_out, out_t, a.device());
  const int64_t M = full_out[full_out.size() - 2], N = full_out.back(), K = full_a.back();
  Tensor out_view = out;
  if (bc.ndim() == 2 && ac.ndim() > 2) {
    const int64_t rows = batch_numel(full_out) * M;
    ac = reshape(ac, {rows, K});
    out_view = reshape(out, {rows, N});
  }
  LAMINA_CUDA_BRANCH("matmul", cuda::matmul("matmul", out_view, ac, bc, cpu::Epilogue::None, Tensor(),
                                            allow_tf32(in_t)));
  return out_t == t ? out : astype(out, t);
}

Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  // a: (..., M, K), b: (..., K, N), both at least 2-D.
  int64_t M = a.shape()[a.ndim() - 2], K = a.shape()[a.ndim() - 1];
  int64_t K2 = b.shape()[b.ndim() - 2], N = b.shape()[b.ndim() - 1];
  check<ValueError>(K == K2, "matmul: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
                    " are not aligned (", K, " != ", K2, ")");
  Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");
  checked_numel(batch, "matmul");
  Shape full_a = batch, full_b = batch, full_out = batch;
  full_a.insert(full_a.end(), {M, K});
  full_b.insert(full_b.end(), {K, N});
  full_out.insert(full_out.end(), {M, N});
  checked_numel(full_out, "matmul");
  DType t = promote_types(a.dtype(), b.dtype());
  check<TypeError>(is_floating(t), "matmul: expected floating-point tensors, got ", dtype_name(a.dtype()), " and ",
                   dtype_name(b.dtype()));
  DType kd = kernel_dtype(t);
  GradModeGuard no_grad(false);
  if (is_cuda(a.device())) return matmul_cuda(a, b, full_a, full_b, full_out, t);
  Tensor out = Tensor::empty(full_out, kd, a.device());
  cpu::matmul(out, expand(astype(a, kd), full_a), expand(astype(b, kd), full_b));
  return kd == t ? out : astype(out, t);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_same_device("matmul", a, b);
  if (a.ndim() < 1 || b.ndim() < 1)
    throw ValueError("matmul: operands must be at least 1-D, got shapes " + shape_str(a.shape()) + " and " +
                     shape_str(b.shape()));
  Tensor out;
  if (a.ndim() == 2 && b.ndim() == 2 && a.dtype() == b.dtype() && is_floating(a.dtype()) &&
      kernel_dtype(a.dtype()) == a.dtype() && a.shape()[1] == b.shape()[0] && !is_cuda(a.device())) {
    // The common case needs no reshapes: one output allocation and the kernel.
    out = Tensor::empty({a.shape()[0], b.shape()[1]}, a.dtype(), a.device());
    cpu::matmul(out, a, b);
  } else {
    Tensor a2 = a.ndim() == 1 ? Tensor::view_of(a, {1, a.shape()[0]}, {0, a.strides()[0]}, a.offset()) : a;
    Tensor b2 = b.ndim() == 1 ? Tensor::view_of(b, {b.shape()[0], 1}, {b.strides()[0], 0}, b.offset()) : b;
    out = matmul_nd(a2, b2);
    if (a.ndim() == 1) out = squeeze(out, {-2});
    if (b.ndim() == 1) out = squeeze(out, {-1});
  }
  if (needs_grad({&a, &b})) {
    SavedTensor sa(a), sb(b);
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record("matmul", {a, b}, out, [sa, sb, ga, gb](const Tensor& g) -> std::vector<Tensor> {
      const Tensor &x = sa.get(), &y = sb.get();
      Tensor x2 = x.ndim() == 1 ? unsqueeze(x, 0) : x;
      Tensor y2 = y.ndim() == 1 ? unsqueeze(y, 1) : y;
      Tensor g2 = g;
      if (x.ndim() == 1) g2 = unsqueeze(g2, g2.ndim() - (y.ndim() == 1 ? 0 : 1));
      if (y.ndim() == 1) g2 = unsqueeze(g2, -1);
      Tensor gx, gy;
      if (ga) {
        gx = matmul(g2, matrix_transpose(y2));
        if (x.ndim() == 1) gx = squeeze(gx, {-2});
        gx = sum_to(gx, x.shape());
      }
      if (gb) {
        gy = matmul(matrix_transpose(x2), g2);
        if (y.ndim() == 1) gy = squeeze(gy, {-1});
        gy = sum_to(gy, y.shape());
      }
      return {gx, gy};
    });
  }
  return out;
}

void set_float32_matmul_precision(Float32MatmulPrecision precision) { float32_precision = precision; }

Float32MatmulPrecision float32_matmul_precision() { return float32_precision; }

bool allow_tf32(DType operands) {
  return operands == DType::Float32 && float32_matmul_precision() == Float32MatmulPrecision::High;
}

}  // namespace lamina
