// Internals shared by the GEMM sources (gemm.cpp: driver, gemm_pack.cpp: packing,
// gemm_generic.cpp: portable kernels, gemm_avx2.cpp: AVX2/FMA kernels). Not a public API;
// the kernel lab and the unit test include it to pick an instruction set explicitly.
#pragma once
#include <cstdint>

#include "cpu/gemm.h"

namespace lamina::cpu::gemm_detail {

// Register tile of one microkernel call, and the cache blocks around it (see gemm.cpp).
template <class T>
struct Tile;
template <>
struct Tile<float> {
  static constexpr int MR = 6, NR = 16;  // 12 ymm accumulators of 8 floats
};
template <>
struct Tile<double> {
  static constexpr int MR = 6, NR = 8;  // 12 ymm accumulators of 4 doubles
};

// How a finished tile is written: c = act(alpha * acc + beta * c + bias).
// beta == 0 never reads c; bias is null unless the epilogue is Bias*.
template <class T>
struct StoreArgs {
  T alpha;
  T beta;
  Epilogue epilogue;
  const T* bias;  // points at the tile's first column
};

// One MR x NR tile: a is an MR-row panel packed [kc][MR], b an NR-column panel packed
// [kc][NR] (both 64-byte aligned, zero-padded past the matrix edge). Only rows [0, mr) and
// columns [0, nr) of c are read or written.
template <class T>
using MicroKernel = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc,
                             const StoreArgs<T>& s, int mr, int nr);

// Unpacked path for small or vector-shaped products: op(A) element (i,k) is
// A[i*a_row + k*a_col]; op(B) element (k,j) is B[k*b_row + j*b_col].
template <class T>
struct Direct {
  int64_t M, N, K;
  const T* A;
  int64_t a_row, a_col;
  const T* B;
  int64_t b_row, b_col;
  T* C;
  int64_t ldc;
  StoreArgs<T> s;  // s.bias points at column 0
};

void microkernel_f32_generic(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             const StoreArgs<float>& s, int mr, int nr);
void microkernel_f64_generic(int64_t kc, const double* a, const double* b, double* c,
                             int64_t ldc, const StoreArgs<double>& s, int mr, int nr);
void microkernel_f32_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                          const StoreArgs<float>& s, int mr, int nr);
void microkernel_f64_avx2(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                          const StoreArgs<double>& s, int mr, int nr);

void direct_f32_generic(const Direct<float>& d);
void direct_f64_generic(const Direct<double>& d);
void direct_f32_avx2(const Direct<float>& d);
void direct_f64_avx2(const Direct<double>& d);

// Packing. `A` points at op(A)[i0,k0]; writes ceil(mc/MR) panels of [kc][MR].
// `B` points at op(B)[k0,j0]; writes ceil(nc/NR) panels of [kc][NR]. Pads with zeros.
template <class T>
void pack_a(bool trans, const T* A, int64_t lda, int64_t mc, int64_t kc, T* out);
template <class T>
void pack_b(bool trans, const T* B, int64_t ldb, int64_t kc, int64_t nc, T* out);
void pack_a_f32_avx2(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* out);
void pack_b_f32_avx2(bool trans, const float* B, int64_t ldb, int64_t kc, int64_t nc, float* out);

// Scalar epilogue shared by the portable kernels and the tests' expectations.
float gelu_tanh(float x);
double gelu_tanh(double x);

// Instruction set used by gemm_f32/gemm_f64. Auto = AVX2+FMA when the CPU has both.
enum class Isa { Auto, Generic, Avx2 };
void set_isa(Isa isa);  // for tests and the lab; not thread-safe against running GEMMs
bool cpu_has_avx2_fma();

}  // namespace lamina::cpu::gemm_detail
