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

}  // namespace lamina
