// GEMM driver: picks the path, blocks for the caches, packs, and spreads the work over the
// thread pool. Kernels live in gemm_avx512.cpp / gemm_avx2.cpp / gemm_generic.cpp, packing
// in gemm_pack.cpp; the instruction set's register tile (MR x NR: 6 x 16, or 12 x 32 with
// AVX-512) is a run-time value here.
//
// Blocked path (after the classic five-loop structure):
//   for jc in N by NC:            B block kc x nc, packed once per (jc, pc), lives in L2/L3
//     for pc in K by KC:          beta only on the first K block, epilogue only on the last
//       pack op(B)[pc:, jc:] into NR-column panels
//       for ic in M by MC:        A block mc x kc, packed, stays in L2
//         pack op(A)[ic:, pc:] into MR-row panels
//         for jr in nc by NR:     one B panel (kc x NR: 16 KB, 32 KB with AVX-512) in L1
//           for ir in mc by MR:   microkernel: C[MR, NR] tile
// Threads take disjoint slabs of C (columns when N >= M, else rows) and pack their own
// panels, so they never wait on each other; the repacked operand is the smaller one.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <type_traits>

#include "core/errors.h"
#include "core/host_cache.h"
#include "core/parallel.h"
#include "core/scratch.h"
#include "cpu/gemm.h"
#include "cpu/gemm_internal.h"
#include "cpu/isa.h"

namespace lamina::cpu {

namespace gemm_detail {

namespace {

// Cache blocks. f32: an A block of 144 x 256 (144 KB) sits in L2, a B panel of 256 x 16
// (16 KB; 256 x 32 = 32 KB with AVX-512) in L1 next to the A panel being read (6 or 12 KB).
// f64 halves the rows per block. KC does not depend on the instruction set: the K blocks
// fix where partial sums are rounded, so every set gives the same bits.
template <class T>
struct Blocking;
template <>
struct Blocking<float> {
  static constexpr int64_t MC = 144, KC = 256, NC = 3072;
};
template <>
struct Blocking<double> {
  static constexpr int64_t MC = 72, KC = 256, NC = 1536;
};

// Below this many multiply-adds the unpacked loops win when op(B) rows are contiguous
// (measured: even at 24^3, 1.0x at 32^3). With op(B) = B^T packing wins from 8^3 up.
constexpr int64_t kDirectWork = 32 * 32 * 32;
// With the AVX-512 8 x 32 unpacked blocks, skipping the packs pays up to about 256^3 when K
// fits one K block (2 threads, GFLOP/s unpacked vs packed: 64^3 170 vs 117, 128^3 343 vs
// 244, 256^3 357-386 vs 347-350; 512 x 512 x 256 362-376 vs 388-390, where packed wins).
constexpr int64_t kDirectWorkAvx512 = 256 * 256 * 256 + 1;
// The AVX2 set's 4 x 16 blocks (8 accumulators, latency- and load-bound) gain only up to
// 64^3 (LAMINA_CPU_ISA=avx2, 2 threads, unpacked vs packed: 64^3 5.4 vs 6.1 us; 128^3 32.9 vs
// 27.7 us; 256^3 257 vs 176 us).
constexpr int64_t kDirectWorkAvx2 = 64 * 64 * 64 + 1;
// A second thread pays off from about 64^3 multiply-adds with the AVX2 kernels (measured:
// 1.3x at 64^3, a loss at 48^3, where waking the worker costs more than half the work), and
// from about 72^3 with the AVX-512 unpacked blocks (one vs two threads, microseconds: 64^3
// 3.35 vs 3.50, 80^3 5.86 vs 4.72, 96^3 9.8 vs 6.6). The packed AVX-512 path broke even
// between 80^3 and 96^3 (GFLOP/s: 112 vs 106 at 80^3, 139 vs 150 at 96^3), but it only runs
// there when K spans several K blocks. Tasks get at least 32^3.
constexpr int64_t kParallelWork = 64 * 64 * 64;
constexpr int64_t kParallelWorkAvx512 = 72 * 72 * 72;
constexpr int64_t kTaskWork = 32 * 32 * 32;

std::atomic<Isa> g_isa{Isa::Auto};

// The widest set the CPU has, capped by LAMINA_CPU_ISA (read once).
Isa best_isa() {
  static const Isa best = [] {
    const int cap = isa_cap_from_environment();
    if (cap < 1 || !cpu_has_avx2_fma()) return Isa::Generic;
    if (cap < 2 || !cpu_has_avx512()) return Isa::Avx2;
    return Isa::Avx512;
  }();
  return best;
}

}  // namespace

Isa isa_in_use() {
  const Isa chosen = g_isa.load(std::memory_order_relaxed);
  const Isa best = best_isa();
  if (chosen == Isa::Auto) return best;
  if (chosen == Isa::Avx512 && !cpu_has_avx512()) return best;
  if (chosen == Isa::Avx2 && !cpu_has_avx2_fma()) return Isa::Generic;
  return chosen;
}

namespace {

// Spelled out for the aggregate initializers below.
MicroKernelARows<float> ARowsKernel(MicroKernelARows<float> k) { return k; }

const Kernels<float> kF32Generic{"generic", Tile<float>::MR, Tile<float>::NR, microkernel_f32_generic,
                                 direct_f32_generic, pack_a<float, 6>, pack_b<float, 16>, kParallelWork, kDirectWork};
const Kernels<float> kF32Avx2{"avx2", Tile<float>::MR, Tile<float>::NR, microkernel_f32_avx2, direct_f32_avx2,
                              pack_a_f32_avx2<6>, pack_b_f32_avx2<16>, kParallelWork, kDirectWorkAvx2};
const Kernels<float> kF32Avx512{"avx512", 12, 32, microkernel_f32_avx512, direct_f32_avx512, pack_a_f32_avx512,
                                pack_b_f32_avx512, kParallelWorkAvx512, kDirectWorkAvx512,
                                ARowsKernel(microkernel_f32_avx512_a_rows_8x32), 8};
const Kernels<double> kF64Generic{"generic", Tile<double>::MR, Tile<double>::NR, microkernel_f64_generic,
                                  direct_f64_generic, pack_a<double, 6>, pack_b<double, 8>, kParallelWork, kDirectWork};
const Kernels<double> kF64Avx2{"avx2", Tile<double>::MR, Tile<double>::NR, microkernel_f64_avx2,
                               direct_f64_avx2, pack_a<double, 6>, pack_b<double, 8>, kParallelWork, kDirectWork};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// The calling thread's packing workspace (see core/scratch.h). Pool workers use slices of
// their caller's workspace: they never allocate, so nothing can throw on a worker thread.
void* scratch(size_t bytes) { return thread_scratch(ScratchSlot::GemmPacking, bytes, "gemm"); }

// Block sizes for a product of K and an m x n slab of C: equal blocks no larger than the
// limits, so no block is a thin leftover.
template <class T>
struct Blocks {
  int64_t kc, mc, nc;
  Blocks(const Kernels<T>& kern, int64_t K, int64_t m, int64_t n)
      : kc(ceil_div(K, ceil_div(K, Blocking<T>::KC))),
        mc(round_up(ceil_div(m, ceil_div(m, Blocking<T>::MC)), kern.mr)),
        nc(round_up(ceil_div(n, ceil_div(n, Blocking<T>::NC)), kern.nr)) {}
  // Packed A block then packed B block, each a multiple of 64 bytes.
  int64_t a_elems() const { return round_up(mc * kc, 64 / sizeof(T)); }
  int64_t elems() const { return a_elems() + round_up(nc * kc, 64 / sizeof(T)); }
  // elems() of any slab of an M x N product. A slab can have larger blocks than the whole
  // matrix (M = 300 cuts into blocks of 108 rows, a 144-row slab into one of 144), but never
  // larger than the limit or the matrix, rounded up to the tile.
  static int64_t slab_workspace(const Kernels<T>& kern, int64_t K, int64_t M, int64_t N) {
    Blocks b(kern, K, M, N);
    b.mc = round_up(std::min(M, Blocking<T>::MC), kern.mr);
    b.nc = round_up(std::min(N, Blocking<T>::NC), kern.nr);
    return b.elems();
  }
};

template <class T>
struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  T alpha;
  const T* A;
  int64_t lda;
  const T* B;
  int64_t ldb;
  T beta;
  T* C;
  int64_t ldc;
  Epilogue epilogue;
  const T* bias;
  const Kernels<T>& kern;

  const T* a_at(int64_t i, int64_t k) const { return ta ? A + k * lda + i : A + i * lda + k; }
  const T* b_at(int64_t k, int64_t j) const { return tb ? B + j * ldb + k : B + k * ldb + j; }
};

// Where block (pc, jc) of a whole packed op(B) starts: the blocks of one column block jc
// follow each other down K, each round_up(nc, NR) columns wide.
int64_t packed_block_offset(int64_t K, int64_t pc, int64_t jc, int64_t nc, int64_t nr) {
  return jc * K + pc * round_up(nc, nr);
}

// The set's in-place A kernel applies to op(A) = A (rows contiguous in k). It pays where
// packing A costs most per use, in short or tall-and-narrow products (2 threads, in place vs
// packed, GFLOP/s: 64 x 1024 x 384 368 vs 331, 128 x 512 x 784 362 vs 348, 4096 x 384 x 128
// 367 vs 338, 4096 x 128 x 512 384 vs 341), and loses a little on large, wide ones, whose A
// rows are re-read for many B panels (512^3 381 vs 405, 2048^3 342 vs 370, 1024 x 1024 x 128
// 359 vs 367).
template <class T>
bool a_read_in_place(const Problem<T>& p) {
  return p.kern.micro_a_rows != nullptr && !p.ta && (p.M <= 128 || p.N * 8 <= p.M);
}

// Rows per register tile of the blocked path.
template <class T>
int row_tile(const Problem<T>& p) {
  return a_read_in_place(p) ? p.kern.a_rows : p.kern.mr;
}

// The blocked product for C[i0:i1, j0:j1], on the calling thread, packing into `work`
// (Blocks<T>::slab_workspace(p.kern, K, M, N) elements, 64-byte aligned). With `packed_b` (all of
// op(B), laid out by packed_block_offset for Blocks<T>(p.kern, K, *, N)) only A is packed;
// then j0 = 0 and j1 = N.
template <class T>
void gemm_blocked(const Problem<T>& p, int64_t i0, int64_t i1, int64_t j0, int64_t j1, T* work,
                  const T* packed_b = nullptr) {
  const int MR = p.kern.mr, NR = p.kern.nr;
  const Blocks<T> blk(p.kern, p.K, i1 - i0, j1 - j0);
  const int64_t kc_max = blk.kc, mc_max = blk.mc, nc_max = blk.nc;
  T* abuf = work;
  T* bbuf = work + blk.a_elems();

  const bool a_in_place = a_read_in_place(p);
  for (int64_t jc = j0; jc < j1; jc += nc_max) {
    const int64_t nc = std::min(nc_max, j1 - jc);
    for (int64_t pc = 0; pc < p.K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, p.K - pc);
      const bool last = pc + kc == p.K;
      const T* bblock = bbuf;
      if (packed_b) bblock = packed_b + packed_block_offset(p.K, pc, jc, nc, NR);
      else p.kern.pack_b(p.tb, p.b_at(pc, jc), p.ldb, kc, nc, bbuf);
      StoreArgs<T> s{p.alpha, pc == 0 ? p.beta : T(1), last ? p.epilogue : Epilogue::None, nullptr};
      for (int64_t ic = i0; ic < i1; ic += mc_max) {
        const int64_t mc = std::min(mc_max, i1 - ic);
        if (a_in_place) {
          for (int64_t jr = 0; jr < nc; jr += NR) {
            const int nr = int(std::min<int64_t>(NR, nc - jr));
            s.bias = last && p.bias ? p.bias + jc + jr : nullptr;
            for (int64_t ir = 0; ir < mc; ir += p.kern.a_rows)
              p.kern.micro_a_rows(kc, p.a_at(ic + ir, pc), p.lda, bblock + jr * kc, p.C + (ic + ir) * p.ldc + jc + jr,
                                  p.ldc, s, int(std::min<int64_t>(p.kern.a_rows, mc - ir)), nr);
          }
          continue;
        }
        p.kern.pack_a(p.ta, p.a_at(ic, pc), p.lda, mc, kc, abuf);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int nr = int(std::min<int64_t>(NR, nc - jr));
          const T* b = bblock + jr * kc;
          s.bias = last && p.bias ? p.bias + jc + jr : nullptr;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int mr = int(std::min<int64_t>(MR, mc - ir));
            const T* a = abuf + ir * kc;
            T* c = p.C + (ic + ir) * p.ldc + jc + jr;
            p.kern.micro(kc, a, b, c, p.ldc, s, mr, nr);
          }
        }
      }
    }
  }
}

// The unpacked loops on C[i0:i1, j0:j1]; k_used = 0 makes it C = epilogue(beta * C).
template <class T>
void direct_range(const Problem<T>& p, int64_t k_used, int64_t i0, int64_t i1, int64_t j0,
                  int64_t j1) {
  Direct<T> d;
  d.M = i1 - i0;
  d.N = j1 - j0;
  d.K = k_used;
  d.a_row = p.ta ? 1 : p.lda;
  d.a_col = p.ta ? p.lda : 1;
  d.b_row = p.tb ? 1 : p.ldb;
  d.b_col = p.tb ? p.ldb : 1;
  d.A = p.A + i0 * d.a_row;
  d.B = p.B + j0 * d.b_col;
  d.C = p.C + i0 * p.ldc + j0;
  d.ldc = p.ldc;
  d.s = StoreArgs<T>{p.alpha, p.beta, p.epilogue, p.bias ? p.bias + j0 : nullptr};
  p.kern.direct(d);
}

template <class T>
void run(const Problem<T>& p) {
  const int64_t macs = p.M * p.N * p.K;  // multiply-adds
  const int threads = get_num_threads();
  const bool parallel = threads > 1 && macs >= p.kern.parallel_macs;

  if (p.K == 0 || p.alpha == T(0)) {  // BLAS rule: A and B are not read
    direct_range(p, 0, 0, p.M, 0, p.N);
    return;
  }
  // Unpacked when small, or matrix-vector shaped; except with both operands transposed,
  // where neither loop order has a unit stride and packing is the faster way to get one.
  const bool small = !p.tb && (macs < kDirectWork || (macs < p.kern.direct_macs && p.K <= Blocking<T>::KC));
  const bool vector_shape = (p.M == 1 || p.N == 1) && !(p.ta && p.tb);
  if (small || vector_shape) {
    if (!parallel) {
      direct_range(p, p.K, 0, p.M, 0, p.N);
    } else if (p.M == 1) {
      const int64_t grain = std::max<int64_t>(256, kTaskWork / p.K);
      parallel_for(0, p.N, grain, [&](int64_t lo, int64_t hi) { direct_range(p, p.K, 0, 1, lo, hi); });
    } else if (ceil_div(p.N, 32) > ceil_div(p.M, 8)) {
      // Wide and short (a small batch through a wide layer): columns in groups of 32.
      const int64_t grain = std::max<int64_t>(1, kTaskWork / (32 * p.M * p.K));
      parallel_for(0, ceil_div(p.N, 32), grain, [&](int64_t lo, int64_t hi) {
        direct_range(p, p.K, 0, p.M, lo * 32, std::min(hi * 32, p.N));
      });
    } else {
      // Rows in groups of 8, whole register blocks of both sets' unpacked loops.
      const int64_t grain = std::max<int64_t>(1, kTaskWork / (8 * p.N * p.K));
      parallel_for(0, ceil_div(p.M, 8), grain, [&](int64_t lo, int64_t hi) {
        direct_range(p, p.K, lo * 8, std::min(hi * 8, p.M), 0, p.N);
      });
    }
    return;
  }
  const int64_t slot = Blocks<T>::slab_workspace(p.kern, p.K, p.M, p.N);
  if (!parallel) {
    gemm_blocked(p, 0, p.M, 0, p.N, static_cast<T*>(scratch(size_t(slot) * sizeof(T))));
    return;
  }
  // parallel_for calls the body at most `threads` times (once per chunk, or once inline),
  // so `threads` workspace slots suffice; each call takes the next one.
  T* work = static_cast<T*>(scratch(size_t(slot * threads) * sizeof(T)));
  std::atomic<int> next_slot{0};
  auto slab = [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    gemm_blocked(p, i0, i1, j0, j1, work + slot * next_slot.fetch_add(1));
  };
  const int MR = row_tile(p), NR = p.kern.nr;
  if (p.N >= p.M) {
    const int64_t grain = std::max<int64_t>(1, ceil_div(kTaskWork, p.M * p.K * NR));
    parallel_for(0, ceil_div(p.N, NR), grain,
                 [&](int64_t lo, int64_t hi) { slab(0, p.M, lo * NR, std::min(hi * NR, p.N)); });
  } else {
    const int64_t grain = std::max<int64_t>(1, ceil_div(kTaskWork, p.N * p.K * MR));
    parallel_for(0, ceil_div(p.M, MR), grain,
                 [&](int64_t lo, int64_t hi) { slab(lo * MR, std::min(hi * MR, p.M), 0, p.N); });
  }
}

// Leading dimensions are checked only for matrices that are read or written, so an empty
// operand may come with any stride.
void check_args(const char* name, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb,
                int64_t ldc, bool ta, bool tb) {
  check<ValueError>(M >= 0 && N >= 0 && K >= 0, name, ": negative size M=", M, " N=", N, " K=", K);
  if (M > 0 && K > 0) check<ValueError>(lda >= (ta ? M : K), name, ": lda=", lda, " is too small");
  if (K > 0 && N > 0) check<ValueError>(ldb >= (tb ? K : N), name, ": ldb=", ldb, " is too small");
  if (M > 0 && N > 0) check<ValueError>(ldc >= N, name, ": ldc=", ldc, " is too small");
}

}  // namespace

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// Also checks that the OS saves the zmm state.
bool cpu_has_avx512() {
  static const bool has = cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
  return has;
}

void set_isa(Isa isa) { g_isa.store(isa, std::memory_order_relaxed); }

const Kernels<float>& f32_kernels() {
  switch (isa_in_use()) {
    case Isa::Avx512: return kF32Avx512;
    case Isa::Avx2: return kF32Avx2;
    default: return kF32Generic;
  }
}

const Kernels<double>& f64_kernels() { return isa_in_use() == Isa::Generic ? kF64Generic : kF64Avx2; }

}  // namespace gemm_detail

using namespace gemm_detail;

namespace {

// The kernels in use, except that a product at most 16 columns wide or 6 rows high takes the
// AVX2 tile instead of AVX-512's 12 x 32, which would compute 2x to 3x the useful work
// (a 10-class output layer: 128 x 256 x 10 ran at 37 GFLOP/s). Both give the same bits.
const Kernels<float>& f32_kernels_for(int64_t M, int64_t N) {
  const Kernels<float>& k = f32_kernels();
  return &k == &kF32Avx512 && (N <= 16 || M <= 6) ? kF32Avx2 : k;
}

// A float32 product with the kernels of the instruction set in use.
Problem<float> f32_problem(const Kernels<float>& kern, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, Epilogue epilogue,
                           const float* bias) {
  return {ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue,
          epilogue == Epilogue::None ? nullptr : bias, kern};
}

}  // namespace

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc, Epilogue epilogue, const float* bias) {
  check_args("gemm_f32", M, N, K, lda, ldb, ldc, trans_a, trans_b);
  check<ValueError>(epilogue == Epilogue::None || bias != nullptr, "gemm_f32: epilogue needs a bias");
  if (M == 0 || N == 0) return;
  run(f32_problem(f32_kernels_for(M, N), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, epilogue,
                  bias));
}

const char* gemm_isa() { return f32_kernels().name; }

template <class T>
void reserve_gemm(int64_t M, int64_t N, int64_t K) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  const auto& kern = [&]() -> const Kernels<T>& {
    if constexpr (std::is_same_v<T, float>) return f32_kernels_for(M, N);
    else return f64_kernels();
  }();
  // What run() takes: one slab's workspace per thread it may use.
  scratch(size_t(Blocks<T>::slab_workspace(kern, K, M, N) * get_num_threads()) * sizeof(T));
}

template void reserve_gemm<float>(int64_t, int64_t, int64_t);
template void reserve_gemm<double>(int64_t, int64_t, int64_t);

template <class T>
ReusedMatrix<T>::ReusedMatrix(bool trans_b, int64_t K, int64_t N, const T* B, int64_t ldb)
    : trans_(trans_b), K_(K), N_(N), B_(B), ldb_(ldb) {
  check_args("ReusedMatrix", 1, N, K, K, ldb, N, false, trans_b);
  if constexpr (std::is_same_v<T, float>) {
    if (K == 0 || N == 0) return;
    kernels_ = &f32_kernels();
    packed_ = HostArray<float>(size_t(round_up(N, kernels_->nr) * K));
    const Blocks<float> blk(*kernels_, K, 1, N);
    for (int64_t jc = 0; jc < N; jc += blk.nc) {
      const int64_t nc = std::min(blk.nc, N - jc);
      for (int64_t pc = 0; pc < K; pc += blk.kc)
        kernels_->pack_b(trans_b, trans_b ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, std::min(blk.kc, K - pc),
                         nc, packed_.data() + packed_block_offset(K, pc, jc, nc, kernels_->nr));
    }
  }
}

template <class T>
void ReusedMatrix<T>::reserve(int64_t M) const {
  if (packed_.data()) scratch(size_t(Blocks<float>(*kernels_, K_, std::max<int64_t>(M, 1), N_).a_elems()) * sizeof(float));
}

template <class T>
void ReusedMatrix<T>::multiply(bool trans_a, int64_t M, T alpha, const T* A, int64_t lda, T beta, T* C, int64_t ldc,
                               Epilogue epilogue, const T* bias) const {
  check_args("ReusedMatrix::multiply", M, N_, K_, lda, N_, ldc, trans_a, false);
  check<ValueError>(epilogue == Epilogue::None || bias != nullptr, "ReusedMatrix::multiply: epilogue needs a bias");
  if (M == 0 || N_ == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    // Without a packed B (K or N is 0) any set will do: nothing is multiplied.
    const Problem<float> p = f32_problem(kernels_ ? *kernels_ : f32_kernels(), trans_a, false, M, N_, K_, alpha, A, lda, nullptr, N_, beta, C, ldc,
                                         epilogue, bias);
    if (K_ == 0 || alpha == 0.0f) {
      direct_range(p, 0, 0, M, 0, N_);
      return;
    }
    const int64_t slot = Blocks<float>(*kernels_, K_, M, N_).a_elems();
    gemm_blocked(p, 0, M, 0, N_, static_cast<float*>(scratch(size_t(slot) * sizeof(float))), packed_.data());
  } else {
    check<ValueError>(epilogue == Epilogue::None || epilogue == Epilogue::Bias,
                      "ReusedMatrix<double>::multiply: only the bias epilogue");
    if (epilogue == Epilogue::Bias) {
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N_; ++j) C[i * ldc + j] = (beta == T(0) ? T(0) : beta * C[i * ldc + j]) + bias[j];
      beta = T(1);
    }
    gemm_f64(trans_a, trans_, M, N_, K_, alpha, A, lda, B_, ldb_, beta, C, ldc);
  }
}

template class ReusedMatrix<float>;
template class ReusedMatrix<double>;

void gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
              const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
              int64_t ldc) {
  check_args("gemm_f64", M, N, K, lda, ldb, ldc, trans_a, trans_b);
  if (M == 0 || N == 0) return;
  run(Problem<double>{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, Epilogue::None, nullptr,
                      f64_kernels()});
}

}  // namespace lamina::cpu
