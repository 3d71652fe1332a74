// The seam between core and the CUDA backend. cuda/runtime registers a CudaBackend when
// the backend is built; core asks for it to allocate, free and copy device memory, and ops
// switch on the device once, through LAMINA_CUDA_BRANCH.
#pragma once
#include <cstddef>

#include "core/storage.h"

namespace lamina {

class Tensor;

enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };

class CudaBackend {
 public:
  virtual ~CudaBackend() = default;
  virtual int device_count() = 0;
  virtual void* allocate(size_t nbytes, int device) = 0;  // throws MemoryError
  virtual void release(void* ptr, size_t nbytes, int device) = 0;
  virtual void copy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) = 0;
};

// Set once by the CUDA runtime at load time; nullptr in a build without CUDA.
void register_cuda_backend(CudaBackend* backend);
CudaBackend* cuda_backend();

// RuntimeError("<op>: this build of Lamina has no CUDA support").
[[noreturn]] void throw_no_cuda(const char* op);
// RuntimeError for an op with no CUDA kernel yet, when `t` lives on a CUDA device.
void require_cpu(const char* op, const Tensor& t);

inline bool is_cuda(const Device& d) { return d.type == Device::Type::CUDA; }

}  // namespace lamina

// `if (is_cuda(dev)) LAMINA_CUDA_BRANCH("op", cuda::kernel(...)); else cpu::kernel(...);`
// compiles the CUDA call only when the backend is built.
#if defined(LAMINA_HAVE_CUDA)
#define LAMINA_CUDA_BRANCH(op, ...) __VA_ARGS__
#else
#define LAMINA_CUDA_BRANCH(op, ...) ::lamina::throw_no_cuda(op)
#endif
