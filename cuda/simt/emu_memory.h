// Memory side of the SIMT emulator: device memory is host memory, atomics are relaxed
// read-modify-writes (as in CUDA), cp.async copies land at the cp.async.wait_group that covers
// them, and a minimal runtime API lets the same host code drive either build.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <source_location>
#include <type_traits>

#include "emu_grid.h"

namespace lamina::simt::emu {

// TSan ignores fences, so every fence-then-atomic handshake between blocks would look like a
// race. The emulator states the PTX model's edges instead: an atomic after a fence releases
// at the atomic's address, and a fence acquires at the addresses of this thread's atomics
// since its previous fence.
inline void atomic_touched([[maybe_unused]] const void* address) {
#if defined(SIMT_TSAN)
  Thread& t = self();
  if (t.fenced) hb_release(const_cast<void*>(address));
  IgnoreAccesses ignore;
  auto& seen = t.atomics_since_fence;
  if (std::find(seen.begin(), seen.end(), address) == seen.end()) seen.push_back(address);
#endif
}

inline void fence() {
#if defined(SIMT_TSAN)
  Thread& t = self();
  for (const void* address : t.atomics_since_fence) hb_acquire(const_cast<void*>(address));
  IgnoreAccesses ignore;
  t.atomics_since_fence.clear();
  t.fenced = true;
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);  // TSan warns about fences
#endif
}

template <class T, class Op>
T atomic_update(T* address, Op op) {
  atomic_touched(address);
  std::atomic_ref<T> ref(*address);
  T old = ref.load(std::memory_order_relaxed);
  while (!ref.compare_exchange_weak(old, op(old), std::memory_order_relaxed)) {
  }
  return old;
}

inline void cp_async(void* dst, const void* src, unsigned bytes,
                     const std::source_location& where) {
  if ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) % bytes)
    fail(format("cp.async at %s: addresses %p <- %p are not %u-byte aligned",
                site(where).c_str(), dst, src, bytes));
  Thread& t = self();
  // Until the wait that covers it, the target holds garbage on the device too; poison it so
  // that an early read shows.
  if (Config::get().poison) memset(dst, 0xff, bytes);
  IgnoreAccesses ignore;
  t.async_copies.push_back({dst, src, bytes, t.async_groups});
}

inline void cp_async_wait(unsigned pending_allowed) {
  Thread& t = self();
  std::vector<AsyncCopy> due;
  {
    IgnoreAccesses ignore;
    const unsigned limit = t.async_groups > pending_allowed ? t.async_groups - pending_allowed : 0;
    auto& q = t.async_copies;
    auto split = std::stable_partition(q.begin(), q.end(),
                                       [&](const AsyncCopy& c) { return c.group >= limit; });
    due.assign(split, q.end());
    q.erase(split, q.end());
  }
  for (const AsyncCopy& c : due) memcpy(c.dst, c.src, c.bytes);  // this thread's writes
}

inline void* dynamic_smem() { return block().dynamic_smem; }

}  // namespace lamina::simt::emu

namespace lamina::simt {

// cp.async.cg.shared.global [dst], [src], 16
inline void cp_async16(void* smem_dst, const void* gmem_src,
                       std::source_location where = std::source_location::current()) {
  emu::cp_async(smem_dst, gmem_src, 16, where);
}
inline void cp_async_commit() {
  emu::Thread& t = emu::self();
  emu::IgnoreAccesses ignore;
  ++t.async_groups;
}
// cp.async.wait_group N: all but the N most recent committed groups have landed.
template <int N>
inline void cp_async_wait() {
  static_assert(N >= 0, "cp.async.wait_group takes a non-negative count");
  emu::cp_async_wait(N);
}

}  // namespace lamina::simt

template <class T>
inline T __ldg(const T* p) {
  return *p;
}

inline void __threadfence() { lamina::simt::emu::fence(); }
inline void __threadfence_block() { lamina::simt::emu::fence(); }

// The device's atomics, for the types it has them for. The operand is not deduced, so
// that atomicAdd(float_ptr, 1) converts as the device overloads would.
template <class T>
  requires std::is_arithmetic_v<T>
inline T atomicAdd(T* address, std::type_identity_t<T> val) {
  lamina::simt::emu::atomic_touched(address);
  return std::atomic_ref<T>(*address).fetch_add(val, std::memory_order_relaxed);
}
template <class T>
  requires std::is_arithmetic_v<T>
inline T atomicExch(T* address, std::type_identity_t<T> val) {
  lamina::simt::emu::atomic_touched(address);
  return std::atomic_ref<T>(*address).exchange(val, std::memory_order_relaxed);
}
template <class T>
  requires std::is_integral_v<T>
inline T atomicSub(T* address, std::type_identity_t<T> val) {
  lamina::simt::emu::atomic_touched(address);
  return std::atomic_ref<T>(*address).fetch_sub(val, std::memory_order_relaxed);
}
template <class T>
  requires std::is_integral_v<T>
inline T atomicCAS(T* address, std::type_identity_t<T> compare, std::type_identity_t<T> val) {
  lamina::simt::emu::atomic_touched(address);
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, val, std::memory_order_relaxed);
  return compare;
}
template <class T>
  requires std::is_integral_v<T>
inline T atomicMin(T* address, std::type_identity_t<T> val) {
  return lamina::simt::emu::atomic_update(address, [&](T old) { return val < old ? val : old; });
}
template <class T>
  requires std::is_integral_v<T>
inline T atomicMax(T* address, std::type_identity_t<T> val) {
  return lamina::simt::emu::atomic_update(address, [&](T old) { return old < val ? val : old; });
}
template <class T>
  requires std::is_integral_v<T>
inline T atomicAnd(T* address, std::type_identity_t<T> val) {
  lamina::simt::emu::atomic_touched(address);
  return std::atomic_ref<T>(*address).fetch_and(val, std::memory_order_relaxed);
}
template <class T>
  requires std::is_integral_v<T>
inline T atomicOr(T* address, std::type_identity_t<T> val) {
  lamina::simt::emu::atomic_touched(address);
  return std::atomic_ref<T>(*address).fetch_or(val, std::memory_order_relaxed);
}
template <class T>
  requires std::is_integral_v<T>
inline T atomicXor(T* address, std::type_identity_t<T> val) {
  lamina::simt::emu::atomic_touched(address);
  return std::atomic_ref<T>(*address).fetch_xor(val, std::memory_order_relaxed);
}

// ---- runtime API: device memory is host memory, launches are synchronous -------------------

using cudaStream_t = struct CUstream_st*;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost,
  cudaMemcpyHostToDevice,
  cudaMemcpyDeviceToHost,
  cudaMemcpyDeviceToDevice,
  cudaMemcpyDefault,
};

template <class T>
inline cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  void* p = nullptr;
  // Exactly `bytes`, so that ASan reports an access past the end; poisoned, because fresh
  // device memory is garbage, not zeros.
  if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0) return cudaErrorMemoryAllocation;
  if (lamina::simt::emu::Config::get().poison) memset(p, 0xff, bytes);
  *ptr = static_cast<T*>(p);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  memcpy(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  memset(dst, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaPeekAtLastError() { return lamina::simt::emu::g_last_error.code; }
inline cudaError_t cudaDeviceSynchronize() { return cudaPeekAtLastError(); }
inline cudaError_t cudaGetLastError() {
  return std::exchange(lamina::simt::emu::g_last_error, {}).code;
}
inline const char* cudaGetErrorString(cudaError_t e) {
  const auto& last = lamina::simt::emu::g_last_error;
  if (e == last.code && !last.message.empty()) return last.message.c_str();
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}
