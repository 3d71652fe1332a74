// The Philox4x32-10 block function (Salmon et al., "Parallel random numbers: as easy as 1, 2,
// 3"), shared by the CPU generator (core/random.cpp) and the CUDA kernels
// (cuda/kernels/random.cu), so a seed gives the same numbers on both devices.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define LAMINA_PHILOX_FN __host__ __device__ __forceinline__
#else
#define LAMINA_PHILOX_FN inline
#endif

namespace lamina {

struct PhiloxWords {
  uint32_t w[4];
};

// Ten rounds over the 128-bit counter (hi, lo) with the 64-bit key `seed`.
LAMINA_PHILOX_FN PhiloxWords philox_block(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo) {
  uint32_t c0 = uint32_t(counter_lo), c1 = uint32_t(counter_lo >> 32);
  uint32_t c2 = uint32_t(counter_hi), c3 = uint32_t(counter_hi >> 32);
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(0xD2511F53u) * c0;
    const uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
    const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = uint32_t(p1);
    c2 = n2;
    c3 = uint32_t(p0);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

}  // namespace lamina
