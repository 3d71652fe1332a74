// LSTM and GRU steps (cuda/kernels/recurrent.cu) chained over a few time steps, forward and
// backward-through-time, against a double-precision model of the whole sequence; the model's
// own gradients are checked against central finite differences first. Shapes are ragged
// against the kernels' 32-unit by 8-row tiles. fp32 throughout: the sums have at most 4H
// terms of size <= 1; the tolerance, 2e-6 as max |got - want| / (1 + |want|), is 17 fp32
// epsilons, about 10x the observed error (1-2e-7).
#pragma once

#include "kernels/recurrent.cu"
#include "test_util.h"

namespace lamina::cuda::test {

struct RnnCase {
  int batch, hidden, steps;
};

struct RnnData {
  std::vector<float> gx, w, b_hh, h0, c0, dh_out;  // gx, dh_out: all steps, step-major
};

inline RnnData rnn_data(const RnnCase& c, int gates, unsigned seed) {
  const size_t B = c.batch, H = c.hidden, T = c.steps;
  return {random_floats(T * B * gates * H, seed), random_floats(gates * H * H, seed + 1, -0.3f, 0.3f),
          random_floats(gates * H, seed + 2, -0.5f, 0.5f), random_floats(B * H, seed + 3),
          random_floats(B * H, seed + 4), random_floats(T * B * H, seed + 5)};
}

inline double sigmoid_d(double x) { return 1.0 / (1.0 + std::exp(-x)); }

struct RnnModel {
  double loss = 0;
  std::vector<double> h, c, dg, dgh, dh0, dc0;  // h, c, dg, dgh: all steps
};

// LSTM, double: the forward sequence, loss = sum_t dh_out_t . h_t, and BPTT.
inline RnnModel lstm_model(const RnnCase& cs, const RnnData& d) {
  const int B = cs.batch, H = cs.hidden, T = cs.steps;
  RnnModel m;
  std::vector<double> acts(size_t(T) * B * 4 * H), hp(d.h0.begin(), d.h0.end()),
      cp(d.c0.begin(), d.c0.end());
  std::vector<std::vector<double>> hs{hp}, cs_{cp};
  for (int t = 0; t < T; ++t) {
    std::vector<double> h(size_t(B) * H), c(size_t(B) * H);
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < H; ++j) {
        double a[4];
        for (int g = 0; g < 4; ++g) {
          a[g] = d.gx[((size_t(t) * B + b) * 4 + g) * H + j];
          for (int k = 0; k < H; ++k) a[g] += hp[size_t(b) * H + k] * d.w[(size_t(g) * H + j) * H + k];
        }
        const double i = sigmoid_d(a[0]), f = sigmoid_d(a[1]), gg = std::tanh(a[2]), o = sigmoid_d(a[3]);
        double* s = &acts[((size_t(t) * B + b) * 4) * H];
        s[j] = i, s[H + j] = f, s[2 * H + j] = gg, s[3 * H + j] = o;
        c[size_t(b) * H + j] = f * cp[size_t(b) * H + j] + i * gg;
        h[size_t(b) * H + j] = o * std::tanh(c[size_t(b) * H + j]);
        m.loss += d.dh_out[(size_t(t) * B + b) * H + j] * h[size_t(b) * H + j];
      }
    m.h.insert(m.h.end(), h.begin(), h.end());
    m.c.insert(m.c.end(), c.begin(), c.end());
    hs.push_back(hp = h);
    cs_.push_back(cp = c);
  }
  m.dg.assign(size_t(T) * B * 4 * H, 0.0);
  std::vector<double> dh_next(size_t(B) * H, 0.0), dc_next(size_t(B) * H, 0.0);
  for (int t = T - 1; t >= 0; --t) {
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < H; ++j) {
        const size_t at = size_t(b) * H + j;
        const double* s = &acts[((size_t(t) * B + b) * 4) * H];
        const double i = s[j], f = s[H + j], gg = s[2 * H + j], o = s[3 * H + j];
        const double dh = d.dh_out[(size_t(t) * B + b) * H + j] + dh_next[at];
        const double tc = std::tanh(cs_[t + 1][at]);
        const double dc = dc_next[at] + dh * o * (1 - tc * tc);
        double* dg = &m.dg[((size_t(t) * B + b) * 4) * H];
        dg[j] = dc * gg * i * (1 - i);
        dg[H + j] = dc * cs_[t][at] * f * (1 - f);
        dg[2 * H + j] = dc * i * (1 - gg * gg);
        dg[3 * H + j] = dh * tc * o * (1 - o);
        dc_next[at] = dc * f;
      }
    for (int b = 0; b < B; ++b)
      for (int k = 0; k < H; ++k) {
        double s = 0;
        for (int r = 0; r < 4 * H; ++r) s += m.dg[((size_t(t) * B + b) * 4) * H + r] * d.w[size_t(r) * H + k];
        dh_next[size_t(b) * H + k] = s;
      }
  }
  m.dh0 = dh_next;
  m.dc0 = dc_next;
  return m;
}

// GRU, double, in PyTorch's form; dg = dgx (the gradient of gates_x), dgh that of h W_hh^T + b_hh.
inline RnnModel gru_model(const RnnCase& cs, const RnnData& d) {
  const int B = cs.batch, H = cs.hidden, T = cs.steps;
  RnnModel m;
  std::vector<double> saved(size_t(T) * B * 4 * H), hp(d.h0.begin(), d.h0.end());
  std::vector<std::vector<double>> hs{hp};
  for (int t = 0; t < T; ++t) {
    std::vector<double> h(size_t(B) * H);
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < H; ++j) {
        double a[3];
        for (int g = 0; g < 3; ++g) {
          a[g] = d.b_hh[size_t(g) * H + j];
          for (int k = 0; k < H; ++k) a[g] += hp[size_t(b) * H + k] * d.w[(size_t(g) * H + j) * H + k];
        }
        const float* gx = &d.gx[((size_t(t) * B + b) * 3) * H];
        const double r = sigmoid_d(gx[j] + a[0]), z = sigmoid_d(gx[H + j] + a[1]);
        const double n = std::tanh(gx[2 * H + j] + r * a[2]);
        double* s = &saved[((size_t(t) * B + b) * 4) * H];
        s[j] = r, s[H + j] = z, s[2 * H + j] = n, s[3 * H + j] = a[2];
        h[size_t(b) * H + j] = (1 - z) * n + z * hp[size_t(b) * H + j];
        m.loss += d.dh_out[(size_t(t) * B + b) * H + j] * h[size_t(b) * H + j];
      }
    m.h.insert(m.h.end(), h.begin(), h.end());
    hs.push_back(hp = h);
  }
  m.dg.assign(size_t(T) * B * 3 * H, 0.0);
  m.dgh.assign(size_t(T) * B * 3 * H, 0.0);
  std::vector<double> dh_next(size_t(B) * H, 0.0);
  for (int t = T - 1; t >= 0; --t) {
    std::vector<double> dh_prev(size_t(B) * H, 0.0);
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < H; ++j) {
        const size_t at = size_t(b) * H + j;
        const double* s = &saved[((size_t(t) * B + b) * 4) * H];
        const double r = s[j], z = s[H + j], n = s[2 * H + j], hn = s[3 * H + j];
        const double dh = d.dh_out[(size_t(t) * B + b) * H + j] + dh_next[at];
        const double dan = dh * (1 - z) * (1 - n * n);
        const double dar = dan * hn * r * (1 - r), daz = dh * (hs[t][at] - n) * z * (1 - z);
        double* dgx = &m.dg[((size_t(t) * B + b) * 3) * H];
        double* dgh = &m.dgh[((size_t(t) * B + b) * 3) * H];
        dgx[j] = dgh[j] = dar;
        dgx[H + j] = dgh[H + j] = daz;
        dgx[2 * H + j] = dan;
        dgh[2 * H + j] = dan * r;
        dh_prev[at] = dh * z;
      }
    for (int b = 0; b < B; ++b)
      for (int k = 0; k < H; ++k)
        for (int r = 0; r < 3 * H; ++r)
          dh_prev[size_t(b) * H + k] += m.dgh[((size_t(t) * B + b) * 3) * H + r] * d.w[size_t(r) * H + k];
    dh_next = dh_prev;
  }
  m.dh0 = dh_next;
  return m;
}

// The model's analytic gradients against central differences of its loss, at a few entries
// of gates_x (last and first step) and h_0.
template <class Model>
void check_model_gradients(const std::string& name, const RnnCase& c, const RnnData& d, Model model) {
  const RnnModel base = model(c, d);
  double worst = 0;
  const size_t ngx = d.gx.size();
  for (size_t idx : {size_t(0), ngx / 3, ngx - 1, ngx / 2 + 7}) {
    RnnData plus = d, minus = d;
    const double eps = 1e-3;
    plus.gx[idx] += float(eps), minus.gx[idx] -= float(eps);
    const double step = double(plus.gx[idx]) - double(minus.gx[idx]);
    const double fd = (model(c, plus).loss - model(c, minus).loss) / step;
    worst = std::max(worst, std::fabs(fd - base.dg[idx]) / (1 + std::fabs(fd)));
  }
  for (size_t idx : {size_t(1), d.h0.size() - 2}) {
    RnnData plus = d, minus = d;
    plus.h0[idx] += 1e-3f, minus.h0[idx] -= 1e-3f;
    const double step = double(plus.h0[idx]) - double(minus.h0[idx]);
    const double fd = (model(c, plus).loss - model(c, minus).loss) / step;
    worst = std::max(worst, std::fabs(fd - base.dh0[idx]) / (1 + std::fabs(fd)));
  }
  char detail[64];
  snprintf(detail, sizeof detail, "max rel err %.3g (tolerance 1e-5)", worst);
  check(worst < 1e-5, name + " model gradients match finite differences", detail);
}

inline std::string rnn_name(const char* op, const RnnCase& c) {
  return std::string(op) + " b" + std::to_string(c.batch) + " h" + std::to_string(c.hidden) +
         " t" + std::to_string(c.steps);
}

inline void test_lstm(const RnnCase& c, unsigned seed) {
  const std::string name = rnn_name("lstm", c);
  const RnnData d = rnn_data(c, 4, seed);
  check_model_gradients(name, c, d, lstm_model);
  const RnnModel want = lstm_model(c, d);
  const size_t BH = size_t(c.batch) * c.hidden, T = c.steps;
  DeviceBuffer<float> gx(d.gx), w(d.w), h(d.h0.size() * (T + 1)), cell(d.h0.size() * (T + 1)),
      gates(4 * BH * T), dh_out(d.dh_out), dgates(4 * BH * T), dc(BH * (T + 1)), dh0(BH);
  cudaMemcpy(h.get(), d.h0.data(), BH * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(cell.get(), d.c0.data(), BH * 4, cudaMemcpyHostToDevice);
  for (size_t t = 0; t < T; ++t) {
    LstmForwardArgs a;
    a.batch = c.batch, a.hidden = c.hidden;
    a.gates_x = gx.get() + t * 4 * BH, a.w_hh = w.get();
    a.h_prev = h.get() + t * BH, a.c_prev = cell.get() + t * BH;
    a.h = h.get() + (t + 1) * BH, a.c = cell.get() + (t + 1) * BH, a.gates = gates.get() + t * 4 * BH;
    if (!launched(name + " forward", lstm_forward(a))) return;
  }
  const std::vector<float> hv = h.download(), cv = cell.download();
  check_close(name + " forward h", std::vector<float>(hv.begin() + BH, hv.end()), want.h, 2e-6);
  check_close(name + " forward c", std::vector<float>(cv.begin() + BH, cv.end()), want.c, 2e-6);
  // dc holds dL/dc_t at slot t (slot T unused: the last step has no carry).
  for (size_t t = T; t-- > 0;) {
    LstmBackwardArgs a;
    a.batch = c.batch, a.hidden = c.hidden, a.w_hh = w.get(), a.gates = gates.get() + t * 4 * BH;
    a.c_prev = cell.get() + t * BH, a.c = cell.get() + (t + 1) * BH, a.dh_out = dh_out.get() + t * BH;
    a.dgates_next = t + 1 < T ? dgates.get() + (t + 1) * 4 * BH : nullptr;
    a.dc_next = t + 1 < T ? dc.get() + (t + 1) * BH : nullptr;
    a.dgates = dgates.get() + t * 4 * BH, a.dc_prev = dc.get() + t * BH;
    if (!launched(name + " backward", lstm_backward(a))) return;
  }
  if (!launched(name + " dh0", recurrent_hidden_backward(c.batch, c.hidden, 4, dgates.get(), w.get(),
                                                         nullptr, dh0.get())))
    return;
  check_close(name + " backward dgates", dgates.download(), want.dg, 2e-6);
  const std::vector<float> dcv = dc.download();
  check_close(name + " backward dh0, dc0", [&] {
    std::vector<float> v = dh0.download();
    v.insert(v.end(), dcv.begin(), dcv.begin() + BH);
    return v;
  }(), [&] {
    std::vector<double> v = want.dh0;
    v.insert(v.end(), want.dc0.begin(), want.dc0.end());
    return v;
  }(), 2e-6);
}

inline void test_gru(const RnnCase& c, unsigned seed) {
  const std::string name = rnn_name("gru", c);
  const RnnData d = rnn_data(c, 3, seed);
  check_model_gradients(name, c, d, gru_model);
  const RnnModel want = gru_model(c, d);
  const size_t BH = size_t(c.batch) * c.hidden, T = c.steps;
  DeviceBuffer<float> gx(d.gx), w(d.w), b_hh(d.b_hh), h(BH * (T + 1)), saved(4 * BH * T),
      dh_out(d.dh_out), dgx(3 * BH * T), dgh(3 * BH * T), carry(BH * T), dh0(BH);
  cudaMemcpy(h.get(), d.h0.data(), BH * 4, cudaMemcpyHostToDevice);
  for (size_t t = 0; t < T; ++t) {
    GruForwardArgs a;
    a.batch = c.batch, a.hidden = c.hidden, a.gates_x = gx.get() + t * 3 * BH, a.w_hh = w.get();
    a.b_hh = b_hh.get(), a.h_prev = h.get() + t * BH, a.h = h.get() + (t + 1) * BH;
    a.saved = saved.get() + t * 4 * BH;
    if (!launched(name + " forward", gru_forward(a))) return;
  }
  const std::vector<float> hv = h.download();
  check_close(name + " forward h", std::vector<float>(hv.begin() + BH, hv.end()), want.h, 2e-6);
  for (size_t t = T; t-- > 0;) {
    GruBackwardArgs a;
    a.batch = c.batch, a.hidden = c.hidden, a.w_hh = w.get(), a.saved = saved.get() + t * 4 * BH;
    a.h_prev = h.get() + t * BH, a.dh_out = dh_out.get() + t * BH;
    a.dgh_next = t + 1 < T ? dgh.get() + (t + 1) * 3 * BH : nullptr;
    a.dh_carry_next = t + 1 < T ? carry.get() + (t + 1) * BH : nullptr;
    a.dgx = dgx.get() + t * 3 * BH, a.dgh = dgh.get() + t * 3 * BH, a.dh_carry = carry.get() + t * BH;
    if (!launched(name + " backward", gru_backward(a))) return;
  }
  if (!launched(name + " dh0", recurrent_hidden_backward(c.batch, c.hidden, 3, dgh.get(), w.get(),
                                                         carry.get(), dh0.get())))
    return;
  check_close(name + " backward dgx", dgx.download(), want.dg, 2e-6);
  check_close(name + " backward dgh", dgh.download(), want.dgh, 2e-6);
  check_close(name + " backward dh0", dh0.download(), want.dh0, 2e-6);
}

inline void run_recurrent_tests() {
  test_lstm({5, 37, 3}, 201);
  test_lstm({10, 64, 2}, 211);
  test_gru({5, 37, 3}, 221);
  test_gru({10, 33, 2}, 231);
}

}  // namespace lamina::cuda::test
