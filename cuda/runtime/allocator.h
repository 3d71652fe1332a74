// A caching device allocator: freed blocks go to a free list per size class and serve the
// next request of that class, so a training loop with steady shapes stops calling cudaMalloc
// after its first step. Blocks are reused on the one (default) stream, in stream order, so
// a freed block can be handed out at once.
#pragma once
#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "runtime/runtime.h"

namespace lamina::cuda {

class CachingAllocator {
 public:
  static CachingAllocator& get();
  // Size classes: powers of two from 512 bytes up to 1 MiB, then multiples of 2 MiB.
  static size_t size_class(size_t nbytes);

  void* allocate(size_t nbytes, int device);   // throws MemoryError
  void release(void* ptr, size_t nbytes, int device) noexcept;
  void empty_cache();
  MemoryStats stats();

 private:
  struct Key {
    int device;
    size_t size;
    bool operator==(const Key& o) const { return device == o.device && size == o.size; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return k.size * 31 + size_t(k.device); }
  };
  void free_cached_locked();

  std::mutex mutex_;
  std::unordered_map<Key, std::vector<void*>, KeyHash> free_;
  MemoryStats stats_;
};

}  // namespace lamina::cuda
