// Per-thread scratch buffers for kernels (GEMM packing, conv columns), grown on demand and
// kept for the thread's life: pool workers live as long as the process, so a steady training
// loop allocates nothing here.
#pragma once
#include <cstddef>

namespace lamina {

enum class ScratchSlot { GemmPacking, ConvColumns, ConvOutputBlock, kCount };

// At least `bytes` of 64-byte aligned memory owned by the calling thread; the previous
// contents of the slot are not kept. Throws MemoryError naming `op` when allocation fails.
void* thread_scratch(ScratchSlot slot, size_t bytes, const char* op);

}  // namespace lamina
