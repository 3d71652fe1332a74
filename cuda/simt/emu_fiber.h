// Fibers for the SIMT emulator: every CUDA thread runs on its own small stack, and control
// passes between threads only where the emulator switches explicitly, so a block's threads
// interleave at synchronisation points and nowhere else.
//
// Sanitizers must be told about every switch: ThreadSanitizer treats each fiber as a thread
// (so data races between CUDA threads are reported), and AddressSanitizer must know which
// stack is live (or it reports false stack overflows).
#pragma once

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#if defined(SIMT_USE_UCONTEXT) || !defined(__x86_64__)
#include <ucontext.h>
#define SIMT_UCONTEXT 1
#endif

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SIMT_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define SIMT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SIMT_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SIMT_ASAN 1
#endif

#if defined(SIMT_TSAN)
#include <sanitizer/tsan_interface.h>
// Exported by the TSan runtime but missing from its public header.
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif
#if defined(SIMT_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(SIMT_UCONTEXT)
extern "C" void simt_context_switch(void** save_sp, void* new_sp);
extern "C" void simt_fiber_trampoline();
// Saves the callee-saved registers on the old stack and pops them from the new one. Neither
// MXCSR nor the x87 control word is switched: kernels never change them, and saving them
// would dominate the cost of a switch. Weak, because every translation unit that includes
// the emulator emits this block.
asm(R"(
  .text
  .weak simt_context_switch
  .type simt_context_switch,@function
simt_context_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size simt_context_switch,.-simt_context_switch
  .weak simt_fiber_trampoline
  .type simt_fiber_trampoline,@function
simt_fiber_trampoline:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size simt_fiber_trampoline,.-simt_fiber_trampoline
)");
#endif

namespace lamina::simt::emu {

// Misuse of the emulator itself (not a kernel bug): there is no caller to report to.
[[noreturn]] inline void fatal(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fputs("simt: fatal: ", stderr);
  vfprintf(stderr, fmt, args);
  fputc('\n', stderr);
  va_end(args);
  abort();
}

// Emulator bookkeeping is shared by all fibers of a block; TSan must not see it, or every
// barrier would look like a race.
struct IgnoreAccesses {
  IgnoreAccesses() {
#if defined(SIMT_TSAN)
    __tsan_ignore_thread_begin();
#endif
  }
  ~IgnoreAccesses() {
#if defined(SIMT_TSAN)
    __tsan_ignore_thread_end();
#endif
  }
  IgnoreAccesses(const IgnoreAccesses&) = delete;
  IgnoreAccesses& operator=(const IgnoreAccesses&) = delete;
};

// Happens-before edges: fibers switch with no implicit synchronisation, so every edge the
// CUDA model guarantees (barriers, warp collectives, fences) is stated explicitly.
inline void hb_release([[maybe_unused]] void* sync) {
#if defined(SIMT_TSAN)
  __tsan_release(sync);
#endif
}
inline void hb_acquire([[maybe_unused]] void* sync) {
#if defined(SIMT_TSAN)
  __tsan_acquire(sync);
#endif
}

// A fiber stack with a guard page, so that an overflow faults instead of silently
// corrupting the neighbouring thread's stack.
class Stack {
 public:
  explicit Stack(size_t bytes) : size_(bytes) {
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) fatal("mmap of a %zu-byte fiber stack failed", size_);
    lo_ = static_cast<char*>(p);
    mprotect(lo_, page_size(), PROT_NONE);
  }
  ~Stack() { munmap(lo_, size_); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  char* lo() const { return lo_; }
  size_t size() const { return size_; }
  static size_t page_size() { return size_t(sysconf(_SC_PAGESIZE)); }

 private:
  char* lo_ = nullptr;
  size_t size_ = 0;
};

// Where a suspended fiber (or the scheduler on its OS thread) resumes.
struct Context {
  void* sp = nullptr;
#if defined(SIMT_UCONTEXT)
  ucontext_t uc;
#endif
  void (*entry)(void*) = nullptr;
  void* arg = nullptr;
  const void* stack_lo = nullptr;  // ASan needs the bounds of the stack being entered
  size_t stack_size = 0;
#if defined(SIMT_ASAN)
  void* asan_fake_stack = nullptr;
#endif
#if defined(SIMT_TSAN)
  void* tsan_fiber = nullptr;
  bool owns_tsan_fiber = false;
#endif
  Context() = default;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() {
#if defined(SIMT_TSAN)
    if (owns_tsan_fiber) __tsan_destroy_fiber(tsan_fiber);
#endif
  }
};

inline void context_start(Context* c) { c->entry(c->arg); }

#if defined(SIMT_UCONTEXT)
inline void context_start_uc(unsigned lo, unsigned hi) {
  context_start(reinterpret_cast<Context*>((uintptr_t(hi) << 32) | lo));
}
#endif

// The scheduler's side: the OS thread's own stack.
inline void context_of_this_thread(Context& c) {
#if defined(SIMT_ASAN)
  pthread_attr_t attr;
  void* lo = nullptr;
  pthread_getattr_np(pthread_self(), &attr);
  pthread_attr_getstack(&attr, &lo, &c.stack_size);
  pthread_attr_destroy(&attr);
  c.stack_lo = lo;
#endif
#if defined(SIMT_TSAN)
  c.tsan_fiber = __tsan_get_current_fiber();
#endif
  (void)c;
}

// Prepare `c` to run entry(arg) from the top of `stack` when next switched to. `colour`
// staggers stack tops: stacks are a power of two apart, so their hot top frames would all
// map to the same cache sets.
inline void context_init(Context& c, const Stack& stack, void (*entry)(void*), void* arg,
                         size_t colour) {
  c.entry = entry;
  c.arg = arg;
  c.stack_lo = stack.lo();
  c.stack_size = stack.size();
#if defined(SIMT_ASAN)
  // A reused stack still carries the red zones of frames that never returned.
  __asan_unpoison_memory_region(stack.lo() + Stack::page_size(),
                                stack.size() - Stack::page_size());
#endif
#if defined(SIMT_TSAN)
  if (!c.owns_tsan_fiber) {
    c.tsan_fiber = __tsan_create_fiber(0);
    c.owns_tsan_fiber = true;
  }
#endif
#if defined(SIMT_UCONTEXT)
  (void)colour;
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack.lo();
  c.uc.uc_stack.ss_size = stack.size();
  c.uc.uc_link = nullptr;
  const uintptr_t p = reinterpret_cast<uintptr_t>(&c);
  makecontext(&c.uc, reinterpret_cast<void (*)()>(&context_start_uc), 2, unsigned(p),
              unsigned(p >> 32));
#else
  const uintptr_t top =
      (reinterpret_cast<uintptr_t>(stack.lo()) + stack.size() - colour) & ~uintptr_t(15);
  uint64_t* s = reinterpret_cast<uint64_t*>(top - 16);
  s[-1] = reinterpret_cast<uint64_t>(&simt_fiber_trampoline);  // `ret` lands here
  s[-2] = 0;                                                   // rbp
  s[-3] = 0;                                                   // rbx
  s[-4] = reinterpret_cast<uint64_t>(&c);                      // r12: argument
  s[-5] = reinterpret_cast<uint64_t>(&context_start);          // r13: entry
  s[-6] = 0;                                                   // r14
  s[-7] = 0;                                                   // r15
  c.sp = &s[-7];
#endif
}

// Called first thing on a fresh fiber, completing the switch that started it.
inline void context_entered() {
#if defined(SIMT_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
}

// Suspend `from` and resume `to`. `from_exits`: `from` is never resumed, so ASan may drop
// its fake stack. `to` is read in an ignored scope that closes before the switch: a scope left
// open on a fiber that never returns would blind TSan to that fiber when it is reused.
inline void context_switch(Context& from, Context& to, [[maybe_unused]] bool from_exits = false) {
  void* sp;
  [[maybe_unused]] void* tsan_fiber;
  [[maybe_unused]] const void* stack_lo;
  [[maybe_unused]] size_t stack_size;
  {
    IgnoreAccesses ignore;
    sp = to.sp;
#if defined(SIMT_TSAN)
    tsan_fiber = to.tsan_fiber;
#endif
    stack_lo = to.stack_lo;
    stack_size = to.stack_size;
  }
#if defined(SIMT_TSAN)
  __tsan_switch_to_fiber(tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
#if defined(SIMT_ASAN)
  __sanitizer_start_switch_fiber(from_exits ? nullptr : &from.asan_fake_stack, stack_lo,
                                 stack_size);
#endif
#if defined(SIMT_UCONTEXT)
  (void)sp;
  swapcontext(&from.uc, &to.uc);
#else
  simt_context_switch(&from.sp, sp);
#endif
#if defined(SIMT_ASAN)
  __sanitizer_finish_switch_fiber(from.asan_fake_stack, nullptr, nullptr);
#endif
}

}  // namespace lamina::simt::emu
