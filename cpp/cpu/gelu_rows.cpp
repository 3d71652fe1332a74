#include "cpu/gelu_rows.h"

#include "core/backend.h"
#include "core/parallel.h"
#include "cpu/fast_math.h"

namespace lamina::cpu {

namespace {

LAMINA_TARGET_AVX512 void gelu_range(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_erf(x[i]);
}

LAMINA_TARGET_AVX512 void gelu_grad_range(const float* __restrict g, const float* __restrict x,
                                          float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_erf_grad(g[i], x[i]);
}

bool applies(std::initializer_list<const Tensor*> ts) {
  if (!use_avx512_kernels()) return false;
  const Tensor& first = **ts.begin();
  for (const Tensor* t : ts)
    if (t->dtype() != DType::Float32 || !t->is_contiguous() || t->shape() != first.shape() || is_cuda(t->device()))
      return false;
  return true;
}

// Elements per task, as the elementwise loops split them (cpu/loops.h).
constexpr int64_t kGrain = 32768;

}  // namespace

bool gelu_erf_rows(const Tensor& out, const Tensor& x) {
  if (!applies({&out, &x})) return false;
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  parallel_for(0, x.numel(), kGrain, [&](int64_t lo, int64_t hi) { gelu_range(src + lo, dst + lo, hi - lo); });
  return true;
}

bool gelu_erf_backward_rows(const Tensor& out, const Tensor& g, const Tensor& x) {
  if (!applies({&out, &g, &x})) return false;
  const float* gp = g.data<float>();
  const float* xp = x.data<float>();
  float* dst = out.data<float>();
  parallel_for(0, x.numel(), kGrain,
               [&](int64_t lo, int64_t hi) { gelu_grad_range(gp + lo, xp + lo, dst + lo, hi - lo); });
  return true;
}

}  // namespace lamina::cpu
