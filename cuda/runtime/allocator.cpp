#include "runtime/allocator.h"

#include <string>

#include "core/errors.h"
#include "runtime/api.h"

namespace lamina::cuda {

CachingAllocator& CachingAllocator::get() {
  static CachingAllocator* allocator = new CachingAllocator;  // outlives every tensor
  return *allocator;
}

size_t CachingAllocator::size_class(size_t nbytes) {
  constexpr size_t kMin = 512, kSmall = size_t(1) << 20, kLarge = size_t(2) << 20;
  if (nbytes <= kMin) return kMin;
  if (nbytes <= kSmall) {
    size_t c = kMin;
    while (c < nbytes) c *= 2;
    return c;
  }
  return (nbytes + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::allocate(size_t nbytes, int device) {
  const size_t size = size_class(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  auto account = [&] {
    stats_.allocated_bytes += int64_t(size);
    if (stats_.allocated_bytes > stats_.peak_allocated_bytes)
      stats_.peak_allocated_bytes = stats_.allocated_bytes;
  };
  auto it = free_.find(Key{device, size});
  if (it != free_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    ++stats_.cache_hits;
    account();
    return p;
  }
  set_device(device, "allocate");
  void* p = nullptr;
  cudaError_t status = cudaMalloc(&p, size);
  if (status == cudaErrorMemoryAllocation) {  // give the cache back and try once more
    cudaGetLastError();
    free_cached_locked();
    status = cudaMalloc(&p, size);
  }
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw MemoryError(detail::concat("CUDA out of memory: cannot allocate ", nbytes, " bytes on cuda:", device,
                                     " (", stats_.allocated_bytes, " bytes in use)"));
  }
  ++stats_.device_mallocs;
  stats_.reserved_bytes += int64_t(size);
  account();
  return p;
}

void CachingAllocator::release(void* ptr, size_t nbytes, int device) noexcept {
  const size_t size = size_class(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.allocated_bytes -= int64_t(size);
  try {
    free_[Key{device, size}].push_back(ptr);
  } catch (...) {  // no memory for the list: give the block back instead
    cudaFree(ptr);
    ++stats_.device_frees;
    stats_.reserved_bytes -= int64_t(size);
  }
}

void CachingAllocator::free_cached_locked() {
  for (auto& [key, blocks] : free_) {
    for (void* p : blocks) {
      cudaFree(p);
      ++stats_.device_frees;
      stats_.reserved_bytes -= int64_t(key.size);
    }
    blocks.clear();
  }
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  free_cached_locked();
}

MemoryStats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

MemoryStats memory_stats() { return CachingAllocator::get().stats(); }
void empty_cache() { CachingAllocator::get().empty_cache(); }

}  // namespace lamina::cuda
