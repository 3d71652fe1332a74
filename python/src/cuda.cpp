// The CUDA area: device query, synchronisation and the caching allocator's statistics, as
// the submodule _core.cuda (lamina.cuda re-exports it). In a build without the backend it
// reports no devices, and the calls that need one raise RuntimeError.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include "core/backend.h"
#include "core/errors.h"
#include "ops/matmul.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#include "runtime/runtime.h"
#endif

namespace nb = nanobind;

namespace lamina::py {

void init_cuda(nb::module_& root) {
  nb::module_ m = root.def_submodule("cuda", "The CUDA backend: devices and device memory.");
#if defined(LAMINA_HAVE_CUDA)
  m.attr("built") = true;
#if defined(LAMINA_CUDA_EMULATE)
  m.attr("emulated") = true;  // the SIMT emulator: kernels run on the CPU
#else
  m.attr("emulated") = false;
#endif
  m.def("is_available", &cuda::is_available, nb::sig("def is_available() -> bool"),
        "True when Lamina was built with CUDA and a device is present.");
  m.def("device_count", &cuda::device_count, nb::sig("def device_count() -> int"), "Number of CUDA devices.");
  m.def(
      "synchronize",
      [] {
        nb::gil_scoped_release release;
        if (!cuda::is_available()) throw RuntimeError("synchronize: no CUDA device is available");
        cuda::synchronize_device();
      },
      nb::sig("def synchronize() -> None"), "Waits for all queued work on the device.");
  m.def(
      "memory_stats",
      [] {
        const cuda::MemoryStats s = cuda::memory_stats();
        nb::dict d;
        d["allocated_bytes"] = s.allocated_bytes;
        d["reserved_bytes"] = s.reserved_bytes;
        d["peak_allocated_bytes"] = s.peak_allocated_bytes;
        d["device_mallocs"] = s.device_mallocs;
        d["device_frees"] = s.device_frees;
        d["cache_hits"] = s.cache_hits;
        return d;
      },
      nb::sig("def memory_stats() -> dict[str, int]"),
      "The caching allocator's counters: bytes allocated to tensors and reserved from the device,\n"
      "the peak, and how many cudaMalloc / cudaFree calls and cache hits there were.");
  m.def("empty_cache", &cuda::empty_cache, nb::sig("def empty_cache() -> None"),
        "Returns cached, unused device blocks to the device.");
  m.def("kernel_launches", &cuda::kernel_launches, nb::sig("def kernel_launches() -> int"),
        "How many kernels Lamina has launched in this process (a counter for tests and profiling).");
  m.def(
      "conv_path_counts",
      [] {
        const cuda::ConvPathCounts c = cuda::conv_path_counts();
        nb::dict d;
        d["depthwise"] = c.depthwise;
        d["implicit_gemm"] = c.implicit_gemm;
        return d;
      },
      nb::sig("def conv_path_counts() -> dict[str, int]"),
      "How many conv passes (a forward, or a backward for dx and/or dw) ran the direct depthwise\n"
      "kernels and how many the implicit GEMMs, in this process.");
#else
  m.attr("built") = false;
  m.attr("emulated") = false;
  m.def("is_available", [] { return false; }, nb::sig("def is_available() -> bool"),
        "False: this build of Lamina has no CUDA support.");
  m.def("device_count", [] { return 0; }, nb::sig("def device_count() -> int"), "0: no CUDA support in this build.");
  m.def("synchronize", [] { throw_no_cuda("synchronize"); }, nb::sig("def synchronize() -> None"));
  m.def("memory_stats", []() -> nb::dict { throw_no_cuda("memory_stats"); }, nb::sig("def memory_stats() -> dict[str, int]"));
  m.def("empty_cache", [] { throw_no_cuda("empty_cache"); }, nb::sig("def empty_cache() -> None"));
  m.def("kernel_launches", []() -> int64_t { throw_no_cuda("kernel_launches"); },
        nb::sig("def kernel_launches() -> int"));
  m.def("conv_path_counts", []() -> nb::dict { throw_no_cuda("conv_path_counts"); },
        nb::sig("def conv_path_counts() -> dict[str, int]"));
#endif
  // A setting, so it works in every build: it only changes what CUDA float32 matmuls run.
  m.def(
      "set_float32_matmul_precision",
      [](const std::string& precision) {
        if (precision == "highest") set_float32_matmul_precision(Float32MatmulPrecision::Highest);
        else if (precision == "high") set_float32_matmul_precision(Float32MatmulPrecision::High);
        else throw ValueError("set_float32_matmul_precision: expected 'highest' or 'high', got '" + precision + "'");
      },
      nb::arg("precision"), nb::sig("def set_float32_matmul_precision(precision: str) -> None"),
      "'highest' (default): float32 matmuls on CUDA devices are exact fp32. 'high': they may use\n"
      "TF32 tensor cores (operands rounded to a 10-bit mantissa, fp32 accumulation).");
  m.def(
      "get_float32_matmul_precision",
      [] { return float32_matmul_precision() == Float32MatmulPrecision::High ? "high" : "highest"; },
      nb::sig("def get_float32_matmul_precision() -> str"), "The setting of set_float32_matmul_precision.");
}

}  // namespace lamina::py
