// Internals shared by the GEMM sources (gemm.cpp: driver, gemm_pack.cpp: packing,
// gemm_generic.cpp: portable kernels, gemm_avx2.cpp: AVX2/FMA kernels, gemm_avx512.cpp:
// AVX-512 kernels). Not a public API; the kernel lab and the unit test include it to pick an
// instruction set explicitly.
#pragma once
#include <cstdint>

#include "cpu/gemm.h"

namespace lamina::cpu::gemm_detail {

// Register tile of the portable and AVX2 microkernels (the AVX-512 one has its own, see
// Kernels); conv.cpp packs its panels for this tile.
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

// One mr x NR tile whose op(A) = A is read in place (element (i, k) at a[i * lda + k]), b a
// packed NR-column panel as for MicroKernel.
template <class T>
using MicroKernelARows = void (*)(int64_t kc, const T* a, int64_t lda, const T* b, T* c, int64_t ldc,
                                  const StoreArgs<T>& s, int mr, int nr);

template <class T>
using PackFn = void (*)(bool trans, const T* src, int64_t ld, int64_t rows, int64_t cols, T* out);

// The kernels of one instruction set and the register tile (mr x nr) that its packed panels
// are cut for. Every set computes each element of C as the same ordered sum over k, so the
// sets give bit-identical results.
template <class T>
struct Kernels {
  const char* name;
  int mr, nr;
  MicroKernel<T> micro;
  void (*direct)(const Direct<T>&);
  PackFn<T> pack_a, pack_b;
  int64_t parallel_macs;  // from this many multiply-adds a second thread pays off
  // Below this many multiply-adds, with op(B) rows contiguous and K within one K block, the
  // unpacked path runs instead of packing (the operands are in L1 or L2 anyway).
  int64_t direct_macs;
  // Optional: a kernel reading op(A) = A in place with a_rows-row tiles (the same panels of B
  // and the same sums), which the blocked path uses instead of packing A.
  MicroKernelARows<T> micro_a_rows = nullptr;
  int a_rows = 0;
};

void microkernel_f32_generic(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             const StoreArgs<float>& s, int mr, int nr);
void microkernel_f64_generic(int64_t kc, const double* a, const double* b, double* c,
                             int64_t ldc, const StoreArgs<double>& s, int mr, int nr);
void microkernel_f32_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                          const StoreArgs<float>& s, int mr, int nr);
void microkernel_f64_avx2(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                          const StoreArgs<double>& s, int mr, int nr);

void microkernel_f32_avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                            const StoreArgs<float>& s, int mr, int nr);
// Tiles shaped for the convolution's packing (conv.cpp): 16-position column panels, 6-row
// column-matrix panels.
void microkernel_f32_avx512_24x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                  const StoreArgs<float>& s, int mr, int nr);
void microkernel_f32_avx512_16x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                  const StoreArgs<float>& s, int mr, int nr);
// B rows unpacked: row k of the panel is the 32 floats at b + b_offsets[k]. Of column vector v
// (columns 16v .. 16v + 15) the lanes in keep[v] are stored, packed together, from
// c + i * ldc + offset[v] for tile row i (so one panel may feed several output rows).
struct RowPanelStore {
  int64_t offset[2];
  uint16_t keep[2];
};
void microkernel_f32_avx512_rows_8x32(int64_t kc, const float* a, const float* b, const int64_t* b_offsets, float* c,
                                      int64_t ldc, const StoreArgs<float>& s, int mr, const RowPanelStore& out);
void microkernel_f32_avx512_a_rows_8x32(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                                        int64_t ldc, const StoreArgs<float>& s, int mr, int nr);
// A rows unpacked: element (i, k) of the 8-row (AVX2: 6-row) panel is a_rows[i][a_offsets[k]].
void microkernel_f32_avx2_offsets_6x16(int64_t kc, const float* const* a_rows, const int32_t* a_offsets,
                                       const float* b, float* c, int64_t ldc, const StoreArgs<float>& s, int mr,
                                       int nr);
void microkernel_f32_avx512_offsets_8x32(int64_t kc, const float* const* a_rows, const int32_t* a_offsets,
                                         const float* b, float* c, int64_t ldc, const StoreArgs<float>& s, int mr,
                                         int nr);
void microkernel_f32_avx512_6x32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                 const StoreArgs<float>& s, int mr, int nr);

void direct_f32_generic(const Direct<float>& d);
void direct_f64_generic(const Direct<double>& d);
void direct_f32_avx2(const Direct<float>& d);
void direct_f32_avx512(const Direct<float>& d);
void direct_f64_avx2(const Direct<double>& d);

// Packing. `A` points at op(A)[i0,k0]; writes ceil(mc/MR) panels of [kc][MR].
// `B` points at op(B)[k0,j0]; writes ceil(nc/NR) panels of [kc][NR]. Pads with zeros.
// Instantiated for the tiles above: MR 6, 8, 12, 16 and 24, NR 16 and 32 (float), 6 and 8 (double).
template <class T, int MR>
void pack_a(bool trans, const T* A, int64_t lda, int64_t mc, int64_t kc, T* out);
template <class T, int NR>
void pack_b(bool trans, const T* B, int64_t ldb, int64_t kc, int64_t nc, T* out);
// AVX2 register-transposing packs for the cases pack_a / pack_b do element by element;
// MR 6 or 12, NR 16 or 32. (A template's definition cannot add the target attribute, so
// the declarations carry it.)
template <int MR>
__attribute__((target("avx2,fma"))) void pack_a_f32_avx2(bool trans, const float* A, int64_t lda, int64_t mc,
                                                         int64_t kc, float* out);
template <int NR>
__attribute__((target("avx2,fma"))) void pack_b_f32_avx2(bool trans, const float* B, int64_t ldb, int64_t kc,
                                                         int64_t nc, float* out);

// The AVX-512 set's packs: row copies with zmm moves where pack_a / pack_b copy rows
// (op(A) = A^T, op(B) = B), the AVX2 transposing packs otherwise.
void pack_a_f32_avx512(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, float* out);
void pack_b_f32_avx512(bool trans, const float* B, int64_t ldb, int64_t kc, int64_t nc, float* out);

// Scalar epilogue shared by the portable kernels and the tests' expectations.
float gelu_tanh(float x);
double gelu_tanh(double x);

// Instruction set used by gemm_f32/gemm_f64. Auto = the widest the CPU has (AVX-512F, else
// AVX2+FMA, else the portable kernels), capped by LAMINA_CPU_ISA=generic|avx2 in the
// environment. An explicit choice the CPU lacks falls back the same way.
enum class Isa { Auto, Generic, Avx2, Avx512 };
void set_isa(Isa isa);  // for tests and the lab; not thread-safe against running GEMMs
bool cpu_has_avx2_fma();
bool cpu_has_avx512();
Isa isa_in_use();  // what Auto (or the set_isa choice) resolves to on this CPU
const Kernels<float>& f32_kernels();   // the set in use
const Kernels<double>& f64_kernels();

}  // namespace lamina::cpu::gemm_detail
