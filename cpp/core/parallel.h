// A small thread pool. Work below `grain` items, nested calls and calls made while the
// pool is busy with another thread's work run inline on the caller. Idle workers spin
// briefly and then sleep, so a busy neighbour on a shared machine is not starved.
#pragma once
#include <cstdint>
#include <functional>

namespace lamina {

int get_num_threads();
void set_num_threads(int n);  // n >= 1; default: LAMINA_NUM_THREADS or the core count

// Calls fn(lo, hi) on disjoint chunks covering [begin, end), at least `grain` items each.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace lamina
