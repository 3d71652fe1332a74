// Device query, the stream, error checks, and the registration of the backend with core
// (Storage::allocate on Device{CUDA, i} goes through it).
#include <mutex>

#include "core/backend.h"
#include "core/errors.h"
#include "runtime/allocator.h"
#include "runtime/api.h"
#include "runtime/runtime.h"
#include "simt/launch_count.h"

namespace lamina::cuda {

void check_status(cudaError_t status, const char* op, const char* what) {
  if (status == cudaSuccess) return;
  const char* message = cudaGetErrorString(status);
  cudaGetLastError();  // clear a sticky launch error so the next op reports its own
  throw RuntimeError(detail::concat(op, ": ", what, " failed: ", message ? message : "unknown CUDA error"));
}

int device_count() {
#if defined(LAMINA_CUDA_EMULATE)
  return 1;  // the emulator is one device
#else
  // With cudart linked statically this works without a driver: it reports an error,
  // which means no device.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
#endif
}

cudaStream_t current_stream() { return nullptr; }

int64_t kernel_launches() { return simt::launch_count.load(std::memory_order_relaxed); }

void synchronize_device() { synchronize("synchronize"); }

void synchronize(const char* op) { check_status(cudaDeviceSynchronize(), op, "cudaDeviceSynchronize"); }

void set_device(int device, const char* op) {
#if defined(LAMINA_CUDA_EMULATE)
  check<RuntimeError>(device == 0, op, ": the emulated backend has one device, cuda:0");
#else
  check_status(cudaSetDevice(device), op, "cudaSetDevice");
#endif
}

namespace {

class Runtime final : public CudaBackend {
 public:
  int device_count() override { return cuda::device_count(); }
  void* allocate(size_t nbytes, int device) override {
    return CachingAllocator::get().allocate(nbytes, device);
  }
  void release(void* ptr, size_t nbytes, int device) override {
    CachingAllocator::get().release(ptr, nbytes, device);
  }
  void copy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) override {
    if (nbytes == 0) return;
    set_device(device, "copy");
    const cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                             : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                              : cudaMemcpyDeviceToDevice;
    // cudaMemcpy orders after the default stream's kernels, and the host side is complete on return.
    check_status(cudaMemcpy(dst, src, nbytes, k), "copy", "cudaMemcpy");
  }
};

// Registered while the extension loads; never destroyed, since tensors may be freed during
// interpreter teardown.
const bool g_registered = [] {
  register_cuda_backend(new Runtime);
  return true;
}();

}  // namespace

bool is_available() { return g_registered && device_count() > 0; }

}  // namespace lamina::cuda
