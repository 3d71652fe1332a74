#include "cpu/matmul.h"

#include <algorithm>

#include "core/errors.h"
#include "core/parallel.h"
#include "cpu/copy.h"
#include "cpu/gemm.h"

namespace lamina::cpu {

namespace {

// How one (rows x cols) matrix with strides (s0, s1) reaches the GEMM.
struct MatrixLayout {
  bool trans = false;
  int64_t ld = 0;
  bool ok = false;
};

MatrixLayout layout_of(int64_t rows, int64_t cols, int64_t s0, int64_t s1) {
  if ((s1 == 1 || cols == 1) && s0 >= std::max<int64_t>(cols, 1)) return {false, s0, true};
  if ((s0 == 1 || rows == 1) && s1 >= std::max<int64_t>(rows, 1)) return {true, s1, true};
  if (rows <= 1 && cols <= 1) return {false, 1, true};
  return {};
}

// Element offsets of batch index `bi` for a tensor whose leading axes form the batch.
int64_t batch_offset(int64_t bi, const Shape& batch_shape, const Shape& strides) {
  int64_t off = 0;
  for (size_t d = batch_shape.size(); d-- > 0;) {
    off += (bi % batch_shape[d]) * strides[d];
    bi /= batch_shape[d];
  }
  return off;
}

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
          T* C) {
  if constexpr (std::is_same_v<T, float>) gemm_f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
  else gemm_f64(ta, tb, M, N, K, 1.0, A, lda, B, ldb, 0.0, C, N);
}

template <class T>
void run(const Tensor& out, Tensor a, Tensor b) {
  const int64_t nd = out.ndim();
  const int64_t M = out.shape()[nd - 2], N = out.shape()[nd - 1], K = a.shape()[nd - 1];
  MatrixLayout la = layout_of(M, K, a.strides()[nd - 2], a.strides()[nd - 1]);
  MatrixLayout lb = layout_of(K, N, b.strides()[nd - 2], b.strides()[nd - 1]);
  auto densify = [](const Tensor& t) {
    Tensor c = Tensor::empty(t.shape(), t.dtype(), t.device());
    copy_cast(c, t);
    return c;
  };
  if (!la.ok) {
    a = densify(a);
    la = layout_of(M, K, a.strides()[nd - 2], a.strides()[nd - 1]);
  }
  if (!lb.ok) {
    b = densify(b);
    lb = layout_of(K, N, b.strides()[nd - 2], b.strides()[nd - 1]);
  }
  Shape batch(out.shape().begin(), out.shape().end() - 2);
  int64_t nb = 1;
  for (int64_t d : batch) nb *= d;
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  T* cp = out.data<T>();
  if (M * N == 0) return;
  auto one = [&](int64_t bi) {
    gemm<T>(la.trans, lb.trans, M, N, K, ap + batch_offset(bi, batch, a.strides()), la.ld,
            bp + batch_offset(bi, batch, b.strides()), lb.ld, cp + bi * M * N);
  };
  // Many small products: one per task (each GEMM then runs single-threaded inside the
  // pool). A few large ones: one after another, each using all threads.
  if (nb > 1 && M * N * K < 128 * 128 * 128) {
    parallel_for(0, nb, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, M * N * K)), [&](int64_t lo, int64_t hi) {
      for (int64_t bi = lo; bi < hi; ++bi) one(bi);
    });
  } else {
    for (int64_t bi = 0; bi < nb; ++bi) one(bi);
  }
}

}  // namespace

void matmul_bias(const Tensor& out, const Tensor& a_in, const Tensor& b_in, const Tensor& bias, Epilogue epilogue) {
  const int64_t M = a_in.shape()[0], K = a_in.shape()[1], N = b_in.shape()[1];
  Tensor a = a_in, b = b_in;
  MatrixLayout la = layout_of(M, K, a.strides()[0], a.strides()[1]);
  MatrixLayout lb = layout_of(K, N, b.strides()[0], b.strides()[1]);
  if (!la.ok) {
    a = Tensor::empty(a_in.shape(), a_in.dtype(), a_in.device());
    copy_cast(a, a_in);
    la = {false, std::max<int64_t>(K, 1), true};
  }
  if (!lb.ok) {
    b = Tensor::empty(b_in.shape(), b_in.dtype(), b_in.device());
    copy_cast(b, b_in);
    lb = {false, std::max<int64_t>(N, 1), true};
  }
  gemm_f32(la.trans, lb.trans, M, N, K, 1.0f, a.data<float>(), la.ld, b.data<float>(), lb.ld, 0.0f, out.data<float>(),
           std::max<int64_t>(N, 1), epilogue, bias.data<float>());
}

void matmul(const Tensor& out, const Tensor& a, const Tensor& b) {
  if (a.dtype() == DType::Float32) return run<float>(out, a, b);
  if (a.dtype() == DType::Float64) return run<double>(out, a, b);
  throw TypeError(std::string("matmul: unsupported dtype ") + dtype_name(a.dtype()));
}

}  // namespace lamina::cpu
