// Launches on the SIMT emulator: blocks spread over a few worker OS threads (each reusing
// pooled fiber stacks), a watchdog for threads that never synchronise, and the per-thread
// last error that the runtime API reports.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "emu_scheduler.h"

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};

namespace lamina::simt::emu {

[[noreturn]] inline void watchdog_fires(const LaunchShape& s, const Progress& p, unsigned secs) {
  const size_t bl = p.block.load();
  const unsigned th = p.thread.load();
  fprintf(stderr,
          "simt: watchdog: thread (%u,%u,%u) of block (%zu,%zu,%zu) ran %u s without reaching "
          "a barrier or a warp collective. The emulator runs one thread at a time until it "
          "synchronises, so a thread spinning on another thread's progress never ends here "
          "(SIMT_WATCHDOG_S sets the limit, 0 disables it).\n",
          th % s.block.x, th / s.block.x % s.block.y, th / (s.block.x * s.block.y),
          bl % s.grid.x, bl / s.grid.x % s.grid.y, bl / (size_t(s.grid.x) * s.grid.y), secs);
  abort();
}

inline void watch(const LaunchShape& s, std::vector<Progress>& progress, std::mutex& m,
                  std::condition_variable& cv, const unsigned& finished) {
  using Clock = std::chrono::steady_clock;
  const unsigned limit = Config::get().watchdog_s;
  std::vector<uint64_t> seen(progress.size(), 0);
  std::vector<Clock::time_point> since(progress.size(), Clock::now());
  std::unique_lock<std::mutex> lock(m);
  while (finished < progress.size()) {
    cv.wait_for(lock, std::chrono::milliseconds(100));
    if (!limit) continue;
    const auto now = Clock::now();
    for (size_t i = 0; i < progress.size(); ++i) {
      const uint64_t n = progress[i].switches.load(std::memory_order_relaxed);
      if (n != seen[i] || progress[i].done.load()) {
        seen[i] = n;
        since[i] = now;
      } else if (now - since[i] > std::chrono::seconds(limit)) {
        watchdog_fires(s, progress[i], limit);
      }
    }
  }
}

// Blocks keep their fiber stacks (and TSan fibers) from launch to launch: creating hundreds
// of them for every launch dominated the run time of small launches.
class BlockPool {
 public:
  std::unique_ptr<Block> take() {
    std::lock_guard<std::mutex> lock(m_);
    if (idle_.empty()) return std::make_unique<Block>();
    std::unique_ptr<Block> b = std::move(idle_.back());
    idle_.pop_back();
    return b;
  }
  void give(std::unique_ptr<Block> b) {
    std::lock_guard<std::mutex> lock(m_);
    idle_.push_back(std::move(b));
  }

 private:
  std::mutex m_;
  std::vector<std::unique_ptr<Block>> idle_;
};

// Never destroyed: tearing down fibers during exit would race with the sanitizer runtimes.
inline BlockPool& block_pool() {
  static BlockPool* pool = new BlockPool;
  return *pool;
}

struct LastError {
  cudaError_t code = cudaSuccess;
  std::string message;
};
// Per host thread, like the CUDA runtime's.
inline thread_local LastError g_last_error;

inline cudaError_t set_error(cudaError_t code, std::string message) {
  g_last_error = {code, std::move(message)};
  return code;
}

inline cudaError_t run_grid(const LaunchBase& launch, const LaunchShape& s) {
  const Config& cfg = Config::get();
  const size_t blocks = size_t(s.grid.x) * s.grid.y * s.grid.z;
  const size_t threads = size_t(s.block.x) * s.block.y * s.block.z;
  if (blocks == 0 || threads == 0 || threads > 1024 || s.block.z > 64 || s.grid.y > 65535 ||
      s.grid.z > 65535 || s.dynamic_smem > 227 * 1024)
    return set_error(cudaErrorInvalidConfiguration,
                     format("invalid launch configuration: grid (%u,%u,%u), block (%u,%u,%u), "
                            "%zu bytes of dynamic shared memory",
                            s.grid.x, s.grid.y, s.grid.z, s.block.x, s.block.y, s.block.z,
                            s.dynamic_smem));
  std::vector<size_t> order(blocks);
  std::iota(order.begin(), order.end(), size_t(0));
  if (cfg.seed) {
    std::mt19937_64 rng(cfg.seed);
    std::shuffle(order.begin(), order.end(), rng);
  }
  const unsigned workers = unsigned(std::min<size_t>(cfg.workers, blocks));
  std::vector<Progress> progress(workers);
  std::atomic<size_t> next{0};
  std::mutex m;
  std::condition_variable cv;
  unsigned finished = 0;
  std::string error;
  auto work = [&](unsigned w) {
    std::unique_ptr<Block> b = block_pool().take();
    b->launch = &launch;
    b->shape = s;
    b->progress = &progress[w];
    context_of_this_thread(b->scheduler);
    bool failed = false;
    for (size_t i; (i = next.fetch_add(1)) < blocks;) {
      std::string e = run_block(*b, order[i]);
      if (e.empty()) continue;
      failed = true;
      std::lock_guard<std::mutex> lock(m);
      if (error.empty()) error = std::move(e);
      next = blocks;
    }
    progress[w].done = true;
    if (!failed) {
      block_pool().give(std::move(b));
    } else {
      // Abandoned fibers never synchronised with this thread.
      IgnoreAccesses ignore;
      b.reset();
    }
    std::lock_guard<std::mutex> lock(m);
    ++finished;
    cv.notify_one();
  };
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w) pool.emplace_back(work, w);
  watch(s, progress, m, cv, finished);
  for (std::thread& t : pool) t.join();
  if (error.empty()) return cudaSuccess;
  fprintf(stderr, "simt: kernel failed: %s\n", error.c_str());
  return set_error(cudaErrorLaunchFailure, std::move(error));
}

template <class F, class Args>
struct Launch final : LaunchBase {
  F kernel;
  Args args;
  Launch(F k, Args a) : kernel(k), args(std::move(a)) {}
  void run() const override { std::apply(kernel, args); }
};

}  // namespace lamina::simt::emu

namespace lamina::simt {

// Runs kernel<<<grid, block, smem>>>(args...) to completion on the CPU.
template <class... KArgs, class... Args>
cudaError_t launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                   Args&&... args) {
  static_assert(sizeof...(KArgs) == sizeof...(Args), "wrong number of kernel arguments");
  using Tuple = std::tuple<std::decay_t<KArgs>...>;
  const emu::Launch<void (*)(KArgs...), Tuple> l(kernel, Tuple(std::forward<Args>(args)...));
  return emu::run_grid(l, {grid, block, smem});
}

}  // namespace lamina::simt

