#include "core/random.h"

#include <cmath>
#include <mutex>

#include <pthread.h>

#include "core/philox.h"

namespace lamina {

namespace {
std::mutex generator_mutex;

// Held across fork(), so the child's copy is not left locked by a thread that was not copied.
void lock_generator() { generator_mutex.lock(); }
void unlock_generator() { generator_mutex.unlock(); }
const int fork_handlers_installed = pthread_atfork(lock_generator, unlock_generator, unlock_generator);
}

std::array<uint32_t, 4> Philox::block(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo) {
  const PhiloxWords b = philox_block(seed, counter_hi, counter_lo);
  return {b.w[0], b.w[1], b.w[2], b.w[3]};
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
