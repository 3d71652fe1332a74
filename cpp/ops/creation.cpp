#include "ops/creation.h"

#include <cmath>

#include "core/backend.h"
#include "core/errors.h"
#include "core/parallel.h"
#include "core/random.h"
#include "cpu/convert.h"
#include "cpu/copy.h"

#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

void fill_memory(const Tensor& dst, double value) {
  if (is_cuda(dst.device())) LAMINA_CUDA_BRANCH("full", cuda::fill("full", dst, value));
  else cpu::fill(dst, value);
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor out = Tensor::empty(shape, dtype, device);
  fill_memory(out, value);
  return out;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor full_like_value(const Tensor& like, double value) {
  return full(like.shape(), value, like.dtype(), like.device());
}
Tensor scalar_tensor(double value, DType dtype) { return full({}, value, dtype); }

namespace {

// Fills a contiguous tensor from f(i) (double) in parallel.
template <class F>
Tensor generate(const Shape& shape, DType dtype, F f) {
  Tensor out = Tensor::empty(shape, dtype);
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    parallel_for(0, out.numel(), 16384, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) o[i] = cpu::convert<T>(f(i));
    });
  });
  return out;
}

// Elements 2p and 2p + 1 of a draw come from Philox block (start + p). The output is
// allocated first, so a draw that cannot be allocated does not advance the generator. On a
// CUDA device the kernel draws the same numbers in place.
Tensor draw(const char* op, const Shape& shape, DType dtype, Device device, const DrawSpec& spec) {
  Tensor out = Tensor::empty(shape, dtype, device);
  int64_t n = out.numel();
  uint64_t start = Generator::global().reserve((uint64_t(n) + 1) / 2 + 1);
  uint64_t seed = Generator::global().initial_seed();
  if (is_cuda(device)) {
    LAMINA_CUDA_BRANCH(op, cuda::philox_draw(op, out, seed, start, spec));
    return out;
  }
  visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    parallel_for(0, (n + 1) / 2, 8192, [&](int64_t lo, int64_t hi) {
      for (int64_t pair = lo; pair < hi; ++pair) {
        double v0, v1;
        draw_pair(spec, Philox::block(seed, 0, start + uint64_t(pair)), v0, v1);
        o[2 * pair] = cpu::convert<T>(v0);
        if (2 * pair + 1 < n) o[2 * pair + 1] = cpu::convert<T>(v1);
      }
    });
  });
  return out;
}

void check_float(DType dtype, const char* op) {
  check<TypeError>(is_floating(dtype), op, ": dtype must be floating point, got ", dtype_name(dtype));
}

}  // namespace

Tensor arange(double start, double stop, double step, DType dtype) {
  check<ValueError>(step != 0 && std::isfinite(step) && std::isfinite(start) && std::isfinite(stop),
                    "arange: start, stop and step must be finite and step non-zero");
  double count = std::ceil((stop - start) / step);
  check<ValueError>(count < 9.0e18, "arange: too many elements");
  int64_t n = count > 0 ? int64_t(count) : 0;
  return generate({n}, dtype, [&](int64_t i) { return start + double(i) * step; });
}

Tensor linspace(double start, double stop, int64_t num, bool endpoint, DType dtype) {
  check<ValueError>(num >= 0, "linspace: num must be non-negative, got ", num);
  double div = endpoint ? double(num - 1) : double(num);
  double step = div > 0 ? (stop - start) / div : 0.0;
  return generate({num}, dtype, [&](int64_t i) {
    return (endpoint && num > 1 && i == num - 1) ? stop : start + double(i) * step;  // num == 1: [start]
  });
}

Tensor eye(int64_t n, int64_t m, int64_t k, DType dtype) {
  check<ValueError>(n >= 0 && m >= 0, "eye: sizes must be non-negative, got (", n, ", ", m, ")");
  Tensor out = zeros({n, m}, dtype);
  // Length of diagonal k; computed so that no huge |k| overflows.
  int64_t length = k >= 0 ? std::min(n, m - std::min(k, m)) : std::min(m, n - std::min(-(k + 1), n - 1) - 1);
  if (length <= 0) return out;
  Tensor diag = Tensor::view_of(out, {length}, {m + 1}, k >= 0 ? k : -k * m);
  cpu::fill(diag, 1.0);
  return out;
}

Tensor rand(const Shape& shape, DType dtype, Device device) { return uniform(shape, 0.0, 1.0, dtype, device); }

Tensor uniform(const Shape& shape, double low, double high, DType dtype, Device device) {
  check_float(dtype, "uniform");
  check<ValueError>(low <= high, "uniform: low (", low, ") must not exceed high (", high, ")");
  return draw("uniform", shape, dtype, device, {Distribution::Uniform, low, high - low});
}

Tensor randn(const Shape& shape, DType dtype, Device device) { return normal(shape, 0.0, 1.0, dtype, device); }

Tensor normal(const Shape& shape, double mean, double std, DType dtype, Device device) {
  check_float(dtype, "normal");
  check<ValueError>(std >= 0, "normal: std must be non-negative, got ", std);
  return draw("normal", shape, dtype, device, {Distribution::Normal, mean, std});
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype) {
  check<ValueError>(low < high, "randint: low (", low, ") must be less than high (", high, ")");
  check<TypeError>(dtype != DType::Bool, "randint: dtype must be numeric");
  return draw("randint", shape, dtype, {}, {Distribution::Integer, double(low), double(high) - double(low)});
}

Tensor randperm(int64_t n) {
  check<ValueError>(n >= 0, "randperm: n must be non-negative, got ", n);
  Tensor keys = rand({n}, DType::Float64);
  Tensor out = Tensor::empty({n}, DType::Int64);
  int64_t* o = out.data<int64_t>();
  const double* u = keys.data<double>();
  for (int64_t i = 0; i < n; ++i) o[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = std::min<int64_t>(i, int64_t(u[i] * double(i + 1)));
    std::swap(o[i], o[j]);
  }
  return out;
}

Tensor dropout_mask(const Tensor& like, double p) {
  check<ValueError>(p >= 0 && p < 1, "dropout: rate must be in [0, 1), got ", p);
  DType dtype = is_floating(like.dtype()) ? like.dtype() : DType::Float32;
  return draw("dropout", like.shape(), dtype, like.device(), {Distribution::KeepMask, p, 1.0 / (1.0 - p)});
}

}  // namespace lamina
