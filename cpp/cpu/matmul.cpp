#include "cpu/matmul.h"

#include <algorithm>

#include "core/errors.h"
#include "core/parallel.h"

namespace lamina::cpu {

namespace {

// Row-blocked i-k-j loop: the inner j loop is contiguous in b and out and vectorizes.
template <class T>
void matmul_one(T* c, const T* a, const T* b, int64_t M, int64_t K, int64_t N) {
  constexpr int64_t kBlockK = 256;
  for (int64_t i = 0; i < M; ++i) std::fill(c + i * N, c + (i + 1) * N, T(0));
  for (int64_t k0 = 0; k0 < K; k0 += kBlockK) {
    int64_t k1 = std::min(K, k0 + kBlockK);
    for (int64_t i = 0; i < M; ++i) {
      T* crow = c + i * N;
      for (int64_t k = k0; k < k1; ++k) {
        const T av = a[i * K + k];
        const T* brow = b + k * N;
        for (int64_t j = 0; j < N; ++j) crow[j] += av * brow[j];
      }
    }
  }
}

template <class T>
void run(const Tensor& out, const Tensor& a, const Tensor& b) {
  const int64_t B = a.shape()[0], M = a.shape()[1], K = a.shape()[2], N = b.shape()[2];
  T* c = out.data<T>();
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  // Split over batch x row-blocks of 16 rows.
  const int64_t row_blocks = (M + 15) / 16;
  const int64_t work = std::max<int64_t>(1, 2 * 16 * K * N);
  parallel_for(0, B * row_blocks, std::max<int64_t>(1, 262144 / work), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      int64_t bi = t / row_blocks, r0 = (t % row_blocks) * 16, r1 = std::min(M, r0 + 16);
      matmul_one(c + bi * M * N + r0 * N, ap + bi * M * K + r0 * K, bp + bi * K * N, r1 - r0, K, N);
    }
  });
}

}  // namespace

void batched_matmul(const Tensor& out, const Tensor& a, const Tensor& b) {
  if (a.dtype() == DType::Float32) return run<float>(out, a, b);
  if (a.dtype() == DType::Float64) return run<double>(out, a, b);
  throw TypeError(std::string("matmul: unsupported dtype ") + dtype_name(a.dtype()));
}

}  // namespace lamina::cpu
