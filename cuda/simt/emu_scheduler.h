// Block scheduler of the SIMT emulator. A block runs on one OS thread, its CUDA threads as
// fibers: a fiber runs until it reaches __syncthreads, a warp collective or its end, so the
// only interleavings are those a correctly synchronised kernel must tolerate anyway. When
// nothing can run, the barrier is released if every live thread waits at it; otherwise the
// block is deadlocked and reported.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <source_location>
#include <string>
#include <thread>
#include <vector>

#include "emu_fiber.h"

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace lamina::simt::emu {

inline std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string format(const char* fmt, ...) {
  char buf[512];
  va_list args;
  va_start(args, fmt);
  vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

inline long env_number(const char* name, long fallback) {
  const char* s = getenv(name);
  if (!s || !*s) return fallback;
  char* end = nullptr;
  const long v = strtol(s, &end, 10);
  if (*end || v < 0) fatal("%s=%s: expected a non-negative integer", name, s);
  return v;
}

struct Config {
  unsigned workers;    // SIMT_THREADS: OS threads running blocks (default: one per core)
  uint64_t seed;       // SIMT_SEED: 0 runs threads in index order, n a reproducible shuffle
  size_t stack_bytes;  // SIMT_STACK_KB: fiber stack per CUDA thread
  bool poison;         // SIMT_POISON: fill fresh memory and pending cp.async targets with 0xff
  bool strict;         // SIMT_STRICT: every thread reaches each barrier, at one call site
  unsigned watchdog_s;  // SIMT_WATCHDOG_S: abort a thread that never synchronises (0: off)

  static const Config& get() {
    static const Config c = {
        unsigned(env_number("SIMT_THREADS", std::max(1u, std::thread::hardware_concurrency()))),
        uint64_t(env_number("SIMT_SEED", 0)),
        size_t(env_number("SIMT_STACK_KB", 64)) << 10,
        env_number("SIMT_POISON", 1) != 0,
        env_number("SIMT_STRICT", 1) != 0,
        unsigned(env_number("SIMT_WATCHDOG_S", 60)),
    };
    return c;
  }
};

enum class Op : uint8_t { SyncWarp, Shfl, ShflUp, ShflDown, ShflXor, Vote, Reduce, LdMatrix, Mma };

inline const char* op_name(Op op) {
  switch (op) {
    case Op::SyncWarp: return "__syncwarp";
    case Op::Shfl: return "__shfl_sync";
    case Op::ShflUp: return "__shfl_up_sync";
    case Op::ShflDown: return "__shfl_down_sync";
    case Op::ShflXor: return "__shfl_xor_sync";
    case Op::Vote: return "__ballot/__any/__all_sync";
    case Op::Reduce: return "__reduce_*_sync";
    case Op::LdMatrix: return "ldmatrix";
    case Op::Mma: return "mma.sync";
  }
  return "?";
}

// "file:line" in a fixed buffer: a message built for fail() must not leave heap memory in
// the abandoned frame.
struct Site {
  char text[128];
  const char* c_str() const { return text; }
};
inline Site site(const std::source_location& where) {
  const char* file = where.file_name();
  if (const char* slash = strrchr(file, '/')) file = slash + 1;
  Site s;
  snprintf(s.text, sizeof s.text, "%s:%u", file, unsigned(where.line()));
  return s;
}

inline bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && a.column() == b.column() &&
         (a.file_name() == b.file_name() || strcmp(a.file_name(), b.file_name()) == 0);
}

enum class State : uint8_t { Ready, AtBarrier, AtCollective, Exited };

struct AsyncCopy {
  void* dst;
  const void* src;
  unsigned bytes;
  unsigned group;
};

struct Thread {
  uint3 idx{};
  unsigned linear = 0, warp = 0, lane = 0;
  State state = State::Ready;
  std::source_location waits_at;  // the barrier or collective it is parked at
  int barrier_pred = 0;
  unsigned barriers_passed = 0;
  alignas(16) unsigned char in[48];  // this lane's operand of the pending warp collective
  void* out = nullptr;               // where the collective stores this lane's result
  int arg = 0;
  std::vector<AsyncCopy> async_copies;  // issued cp.async, performed by the wait covering them
  unsigned async_groups = 0;            // committed cp.async groups
  char hb_in = 0, hb_out = 0;           // TSan sync objects of warp collectives
#if defined(SIMT_TSAN)
  bool fenced = false;  // fence-then-atomic edges, see emu_memory.h
  std::vector<const void*> atomics_since_fence;
#endif
  Context context;
  std::unique_ptr<Stack> stack;
};

struct Warp;
struct Collective;
using Combiner = void (*)(const Collective&, const Warp&);

// A warp collective some lanes have reached. Its combiner runs when the last lane of the
// mask arrives, reading every lane's `in` and writing every lane's `out`.
struct Collective {
  Op op;
  unsigned mask, arrived;
  int width;
  Combiner combine;
  std::source_location where;
};

struct Warp {
  unsigned exist = 0, exited = 0;
  Thread* lanes[32] = {};
  std::vector<Collective> pending;  // at most one per kind and mask, see join() in emu_warp.h
};

struct LaunchBase {
  virtual void run() const = 0;

 protected:
  ~LaunchBase() = default;
};

struct LaunchShape {
  dim3 grid, block;
  size_t dynamic_smem;
};

// What the watchdog reads from another OS thread.
struct Progress {
  std::atomic<uint64_t> switches{0};
  std::atomic<size_t> block{0};
  std::atomic<unsigned> thread{0};
  std::atomic<bool> done{false};
};

// One per worker OS thread, reused for every block that worker runs.
struct Block {
  const LaunchBase* launch = nullptr;
  LaunchShape shape{};
  Progress* progress = nullptr;
  uint3 idx{};
  unsigned count = 0, alive = 0, at_barrier = 0;
  int barrier_result = 0;
  std::vector<std::unique_ptr<Thread>> threads;
  std::vector<Warp> warps;
  unsigned char* dynamic_smem = nullptr;
  Context scheduler;
  std::string error;
  // Barrier parity selects the sync object: a thread resuming late from barrier k must not
  // acquire what faster threads release at barrier k+1, which would hide races.
  char tsan_barrier[2] = {}, tsan_start = 0, tsan_end = 0;
};

inline thread_local Block* g_block = nullptr;
inline thread_local Thread* g_thread = nullptr;

inline Thread& self() {
  Thread* t = g_thread;
  if (!t) fatal("a device function was called outside a kernel");
  return *t;
}
inline Block& block() { return *g_block; }

inline std::string describe(const Block& b, const Thread& t) {
  return format("block (%u,%u,%u) thread (%u,%u,%u)", b.idx.x, b.idx.y, b.idx.z, t.idx.x,
                t.idx.y, t.idx.z);
}

// Back to the scheduler; returns when it resumes this thread.
inline void park(Thread& t) { context_switch(t.context, g_block->scheduler); }

// A kernel bug found in this thread: the block stops and the launch fails with `what`. It
// takes the message over, because the caller's frame is abandoned, never unwound.
[[noreturn]] inline void fail(std::string&& what) {
  Thread& t = self();
  Block& b = block();
  {
    IgnoreAccesses ignore;
    what.insert(0, describe(b, t) + ": ");
    if (b.error.empty()) b.error = std::move(what);
    else std::string().swap(what);
  }
  context_switch(t.context, b.scheduler, /*from_exits=*/true);
  fatal("a failed thread was resumed");
}

// A lane that exits strands the lanes waiting for it in a collective.
inline std::string on_exit(Block& b, Thread& t) {
  Warp& w = b.warps[t.warp];
  t.state = State::Exited;
  --b.alive;
  w.exited |= 1u << t.lane;
  for (const Collective& c : w.pending)
    if (c.mask >> t.lane & 1u)
      return format("exited while lanes 0x%08x wait for it at %s (%s, mask 0x%08x)", c.arrived,
                    op_name(c.op), site(c.where).c_str(), c.mask);
  return {};
}

inline void thread_main(void* arg) {
  context_entered();
  Thread& t = *static_cast<Thread*>(arg);
  Block* block_of_worker;
  {
    // Before the acquire below, this fiber knows nothing of the worker it now runs on.
    IgnoreAccesses ignore;
    block_of_worker = g_block;
  }
  Block& b = *block_of_worker;
  hb_acquire(&b.tsan_start);
  b.launch->run();
  hb_release(&b.tsan_end);
  std::string error;
  {
    IgnoreAccesses ignore;
    error = on_exit(b, t);
  }
  if (!error.empty()) fail(std::move(error));
  context_switch(t.context, b.scheduler, /*from_exits=*/true);
  fatal("an exited thread was resumed");
}

inline int syncthreads(int pred, const std::source_location& where) {
  Thread& t = self();
  Block& b = block();
  char* sync;
  {
    IgnoreAccesses ignore;
    sync = &b.tsan_barrier[t.barriers_passed & 1];
  }
  hb_release(sync);
  {
    IgnoreAccesses ignore;
    t.state = State::AtBarrier;
    t.waits_at = where;
    t.barrier_pred = pred;
    ++b.at_barrier;
  }
  park(t);
  hb_acquire(sync);
  IgnoreAccesses ignore;
  ++t.barriers_passed;
  return b.barrier_result;
}

// ---- scheduler side (runs on the worker's own stack, invisible to TSan) --------------------

inline void prepare_block(Block& b, size_t linear) {
  const Config& cfg = Config::get();
  const LaunchShape& s = b.shape;
  b.idx = {unsigned(linear % s.grid.x), unsigned(linear / s.grid.x % s.grid.y),
           unsigned(linear / (size_t(s.grid.x) * s.grid.y))};
  b.count = s.block.x * s.block.y * s.block.z;
  b.alive = b.count;
  b.at_barrier = 0;
  b.error.clear();
  while (b.threads.size() < b.count) {
    b.threads.push_back(std::make_unique<Thread>());
    b.threads.back()->stack = std::make_unique<Stack>(cfg.stack_bytes);
  }
  b.warps.resize((b.count + 31) / 32);
  for (Warp& w : b.warps) {
    w.exist = w.exited = 0;
    w.pending.clear();
    std::fill(std::begin(w.lanes), std::end(w.lanes), nullptr);
  }
  const size_t colour_span = std::min<size_t>(8192, cfg.stack_bytes / 4);
  for (unsigned i = 0; i < b.count; ++i) {
    Thread& t = *b.threads[i];
    t.idx = {i % s.block.x, i / s.block.x % s.block.y, i / (s.block.x * s.block.y)};
    t.linear = i;
    t.warp = i / 32;
    t.lane = i % 32;
    t.state = State::Ready;
    t.barriers_passed = 0;
    t.async_copies.clear();
    t.async_groups = 0;
#if defined(SIMT_TSAN)
    t.fenced = false;
    t.atomics_since_fence.clear();
#endif
    b.warps[t.warp].exist |= 1u << t.lane;
    b.warps[t.warp].lanes[t.lane] = &t;
    context_init(t.context, *t.stack, &thread_main, &t, size_t(i) * 320 % colour_span);
  }
  if (s.dynamic_smem) {
    void* p = nullptr;
    // Exactly the requested size, so that ASan reports an access past its end.
    if (posix_memalign(&p, 128, s.dynamic_smem) != 0) fatal("out of memory for shared memory");
    if (cfg.poison) memset(p, 0xff, s.dynamic_smem);
    b.dynamic_smem = static_cast<unsigned char*>(p);
  }
}

inline void release_barrier(Block& b) {
  const Thread* first = nullptr;
  int count = 0;
  for (unsigned i = 0; i < b.count; ++i) {
    Thread& t = *b.threads[i];
    if (t.state != State::AtBarrier) continue;
    if (!first) {
      first = &t;
    } else if (Config::get().strict && !same_site(t.waits_at, first->waits_at)) {
      b.error = format("divergent __syncthreads: %s waits at %s, %s at %s",
                       describe(b, *first).c_str(), site(first->waits_at).c_str(),
                       describe(b, t).c_str(), site(t.waits_at).c_str());
      return;
    }
    count += t.barrier_pred != 0;
  }
  if (Config::get().strict && b.alive != b.count) {
    b.error = format(
        "__syncthreads at %s reached by %u of %u threads of block (%u,%u,%u); the others "
        "exited (a barrier in divergent code)",
        site(first->waits_at).c_str(), b.alive, b.count, b.idx.x, b.idx.y, b.idx.z);
    return;
  }
  b.barrier_result = count;
  for (unsigned i = 0; i < b.count; ++i)
    if (b.threads[i]->state == State::AtBarrier) b.threads[i]->state = State::Ready;
  b.at_barrier = 0;
}

inline std::string deadlock_report(const Block& b) {
  std::string r = format("deadlock in block (%u,%u,%u): no thread can proceed", b.idx.x,
                         b.idx.y, b.idx.z);
  std::vector<std::pair<std::source_location, unsigned>> barriers;
  for (unsigned i = 0; i < b.count; ++i) {
    const Thread& t = *b.threads[i];
    if (t.state != State::AtBarrier) continue;
    auto it = std::find_if(barriers.begin(), barriers.end(),
                           [&](const auto& p) { return same_site(p.first, t.waits_at); });
    if (it == barriers.end()) barriers.push_back({t.waits_at, 1});
    else ++it->second;
  }
  for (const auto& [where, n] : barriers)
    r += format("; %u threads wait at __syncthreads (%s)", n, site(where).c_str());
  for (size_t wi = 0; wi < b.warps.size(); ++wi) {
    const std::vector<Collective>& pending = b.warps[wi].pending;
    for (const Collective& c : pending)
      r += format("; warp %zu lanes 0x%08x wait at %s (%s) for lanes 0x%08x", wi, c.arrived,
                  op_name(c.op), site(c.where).c_str(), c.mask & ~c.arrived);
    for (size_t i = 0; i < pending.size(); ++i)
      for (size_t j = i + 1; j < pending.size(); ++j)
        if (pending[i].mask & pending[j].mask)
          r += format("; mismatched warp collectives in warp %zu: %s (%s) and %s (%s)", wi,
                      op_name(pending[i].op), site(pending[i].where).c_str(),
                      op_name(pending[j].op), site(pending[j].where).c_str());
  }
  return r;
}

inline void resume(Block& b, Thread& t) {
  b.progress->thread.store(t.linear, std::memory_order_relaxed);
  b.progress->switches.store(b.progress->switches.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
  g_thread = &t;
  context_switch(b.scheduler, t.context);
  g_thread = nullptr;
}

// Runs one block to completion; returns the kernel error, if any.
inline std::string run_block(Block& b, size_t linear) {
  const Config& cfg = Config::get();
  {
    IgnoreAccesses ignore;
    b.progress->block.store(linear, std::memory_order_relaxed);
    prepare_block(b, linear);
    g_block = &b;
  }
  // What this worker saw (the launch's inputs, earlier blocks) happens before this block.
  hb_release(&b.tsan_start);
  {
    IgnoreAccesses ignore;
    std::vector<unsigned> order(b.count);
    std::iota(order.begin(), order.end(), 0u);
    std::mt19937_64 rng(cfg.seed ^ (0x9e3779b97f4a7c15ull * (linear + 1)));
    for (;;) {
      if (cfg.seed) std::shuffle(order.begin(), order.end(), rng);
      bool ran = false;
      for (unsigned i : order) {
        Thread& t = *b.threads[i];
        if (t.state != State::Ready) continue;
        resume(b, t);
        ran = true;
        if (!b.error.empty()) break;
      }
      if (!b.error.empty() || b.alive == 0) break;
      if (ran) continue;
      if (b.at_barrier == b.alive) {
        release_barrier(b);
        if (!b.error.empty()) break;
        continue;
      }
      b.error = deadlock_report(b);
      break;
    }
    g_block = nullptr;
    free(b.dynamic_smem);
    b.dynamic_smem = nullptr;
  }
  // Blocks that share a worker share its static __shared__ variables.
  hb_acquire(&b.tsan_end);
  return b.error;
}

}  // namespace lamina::simt::emu

inline void __syncthreads(std::source_location where = std::source_location::current()) {
  lamina::simt::emu::syncthreads(0, where);
}
inline int __syncthreads_count(int pred,
                               std::source_location where = std::source_location::current()) {
  return lamina::simt::emu::syncthreads(pred != 0, where);
}
inline int __syncthreads_and(int pred,
                             std::source_location where = std::source_location::current()) {
  return lamina::simt::emu::syncthreads(pred == 0, where) == 0;
}
inline int __syncthreads_or(int pred,
                            std::source_location where = std::source_location::current()) {
  return lamina::simt::emu::syncthreads(pred != 0, where) != 0;
}
