#include "core/scratch.h"

#include <cstdlib>
#include <string>

#include "core/errors.h"

namespace lamina {

void* thread_scratch(ScratchSlot slot, size_t bytes, const char* op) {
  struct Buffer {
    void* data = nullptr;
    size_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffers[size_t(ScratchSlot::kCount)];
  Buffer& b = buffers[size_t(slot)];
  if (bytes > b.size) {
    std::free(b.data);
    b.size = 0;
    if (bytes > SIZE_MAX - 64) throw MemoryError(std::string(op) + ": scratch request too large");
    b.data = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!b.data) throw MemoryError(std::string(op) + ": cannot allocate " + std::to_string(bytes) + " bytes of scratch");
    b.size = bytes;
  }
  return b.data;
}

}  // namespace lamina
