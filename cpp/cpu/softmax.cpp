#include "cpu/softmax.h"

#include <cmath>
#include <limits>

#include "core/errors.h"
#include "cpu/reduce_loops.h"
#include "cpu/vmath.h"

namespace lamina::cpu::LAMINA_KERNELS {

namespace {

template <class T>
void softmax_rows(const Tensor& out, const Tensor& in, int64_t axis, bool log) {
  const T* ib = in.data<T>();
  T* ob = out.data<T>();
  const int64_t len = in.shape()[axis], is = in.strides()[axis], os = out_row_stride(in, axis);
  for_each_row(in, axis, [&](int64_t ioff, int64_t ooff) {
    const T* p = ib + ioff;
    T* q = ob + ooff;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t k = 0; k < len; ++k) {
      T v = p[k * is];
      if (v > m || v != v) m = v;  // NaN sticks: nothing compares greater than it
    }
    double s = 0;
    for (int64_t k = 0; k < len; ++k) {
      T e = fast_exp_nonpositive(p[k * is] - m);
      if (!log) q[k * os] = e;
      s += double(e);
    }
    if (log) {
      const T shift = m + T(std::log(s));
      for (int64_t k = 0; k < len; ++k) q[k * os] = p[k * is] - shift;
    } else {
      const T inv = T(1.0 / s);
      for (int64_t k = 0; k < len; ++k) q[k * os] *= inv;
    }
  });
}

}  // namespace

void softmax(const Tensor& out, const Tensor& in, int64_t axis, bool log) {
  check<TypeError>(in.dtype() == out.dtype(), "softmax: kernel expects matching dtypes");
  if (in.dtype() == DType::Float32) softmax_rows<float>(out, in, axis, log);
  else if (in.dtype() == DType::Float64) softmax_rows<double>(out, in, axis, log);
  else throw TypeError("softmax: kernel expects float32 or float64");
}

}  // namespace lamina::cpu::LAMINA_KERNELS
