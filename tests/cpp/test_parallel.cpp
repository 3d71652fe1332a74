// Unit test for core/parallel.h: parallel_for covers its range exactly once, an exception
// thrown in a chunk (on a worker or on the caller) reaches the caller and leaves the pool
// usable, and parallel_team runs its members at the same time (a barrier per phase sees
// every member's write of that phase) and shrinks to one member when nested.
// Built and run by run_gemm_tests.sh.
#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/parallel.h"

namespace {

int g_failed = 0, g_passed = 0;

void expect(bool ok, const std::string& what) {
  if (ok) {
    ++g_passed;
    return;
  }
  ++g_failed;
  std::printf("FAIL %s\n", what.c_str());
}

void covers_range_once(int threads) {
  std::vector<std::atomic<int>> hits(1000);
  lamina::parallel_for(0, 1000, 7, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) hits[size_t(i)].fetch_add(1);
  });
  bool once = true;
  for (auto& h : hits) once = once && h.load() == 1;
  expect(once, "parallel_for covers [0, 1000) once with " + std::to_string(threads) + " threads");
}

void exceptions_reach_the_caller(int threads) {
  for (int64_t bad : {0, 999}) {  // the first chunk runs on the caller, the last on a worker
    std::string caught;
    try {
      lamina::parallel_for(0, 1000, 1, [&](int64_t lo, int64_t hi) {
        if (lo <= bad && bad < hi) throw std::runtime_error("chunk " + std::to_string(bad));
      });
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
    expect(caught == "chunk " + std::to_string(bad),
           "exception from the chunk holding " + std::to_string(bad) + " reaches the caller (" +
               std::to_string(threads) + " threads), got '" + caught + "'");
  }
  covers_range_once(threads);  // the pool still works
}

void team_members_meet_at_barriers(int threads) {
  constexpr int kPhases = 200;
  std::vector<int> slots(size_t(threads) * kPhases, 0);
  std::atomic<int> seen_size{0}, mismatches{0};
  lamina::parallel_team(threads, [&](int rank, int size, lamina::TeamBarrier& barrier) {
    seen_size.store(size);
    for (int phase = 0; phase < kPhases; ++phase) {
      slots[size_t(phase * size + rank)] = phase + 1;
      barrier.wait();
      for (int other = 0; other < size; ++other)
        if (slots[size_t(phase * size + other)] != phase + 1) mismatches.fetch_add(1);
      barrier.wait();
    }
  });
  expect(seen_size.load() == threads, "team of " + std::to_string(threads) + " has size " +
                                          std::to_string(seen_size.load()));
  expect(mismatches.load() == 0, "every member sees every write of its phase (" +
                                     std::to_string(mismatches.load()) + " misses)");
  std::atomic<int> nested_size{0};
  lamina::parallel_for(0, 2, 1, [&](int64_t, int64_t) {
    lamina::parallel_team(threads, [&](int, int size, lamina::TeamBarrier& barrier) {
      barrier.wait();
      nested_size.store(size);
    });
  });
  expect(nested_size.load() == 1, "a team nested in a pool task has one member");
}

}  // namespace

int main() {
  for (int threads : {1, 2, 3}) {
    lamina::set_num_threads(threads);
    covers_range_once(threads);
    exceptions_reach_the_caller(threads);
    team_members_meet_at_barriers(threads);
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
