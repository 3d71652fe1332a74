// Flash attention (cuda/kernels/attention.cu) against a scalar double-precision model, forward
// (o, lse) and backward (dq, dk, dv), on ragged shapes: sequence lengths that are not
// multiples of the tiles, causal and key-padding masks, a batch with no valid key, nq != nk.
//
// Tolerances, as max |got - want| / (1 + |want|): the inputs are exactly representable (the
// model sees the rounded values), so the error comes from rounding P to 16 bits before P V
// (and P, dS before the backward GEMMs) and from rounding the outputs. bf16 keeps 8 mantissa
// bits (relative step 2^-8 = 3.9e-3), fp16 11 (4.9e-4). Rounding the output alone costs half
// a step; the checks allow 1.5 steps for o (6e-3 bf16, 1e-3 fp16) and 2.5 for the gradients,
// whose sums mix signs (1e-2 bf16, 1.5e-3 fp16). Observed: about half a step for both.
#pragma once

#include "kernels/attention.cu"
#include "tensor_tests.cuh"

namespace lamina::cuda::test {

struct AttentionCase {
  int batch, heads, nq, nk, head_dim;
  bool causal;
  std::vector<int> kv_lens;  // empty: no padding mask
};

struct AttentionModel {
  std::vector<double> o, lse, dq, dk, dv;
};

// The model, in double: o = softmax(scale q k^T + mask) v, lse per row, and the gradients of
// sum(o * d_o).
inline AttentionModel attention_model(const AttentionCase& c, const std::vector<float>& q,
                                      const std::vector<float>& k, const std::vector<float>& v,
                                      const std::vector<float>& d_o) {
  const int D = c.head_dim;
  const double scale = 1.0 / std::sqrt(double(D));
  AttentionModel m;
  const size_t qn = size_t(c.batch) * c.heads * c.nq, kn = size_t(c.batch) * c.heads * c.nk;
  m.o.assign(qn * D, 0.0);
  m.lse.assign(qn, -INFINITY);
  m.dq.assign(qn * D, 0.0);
  m.dk.assign(kn * D, 0.0);
  m.dv.assign(kn * D, 0.0);
  std::vector<double> p(c.nk), dp(c.nk);
  for (int b = 0; b < c.batch; ++b) {
    const int kv_len = c.kv_lens.empty() ? c.nk : std::min(c.kv_lens[b], c.nk);
    for (int h = 0; h < c.heads; ++h) {
      const size_t bh = size_t(b) * c.heads + h;
      const float* Q = &q[bh * c.nq * D];
      const float *K = &k[bh * c.nk * D], *V = &v[bh * c.nk * D];
      const float* dO = &d_o[bh * c.nq * D];
      for (int i = 0; i < c.nq; ++i) {
        const int visible = c.causal ? std::min(kv_len, i + 1) : kv_len;
        if (visible <= 0) continue;
        double mx = -INFINITY;
        for (int j = 0; j < visible; ++j) {
          double s = 0;
          for (int d = 0; d < D; ++d) s += double(Q[i * D + d]) * K[j * D + d];
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (int j = 0; j < visible; ++j) sum += (p[j] = std::exp(p[j] - mx));
        m.lse[bh * c.nq + i] = mx + std::log(sum);
        double* o = &m.o[(bh * c.nq + i) * D];
        for (int j = 0; j < visible; ++j) {
          p[j] /= sum;
          for (int d = 0; d < D; ++d) o[d] += p[j] * V[j * D + d];
        }
        double delta = 0;
        for (int d = 0; d < D; ++d) delta += double(dO[i * D + d]) * o[d];
        for (int j = 0; j < visible; ++j) {
          double s = 0;
          for (int d = 0; d < D; ++d) s += double(dO[i * D + d]) * V[j * D + d];
          const double ds = p[j] * (s - delta) * scale;
          for (int d = 0; d < D; ++d) {
            m.dq[(bh * c.nq + i) * D + d] += ds * K[j * D + d];
            m.dk[(bh * c.nk + j) * D + d] += ds * Q[i * D + d];
            m.dv[(bh * c.nk + j) * D + d] += p[j] * dO[i * D + d];
          }
        }
      }
    }
  }
  return m;
}

// -inf (a row with no visible key) as a finite sentinel, so that it compares equal.
inline std::vector<double> finite_lse(std::vector<double> v) {
  for (double& x : v) x = std::isinf(x) && x < 0 ? -1e30 : x;
  return v;
}

template <class T>
void test_attention(const AttentionCase& c, unsigned seed) {
  const bool bf16 = std::is_same_v<T, __nv_bfloat16>;
  const double tol_out = bf16 ? 6e-3 : 1e-3, tol_grad = bf16 ? 1e-2 : 1.5e-3;
  char label[160];
  snprintf(label, sizeof label, "attention %s D=%d b%d h%d nq%d nk%d%s%s", type_name<T>(),
           c.head_dim, c.batch, c.heads, c.nq, c.nk, c.causal ? " causal" : "",
           c.kv_lens.empty() ? "" : " padded");
  const std::string name = label;
  const int D = c.head_dim;
  const size_t qn = size_t(c.batch) * c.heads * c.nq, kn = size_t(c.batch) * c.heads * c.nk;
  std::vector<float> q = random_floats(qn * D, seed, -2, 2), k = random_floats(kn * D, seed + 1, -2, 2),
                     v = random_floats(kn * D, seed + 2), d_o = random_floats(qn * D, seed + 3);
  DeviceBuffer<T> d_q(to_16bit_vector<T>(q)), d_k(to_16bit_vector<T>(k)),
      d_v(to_16bit_vector<T>(v)), d_do(to_16bit_vector<T>(d_o));
  DeviceBuffer<T> d_out(qn * D), d_dq(qn * D), d_dk(kn * D), d_dv(kn * D);
  DeviceBuffer<float> d_lse(qn), d_accum(qn * D), d_delta(qn);
  DeviceBuffer<int> d_lens(c.kv_lens.empty() ? std::vector<int>{0} : c.kv_lens);

  AttentionArgs<T> a;
  a.q = d_q.get(), a.k = d_k.get(), a.v = d_v.get(), a.out = d_out.get(), a.lse = d_lse.get();
  a.kv_lens = c.kv_lens.empty() ? nullptr : d_lens.get();
  a.batch = c.batch, a.heads = c.heads, a.nq = c.nq, a.nk = c.nk;
  a.scale = float(1.0 / std::sqrt(double(D)));
  a.causal = c.causal;
  if (!launched(name + " forward", attention_forward(a, D))) return;
  const AttentionModel want = attention_model(c, q, k, v, d_o);
  check_close(name + " forward o", from_16bit_vector(d_out.download()), want.o, tol_out);
  std::vector<float> lse = d_lse.download();
  for (float& x : lse) x = std::isinf(x) && x < 0 ? -1e30f : x;
  check_close(name + " forward lse", lse, finite_lse(want.lse), 1e-4);

  a.o = d_out.get(), a.d_o = d_do.get();
  a.dq = d_dq.get(), a.dk = d_dk.get(), a.dv = d_dv.get();
  a.dq_accum = d_accum.get(), a.delta = d_delta.get();
  if (!launched(name + " backward", attention_backward(a, D))) return;
  check_close(name + " backward dq", from_16bit_vector(d_dq.download()), want.dq, tol_grad);
  check_close(name + " backward dk", from_16bit_vector(d_dk.download()), want.dk, tol_grad);
  check_close(name + " backward dv", from_16bit_vector(d_dv.download()), want.dv, tol_grad);
}

inline void test_attention_preconditions() {
  AttentionArgs<__nv_bfloat16> a;
  a.batch = a.heads = a.nq = a.nk = 1;
  bool threw = false;
  try {
    attention_forward(a, 96);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  check(threw, "attention_forward rejects head dimension 96");
}

// ---- float32 flash attention on FMA -----------------------------------------------------------
// Against the same kind of double model, with d != dv, head dimensions 1 to 128, and general
// masks given as the op gives them: a base array of (Hm, Qm, nk) (or its per-head transpose,
// (Hm, nk, Qm)) with Hm in {1, heads} and Qm in {1, nq}, read through head offsets and row / column
// strides. Tolerance as max |got - want| / (1 + |want|): 1e-5 for float (unit roundoff 6e-8;
// each result is a sum of at most a few hundred rounded terms of size <= 1), 1e-12 for double
// (unit roundoff 1.1e-16, the same argument).

enum class AttentionMaskKind { none, keep, additive };

struct AttentionFmaCase {
  int heads, nq, nk, d, dv;
  bool causal;
  AttentionMaskKind mask;
  bool per_head, per_query, transposed;
};

struct AttentionMaskData {
  std::vector<unsigned char> keep;
  std::vector<float> add;
  std::vector<int64_t> head_offset;
  int64_t row_stride = 0, col_stride = 0;
  int hm = 1, qm = 1;
  bool transposed = false;
  // The element of the base array that (head h, query i, key j) reads after broadcasting.
  size_t at(int h, int i, int j, int nk) const {
    const int hh = hm == 1 ? 0 : h, ii = qm == 1 ? 0 : i;
    return size_t(hh) * qm * nk + (transposed ? size_t(j) * qm + ii : size_t(ii) * nk + j);
  }
};

// Random masks with a few fully masked query rows (and, for a per-head mask, one fully masked
// head), so the zero-output rule is exercised.
inline AttentionMaskData attention_mask_data(const AttentionFmaCase& c, unsigned seed) {
  AttentionMaskData m;
  if (c.mask == AttentionMaskKind::none) return m;
  m.hm = c.per_head ? c.heads : 1, m.qm = c.per_query ? c.nq : 1, m.transposed = c.transposed;
  const size_t n = size_t(m.hm) * m.qm * c.nk;
  const std::vector<float> u = random_floats(n, seed, 0.0f, 1.0f);
  m.keep.resize(n);
  m.add.resize(n);
  for (size_t e = 0; e < n; ++e) {
    m.keep[e] = u[e] < 0.7f;
    m.add[e] = u[e] < 0.15f ? -INFINITY : 3.0f * u[e] - 2.0f;
  }
  auto mask_row = [&](int h, int i) {
    for (int j = 0; j < c.nk; ++j) {
      m.keep[m.at(h, i, j, c.nk)] = 0;
      m.add[m.at(h, i, j, c.nk)] = -INFINITY;
    }
  };
  if (c.per_query) mask_row(m.hm - 1, std::min(2, c.nq - 1));
  if (c.per_head && c.heads > 1)
    for (int i = 0; i < m.qm; ++i) mask_row(0, i);
  for (int h = 0; h < c.heads; ++h) m.head_offset.push_back(m.hm == 1 ? 0 : int64_t(h) * m.qm * c.nk);
  m.row_stride = m.qm == 1 ? 0 : (m.transposed ? 1 : c.nk);
  m.col_stride = m.transposed ? m.qm : 1;
  return m;
}

inline AttentionModel attention_fma_model(const AttentionFmaCase& c, const AttentionMaskData& mask,
                                          const std::vector<float>& q, const std::vector<float>& k,
                                          const std::vector<float>& v, const std::vector<float>& d_o) {
  const int D = c.d, DV = c.dv;
  const double scale = 1.0 / std::sqrt(double(D));
  AttentionModel m;
  m.o.assign(size_t(c.heads) * c.nq * DV, 0.0);
  m.lse.assign(size_t(c.heads) * c.nq, INFINITY);
  m.dq.assign(size_t(c.heads) * c.nq * D, 0.0);
  m.dk.assign(size_t(c.heads) * c.nk * D, 0.0);
  m.dv.assign(size_t(c.heads) * c.nk * DV, 0.0);
  std::vector<double> p(c.nk);
  for (int h = 0; h < c.heads; ++h) {
    const float* Q = &q[size_t(h) * c.nq * D];
    const float* K = &k[size_t(h) * c.nk * D];
    const float* V = &v[size_t(h) * c.nk * DV];
    const float* dO = &d_o[size_t(h) * c.nq * DV];
    for (int i = 0; i < c.nq; ++i) {
      double mx = -INFINITY;
      for (int j = 0; j < c.nk; ++j) {
        double s = 0;
        for (int e = 0; e < D; ++e) s += double(Q[i * D + e]) * K[j * D + e];
        s *= scale;
        if (c.causal && j > i) s = -INFINITY;
        if (c.mask == AttentionMaskKind::keep && !mask.keep[mask.at(h, i, j, c.nk)]) s = -INFINITY;
        if (c.mask == AttentionMaskKind::additive) s += mask.add[mask.at(h, i, j, c.nk)];
        p[j] = s;
        mx = std::max(mx, s);
      }
      if (mx == -INFINITY) continue;  // no visible key: o = 0, lse = +inf, no gradient
      double sum = 0;
      for (int j = 0; j < c.nk; ++j) sum += (p[j] = std::exp(p[j] - mx));
      const size_t row = size_t(h) * c.nq + i;
      m.lse[row] = mx + std::log(sum);
      double* o = &m.o[row * DV];
      for (int j = 0; j < c.nk; ++j) {
        p[j] /= sum;
        for (int e = 0; e < DV; ++e) o[e] += p[j] * V[j * DV + e];
      }
      double delta = 0;
      for (int e = 0; e < DV; ++e) delta += double(dO[i * DV + e]) * o[e];
      for (int j = 0; j < c.nk; ++j) {
        double dp = 0;
        for (int e = 0; e < DV; ++e) dp += double(dO[i * DV + e]) * V[j * DV + e];
        const double ds = p[j] * (dp - delta) * scale;
        for (int e = 0; e < D; ++e) {
          m.dq[row * D + e] += ds * K[j * D + e];
          m.dk[(size_t(h) * c.nk + j) * D + e] += ds * Q[i * D + e];
        }
        for (int e = 0; e < DV; ++e) m.dv[(size_t(h) * c.nk + j) * DV + e] += p[j] * dO[i * DV + e];
      }
    }
  }
  return m;
}

// check_close for double results: the error of float(got) would hide double rounding errors,
// so compare in double here.
inline bool check_close_double(const std::string& name, const std::vector<double>& got, const std::vector<double>& want,
                               double tolerance) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::fabs(got[i] - want[i]) / (1.0 + std::fabs(want[i]));
    if (!(e <= worst)) worst = e;
  }
  char detail[96];
  snprintf(detail, sizeof detail, "max rel err %.3g (tolerance %.1g)", worst, tolerance);
  return check(worst <= tolerance, name, detail);
}

template <class T>
bool check_close_t(const std::string& name, const std::vector<T>& got, const std::vector<double>& want) {
  if constexpr (std::is_same_v<T, float>) return check_close(name, got, want, 1e-5);
  else return check_close_double(name, got, want, 1e-12);
}

template <class T>
void test_attention_fma(const AttentionFmaCase& c, unsigned seed) {
  static const char* const kMaskNames[] = {"", " bool mask", " additive mask"};
  char label[200];
  snprintf(label, sizeof label, "attention %s d=%d dv=%d h%d nq%d nk%d%s%s%s%s%s",
           std::is_same_v<T, float> ? "fp32" : "fp64", c.d, c.dv, c.heads, c.nq, c.nk,
           c.causal ? " causal" : "", kMaskNames[int(c.mask)], c.per_head ? " per-head" : "",
           c.per_query ? " per-query" : "", c.transposed ? " transposed" : "");
  const std::string name = label;
  const size_t qn = size_t(c.heads) * c.nq, kn = size_t(c.heads) * c.nk;
  const std::vector<float> q = random_floats(qn * c.d, seed, -2, 2), k = random_floats(kn * c.d, seed + 1, -2, 2),
                           v = random_floats(kn * c.dv, seed + 2), d_o = random_floats(qn * c.dv, seed + 3);
  const AttentionMaskData mask = attention_mask_data(c, seed + 4);
  auto as_t = [](const std::vector<float>& x) { return std::vector<T>(x.begin(), x.end()); };
  DeviceBuffer<T> d_q(as_t(q)), d_k(as_t(k)), d_v(as_t(v)), d_do(as_t(d_o)), d_out(qn * c.dv), d_lse(qn),
      d_delta(qn);
  DeviceBuffer<T> d_dq(qn * c.d), d_dk(kn * c.d), d_dv(kn * c.dv);
  DeviceBuffer<unsigned char> d_keep(mask.keep.empty() ? std::vector<unsigned char>{0} : mask.keep);
  DeviceBuffer<T> d_add(as_t(mask.add.empty() ? std::vector<float>{0} : mask.add));
  DeviceBuffer<int64_t> d_offsets(mask.head_offset.empty() ? std::vector<int64_t>{0} : mask.head_offset);

  AttentionFmaArgs<T> a;
  a.q = d_q.get(), a.k = d_k.get(), a.v = d_v.get(), a.out = d_out.get(), a.lse = d_lse.get();
  a.heads = c.heads, a.nq = c.nq, a.nk = c.nk, a.head_dim = c.d, a.value_dim = c.dv;
  a.scale = T(1.0 / std::sqrt(double(c.d)));
  a.causal = c.causal;
  if (c.mask != AttentionMaskKind::none) {
    a.bool_mask = c.mask == AttentionMaskKind::keep;
    a.mask = a.bool_mask ? static_cast<const void*>(d_keep.get()) : d_add.get();
    a.mask_head_offset = d_offsets.get();
    a.mask_row_stride = mask.row_stride, a.mask_col_stride = mask.col_stride;
  }
  if (!launched(name + " forward", attention_forward_fma(a))) return;
  const AttentionModel want = attention_fma_model(c, mask, q, k, v, d_o);
  check_close_t(name + " forward o", d_out.download(), want.o);
  std::vector<T> lse = d_lse.download();
  std::vector<double> want_lse = want.lse;
  for (T& x : lse) x = std::isinf(x) && x > 0 ? T(1e30) : x;
  for (double& x : want_lse) x = std::isinf(x) && x > 0 ? double(T(1e30)) : x;
  check_close_t(name + " forward lse", lse, want_lse);

  a.o = d_out.get(), a.d_o = d_do.get(), a.delta = d_delta.get();
  a.dq = d_dq.get(), a.dk = d_dk.get(), a.dv = d_dv.get();
  if (!launched(name + " backward", attention_backward_fma(a))) return;
  check_close_t(name + " backward dq", d_dq.download(), want.dq);
  check_close_t(name + " backward dk", d_dk.download(), want.dk);
  check_close_t(name + " backward dv", d_dv.download(), want.dv);
}

template <class T>
void test_attention_fma_rejects(int head_dim, const char* what) {
  AttentionFmaArgs<T> a;
  a.heads = a.nq = a.nk = 1, a.head_dim = head_dim, a.value_dim = 32;
  bool threw = false;
  try {
    attention_forward_fma(a);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  check(threw, what);
}

inline void run_attention_fma_tests() {
  using K = AttentionMaskKind;
  test_attention_fma<float>({2, 37, 45, 24, 24, false, K::none, false, false, false}, 201);
  test_attention_fma<float>({1, 19, 70, 1, 5, true, K::none, false, false, false}, 211);
  test_attention_fma<float>({2, 33, 33, 64, 64, true, K::keep, true, true, false}, 221);
  test_attention_fma<float>({1, 17, 50, 80, 40, false, K::additive, false, true, true}, 231);
  test_attention_fma<float>({2, 20, 40, 128, 128, false, K::keep, true, false, false}, 241);
  test_attention_fma<float>({2, 9, 13, 128, 96, true, K::additive, true, true, false}, 251);
  test_attention_fma<double>({2, 21, 37, 64, 40, true, K::keep, true, true, false}, 261);
  test_attention_fma<double>({1, 18, 35, 3, 64, false, K::additive, false, true, true}, 271);
  test_attention_fma_rejects<float>(129, "attention_forward_fma<float> rejects head dimension 129");
  test_attention_fma_rejects<double>(65, "attention_forward_fma<double> rejects head dimension 65");
}

inline void run_attention_tests() {
  test_attention<__nv_bfloat16>({2, 2, 77, 77, 64, true, {77, 50}}, 101);
  test_attention<__half>({1, 2, 40, 93, 64, false, {70}}, 111);
  test_attention<__nv_bfloat16>({2, 1, 45, 45, 128, true, {45, 0}}, 121);
  test_attention<__half>({1, 1, 33, 70, 128, false, {}}, 131);
  test_attention_preconditions();
  run_attention_fma_tests();
}

}  // namespace lamina::cuda::test
