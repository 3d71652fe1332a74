#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include <pthread.h>

#include "core/errors.h"

namespace lamina {

namespace {

thread_local bool inside_pool_task = false;

// How long an idle worker watches for the next job before it sleeps. A training step's ops
// come 5-50 us apart (Python and autograd between them); a worker that slept meanwhile took a
// futex wake-up per op, which on a virtual machine can cost as much as a small op (the MLP
// step: 1.74 -> 1.56 ms against 20000 spins, about 15 us).
constexpr std::chrono::microseconds kWorkerSpin{200};

int default_threads() {
  if (const char* env = std::getenv("LAMINA_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : int(hw);
}

class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop_workers(); }

  int size() const { return int(workers_.size()) + 1; }

  // Held across fork() so that no job runs while the process is copied.
  void lock_jobs() { run_mutex_.lock(); }
  void unlock_jobs() { run_mutex_.unlock(); }

  void resize(int threads) {
    std::lock_guard<std::mutex> busy(run_mutex_);
    stop_workers();
    stopping_ = false;
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  }

  // Returns false when another thread holds the pool; the caller then runs inline.
  bool try_run(int64_t begin, int64_t end, int64_t chunks,
               const std::function<void(int64_t, int64_t)>& fn) {
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      begin_ = begin;
      end_ = end;
      chunks_ = chunks;
      next_chunk_.store(0);
      remaining_.store(chunks);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    inside_pool_task = true;
    work();
    inside_pool_task = false;
    // Workers join a job only under mutex_ while fn_ is set, so once fn_ is cleared with
    // no worker inside, none can read this job's fields while the next job writes them.
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (remaining_.load() == 0 && active_.load() == 0) {
          fn_ = nullptr;
          break;
        }
      }
      std::this_thread::yield();
    }
    std::exception_ptr error;
    {
      std::lock_guard<std::mutex> lock(error_mutex_);
      std::swap(error, error_);
    }
    if (error) std::rethrow_exception(error);
    return true;
  }

 private:
  // A chunk that throws (out of memory, say) does not take its thread down: the first
  // error is kept and rethrown on the caller once every chunk has finished.
  void work() {
    for (;;) {
      int64_t c = next_chunk_.fetch_add(1);
      if (c >= chunks_) return;
      int64_t n = end_ - begin_;
      try {
        (*fn_)(begin_ + n * c / chunks_, begin_ + n * (c + 1) / chunks_);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
      remaining_.fetch_sub(1, std::memory_order_release);
    }
  }

  void worker_loop(int) {
    inside_pool_task = true;
    uint64_t seen = 0;
    for (;;) {
      bool have_work = false;
      const auto spin_until = std::chrono::steady_clock::now() + kWorkerSpin;
      for (int spin = 0; !have_work; ++spin) {
        have_work = generation_.load(std::memory_order_acquire) != seen || stopping_.load();
        if (spin % 256 == 255 && std::chrono::steady_clock::now() > spin_until) break;
      }
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_.load();
      if (!fn_) continue;
      active_.fetch_add(1);
      lock.unlock();
      work();
      active_.fetch_sub(1);
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> generation_{0};
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t begin_ = 0, end_ = 0, chunks_ = 0;
  std::atomic<int> active_{0};
  std::atomic<int64_t> next_chunk_{0};
  std::atomic<int64_t> remaining_{0};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

// fork(): the child has only the forking thread, none of the pool's workers, and copies of
// the pool's mutexes and condition variable in whatever state the workers left them. So the
// prepare handler waits until no job runs, and the child drops the pool (without destroying
// it: that would join threads that do not exist there) for a fresh one of one thread, grown
// back to the parent's size on the child's first parallel call (not in the handler, where
// starting threads is unsafe). Before this, a child's first LSTM waited forever at its
// team's barrier for a worker that was never copied.
Pool* current_pool = nullptr;  // never destroyed: workers may outlive static teardown
std::atomic<int> child_threads{0};

void lock_pool_for_fork() { current_pool->lock_jobs(); }
void unlock_pool_in_parent() { current_pool->unlock_jobs(); }
void fresh_pool_in_child() {
  child_threads.store(current_pool->size());
  current_pool = new Pool(1);
}

Pool& pool() {
  static const bool installed = [] {
    current_pool = new Pool(default_threads());
    // Registered at first use, after the buffer cache's (a static initializer): prepare
    // handlers run in reverse order of registration, so running jobs, whose members may
    // allocate, finish before the fork takes the cache's lock.
    pthread_atfork(lock_pool_for_fork, unlock_pool_in_parent, fresh_pool_in_child);
    return true;
  }();
  (void)installed;
  if (child_threads.load(std::memory_order_relaxed) != 0) {
    const int n = child_threads.exchange(0);
    if (n > 1) current_pool->resize(n);
  }
  return *current_pool;
}

}  // namespace

int get_num_threads() { return pool().size(); }

void set_num_threads(int n) {
  check<ValueError>(n >= 1 && n <= 1024, "set_num_threads: expected 1..1024 threads, got ", n);
  pool().resize(n);
}

void TeamBarrier::wait() {
  if (members_ == 1) return;
  const uint64_t phase = phase_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == members_) {
    arrived_.store(0, std::memory_order_relaxed);
    phase_.store(phase + 1, std::memory_order_release);
    return;
  }
  for (int spin = 0; phase_.load(std::memory_order_acquire) == phase; ++spin) {
    if (spin >= 4000) std::this_thread::yield();
  }
}

void parallel_team(int max_members, const std::function<void(int, int, TeamBarrier&)>& fn) {
  const int size = inside_pool_task ? 1 : std::max(1, std::min(max_members, pool().size()));
  if (size > 1) {
    // One chunk per member and no more chunks than pool threads: a member waiting at a
    // barrier cannot take a second chunk, so every chunk starts on its own thread.
    TeamBarrier barrier(size);
    auto member = [&](int64_t lo, int64_t hi) {
      for (int64_t rank = lo; rank < hi; ++rank) fn(int(rank), size, barrier);
    };
    if (pool().try_run(0, size, size, member)) return;
  }
  TeamBarrier alone(1);
  fn(0, 1, alone);
}

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  int64_t n = end - begin;
  if (n <= 0) return;
  grain = grain < 1 ? 1 : grain;
  int threads = inside_pool_task ? 1 : pool().size();
  int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
  if (chunks <= 1 || !pool().try_run(begin, end, chunks, fn)) fn(begin, end);
}

}  // namespace lamina
