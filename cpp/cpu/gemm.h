// Dense matrix multiply for the CPU backend: the kernel the matmul family (and conv via
// im2col, and the recurrent input projections) call. Layouts are BLAS-like but row-major.
#pragma once
#include <cstdint>

namespace lamina::cpu {

// Applied to every element of C after the multiply-add. `bias` is a length-N vector
// added to each row; GELU is the tanh approximation.
enum class Epilogue { None, Bias, BiasRelu, BiasGelu };

// C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C, then the epilogue.
// op(X) = X^T when trans_x. Row-major with leading dimensions: op(A)=A reads A[i*lda+k],
// op(A)=A^T reads A[k*lda+i]; the same for B, and C[i*ldc+j]. beta == 0 never reads C.
// Bias* epilogues require `bias` (N floats). C must not alias A, B or bias.
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc, Epilogue epilogue = Epilogue::None, const float* bias = nullptr);

// Same contract in double precision, without an epilogue (references, gradient checks).
void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
              const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
              int64_t ldc);

}  // namespace lamina::cpu
