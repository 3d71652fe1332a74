// GEMM kernel lab: measures lamina::cpu::gemm_f32 against this machine's measured FMA peak.
//
//   mkdir -p build && g++ -O3 -std=c++20 -pthread -Icpp bench/kernels/gemm_lab.cpp cpp/core/parallel.cpp cpp/core/scratch.cpp cpp/core/host_cache.cpp \
//       cpp/cpu/gemm*.cpp -o build/gemm_lab && build/gemm_lab [--quick]
//
// Versions compared (same packing/blocking driver unless noted):
//   v0  naive i-k-j loop, no packing (the obvious code; lab-only)
//   v1  packed + blocked, portable microkernel (Isa::Generic; what a CPU without AVX2 runs)
//   v2  packed + blocked, AVX2/FMA 6x16 microkernel (the library default)
// Napkin math for a square N: 2 N^3 FLOP; minimum traffic 3 N^2 * 4 bytes. At N = 1024:
// 2.15 GFLOP vs 12.6 MB -> 170 FLOP/byte, far above any machine balance, so the goal is the
// FMA ports: peak = cores * 2 FMA ports * 8 lanes * 2 FLOP * clock.
// Every timed size is validated on 256 sampled entries against a double-precision dot.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "core/parallel.h"
#include "cpu/gemm.h"
#include "cpu/gemm_internal.h"

namespace gd = lamina::cpu::gemm_detail;
using lamina::cpu::Epilogue;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// 12 independent FMA chains (latency 4 x 2 ports needs >= 8) on ymm registers.
__attribute__((target("avx2,fma"))) float fma_loop(int64_t iters) {
  __m256 m = _mm256_set1_ps(0.9999f), a = _mm256_set1_ps(1e-4f);
  __m256 x0 = _mm256_set1_ps(0.1f), x1 = _mm256_set1_ps(0.2f), x2 = _mm256_set1_ps(0.3f);
  __m256 x3 = _mm256_set1_ps(0.4f), x4 = _mm256_set1_ps(0.5f), x5 = _mm256_set1_ps(0.6f);
  __m256 x6 = _mm256_set1_ps(0.7f), x7 = _mm256_set1_ps(0.8f), x8 = _mm256_set1_ps(0.9f);
  __m256 x9 = _mm256_set1_ps(1.0f), x10 = _mm256_set1_ps(1.1f), x11 = _mm256_set1_ps(1.2f);
  for (int64_t i = 0; i < iters; ++i) {
    x0 = _mm256_fmadd_ps(x0, m, a), x1 = _mm256_fmadd_ps(x1, m, a), x2 = _mm256_fmadd_ps(x2, m, a);
    x3 = _mm256_fmadd_ps(x3, m, a), x4 = _mm256_fmadd_ps(x4, m, a), x5 = _mm256_fmadd_ps(x5, m, a);
    x6 = _mm256_fmadd_ps(x6, m, a), x7 = _mm256_fmadd_ps(x7, m, a), x8 = _mm256_fmadd_ps(x8, m, a);
    x9 = _mm256_fmadd_ps(x9, m, a), x10 = _mm256_fmadd_ps(x10, m, a), x11 = _mm256_fmadd_ps(x11, m, a);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3)),
                           _mm256_add_ps(_mm256_add_ps(x4, x5), _mm256_add_ps(x6, x7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(x8, x9), _mm256_add_ps(x10, x11)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

// Best of several runs, in GFLOP/s, with `threads` copies running at once.
double fma_peak(int threads) {
  const int64_t iters = 20'000'000;  // 3.84 GFLOP per thread
  double best = 0;
  volatile float sink = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::thread> pool;
    double t0 = now();
    for (int t = 1; t < threads; ++t) pool.emplace_back([&] { sink = fma_loop(iters); });
    sink = fma_loop(iters);
    for (auto& th : pool) th.join();
    double dt = now() - t0;
    best = std::max(best, threads * iters * 12.0 * 16.0 / dt / 1e9);
  }
  return best;
}

void naive(int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * N;
    std::fill(c, c + N, 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float a = A[i * K + k];
      const float* b = B + k * N;
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

struct Mats {
  int64_t M, N, K;
  std::vector<float> A, B, C, bias;
  Mats(int64_t m, int64_t n, int64_t k) : M(m), N(n), K(k), A(m * k), B(k * n), C(m * n), bias(n) {
    uint32_t s = 12345;
    auto rnd = [&] { return (s = s * 1664525u + 1013904223u) / 4294967296.0f - 0.5f; };
    for (auto& v : A) v = rnd();
    for (auto& v : B) v = rnd();
    for (auto& v : bias) v = rnd();
  }
  void gemm(Epilogue e = Epilogue::None) {
    lamina::cpu::gemm_f32(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N, e,
                          e == Epilogue::None ? nullptr : bias.data());
  }
  void gemm_t(bool ta, bool tb) {  // the same buffers read transposed (square sizes only)
    lamina::cpu::gemm_f32(ta, tb, M, N, K, 1.0f, A.data(), ta ? M : K, B.data(), tb ? K : N, 0.0f,
                          C.data(), N);
  }
  bool valid() const {  // sampled entries against a double-precision dot product
    uint32_t s = 777;
    for (int t = 0; t < 256; ++t) {
      int64_t i = (s = s * 1664525u + 1013904223u) % M, j = (s = s * 1664525u + 1013904223u) % N;
      double want = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        want += double(A[i * K + k]) * B[k * N + j];
        mag += std::fabs(double(A[i * K + k]) * B[k * N + j]);
      }
      if (std::fabs(C[i * N + j] - want) > 1e-5 * std::sqrt(double(K)) * (mag + 1e-6)) return false;
    }
    return true;
  }
};

// Median seconds per call over a time budget (after one warm-up call).
template <class F>
double time_call(F f, double budget = 0.4) {
  f();
  std::vector<double> ts;
  double start = now();
  while ((now() - start < budget && ts.size() < 2000) || ts.size() < 3) {
    double t0 = now();
    f();
    ts.push_back(now() - t0);
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool avx2 = gd::cpu_has_avx2_fma();
  double peak1 = avx2 ? fma_peak(1) : 0, peak2 = avx2 ? fma_peak(2) : 0;
  std::printf("measured AVX2 FMA peak: %.1f GFLOP/s (1 thread), %.1f GFLOP/s (2 threads)\n\n", peak1, peak2);

  struct Size {
    int64_t M, N, K;
  };
  std::vector<Size> sizes = {{64, 64, 64},    {128, 128, 128},    {256, 256, 256},
                             {512, 512, 512}, {1024, 1024, 1024}, {128, 512, 784}};
  std::printf("%-16s %8s %10s %8s %10s %8s  %s\n", "M x K x N", "1T ms", "1T GF/s", "%peak", "2T GF/s",
              "%peak", "check");
  for (const Size& sz : sizes) {
    Mats m(sz.M, sz.N, sz.K);
    const double flop = 2.0 * sz.M * sz.N * sz.K;
    lamina::set_num_threads(1);
    double t1 = time_call([&] { m.gemm(); });
    bool ok = m.valid();
    lamina::set_num_threads(2);
    double t2 = time_call([&] { m.gemm(); });
    ok = ok && m.valid();
    std::printf("%4lldx%4lldx%-6lld %8.3f %10.1f %7.0f%% %10.1f %7.0f%%  %s\n", (long long)sz.M, (long long)sz.K,
                (long long)sz.N, t1 * 1e3, flop / t1 / 1e9, 100 * flop / t1 / 1e9 / peak1, flop / t2 / 1e9,
                100 * flop / t2 / 1e9 / peak2, ok ? "ok" : "WRONG");
  }
  if (quick) return 0;

  std::printf("\nversions at 512^3, 1 thread (GFLOP/s)\n");
  lamina::set_num_threads(1);
  {
    Mats m(512, 512, 512);
    const double flop = 2.0 * 512 * 512 * 512;
    double t0 = time_call([&] { naive(512, 512, 512, m.A.data(), m.B.data(), m.C.data()); }, 1.0);
    std::printf("  v0 naive i-k-j            %7.1f\n", flop / t0 / 1e9);
    gd::set_isa(gd::Isa::Generic);
    double tg = time_call([&] { m.gemm(); });
    std::printf("  v1 packed, portable tile  %7.1f  %s\n", flop / tg / 1e9, m.valid() ? "ok" : "WRONG");
    gd::set_isa(gd::Isa::Auto);
    double ta = time_call([&] { m.gemm(); });
    std::printf("  v2 packed, AVX2 6x16      %7.1f  %s\n", flop / ta / 1e9, m.valid() ? "ok" : "WRONG");
  }

  std::printf("\nlayouts at 512^3, 1 thread (GFLOP/s): NN, TN, NT, TT\n ");
  {
    Mats m(512, 512, 512);
    const double flop = 2.0 * 512 * 512 * 512;
    for (int t = 0; t < 4; ++t) std::printf(" %7.1f", flop / time_call([&] { m.gemm_t(t & 1, t & 2); }) / 1e9);
    std::printf("\n");
  }

  std::printf("\nthread split threshold: 1 vs 2 threads (GFLOP/s)\n");
  for (int64_t n : {64, 80, 96, 112, 128, 160}) {
    Mats m(n, n, n);
    const double flop = 2.0 * n * n * n;
    lamina::set_num_threads(1);
    double t1 = time_call([&] { m.gemm(); }, 0.2);
    lamina::set_num_threads(2);
    double t2 = time_call([&] { m.gemm(); }, 0.2);
    std::printf("  %4lld^3  %7.1f  %7.1f\n", (long long)n, flop / t1 / 1e9, flop / t2 / 1e9);
  }
  lamina::set_num_threads(1);

  std::printf("\nfloat64 at 512^3, 1 thread: ");
  {
    std::vector<double> A(512 * 512, 0.5), B(512 * 512, 0.25), C(512 * 512);
    double t = time_call([&] {
      lamina::cpu::gemm_f64(false, false, 512, 512, 512, 1.0, A.data(), 512, B.data(), 512, 0.0, C.data(), 512);
    });
    std::printf("%.1f GFLOP/s (%.0f%% of half the f32 peak)  %s\n", 2.0 * 512 * 512 * 512 / t / 1e9,
                100 * 2.0 * 512 * 512 * 512 / t / 1e9 / (peak1 / 2), C[777] == 0.5 * 0.25 * 512 ? "ok" : "WRONG");
  }

  std::printf("\nepilogue cost at 128x784x512, 1 thread (ms)\n");
  {
    Mats m(128, 512, 784);
    for (Epilogue e : {Epilogue::None, Epilogue::Bias, Epilogue::BiasRelu, Epilogue::BiasGelu})
      std::printf("  epilogue %d: %.3f\n", int(e), 1e3 * time_call([&] { m.gemm(e); }));
  }

  std::printf("\nsmall and skinny products, 1 thread (ns per call)\n");
  for (Size sz : std::vector<Size>{{1, 1, 1}, {8, 8, 8}, {16, 16, 16}, {32, 32, 32}, {48, 48, 48}, {1, 1024, 1024}, {1024, 1, 1024}}) {
    Mats m(sz.M, sz.N, sz.K);
    double t = time_call([&] { m.gemm(); }, 0.2);
    std::printf("  %4lldx%4lldx%-4lld %10.0f ns  %6.1f GFLOP/s  %s\n", (long long)sz.M, (long long)sz.K, (long long)sz.N,
                t * 1e9, 2.0 * sz.M * sz.N * sz.K / t / 1e9, m.valid() ? "ok" : "WRONG");
  }
  return 0;
}
