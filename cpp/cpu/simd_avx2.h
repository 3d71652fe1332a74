// AVX2 helpers shared by kernels that are compiled with target("avx2,fma") functions
// (GEMM packing, conv packing). Include only from such functions' translation units.
#pragma once
#include <immintrin.h>

namespace lamina::cpu::simd {

// In-register transpose of an 8 x 8 block: r[i][k] -> r[k][i].
inline __attribute__((always_inline, target("avx2,fma"))) void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int g = 0; g < 8; g += 4) {
    t[g + 0] = _mm256_unpacklo_ps(r[g + 0], r[g + 1]);  // r0[0] r1[0] r0[1] r1[1] | same +4
    t[g + 1] = _mm256_unpackhi_ps(r[g + 0], r[g + 1]);  // r0[2] r1[2] r0[3] r1[3] | same +4
    t[g + 2] = _mm256_unpacklo_ps(r[g + 2], r[g + 3]);
    t[g + 3] = _mm256_unpackhi_ps(r[g + 2], r[g + 3]);
    u[g + 0] = _mm256_shuffle_ps(t[g + 0], t[g + 2], 0x44);  // column 0 | column 4, rows g..g+3
    u[g + 1] = _mm256_shuffle_ps(t[g + 0], t[g + 2], 0xEE);  // column 1 | column 5
    u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);  // column 2 | column 6
    u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xEE);  // column 3 | column 7
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x20);
    r[c + 4] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x31);
  }
}

}  // namespace lamina::cpu::simd
