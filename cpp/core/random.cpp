#include "core/random.h"

#include <cmath>
#include <mutex>

namespace lamina {

namespace {
std::mutex generator_mutex;
}

std::array<uint32_t, 4> Philox::block(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo) {
  uint32_t c0 = uint32_t(counter_lo), c1 = uint32_t(counter_lo >> 32);
  uint32_t c2 = uint32_t(counter_hi), c3 = uint32_t(counter_hi >> 32);
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(0xD2511F53u) * c0;
    uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
    uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = uint32_t(p1);
    c2 = n2;
    c3 = uint32_t(p0);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {c0, c1, c2, c3};
}

void draw_pair(const DrawSpec& spec, const std::array<uint32_t, 4>& w, double& v0, double& v1) {
  const double u0 = uniform_from_bits(w[0], w[1]), u1 = uniform_from_bits(w[2], w[3]);
  switch (spec.distribution) {
    case Distribution::Uniform:
      v0 = spec.a + spec.b * u0;
      v1 = spec.a + spec.b * u1;
      return;
    case Distribution::Normal: {
      const double r = std::sqrt(-2.0 * std::log(1.0 - u0));  // 1 - u0 in (0, 1]: log is finite
      const double theta = 2.0 * M_PI * u1;
      v0 = spec.a + spec.b * r * std::cos(theta);
      v1 = spec.a + spec.b * r * std::sin(theta);
      return;
    }
    case Distribution::KeepMask:
      v0 = u0 >= spec.a ? spec.b : 0.0;
      v1 = u1 >= spec.a ? spec.b : 0.0;
      return;
    case Distribution::Integer:
      v0 = spec.a + std::floor(spec.b * u0);
      v1 = spec.a + std::floor(spec.b * u1);
      return;
  }
}

Generator& Generator::global() {
  static Generator g;
  return g;
}

void Generator::seed(uint64_t s) {
  std::lock_guard<std::mutex> lock(generator_mutex);
  seed_ = s;
  offset_ = 0;
}

uint64_t Generator::reserve(uint64_t blocks) {
  std::lock_guard<std::mutex> lock(generator_mutex);
  uint64_t start = offset_;
  offset_ += blocks;
  return start;
}

void Generator::set_state(uint64_t seed, uint64_t offset) {
  std::lock_guard<std::mutex> lock(generator_mutex);
  seed_ = seed;
  offset_ = offset;
}

}  // namespace lamina
