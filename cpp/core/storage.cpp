#include "core/storage.h"

#include <algorithm>
#include <cstdlib>

#include "core/backend.h"
#include "core/errors.h"
#include "core/host_cache.h"

namespace lamina {

std::string Device::str() const {
  return type == Type::CPU ? "cpu" : "cuda:" + std::to_string(index);
}

Device Device::parse(const std::string& spec) {
  if (spec == "cpu") return Device{};
  if (spec == "cuda") return Device{Type::CUDA, 0};
  if (spec.rfind("cuda:", 0) == 0) {
    std::string num = spec.substr(5);
    check<ValueError>(!num.empty() && num.find_first_not_of("0123456789") == std::string::npos &&
                          num.size() < 6,
                      "invalid device '", spec, "'");
    return Device{Type::CUDA, std::stoi(num)};
  }
  throw ValueError("invalid device '" + spec + "': expected 'cpu', 'cuda' or 'cuda:N'");
}

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  std::shared_ptr<Storage> s(new Storage());
  s->nbytes_ = nbytes;
  s->device_ = device;
  if (device.type == Device::Type::CUDA) {
    CudaBackend* cuda = cuda_backend();
    if (!cuda) throw RuntimeError("this build of Lamina has no CUDA support");
    const int count = cuda->device_count();
    check<RuntimeError>(device.index < count, "device ", device.str(), " is not available (",
                        count == 0 ? std::string("no CUDA device found") : std::to_string(count) + " CUDA devices",
                        ")");
    if (nbytes > 0) s->data_ = cuda->allocate(nbytes, device.index);
    return s;
  }
  // Empty tensors get a real (one-line) buffer too: kernels may then pass their pointers to
  // memcpy/memset with a zero size, which a null pointer would make undefined.
  constexpr size_t kAlign = 64;
  if (nbytes > SIZE_MAX / 2) throw MemoryError("cannot allocate " + std::to_string(nbytes) + " bytes");
  s->data_ = host_allocate(std::max<size_t>(kAlign, nbytes));
  if (!s->data_) throw MemoryError("cannot allocate " + std::to_string(nbytes) + " bytes");
  return s;
}

std::shared_ptr<Storage> Storage::wrap(void* data, size_t nbytes, std::shared_ptr<void> owner,
                                       Device device) {
  std::shared_ptr<Storage> s(new Storage());
  s->data_ = data;
  s->nbytes_ = nbytes;
  s->device_ = device;
  s->owner_ = std::move(owner);
  return s;
}

Storage::~Storage() {
  if (owner_) return;
  if (device_.type == Device::Type::CUDA) {
    if (data_) cuda_backend()->release(data_, nbytes_, device_.index);
  } else {
    host_release(data_, std::max<size_t>(64, nbytes_));
  }
}

}  // namespace lamina
