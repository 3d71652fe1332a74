// Random draws on the device: the counter-based Philox4x32-10 generator of core/random.h and
// the distributions of core::draw_pair (uniform, normal by Box-Muller, dropout keep-mask,
// integer), so a seed gives the same numbers on the CPU and on CUDA.
//
// Kernel: philox_draw_kernel, one thread per Philox block (a pair of output elements 2p and
// 2p + 1 from block start + p), grid-stride, 256 threads. Output contiguous, any floating
// dtype (double values converted as the CPU converts them).
// Exactness: Philox is integer arithmetic. The floating expressions use explicitly rounded
// intrinsics (common.cuh: add_rn, mul_rn, ...) in the CPU's order, so nvcc cannot contract
// them into FMAs (core/random.cpp builds with -ffp-contract=off), and sqrt is correctly
// rounded on both sides: uniform, keep-mask and integer draws are bit-identical on a GPU.
// Normal draws also call log, cos and sin in double: on the emulator they are the host's
// libm, bit-identical; the CUDA math library documents errors of 1-2 ulp for them, so on a
// GPU a float64 normal can differ from the CPU in its last bit, and a float32 normal only
// when that difference crosses a float rounding boundary (about 1 draw in 10^8).
// Traffic: write-only, ~20 integer multiplies per two outputs (Philox's 10 rounds).
#include "core/errors.h"
#include "core/philox.h"
#include "core/random.h"
#include "core/tensor.h"
#include "kernels/common.cuh"
#include "kernels/launchers.h"
#include "runtime/api.h"

namespace lamina::cuda {

namespace device {

// 53 random bits in [0, 1): exact (an integer times a power of two).
__device__ __forceinline__ double uniform53(uint32_t hi, uint32_t lo) {
  return double(((uint64_t(hi) << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
}

template <class T>
__global__ void __launch_bounds__(256)
    philox_draw_kernel(int64_t n, uint64_t seed, uint64_t start, Distribution distribution, double a, double b,
                       T* __restrict__ out) {
  const int64_t pairs = (n + 1) / 2;
  for (int64_t pair = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; pair < pairs;
       pair += int64_t(gridDim.x) * blockDim.x) {
    const PhiloxWords words = philox_block(seed, 0, start + uint64_t(pair));
    const double u0 = uniform53(words.w[0], words.w[1]), u1 = uniform53(words.w[2], words.w[3]);
    double v0 = 0, v1 = 0;
    switch (distribution) {
      case Distribution::Uniform:
        v0 = add_rn(a, mul_rn(b, u0));
        v1 = add_rn(a, mul_rn(b, u1));
        break;
      case Distribution::Normal: {
        const double r = sqrt_rn(mul_rn(-2.0, log(sub_rn(1.0, u0))));
        const double theta = mul_rn(2.0 * M_PI, u1), scaled = mul_rn(b, r);
        v0 = add_rn(a, mul_rn(scaled, cos(theta)));
        v1 = add_rn(a, mul_rn(scaled, sin(theta)));
        break;
      }
      case Distribution::KeepMask:
        v0 = u0 >= a ? b : 0.0;
        v1 = u1 >= a ? b : 0.0;
        break;
      case Distribution::Integer:
        v0 = add_rn(a, floor(mul_rn(b, u0)));
        v1 = add_rn(a, floor(mul_rn(b, u1)));
        break;
    }
    out[2 * pair] = convert<T>(v0);
    if (2 * pair + 1 < n) out[2 * pair + 1] = convert<T>(v1);
  }
}

}  // namespace device

namespace {

// Calls fn(T{}) with the device type of a floating `dtype`.
template <class Fn>
cudaError_t visit_floating(DType dtype, const char* name, Fn&& fn) {
  switch (dtype) {
    case DType::Float16: return fn(__half{});
    case DType::BFloat16: return fn(__nv_bfloat16{});
    case DType::Float32: return fn(float{});
    case DType::Float64: return fn(double{});
    default: throw TypeError(std::string(name) + ": CUDA draws are floating-point, got " + dtype_name(dtype));
  }
}

}  // namespace

void philox_draw(const char* name, const Tensor& out, uint64_t seed, uint64_t start, const DrawSpec& spec) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const cudaError_t status = visit_floating(out.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    return simt_launch(device::philox_draw_kernel<T>, dim3(grid_for((n + 1) / 2, 256)), dim3(256), 0,
                       current_stream(), n, seed, start, spec.distribution, spec.a, spec.b, out.data<T>());
  });
  check_launch(status, name, "philox_draw_kernel launch");
}

}  // namespace lamina::cuda
