// A cache of large host buffers for tensor storage. A fresh large allocation is mapped from
// the OS and page-faulted in on first touch (about 0.25 us per 4 KiB page, plus the kernel's
// zeroing), then unmapped when freed, so a training step that allocates the same activations
// every iteration pays for every page again. Freed buffers of 128 KiB and more go to a free
// list per size class instead and serve the next request of that class; the cache keeps at
// most 1 GiB (a release past that frees the buffer). These buffers lie on transparent huge
// pages where the system grants them (fewer TLB misses): from 2 MiB each in a mapping of its
// own, below that cut from one reserved region (see host_cache.cpp). Builds with
// AddressSanitizer bypass the cache, so use-after-free stays detectable.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "core/errors.h"

namespace lamina {

struct HostCacheStats {
  int64_t cached_bytes = 0;  // held in free lists
  int64_t hits = 0;          // requests served from the cache
  int64_t misses = 0;        // cacheable requests that went to the system allocator
};

// 64-byte aligned; nullptr when the system is out of memory.
void* host_allocate(size_t nbytes);
// `nbytes` must be the size given to host_allocate.
void host_release(void* ptr, size_t nbytes) noexcept;
// Returns every cached buffer's memory to the system (buffers cut from the medium-size
// region keep their addresses for later requests of their size).
void host_empty_cache();
HostCacheStats host_cache_stats();

// An uninitialised array of `count` T from the cache (kernels' large scratch buffers), handed
// back when destroyed. Throws MemoryError.
template <class T>
class HostArray {
 public:
  HostArray() = default;
  explicit HostArray(size_t count) : bytes_(count * sizeof(T)) {
    if (count == 0) return;
    data_ = static_cast<T*>(host_allocate(bytes_));
    if (!data_) throw MemoryError("cannot allocate " + std::to_string(bytes_) + " bytes of host memory");
  }
  HostArray(HostArray&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  HostArray& operator=(HostArray&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  HostArray(const HostArray&) = delete;
  HostArray& operator=(const HostArray&) = delete;
  ~HostArray() {
    if (data_) host_release(data_, bytes_);
  }
  T* data() const { return data_; }

 private:
  T* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace lamina
