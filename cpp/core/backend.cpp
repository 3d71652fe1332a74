#include "core/backend.h"

#include <atomic>
#include <string>

#include "core/errors.h"
#include "core/tensor.h"

namespace lamina {

namespace {
std::atomic<CudaBackend*> g_cuda_backend{nullptr};
}

void register_cuda_backend(CudaBackend* backend) { g_cuda_backend.store(backend); }
CudaBackend* cuda_backend() { return g_cuda_backend.load(std::memory_order_acquire); }

void throw_no_cuda(const char* op) {
  throw RuntimeError(std::string(op) + ": this build of Lamina has no CUDA support");
}

void require_cpu(const char* op, const Tensor& t) {
  if (t.defined() && is_cuda(t.device()))
    throw RuntimeError(detail::concat(op, ": not implemented for CUDA tensors yet (got a tensor on ",
                                      t.device().str(), "); move it with .cpu()"));
}

}  // namespace lamina
