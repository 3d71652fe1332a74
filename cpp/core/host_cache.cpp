#include "core/host_cache.h"

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <pthread.h>
#include <sys/mman.h>

namespace lamina {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCaching = false;
#else
constexpr bool kCaching = true;
#endif
constexpr size_t kAlign = 64;
constexpr size_t kMinCached = size_t(128) << 10;
constexpr size_t kMaxCachedBytes = size_t(1) << 30;

// Multiples of an eighth of the size's power of two: at most 12.5% rounding waste, and few
// classes, so that slightly different shapes share buffers.
size_t size_class(size_t nbytes) {
  size_t power = kMinCached;
  while (power * 2 <= nbytes) power *= 2;
  const size_t step = power / 8;
  return (nbytes + step - 1) / step * step;
}

constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kPage = size_t(4) << 10;
constexpr size_t kRegionBytes = size_t(4) << 30;

constexpr uintptr_t round_up(uintptr_t n, size_t step) { return (n + step - 1) / step * step; }

// Buffers from 128 KiB up to 2 MiB are cut one after another from a region of address space
// reserved at the first such request and advised for huge pages, so that neighbouring buffers
// share huge pages (a mapping of their own would be too small for one). Measured against huge
// pages for the large buffers alone: the transformer's and the LSTM's training steps 10-11%
// faster (NOTES.md, eighth session). A buffer cut from the region never goes back to the
// system allocator: released, it waits in its size's free list; emptying the cache hands its
// pages back (MADV_DONTNEED) and keeps the address range for a later request of that size.
struct Region {
  char* base = nullptr;
  size_t used = 0;
  bool reserved = false;
  bool holds(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return base && c >= base && c < base + kRegionBytes;
  }
};

struct Cache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free;
  std::unordered_map<size_t, std::vector<void*>> emptied;  // region buffers without pages
  Region region;
  HostCacheStats stats;
};

Cache& cache() {
  static Cache* c = new Cache;  // outlives every tensor, including those freed at exit
  return *c;
}

// Held across fork(), so the child's copy of the mutex is not left locked by a thread that
// was not copied. Registered by a static initializer: before the thread pool's handlers,
// which core/parallel.cpp registers at the pool's first use (see there why the order matters).
void lock_cache() { cache().mutex.lock(); }
void unlock_cache() { cache().mutex.unlock(); }
const int fork_handlers_installed = pthread_atfork(lock_cache, unlock_cache, unlock_cache);

void advise_huge(void* p, size_t length) {
#if defined(MADV_HUGEPAGE)
  madvise(p, length, MADV_HUGEPAGE);
#endif
}

// Buffers of 2 MiB and more get mappings of their own that start on a 2 MiB boundary and ask
// for transparent huge pages: a training step streams through far more activation memory
// than the TLB's 4 KiB entries cover; with huge pages the transformer's step ran 23% faster
// on the development machine (NOTES.md, eighth session). Mappings of their own,
// not the C heap: advice given to part of the heap would outlive the buffer and apply to
// whatever the heap puts there next. Where the system grants no huge pages the advice is
// ignored.
bool mapped_on_its_own(size_t nbytes) { return kCaching && nbytes >= kHugePage; }
size_t mapped_length(size_t nbytes) { return round_up(nbytes, kPage); }

void* map_huge(size_t nbytes) {
  const size_t length = mapped_length(nbytes), slack = kHugePage - kPage;
  void* raw = mmap(nullptr, length + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = round_up(begin, kHugePage);
  if (aligned > begin) munmap(raw, aligned - begin);
  if (aligned + length < begin + length + slack)
    munmap(reinterpret_cast<void*>(aligned + length), begin + length + slack - (aligned + length));
  void* p = reinterpret_cast<void*>(aligned);
  advise_huge(p, length);
  return p;
}

void* system_allocate(size_t nbytes) {
  if (mapped_on_its_own(nbytes)) return map_huge(nbytes);
  return std::aligned_alloc(kAlign, round_up(nbytes, kAlign));
}

void system_release(void* ptr, size_t nbytes) noexcept {
  if (mapped_on_its_own(nbytes)) munmap(ptr, mapped_length(nbytes));
  else std::free(ptr);
}

// A buffer of a medium size class from the region: one emptied earlier, else the next cut;
// nullptr when the region is used up or could not be reserved. Called under the mutex.
void* cut_from_region(Cache& c, size_t size) {
  auto it = c.emptied.find(size);
  if (it != c.emptied.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    return p;
  }
  Region& r = c.region;
  if (!r.reserved) {
    r.reserved = true;
    void* raw = mmap(nullptr, kRegionBytes + kHugePage, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    r.base = reinterpret_cast<char*>(round_up(reinterpret_cast<uintptr_t>(raw), kHugePage));
    advise_huge(r.base, kRegionBytes);
  }
  if (!r.base || r.used + size > kRegionBytes) return nullptr;
  void* p = r.base + r.used;
  r.used += size;
  return p;
}

// Gives a region buffer's pages back to the system; its addresses wait for the same size.
// Called under the mutex.
void empty_region_buffer(Cache& c, void* p, size_t size) {
  madvise(p, size, MADV_DONTNEED);
  try {
    c.emptied[size].push_back(p);
  } catch (...) {  // no memory for the list: the address range is lost, its pages are not
  }
}

}  // namespace

void* host_allocate(size_t nbytes) {
  if (!kCaching || nbytes < kMinCached) return system_allocate(nbytes);
  const size_t size = size_class(nbytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free.find(size);
    if (it != c.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.stats.cached_bytes -= int64_t(size);
      ++c.stats.hits;
      return p;
    }
    ++c.stats.misses;
    if (size < kHugePage) {
      if (void* p = cut_from_region(c, size)) return p;
    }
  }
  void* p = system_allocate(size);
  if (!p) {  // give the cache back and try once more
    host_empty_cache();
    p = system_allocate(size);
  }
  return p;
}

void host_release(void* ptr, size_t nbytes) noexcept {
  if (!ptr) return;
  if (!kCaching || nbytes < kMinCached) return system_release(ptr, nbytes);
  const size_t size = size_class(nbytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.stats.cached_bytes + int64_t(size) <= int64_t(kMaxCachedBytes)) {
      try {
        c.free[size].push_back(ptr);
        c.stats.cached_bytes += int64_t(size);
        return;
      } catch (...) {  // no memory for the list: free the buffer instead
      }
    }
    if (c.region.holds(ptr)) return empty_region_buffer(c, ptr, size);
  }
  system_release(ptr, size);
}

void host_empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [size, blocks] : c.free) {
    for (void* p : blocks) {
      if (c.region.holds(p)) empty_region_buffer(c, p, size);
      else system_release(p, size);
    }
  }
  c.free.clear();
  c.stats.cached_bytes = 0;
}

HostCacheStats host_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.stats;
}

}  // namespace lamina
