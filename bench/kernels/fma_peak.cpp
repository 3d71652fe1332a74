// fma_peak: the machine's float32 FMA peak, the yardstick of bench/gemm.py.
//
// Each thread runs 12 independent chains of FMAs on full vector registers, enough to cover
// a 4-5 cycle FMA latency on two FMA ports (needs >= 10 chains in flight). Per iteration:
// 12 FMAs x W lanes x 2 FLOP, no memory traffic; W = 8 (ymm, AVX2) or, built with
// -DFMA_PEAK_AVX512, 16 (zmm). Prints GFLOP/s for 1 thread and for `threads` threads
// (argv[1], default: hardware concurrency), the best of 5 runs each.
// Build: g++ -O2 -mavx2 -mfma -pthread fma_peak.cpp -o fma_peak
//        g++ -O2 -mavx512f -DFMA_PEAK_AVX512 -pthread fma_peak.cpp -o fma_peak512
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

#ifdef FMA_PEAK_AVX512
using Vec = __m512;
constexpr int kLanes = 16;
inline Vec splat(float v) { return _mm512_set1_ps(v); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline float first(Vec v) { return _mm512_cvtss_f32(v); }
#else
using Vec = __m256;
constexpr int kLanes = 8;
inline Vec splat(float v) { return _mm256_set1_ps(v); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline float first(Vec v) { return _mm256_cvtss_f32(v); }
#endif

// Twelve named accumulators (not an array) so that they certainly live in registers.
float chains(long iters) {
  const Vec a = splat(0.999999f), b = splat(1e-7f);
  Vec c0 = splat(0.f), c1 = splat(1.f), c2 = splat(2.f), c3 = splat(3.f), c4 = splat(4.f), c5 = splat(5.f);
  Vec c6 = splat(6.f), c7 = splat(7.f), c8 = splat(8.f), c9 = splat(9.f), c10 = splat(10.f), c11 = splat(11.f);
  for (long it = 0; it < iters; ++it) {
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c2 = fma(c2, a, b);
    c3 = fma(c3, a, b);
    c4 = fma(c4, a, b);
    c5 = fma(c5, a, b);
    c6 = fma(c6, a, b);
    c7 = fma(c7, a, b);
    c8 = fma(c8, a, b);
    c9 = fma(c9, a, b);
    c10 = fma(c10, a, b);
    c11 = fma(c11, a, b);
  }
  Vec s = add(add(add(c0, c1), add(c2, c3)), add(add(c4, c5), add(c6, c7)));
  return first(add(s, add(add(c8, c9), add(c10, c11))));
}

double gflops(int threads, long iters) {
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<std::thread> pool;
    std::vector<float> sink(static_cast<size_t>(threads), 0.0f);
    auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { sink[size_t(t)] = chains(iters); });
    for (auto& th : pool) th.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (sink[0] == 12345.0f) std::puts("");  // keep the result alive
    best = std::max(best, double(threads) * double(iters) * 24.0 * kLanes / s / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : int(std::max(1u, std::thread::hardware_concurrency()));
  const long iters = 20'000'000;
  std::printf("threads=1 gflops=%.2f\n", gflops(1, iters));
  std::printf("threads=%d gflops=%.2f\n", threads, gflops(threads, iters));
  return 0;
}
