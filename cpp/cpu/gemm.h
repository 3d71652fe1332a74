// Dense matrix multiply for the CPU backend: the kernel the matmul family (and conv via
// im2col, and the recurrent input projections) call. Layouts are BLAS-like but row-major.
#pragma once
#include <cstdint>

#include "core/host_cache.h"

namespace lamina::cpu {

namespace gemm_detail {
template <class T>
struct Kernels;
}

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

// op(B)[K, N] multiplied many times (a recurrent weight at every time step, attention's
// key and value tiles for every query block). float packs it once for the microkernel (a
// copy: later changes to B are not seen); double (references, gradient checks) reads B in
// place, so B must outlive it.
template <class T>
class ReusedMatrix {
 public:
  ReusedMatrix(bool trans_b, int64_t K, int64_t N, const T* B, int64_t ldb);
  int64_t rows() const { return K_; }
  int64_t cols() const { return N_; }

  // Allocates the calling thread's workspace for products with up to M rows of A, so that
  // multiply() then allocates nothing and cannot throw. Throws MemoryError.
  void reserve(int64_t M) const;

  // C[M, N] = alpha * op(A)[M, K] @ op(B) + beta * C, then the epilogue (double: None or
  // Bias only), on the calling thread only: for callers that spread their own work over
  // the pool.
  void multiply(bool trans_a, int64_t M, T alpha, const T* A, int64_t lda, T beta, T* C, int64_t ldc,
                Epilogue epilogue = Epilogue::None, const T* bias = nullptr) const;

 private:
  bool trans_;
  int64_t K_, N_;
  const T* B_;
  int64_t ldb_;
  const gemm_detail::Kernels<float>* kernels_ = nullptr;  // the set packed_ is laid out for
  HostArray<T> packed_;  // from the host buffer cache: attention packs every head per call
};

extern template class ReusedMatrix<float>;
extern template class ReusedMatrix<double>;

// Grows the calling thread's packing workspace to what gemm_f32 (T = float) or gemm_f64
// needs for an M x N x K product, so that such a product made on this thread later (nested
// in a team member, where it runs inline) allocates nothing and cannot throw. Throws
// MemoryError.
template <class T>
void reserve_gemm(int64_t M, int64_t N, int64_t K);

// The instruction set of the float32 kernels in use: "avx512", "avx2" or "generic" (the
// CPU's widest, capped by LAMINA_CPU_ISA=avx2|generic in the environment).
const char* gemm_isa();

// Same contract in double precision, without an epilogue (references, gradient checks).
void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
              const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
              int64_t ldc);

}  // namespace lamina::cpu
