// Dense matrix multiply for the CPU backend: the kernel the matmul family (and conv via
// im2col, and the recurrent input projections) call. Layouts are BLAS-like but row-major.
#pragma once
#include <cstdint>
#include <memory>

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

// op(B)[K,N] packed once for many products that share it (a recurrent weight used at every
// time step). It is a copy: later changes to B are not seen.
class PackedMatrixF32 {
 public:
  PackedMatrixF32(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb);
  int64_t rows() const { return K_; }
  int64_t cols() const { return N_; }
  const float* data() const { return data_.get(); }

 private:
  struct AlignedDelete {
    void operator()(float* p) const;
  };
  int64_t K_, N_;
  std::unique_ptr<float[], AlignedDelete> data_;
};

// gemm_f32 with a packed op(B) (K = B.rows(), N = B.cols()), on the calling thread only:
// for callers that already spread their work over the pool.
void gemm_f32_packed(bool trans_a, int64_t M, const float* A, int64_t lda, const PackedMatrixF32& B,
                     float beta, float* C, int64_t ldc, Epilogue epilogue = Epilogue::None,
                     const float* bias = nullptr);

// Allocates the calling thread's workspace for gemm_f32_packed with up to M rows of A, so
// those calls allocate nothing (they then cannot throw). Throws MemoryError.
void gemm_f32_packed_reserve(int64_t M, const PackedMatrixF32& B);

// Same contract in double precision, without an epilogue (references, gradient checks).
void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
              const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
              int64_t ldc);

}  // namespace lamina::cpu
