// The CUDA runtime API as the backend's host code sees it: the toolkit's cuda_runtime.h in
// a device build, the SIMT emulator's subset in an emulated build (LAMINA_CUDA_EMULATE),
// plus the error checks that turn a failed call or launch into lamina::RuntimeError.
#pragma once
#include <cstddef>
#include <string>

#if defined(LAMINA_CUDA_EMULATE)
#include "simt/portable.cuh"
#else
#include <cuda_runtime.h>
#endif

namespace lamina::cuda {

// Throws RuntimeError("<op>: <what> failed: <CUDA's message>") unless `status` is success.
void check_status(cudaError_t status, const char* op, const char* what);

// After a launch: the launch's own status and, in a debug mode, a device-wide sync.
inline void check_launch(cudaError_t status, const char* op, const char* kernel) {
  check_status(status, op, kernel);
}

// The device count, 0 when there is no driver or no device (never throws).
int device_count();
// The stream every kernel and copy goes to: the default stream in this version.
cudaStream_t current_stream();
// Waits for all work on the device; throws on a pending asynchronous error.
void synchronize(const char* op = "synchronize");
// Makes `device` current for the calling thread.
void set_device(int device, const char* op);

}  // namespace lamina::cuda
