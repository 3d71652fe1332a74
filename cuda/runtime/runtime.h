// The CUDA backend's public host API, free of CUDA headers so that the bindings include it
// in every build.
#pragma once
#include <cstdint>

namespace lamina::cuda {

// True when the backend is built and a device (or the emulator) is present.
bool is_available();
// Devices visible to the process; 0 without a driver.
int device_count();
// Waits for all queued work on the current device; throws RuntimeError on a device error.
void synchronize_device();

struct MemoryStats {
  int64_t allocated_bytes = 0;       // held by live tensors (rounded to the size class)
  int64_t reserved_bytes = 0;        // obtained from the device: allocated + cached
  int64_t peak_allocated_bytes = 0;
  int64_t device_mallocs = 0;        // cudaMalloc calls so far
  int64_t device_frees = 0;          // cudaFree calls so far
  int64_t cache_hits = 0;            // allocations served from the cache
};
MemoryStats memory_stats();
// Returns cached, unused blocks to the device.
void empty_cache();

// Kernels launched so far in this process (every launch, successful or not).
int64_t kernel_launches();

}  // namespace lamina::cuda
