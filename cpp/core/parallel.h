// A small thread pool. Work below `grain` items, nested calls and calls made while the
// pool is busy with another thread's work run inline on the caller. Idle workers spin for
// 200 us and then sleep, so a busy neighbour on a shared machine is not starved.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>

namespace lamina {

int get_num_threads();
void set_num_threads(int n);  // n >= 1; default: LAMINA_NUM_THREADS or the core count

// Calls fn(lo, hi) on disjoint chunks covering [begin, end), at least `grain` items each.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

// A barrier for the members of one parallel_team call. It spins briefly, then yields, so
// a member whose partner was descheduled on a busy machine gives the core back.
class TeamBarrier {
 public:
  explicit TeamBarrier(int members) : members_(members) {}
  void wait();

 private:
  const int members_;
  std::atomic<int> arrived_{0};
  std::atomic<uint64_t> phase_{0};
};

// Calls fn(rank, size, barrier) once for each rank in [0, size), all at the same time on
// different threads, so members may wait on each other through `barrier` (for loops that
// need a synchronisation point per iteration and cannot afford a parallel_for each).
// size <= max_members; it is 1 (on the caller) when nested in a pool task or when the pool
// is busy. fn must not throw: a member that leaves early would strand the others.
void parallel_team(int max_members, const std::function<void(int, int, TeamBarrier&)>& fn);

}  // namespace lamina
