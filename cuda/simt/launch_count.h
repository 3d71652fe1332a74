// The count of kernel launches made through simt_launch in this process. Kept apart from
// portable.cuh so that the runtime, which the host compiler builds against the toolkit's
// headers rather than the emulator, reads the same variable (lamina.cuda.kernel_launches()).
#pragma once

#include <atomic>
#include <cstdint>

namespace lamina::simt {

inline std::atomic<int64_t> launch_count{0};

}  // namespace lamina::simt
