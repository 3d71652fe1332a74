// Host side of the kernel tests: device buffers, random inputs, comparisons against scalar
// models, and the tally of checks that the driver prints as "N passed, M failed".
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "simt/portable.cuh"

namespace lamina::cuda::test {

namespace simt = lamina::simt;

struct Tally {
  int passed = 0, failed = 0;
};
inline Tally& tally() {
  static Tally t;
  return t;
}

inline bool check(bool ok, const std::string& name, const std::string& detail = {}) {
  printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", name.c_str(), detail.empty() ? "" : ": ",
         detail.c_str());
  ++(ok ? tally().passed : tally().failed);
  return ok;
}

template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (cudaMalloc(&p_, n * sizeof(T)) != cudaSuccess) {
      fprintf(stderr, "cudaMalloc of %zu bytes failed\n", n * sizeof(T));
      abort();
    }
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return p_; }
  void upload(const std::vector<T>& host) {
    cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice);
  }
  void zero() { cudaMemset(p_, 0, n_ * sizeof(T)); }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

inline std::vector<float> random_floats(size_t n, unsigned seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

inline std::vector<int> random_ints(size_t n, unsigned seed, int lo, int hi) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<int> v(n);
  for (int& x : v) x = dist(gen);
  return v;
}

// The launch's error text, empty on success; clears the error so later launches start clean.
inline std::string launch_error(cudaError_t e) {
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e == cudaSuccess) return {};
  std::string message = cudaGetErrorString(e);
  cudaGetLastError();
  return message;
}

// Records a failed check if the launch failed; returns whether it succeeded.
inline bool launched(const std::string& name, cudaError_t e) {
  const std::string error = launch_error(e);
  return error.empty() || check(false, name, "launch failed: " + error);
}

// Worst |got - want| / (1 + |want|); a NaN counts as infinitely wrong.
inline double max_rel_error(const std::vector<float>& got, const std::vector<double>& want,
                            size_t* at = nullptr) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::fabs(got[i] - want[i]) / (1.0 + std::fabs(want[i]));
    if (!(e <= worst)) {
      worst = e;
      if (at) *at = i;
    }
  }
  return worst;
}

inline bool check_close(const std::string& name, const std::vector<float>& got,
                        const std::vector<double>& want, double tolerance) {
  size_t at = 0;
  const double worst = max_rel_error(got, want, &at);
  char detail[96];
  snprintf(detail, sizeof detail, "max rel err %.3g at %zu (tolerance %.1g)", worst, at,
           tolerance);
  return check(worst <= tolerance, name, detail);
}

// What a kernel run produced: the launch error, or the worst error against its model. The
// must-catch tests judge the same runs as the self-tests, with the verdict inverted.
struct Outcome {
  std::string launch_error;
  double max_rel_error = 0;
  bool ok(double tolerance) const { return launch_error.empty() && max_rel_error <= tolerance; }
  std::string describe() const {
    if (!launch_error.empty()) return "launch failed: " + launch_error;
    char buf[48];
    snprintf(buf, sizeof buf, "max rel err %.3g", max_rel_error);
    return buf;
  }
};

inline bool check_outcome(const std::string& name, const Outcome& o, double tolerance) {
  return check(o.ok(tolerance), name, o.describe());
}

template <class T>
bool check_equal(const std::string& name, const std::vector<T>& got, const std::vector<T>& want) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (!(got[i] == want[i])) {
      const std::string detail = "first mismatch at " + std::to_string(i) + ": got " +
                                 std::to_string(got[i]) + ", want " + std::to_string(want[i]);
      return check(false, name, detail);
    }
  }
  return check(true, name, std::to_string(want.size()) + " values");
}

}  // namespace lamina::cuda::test
