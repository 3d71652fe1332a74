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

inline void run_attention_tests() {
  test_attention<__nv_bfloat16>({2, 2, 77, 77, 64, true, {77, 50}}, 101);
  test_attention<__half>({1, 2, 40, 93, 64, false, {70}}, 111);
  test_attention<__nv_bfloat16>({2, 1, 45, 45, 128, true, {45, 0}}, 121);
  test_attention<__half>({1, 1, 33, 70, 128, false, {}}, 131);
  test_attention_preconditions();
}

}  // namespace lamina::cuda::test
