// Counter-based random numbers (Philox4x32-10): element i of a draw depends only on the
// seed and the generator's counter, so results are identical for any thread count and
// the same stream can be produced on another device.
#pragma once
#include <array>
#include <cstdint>

namespace lamina {

struct Philox {
  static std::array<uint32_t, 4> block(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo);
};

class Generator {
 public:
  static Generator& global();
  void seed(uint64_t s);
  uint64_t initial_seed() const { return seed_; }
  // Reserves `blocks` Philox blocks and returns the first counter; thread-safe.
  uint64_t reserve(uint64_t blocks);
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset);

 private:
  uint64_t seed_ = 0x853c49e6748fea9bull;
  uint64_t offset_ = 0;
};

inline float uniform_from_bits(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }
inline double uniform_from_bits(uint32_t hi, uint32_t lo) {
  return double(((uint64_t(hi) << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
}

// What a draw makes of each Philox block: two values, from words (0, 1) and (2, 3), each
// with u = uniform_from_bits (53 bits, in [0, 1)). The CUDA kernel (cuda/kernels/random.cu)
// evaluates the same expressions in the same order, so a seed gives the same numbers on
// every device.
enum class Distribution {
  Uniform,   // a + b * u
  Normal,    // a + b * z, z from the Box-Muller transform of the block's two uniforms
  KeepMask,  // u >= a ? b : 0 (inverted dropout: a = rate, b = 1 / (1 - rate))
  Integer,   // a + floor(b * u)
};

struct DrawSpec {
  Distribution distribution;
  double a, b;
};

void draw_pair(const DrawSpec& spec, const std::array<uint32_t, 4>& words, double& v0, double& v1);

}  // namespace lamina
