// Self-tests of the numeric formats and the tensor-core path: bf16/fp16 conversions, bit
// intrinsics, ldmatrix (x1/x2/x4, plain and .trans), mma.sync m16n8k16 (bf16 and fp16) and
// m16n8k8 (tf32, with cvt.rna.tf32.f32) with fragments built straight from the PTX ISA
// layout, and a GEMM chaining cp.async, ldmatrix and mma.sync.
#pragma once

#include <algorithm>
#include <bit>
#include <cfloat>
#include <type_traits>

#include "test_util.h"

namespace lamina::cuda::test {

template <class T>
T to_16bit(float f) {
  if constexpr (std::is_same_v<T, __half>) return __float2half(f);
  else return __float2bfloat16(f);
}
template <class T>
float from_16bit(T h) {
  if constexpr (std::is_same_v<T, __half>) return __half2float(h);
  else return __bfloat162float(h);
}
// Host vectors to and from 16-bit storage.
template <class T>
std::vector<T> to_16bit_vector(std::vector<float>& values) {  // rounds `values` in place too
  std::vector<T> out;
  out.reserve(values.size());
  for (float& f : values) {
    out.push_back(to_16bit<T>(f));
    f = from_16bit(out.back());
  }
  return out;
}

template <class T>
std::vector<float> from_16bit_vector(const std::vector<T>& values) {
  std::vector<float> out;
  out.reserve(values.size());
  for (T x : values) out.push_back(from_16bit(x));
  return out;
}

template <class T>
const char* type_name() {
  return std::is_same_v<T, __half> ? "f16" : "bf16";
}
template <class T>
__device__ __forceinline__ uint32_t pack(T lo, T hi) {
  if constexpr (std::is_same_v<T, __half>) return simt::pack_half2(lo, hi);
  else return simt::pack_bf16x2(lo, hi);
}
template <class T>
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                    const float (&c)[4]) {
  if constexpr (std::is_same_v<T, __half>) simt::mma_m16n8k16_f16(d, a, b, c);
  else simt::mma_m16n8k16_bf16(d, a, b, c);
}

#if !defined(__CUDACC__)
// The emulator's own conversions, against the compiler's _Float16 and a bf16 rounding model.

// The nearest bf16 by distance, ties to the even pattern; one step past the largest finite
// bf16 is 2^128, which becomes infinity.
inline uint16_t bf16_model(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f), lo = u & 0xffff0000u, hi = lo + 0x10000u;
  if (std::isinf(f)) return uint16_t(u >> 16);
  const double x = std::fabs(double(f)), below = std::fabs(double(std::bit_cast<float>(lo)));
  const double above = (hi & 0x7fffffffu) == 0x7f800000u
                           ? 0x1p128
                           : std::fabs(double(std::bit_cast<float>(hi)));
  if (x - below == above - x) return uint16_t(((lo >> 16) & 1u ? hi : lo) >> 16);
  return uint16_t((x - below < above - x ? lo : hi) >> 16);
}

inline void test_conversions() {
  int bad = 0;
  for (uint32_t u = 0; u < 65536; ++u) {
    const float got = __half2float(__ushort_as_half(uint16_t(u)));
    const float want = float(std::bit_cast<_Float16>(uint16_t(u)));
    bad += !(std::bit_cast<uint32_t>(got) == std::bit_cast<uint32_t>(want) ||
             (std::isnan(got) && std::isnan(want)));
  }
  check(bad == 0, "__half2float: all 65536 patterns", std::to_string(bad) + " mismatches");

  // Floats of every exponent, plus each fp16 rounding tie and its two neighbours.
  std::vector<float> samples;
  for (uint64_t u = 0; u < (1ull << 32); u += 40009) samples.push_back(std::bit_cast<float>(uint32_t(u)));
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    const float tie = (float(std::bit_cast<_Float16>(uint16_t(h))) +
                       float(std::bit_cast<_Float16>(uint16_t(h + 1)))) / 2;
    for (float f : {std::nextafter(tie, 0.0f), tie, std::nextafter(tie, 1e9f)})
      samples.insert(samples.end(), {f, -f});
  }
  int bad_half = 0, bad_bf16 = 0;
  for (float f : samples) {
    const uint16_t half = __half_as_ushort(__float2half(f));
    const uint16_t bf16 = __bfloat16_as_ushort(__float2bfloat16(f));
    bad_half += half != (std::isnan(f) ? 0x7fff : std::bit_cast<uint16_t>(_Float16(f)));
    bad_bf16 += bf16 != (std::isnan(f) ? 0x7fff : bf16_model(f));
  }
  const std::string n = std::to_string(samples.size()) + " samples, ";
  check(bad_half == 0, "__float2half: rounds like _Float16", n + std::to_string(bad_half) + " mismatches");
  check(bad_bf16 == 0, "__float2bfloat16: nearest, ties to even", n + std::to_string(bad_bf16) + " mismatches");
}
#endif

__global__ void bits_kernel(const unsigned* in, unsigned* out) {
  const unsigned x = in[threadIdx.x];
  unsigned* o = out + 6 * threadIdx.x;
  o[0] = __popc(x);
  o[1] = __clz(int(x));
  o[2] = __ffs(int(x));
  o[3] = __brev(x);
  o[4] = __float_as_uint(__saturatef(__uint_as_float(x)));
  o[5] = unsigned(max(min(int(x), 1000), -1000)) + max(x, 7u);
}

inline unsigned reverse_bits(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= (x >> i & 1u) << (31 - i);
  return r;
}

inline void test_bit_intrinsics() {
  std::vector<unsigned> in = {0u, 1u, 0x80000000u, 0xffffffffu, 0x3f000000u, 0x3fc00000u,
                              0xbf800000u, 0x7fc00000u};
  for (int v : random_ints(56, 31, -(1 << 30), 1 << 30)) in.push_back(unsigned(v));
  DeviceBuffer<unsigned> d_in(in), d_out(6 * in.size());
  const char* name = "__popc, __clz, __ffs, __brev, __saturatef, min, max";
  if (!launched(name, simt_launch(bits_kernel, dim3(1), dim3(unsigned(in.size())), 0, nullptr,
                                  d_in.get(), d_out.get())))
    return;
  std::vector<unsigned> want;
  for (unsigned x : in) {
    const float f = std::bit_cast<float>(x);
    const float saturated = f > 0.0f ? std::min(f, 1.0f) : 0.0f;  // NaN saturates to 0
    want.insert(want.end(), {unsigned(std::popcount(x)), unsigned(std::countl_zero(x)),
                             x ? unsigned(std::countr_zero(x)) + 1 : 0u, reverse_bits(x),
                             std::bit_cast<unsigned>(saturated),
                             unsigned(std::clamp(int(x), -1000, 1000)) + std::max(x, 7u)});
  }
  check_equal(name, d_out.download(), want);
}

// Lane 8j + r supplies row r of matrix j; rows sit at scattered 16-byte slots, so that the
// test also covers addresses given out of order. Element (j, r, c) holds 64j + 8r + c.
template <int NUM, bool TRANS>
__global__ void ldmatrix_kernel(uint32_t* out) {
  __shared__ __align__(16) uint16_t rows[32][8];
  const int lane = threadIdx.x, slot = (5 * lane + 3) % 32;
#pragma unroll
  for (int c = 0; c < 8; ++c) rows[slot][c] = uint16_t(8 * lane + c);
  __syncwarp();
  uint32_t r[NUM];
  simt::ldmatrix<NUM, TRANS>(r, rows[slot]);
#pragma unroll
  for (int j = 0; j < NUM; ++j) out[NUM * lane + j] = r[j];
}

// Lane l gets, per matrix, the pair at row l/4, columns 2(l%4) and 2(l%4)+1 (PTX ISA,
// ldmatrix); .trans transposes each matrix first.
template <int NUM, bool TRANS>
void test_ldmatrix() {
  const std::string name = "ldmatrix .x" + std::to_string(NUM) + (TRANS ? ".trans" : "");
  DeviceBuffer<uint32_t> d_out(32 * NUM);
  if (!launched(name, simt_launch(ldmatrix_kernel<NUM, TRANS>, dim3(1), dim3(32), 0, nullptr,
                                  d_out.get())))
    return;
  auto element = [](int j, int row, int col) {
    return uint32_t(64 * j + 8 * (TRANS ? col : row) + (TRANS ? row : col));
  };
  std::vector<uint32_t> want;
  for (int l = 0; l < 32; ++l)
    for (int j = 0; j < NUM; ++j)
      want.push_back(element(j, l / 4, 2 * (l % 4)) | element(j, l / 4, 2 * (l % 4) + 1) << 16);
  check_equal(name, d_out.download(), want);
}

// One warp: D = A * B + C with A 16x16, B 16x8 (k, n), C and D 16x8, all row-major; the
// fragments are gathered with the PTX ISA formulas (g = lane / 4, t = lane % 4).
template <class T>
__global__ void mma_fragment_kernel(const T* A, const T* B, const float* C, float* D) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  uint32_t a[4], b[2];
  float c[4], d[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) {  // register r: a_{2r}, a_{2r+1}
    const int row = g + 8 * (r % 2), col = 2 * t + 8 * (r / 2);
    a[r] = pack(A[16 * row + col], A[16 * row + col + 1]);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {  // register r: b_{2r}, b_{2r+1}, rows k and k+1 of column g
    const int k = 2 * t + 8 * r;
    b[r] = pack(B[8 * k + g], B[8 * (k + 1) + g]);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) c[i] = C[8 * (g + 8 * (i / 2)) + 2 * t + i % 2];
  mma<T>(d, a, b, c);
#pragma unroll
  for (int i = 0; i < 4; ++i) D[8 * (g + 8 * (i / 2)) + 2 * t + i % 2] = d[i];
}

template <class T>
void test_mma_fragments() {
  const std::string name = std::string("mma.m16n8k16 ") + type_name<T>() + " fragment layout";
  const std::vector<float> af = random_floats(256, 32), bf = random_floats(128, 33),
                           c = random_floats(128, 34);
  std::vector<T> a, b;
  for (float f : af) a.push_back(to_16bit<T>(f));
  for (float f : bf) b.push_back(to_16bit<T>(f));
  DeviceBuffer<T> d_a(a), d_b(b);
  DeviceBuffer<float> d_c(c), d_d(128);
  if (!launched(name, simt_launch(mma_fragment_kernel<T>, dim3(1), dim3(32), 0, nullptr,
                                  d_a.get(), d_b.get(), d_c.get(), d_d.get())))
    return;
  std::vector<double> want(128);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      double s = c[8 * i + j];
      for (int k = 0; k < 16; ++k) s += double(from_16bit(a[16 * i + k])) * from_16bit(b[8 * k + j]);
      want[8 * i + j] = s;
    }
  check_close(name, d_d.download(), want, 1e-6);
}

// tf32 of cvt.rna.tf32.f32 as arithmetic: x rounded to an 11-bit significand (10 stored
// bits), ties away from zero; below 2^-126 the quantum stays 2^-136, as in fp32's layout.
inline float tf32_model(float x) {
  if (!std::isfinite(x) || x == 0.0f) return x;
  const int e = std::max(std::ilogb(x), -126);
  const double rounded = std::ldexp(std::round(std::ldexp(double(x), 10 - e)), e - 10);
  return rounded > FLT_MAX ? INFINITY : rounded < -FLT_MAX ? -INFINITY : float(rounded);
}

__global__ void tf32_convert_kernel(int n, const float* in, uint32_t* out) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = simt::float_to_tf32(in[i]);
}

inline void test_tf32_conversion() {
  const char* name = "cvt.rna.tf32.f32: 10-bit mantissa, ties away from zero";
  std::vector<float> in = {0.0f, -0.0f, 1.0f, FLT_MAX, -FLT_MAX, INFINITY, -INFINITY, 1e-40f, -3e-39f, FLT_MIN};
  for (float tie : {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 0x1p-130f * (1 + 0x1p-11f)})
    for (float f : {std::nextafter(tie, 0.0f), tie, std::nextafter(tie, 1e9f)}) in.insert(in.end(), {f, -f});
  for (float f : random_floats(200, 37, -1e6f, 1e6f)) in.push_back(f);
  in.push_back(NAN);  // last: any NaN pattern with the low 13 bits clear will do
  DeviceBuffer<float> d_in(in);
  DeviceBuffer<uint32_t> d_out(in.size());
  if (!launched(name, simt_launch(tf32_convert_kernel, dim3(1), dim3(64), 0, nullptr, int(in.size()),
                                  d_in.get(), d_out.get())))
    return;
  std::vector<uint32_t> got = d_out.download(), want;
  const uint32_t nan = got.back();
  got.pop_back();
  in.pop_back();
  for (float f : in) want.push_back(std::bit_cast<uint32_t>(tf32_model(f)));
  check_equal(name, got, want);
  check((nan & 0x7f800000u) == 0x7f800000u && (nan & 0x007fe000u) != 0 && (nan & 0x1fffu) == 0,
        "cvt.rna.tf32.f32: NaN stays a NaN", "got bits " + std::to_string(nan));
}

// One warp: D = A * B + C with A 16x8, B 8x8 (k, n), C and D 16x8, all row-major fp32; the
// fragments are gathered with the PTX ISA formulas for .tf32 (g = lane / 4, t = lane % 4).
__global__ void mma_tf32_fragment_kernel(const float* A, const float* B, const float* C, float* D) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  uint32_t a[4], b[2];
  float c[4], d[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) a[r] = simt::float_to_tf32(A[8 * (g + 8 * (r % 2)) + t + 4 * (r / 2)]);
#pragma unroll
  for (int r = 0; r < 2; ++r) b[r] = simt::float_to_tf32(B[8 * (t + 4 * r) + g]);
#pragma unroll
  for (int i = 0; i < 4; ++i) c[i] = C[8 * (g + 8 * (i / 2)) + 2 * t + i % 2];
  simt::mma_m16n8k8_tf32(d, a, b, c);
#pragma unroll
  for (int i = 0; i < 4; ++i) D[8 * (g + 8 * (i / 2)) + 2 * t + i % 2] = d[i];
}

inline void test_mma_tf32_fragments() {
  const char* name = "mma.m16n8k8 tf32 fragment layout";
  const std::vector<float> a = random_floats(128, 38), b = random_floats(64, 39), c = random_floats(128, 40);
  DeviceBuffer<float> d_a(a), d_b(b), d_c(c), d_d(128);
  if (!launched(name, simt_launch(mma_tf32_fragment_kernel, dim3(1), dim3(32), 0, nullptr, d_a.get(), d_b.get(),
                                  d_c.get(), d_d.get())))
    return;
  std::vector<double> want(128);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      double s = c[8 * i + j];
      for (int k = 0; k < 8; ++k) s += double(tf32_model(a[8 * i + k])) * tf32_model(b[8 * k + j]);
      want[8 * i + j] = s;
    }
  check_close(name, d_d.download(), want, 1e-6);
}

// C (M x N, fp32) = A (M x K, row-major) * B, with B given as Bt (N x K), i.e. column-major;
// M and N multiples of 16 and 8, K of 16. One warp per 16x8 tile of C, grid (N / 8, M / 16); each K step brings 16x16 of A and 8x16 of Bt to shared memory
// with cp.async, then into mma fragments with ldmatrix.
template <class T>
__global__ void __launch_bounds__(32)
    mma_gemm_kernel(int N, int K, const T* __restrict__ A, const T* __restrict__ Bt,
                    float* __restrict__ C) {
  __shared__ __align__(16) T As[16][16];
  __shared__ __align__(16) T Bs[8][16];
  const int lane = threadIdx.x, m0 = blockIdx.y * 16, n0 = blockIdx.x * 8;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int k0 = 0; k0 < K; k0 += 16) {
    const int r = lane / 2, c = (lane % 2) * 8;  // one 16-byte chunk per lane
    simt::cp_async16(&As[r][c], &A[size_t(m0 + r) * K + k0 + c]);
    if (lane < 16) simt::cp_async16(&Bs[r][c], &Bt[size_t(n0 + r) * K + k0 + c]);
    simt::cp_async_commit();
    simt::cp_async_wait<0>();
    __syncwarp();
    uint32_t a[4], b[2];
    // x4: matrix j covers rows 8(j%2).., columns 8(j/2).., which is a[0..3] in mma order.
    simt::ldmatrix<4>(a, &As[8 * ((lane / 8) % 2) + lane % 8][8 * (lane / 16)]);
    // x2: matrix 0 is k 0..7 of the 8 columns of B, matrix 1 is k 8..15.
    simt::ldmatrix<2>(b, &Bs[lane % 8][8 * ((lane / 8) % 2)]);
    mma<T>(acc, a, b, acc);
    __syncwarp();
  }
  const int g = lane / 4, t = lane % 4;
  C[size_t(m0 + g) * N + n0 + 2 * t] = acc[0];
  C[size_t(m0 + g) * N + n0 + 2 * t + 1] = acc[1];
  C[size_t(m0 + g + 8) * N + n0 + 2 * t] = acc[2];
  C[size_t(m0 + g + 8) * N + n0 + 2 * t + 1] = acc[3];
}

template <class T>
void test_mma_gemm(int M, int N, int K) {
  const std::string name = std::string("GEMM via cp.async + ldmatrix + mma ") + type_name<T>() +
                           " " + std::to_string(M) + "x" + std::to_string(N) + "x" +
                           std::to_string(K);
  const std::vector<float> af = random_floats(size_t(M) * K, 35), bf = random_floats(size_t(K) * N, 36);
  std::vector<T> a, bt(size_t(N) * K);
  for (float f : af) a.push_back(to_16bit<T>(f));
  for (int k = 0; k < K; ++k)
    for (int n = 0; n < N; ++n) bt[size_t(n) * K + k] = to_16bit<T>(bf[size_t(k) * N + n]);
  DeviceBuffer<T> d_a(a), d_bt(bt);
  DeviceBuffer<float> d_c(size_t(M) * N);
  if (!launched(name, simt_launch(mma_gemm_kernel<T>, dim3(N / 8, M / 16), dim3(32), 0, nullptr,
                                  N, K, d_a.get(), d_bt.get(), d_c.get())))
    return;
  std::vector<double> want(size_t(M) * N);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = 0;
      for (int k = 0; k < K; ++k)
        s += double(from_16bit(a[size_t(i) * K + k])) * from_16bit(bt[size_t(j) * K + k]);
      want[size_t(i) * N + j] = s;
    }
  check_close(name, d_c.download(), want, 1e-5);
}

inline void run_tensor_tests() {
#if !defined(__CUDACC__)
  test_conversions();
#endif
  test_bit_intrinsics();
  test_ldmatrix<1, false>();
  test_ldmatrix<2, false>();
  test_ldmatrix<4, false>();
  test_ldmatrix<1, true>();
  test_ldmatrix<2, true>();
  test_ldmatrix<4, true>();
  test_mma_fragments<__nv_bfloat16>();
  test_mma_fragments<__half>();
  test_tf32_conversion();
  test_mma_tf32_fragments();
  test_mma_gemm<__nv_bfloat16>(16, 8, 16);
  test_mma_gemm<__nv_bfloat16>(64, 64, 128);
  test_mma_gemm<__half>(64, 64, 128);
}

}  // namespace lamina::cuda::test
