// A reference-counted buffer on one device. Views of a tensor share one Storage, and
// with it the version counter that in-place ops bump and autograd checks.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace lamina {

struct Device {
  enum class Type : uint8_t { CPU, CUDA };
  Type type = Type::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
  static Device parse(const std::string& spec);  // "cpu", "cuda", "cuda:1"
};

class Storage {
 public:
  // Allocates `nbytes` (64-byte aligned); throws MemoryError when the allocation fails.
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device = {});
  // Borrows memory owned by someone else (numpy, DLPack); `owner` keeps it alive.
  static std::shared_ptr<Storage> wrap(void* data, size_t nbytes, std::shared_ptr<void> owner,
                                       Device device = {});
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  const Device& device() const { return device_; }
  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  Storage() = default;
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  std::shared_ptr<void> owner_;
  std::atomic<uint64_t> version_{0};
};

}  // namespace lamina
