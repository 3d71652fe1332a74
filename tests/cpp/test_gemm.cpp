// Unit test for lamina::cpu::gemm_f32 / gemm_f64 against a naive double-precision
// reference: all four transpose combinations, ragged sizes on both sides of every block
// and tile edge, alpha/beta variants (beta == 0 with NaN in C), padded leading dimensions
// (padding filled with NaN, and C's padding checked untouched), the epilogues, 1, 2 and 3
// threads, and every instruction set the CPU has (AVX-512, AVX2, portable); the same for a B
// packed once (ReusedMatrix). The AVX-512 and AVX2 kernels must agree bit for bit. Built by
// run_gemm_tests.sh.
//   test_gemm [--quick]     --quick: the smaller set used under the sanitizers
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/parallel.h"
#include "cpu/gemm.h"
#include "cpu/gemm_internal.h"

using lamina::cpu::Epilogue;
namespace gd = lamina::cpu::gemm_detail;

namespace {

struct Rng {
  uint64_t s;
  double next() {  // uniform in [-1, 1)
    s += 0x9E3779B97F4A7C15ull;
    uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) / double(1ull << 52) - 1.0;
  }
};

struct Case {
  bool ta, tb;
  int64_t M, N, K;
  double alpha, beta;
  Epilogue epi;
  int pad;  // extra elements per row of A, B and C
  bool packed = false;  // op(B) packed once (ReusedMatrix), then multiplied
};

const char* epi_name(Epilogue e) {
  switch (e) {
    case Epilogue::None: return "none";
    case Epilogue::Bias: return "bias";
    case Epilogue::BiasRelu: return "bias_relu";
    case Epilogue::BiasGelu: return "bias_gelu";
  }
  return "?";
}

double ref_gelu(double x) { return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

int g_passed = 0, g_failed = 0;
std::string g_context;

void report(bool ok, const Case& c, const char* what, const std::string& detail) {
  if (ok) {
    ++g_passed;
    return;
  }
  if (++g_failed <= 20)
    std::printf("FAIL %s [%s] ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g epi=%s pad=%d: %s\n",
                what, g_context.c_str(), c.ta, c.tb, (long long)c.M, (long long)c.N, (long long)c.K,
                c.alpha, c.beta, epi_name(c.epi), c.pad, detail.c_str());
}

template <class T>
void call_gemm(const Case& c, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc,
               const T* bias);

template <>
void call_gemm<float>(const Case& c, const float* A, int64_t lda, const float* B, int64_t ldb,
                      float* C, int64_t ldc, const float* bias) {
  if (c.packed) {
    const lamina::cpu::ReusedMatrix<float> reused(c.tb, c.K, c.N, B, ldb);
    reused.reserve(c.M);
    reused.multiply(c.ta, c.M, float(c.alpha), A, lda, float(c.beta), C, ldc, c.epi, bias);
    return;
  }
  lamina::cpu::gemm_f32(c.ta, c.tb, c.M, c.N, c.K, float(c.alpha), A, lda, B, ldb, float(c.beta), C,
                        ldc, c.epi, bias);
}

template <>
void call_gemm<double>(const Case& c, const double* A, int64_t lda, const double* B, int64_t ldb,
                       double* C, int64_t ldc, const double*) {
  lamina::cpu::gemm_f64(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A, lda, B, ldb, c.beta, C, ldc);
}

template <class T>
void run_case(const Case& c, uint64_t seed, const char* what) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T sentinel = T(12345.0);
  Rng rng{seed};
  // Stored shapes: A is M x K (K x M when transposed), B is K x N (N x K), C is M x N.
  const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
  const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
  const int64_t lda = std::max<int64_t>(1, a_cols + c.pad), ldb = std::max<int64_t>(1, b_cols + c.pad);
  const int64_t ldc = std::max<int64_t>(1, c.N + c.pad);
  std::vector<T> A(std::max<int64_t>(1, a_rows * lda), nan), B(std::max<int64_t>(1, b_rows * ldb), nan);
  std::vector<T> C(std::max<int64_t>(1, c.M * ldc), sentinel), bias(std::max<int64_t>(1, c.N));
  for (int64_t r = 0; r < a_rows; ++r)
    for (int64_t q = 0; q < a_cols; ++q) A[r * lda + q] = T(rng.next());
  for (int64_t r = 0; r < b_rows; ++r)
    for (int64_t q = 0; q < b_cols; ++q) B[r * ldb + q] = T(rng.next());
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) C[i * ldc + j] = c.beta == 0 ? nan : T(rng.next());
  for (auto& v : bias) v = T(rng.next());
  if (c.alpha == 0)  // A and B must not be read at all
    for (auto& v : A) v = nan;
  const std::vector<T> C0 = C;

  call_gemm<T>(c, A.data(), lda, B.data(), ldb, C.data(), ldc, c.epi == Epilogue::None ? nullptr : bias.data());

  // float32 accumulation error grows like sqrt(K) eps relative to sum |a b|.
  const double eps = std::is_same_v<T, float> ? 1.2e-7 : 2.3e-16;
  const double rel = eps * (16.0 + 8.0 * std::sqrt(double(c.K)));
  std::string detail;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < ldc && j < int64_t(C.size()); ++j) {
      const T got = C[i * ldc + j];
      if (j >= c.N) {  // padding of C must be untouched
        if (!(got == sentinel) && detail.empty()) detail = "wrote into C padding at (" + std::to_string(i) + "," + std::to_string(j) + ")";
        continue;
      }
      double acc = 0, mag = 0;
      if (c.alpha != 0)
        for (int64_t k = 0; k < c.K; ++k) {
          double a = c.ta ? A[k * lda + i] : A[i * lda + k];
          double b = c.tb ? B[j * ldb + k] : B[k * ldb + j];
          acc += a * b;
          mag += std::fabs(a * b);
        }
      double want = c.alpha * acc;
      mag = std::fabs(c.alpha) * mag;
      if (c.beta != 0) {
        want += c.beta * double(C0[i * ldc + j]);
        mag += std::fabs(c.beta * double(C0[i * ldc + j]));
      }
      if (c.epi != Epilogue::None) {
        want += bias[j];
        mag += std::fabs(double(bias[j]));
        if (c.epi == Epilogue::BiasRelu) want = want < 0 ? 0 : want;
        if (c.epi == Epilogue::BiasGelu) want = ref_gelu(want);
      }
      const double err = std::fabs(double(got) - want) / (mag + 1e-30);
      if (!(err <= rel)) {
        if (detail.empty())
          detail = "C(" + std::to_string(i) + "," + std::to_string(j) + ")=" + std::to_string(double(got)) +
                   " want " + std::to_string(want) + " (rel err " + std::to_string(err) + ")";
      }
    }
  }
  report(detail.empty(), c, what, detail);
}

const int64_t kSizes[] = {1, 2, 3, 7, 8, 15, 16, 17, 33, 64, 65, 100};
const int64_t kQuickSizes[] = {1, 3, 8, 17, 33, 65};

struct Variant {
  double alpha, beta;
  Epilogue epi;
};
const Variant kVariants[] = {
    {1, 0, Epilogue::None},      {1, 1, Epilogue::None},     {-0.5, 0.5, Epilogue::Bias},
    {2, 0, Epilogue::BiasRelu},  {1, 0, Epilogue::BiasGelu}, {3, -1, Epilogue::BiasGelu},
    {0.25, 2, Epilogue::BiasRelu},
};

void grid(bool quick) {
  uint64_t seed = 1;
  int v = 0;
  const int64_t* sizes = quick ? kQuickSizes : kSizes;
  const int n = quick ? 6 : 12;
  for (int t = 0; t < 4; ++t)
    for (int mi = 0; mi < n; ++mi)
      for (int ni = 0; ni < n; ++ni)
        for (int ki = 0; ki < n; ++ki) {
          const Variant& var = kVariants[v++ % 7];
          Case c{bool(t & 1), bool(t & 2), sizes[mi], sizes[ni], sizes[ki], var.alpha, var.beta, var.epi, int(seed % 3)};
          run_case<float>(c, seed++, "grid");
        }
}

// Shapes that cross the cache blocks (KC=256, MC=144, NC=3072), the thread split and the
// matrix-vector paths.
void large(bool quick) {
  struct Shape {
    int64_t M, N, K;
  };
  const Shape full[] = {{128, 512, 784}, {257, 1000, 65}, {1000, 257, 300}, {300, 300, 600},
                        {1, 1000, 1000}, {1000, 1, 1000}, {1000, 1000, 1},  {7, 3100, 40},
                        {150, 17, 520},  {5, 700, 257},   {256, 256, 256},  {97, 97, 97},
                        {300, 200, 256}};
  // 300 x 200 splits into row slabs of 156 and 144 rows on two threads, whose blocks are
  // larger than the whole matrix's (a workspace sized by the latter overflowed).
  const Shape small[] = {{128, 300, 270}, {1, 600, 300}, {300, 1, 200}, {7, 3100, 20}, {150, 40, 260}, {300, 200, 256}};
  uint64_t seed = 1000;
  int v = 0;
  const Shape* shapes = quick ? small : full;
  const int n = quick ? 6 : 13;
  for (int s = 0; s < n; ++s)
    for (int t = 0; t < 4; ++t) {
      const Variant& var = kVariants[v++ % 7];
      Case c{bool(t & 1), bool(t & 2), shapes[s].M, shapes[s].N, shapes[s].K, var.alpha, var.beta, var.epi, int(seed % 2) * 5};
      run_case<float>(c, seed++, "large");
    }
}

void special() {
  uint64_t seed = 5000;
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    // K == 0: C = epilogue(beta * C); alpha == 0: A and B (all NaN) are not read.
    run_case<float>({ta, tb, 9, 20, 0, 1, 0.5, Epilogue::Bias, 1}, seed++, "k0");
    run_case<float>({ta, tb, 9, 20, 0, 1, 0, Epilogue::BiasRelu, 0}, seed++, "k0");
    run_case<float>({ta, tb, 40, 50, 60, 0, 2, Epilogue::None, 2}, seed++, "alpha0");
    run_case<float>({ta, tb, 200, 150, 130, 0, 0, Epilogue::BiasGelu, 0}, seed++, "alpha0");
    // Empty outputs write nothing.
    run_case<float>({ta, tb, 0, 5, 7, 1, 0, Epilogue::None, 0}, seed++, "empty");
    run_case<float>({ta, tb, 5, 0, 7, 1, 0, Epilogue::None, 0}, seed++, "empty");
  }
}

void f64(bool quick) {
  uint64_t seed = 9000;
  const int64_t sizes[] = {1, 5, 8, 9, 31, 70};
  int v = 0;
  for (int t = 0; t < 4; ++t) {
    for (int64_t m : sizes)
      for (int64_t n : sizes)
        for (int64_t k : sizes) {
          if (quick && (m + n + k) % 3) continue;
          const Variant& var = kVariants[v++ % 2];
          run_case<double>({bool(t & 1), bool(t & 2), m, n, k, var.alpha, var.beta, Epilogue::None, int(seed % 2)},
                           seed++, "f64");
        }
    run_case<double>({bool(t & 1), bool(t & 2), 300, 200, 400, -1, 0.5, Epilogue::None, 3}, seed++, "f64");
  }
}

// Packed op(B): shapes across the K block (256) and the N block (3072), every transpose,
// alpha, beta and epilogue, K == 0 and empty outputs.
void packed(bool quick) {
  uint64_t seed = 12000;
  struct Shape {
    int64_t M, N, K;
  };
  const Shape shapes[] = {{1, 1, 1}, {7, 33, 17}, {64, 512, 256}, {13, 100, 300}, {6, 16, 600}, {5, 3100, 40}, {9, 20, 0}, {0, 5, 7}, {5, 0, 7}};
  const Variant variants[] = {{1, 0, Epilogue::None}, {0.125, 1, Epilogue::None}, {1, 0, Epilogue::Bias}, {-2, 0.5, Epilogue::BiasGelu}};
  int v = 0;
  for (int t = 0; t < 4; ++t)
    for (const Shape& sh : shapes) {
      if (quick && sh.N > 1000) continue;
      const Variant& var = variants[v++ % 4];
      Case c{bool(t & 1), bool(t & 2), sh.M, sh.N, sh.K, var.alpha, var.beta, var.epi, int(seed % 2) * 3, true};
      run_case<float>(c, seed++, "packed");
    }
}

// The AVX-512 and AVX2 sets round the same ordered sums (same K blocks, same epilogue
// operations), so their results must be identical, edges and epilogues included.
void isa_agreement() {
  struct Shape {
    int64_t M, N, K;
  };
  // {100, 80, 64} .. {9, 50, 120} run AVX-512's unpacked 8 x 32 blocks against AVX2's packed
  // tiles: column leftovers of 16, 7 and 17, a row leftover, K of exactly one K block. The
  // last three (and {128, 512, 300}, {37, 70, 600}) read A in place in the blocked path:
  // short and tall-narrow products, row and column leftovers, several K blocks. {9, 700, 200}
  // splits the unpacked path's columns over the threads.
  const Shape shapes[] = {{1, 40, 30},   {13, 33, 17},  {128, 512, 300}, {37, 70, 600},  {150, 3100, 20},
                          {25, 31, 1},   {100, 80, 64}, {64, 71, 256},   {203, 113, 90}, {9, 50, 120},
                          {300, 20, 700}, {64, 100, 400}, {1000, 33, 257}, {9, 700, 200}};
  uint64_t seed = 20000;
  int v = 0;
  for (const Shape& sh : shapes)
    for (int t = 0; t < 4; ++t)
      for (bool packed : {false, true}) {
        const Variant& var = kVariants[v++ % 7];
        const Case c{bool(t & 1), bool(t & 2), sh.M, sh.N, sh.K, var.alpha, var.beta, var.epi, 1, packed};
        Rng rng{seed++};
        const int64_t lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
        std::vector<float> A(size_t(c.M * c.K)), B(size_t(c.K * c.N)), C0(size_t(c.M * c.N)), bias(size_t(c.N));
        for (auto* vec : {&A, &B, &C0, &bias})
          for (float& x : *vec) x = float(rng.next() * 3.0);
        std::vector<float> out[2] = {C0, C0};
        const gd::Isa isas[2] = {gd::Isa::Avx2, gd::Isa::Avx512};
        for (int i = 0; i < 2; ++i) {
          gd::set_isa(isas[i]);
          call_gemm<float>(c, A.data(), lda, B.data(), ldb, out[i].data(), c.N,
                           c.epi == Epilogue::None ? nullptr : bias.data());
        }
        const bool same = std::memcmp(out[0].data(), out[1].data(), out[0].size() * sizeof(float)) == 0;
        report(same, c, "isa-agreement", "AVX-512 and AVX2 results differ");
      }
  gd::set_isa(gd::Isa::Auto);
}

void argument_checks() {
  Case c{false, false, 2, 2, 2, 1, 0, Epilogue::None, 0};
  float x[4] = {};
  auto throws = [&](auto fn) {
    try {
      fn();
    } catch (const std::exception&) {
      return true;
    }
    return false;
  };
  report(throws([&] { lamina::cpu::gemm_f32(false, false, -1, 2, 2, 1, x, 2, x, 2, 0, x, 2); }), c, "args", "negative M accepted");
  report(throws([&] { lamina::cpu::gemm_f32(false, false, 2, 2, 2, 1, x, 1, x, 2, 0, x, 2); }), c, "args", "lda < K accepted");
  report(throws([&] { lamina::cpu::gemm_f32(false, false, 2, 2, 2, 1, x, 2, x, 2, 0, x, 2, Epilogue::Bias); }), c, "args",
         "bias epilogue without bias accepted");
  report(!throws([&] { lamina::cpu::gemm_f32(false, false, 2, 2, 0, 1, x, 0, x, 2, 0, x, 2); }) && x[0] == 0, c, "args",
         "K == 0 with lda == 0 (empty A) rejected");
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::vector<gd::Isa> isas = {gd::Isa::Generic};
  if (gd::cpu_has_avx2_fma()) isas.insert(isas.begin(), gd::Isa::Avx2);
  else std::printf("note: no AVX2+FMA on this CPU; testing the portable kernels only\n");
  if (gd::cpu_has_avx512()) isas.insert(isas.begin(), gd::Isa::Avx512);
  else std::printf("note: no AVX-512 on this CPU; its kernel is not tested here\n");
  const auto isa_name = [](gd::Isa isa) { return isa == gd::Isa::Avx512 ? "avx512" : isa == gd::Isa::Avx2 ? "avx2" : "generic"; };
  for (gd::Isa isa : isas) {
    gd::set_isa(isa);
    for (int threads : {1, 2, 3}) {
      if (threads == 3 && isa == gd::Isa::Generic) continue;  // odd split, once is enough
      lamina::set_num_threads(threads);
      g_context = std::string(isa_name(isa)) + ", " + std::to_string(threads) + " thread(s)";
      const int before = g_failed;
      grid(quick || threads == 3 || (isa == gd::Isa::Generic && threads == 2));
      large(quick);
      special();
      packed(quick);
      f64(quick);
      std::printf("%-22s %s\n", g_context.c_str(), g_failed == before ? "ok" : "FAILED");
    }
  }
  if (gd::cpu_has_avx512()) {
    g_context = "avx512 vs avx2";
    isa_agreement();
  }
  argument_checks();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
