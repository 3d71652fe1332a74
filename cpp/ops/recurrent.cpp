#include "ops/recurrent.h"

#include "core/backend.h"
#include "core/autograd.h"
#include "core/errors.h"
#include "cpu/recurrent.h"
#include "ops/arith.h"
#include "ops/compare.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/join.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"
#include "ops/unary.h"
#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif

namespace lamina {

namespace {

// Shapes of one recurrent call, checked before any memory is touched.
struct RnnArgs {
  const char* op;
  int64_t gates;  // 4 for LSTM, 3 for GRU
  cpu::RnnDims dims{};
  DType out_dtype = DType::Float32, kernel = DType::Float32;
};

void expect_shape(const RnnArgs& a, const Tensor& t, const char* what, const Shape& want) {
  check<ValueError>(t.shape() == want, a.op, ": expected ", what, " of shape ", shape_str(want), ", got ",
                    shape_str(t.shape()));
}

// Checks x / w_ih / w_hh / the optional tensors and fills dims and dtypes.
RnnArgs check_args(const char* op, int64_t gates, const Tensor& x, const Tensor& w_ih, const Tensor& w_hh,
                   const std::vector<std::pair<const Tensor*, const char*>>& state,
                   const std::vector<std::pair<const Tensor*, const char*>>& biases, const Tensor& mask) {
  RnnArgs a{op, gates};
  for (const Tensor* t : {&x, &w_ih, &w_hh}) check<TypeError>(t->defined(), op, ": got an undefined tensor");
  check<ValueError>(x.ndim() == 3, op, ": x must be (batch, steps, features), got shape ", shape_str(x.shape()));
  check<ValueError>(w_hh.ndim() == 2 && w_hh.shape()[0] == gates * w_hh.shape()[1] && w_hh.shape()[1] > 0, op,
                    ": w_hh must be (", gates, "*hidden, hidden), got shape ", shape_str(w_hh.shape()));
  const int64_t H = w_hh.shape()[1];
  a.dims = {x.shape()[0], x.shape()[1], x.shape()[2], H};
  check<ValueError>(a.dims.steps > 0, op, ": x must have at least one step, got shape ", shape_str(x.shape()));
  expect_shape(a, w_ih, "w_ih", {gates * H, a.dims.input});
  DType t = x.dtype();
  for (const Tensor* w : {&w_ih, &w_hh}) t = promote_types(t, w->dtype());
  for (auto [s, name] : state)
    if (s->defined()) {
      expect_shape(a, *s, name, {a.dims.batch, H});
      t = promote_types(t, s->dtype());
    }
  for (auto [b, name] : biases) {
    check<TypeError>(b->defined(), op, ": got an undefined ", name);
    expect_shape(a, *b, name, {gates * H});
    t = promote_types(t, b->dtype());
  }
  if (mask.defined()) expect_shape(a, mask, "mask", {a.dims.batch, a.dims.steps});
  check<TypeError>(is_floating(t), op, ": expected floating-point tensors, got ", dtype_name(t));
  a.out_dtype = t;
  a.kernel = kernel_dtype(t);
  for (const Tensor* o : {&w_ih, &w_hh}) check_same_device(op, x, *o);
  for (auto [s, name] : state)
    if (s->defined()) check_same_device(op, x, *s);
  for (auto [b, name] : biases) check_same_device(op, x, *b);
  return a;
}

Tensor prepare(const Tensor& t, DType kd) { return contiguous(astype(t, kd)); }

Tensor state_or_zeros(const Tensor& s, const RnnArgs& a, const Device& device) {
  return s.defined() ? prepare(s, a.kernel) : zeros({a.dims.batch, a.dims.hidden}, a.kernel, device);
}

// The kernels (CPU and device) run on time-major buffers: (B, T, ...) <-> (T, B, ...).
Tensor swap_batch_and_time(const Tensor& t) { return contiguous(transpose(t, 0, 1)); }

Tensor time_major_mask(const Tensor& mask) {
  if (!mask.defined()) return {};
  return swap_batch_and_time(astype(mask.detach(), DType::Bool));
}

const uint8_t* bytes(const Tensor& m) { return m.defined() ? m.data<uint8_t>() : nullptr; }

template <class T>
T* ptr_if(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

Tensor empty_if(bool want, const Shape& shape, DType dt) { return want ? Tensor::empty(shape, dt, {}) : Tensor(); }

// Outputs in the caller's dtype when the kernel ran wider.
std::vector<Tensor> cast_back(std::vector<Tensor> outs, const RnnArgs& a) {
  if (a.kernel != a.out_dtype)
    for (Tensor& o : outs) o = astype(o, a.out_dtype);
  return outs;
}

// The sequence as a loop of the cell composites, with the fused kernels' masking: a padded
// step keeps the state and outputs zeros. c0 and the returned c_T are undefined for a GRU.
// It runs what the device's fp32 step kernels do not cover (float64, an empty batch), and it
// is what a fused op's gradient differentiates when that gradient must be differentiable.
std::vector<Tensor> cell_loop(const RnnArgs& a, const Tensor& x, const Tensor& h0, const Tensor& c0,
                              const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                              const Tensor& mask) {
  const bool is_lstm = a.gates == 4;
  const Tensor m = mask.defined() ? to_device(astype(mask.detach(), DType::Bool), x.device()) : Tensor();
  const Tensor zero = scalar_tensor(0.0, x.dtype());
  Tensor h = h0, c = c0;
  std::vector<Tensor> outs;
  for (int64_t t = 0; t < a.dims.steps; ++t) {
    const Tensor xt = select(x, 1, t);
    Tensor hn, cn;
    if (is_lstm) {
      std::vector<Tensor> hc = lstm_cell(xt, h, c, w_ih, w_hh, b_ih);
      hn = hc[0], cn = hc[1];
    } else {
      hn = gru_cell(xt, h, w_ih, w_hh, b_ih, b_hh);
    }
    if (m.defined()) {
      const Tensor mt = unsqueeze(select(m, 1, t), 1);
      outs.push_back(where(mt, hn, zero));
      h = where(mt, hn, h);
      if (is_lstm) c = where(mt, cn, c);
    } else {
      outs.push_back(hn);
      h = hn, c = cn;
    }
  }
  Tensor out = stack(outs, 1);
  if (is_lstm) return {out, h, c};
  return {out, h};
}

// cell_loop's results packed as the fused ops pack theirs: outputs, then h_T (and c_T).
Tensor packed_cell_loop(const RnnArgs& a, const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                        const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh, const Tensor& mask) {
  std::vector<Tensor> outs = cell_loop(a, x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask);
  for (size_t i = 1; i < outs.size(); ++i) outs[i] = unsqueeze(outs[i], 1);
  return concatenate(outs, 1);
}

}  // namespace

#if defined(LAMINA_HAVE_CUDA)
namespace {

// The device path: time-major buffers, the input projection of all steps as one GEMM, one
// fused kernel per step, and backward through time with the step kernels; the weight and
// input gradients are GEMMs over all steps' gate gradients.
struct DeviceRnn {
  Tensor x_tm;     // (S, B, I)
  Tensor mask_tm;  // (S, B) bool, or undefined
  Tensor hs;       // (S + 1, B, H): the initial state, then each step's state
};

std::vector<Tensor> saved_values(const std::vector<SavedTensor>& saved) {
  std::vector<Tensor> out;
  for (const SavedTensor& t : saved) out.push_back(t.get());
  return out;
}

bool step_kernels_cover(const RnnArgs& a) { return a.kernel == DType::Float32 && a.dims.batch > 0; }

DeviceRnn device_setup(const RnnArgs& a, const Tensor& x, const Tensor& h0, const Tensor& mask) {
  const cpu::RnnDims d = a.dims;
  DeviceRnn r;
  r.x_tm = swap_batch_and_time(x.detach());
  if (mask.defined()) r.mask_tm = time_major_mask(to_device(mask.detach(), x.device()));
  r.hs = Tensor::empty({d.steps + 1, d.batch, d.hidden}, DType::Float32, x.device());
  cuda::copy_cast(a.op, select(r.hs, 0, 0), h0);
  return r;
}

// x W_ih^T + b for every step at once: (S, B, G*H).
Tensor input_projection(const DeviceRnn& r, const Tensor& w_ih, const Tensor& b) {
  const Shape& xs = r.x_tm.shape();
  Tensor gx = add(matmul(reshape(r.x_tm, {xs[0] * xs[1], xs[2]}), matrix_transpose(w_ih)), b);
  return contiguous(reshape(gx, {xs[0], xs[1], w_ih.shape()[0]}));
}

// Step outputs (zeros at padded steps), batch-first, followed by the final states: the packed
// result whose views the op returns.
Tensor pack_outputs(const DeviceRnn& r, const Tensor& cs) {
  const int64_t S = r.hs.shape()[0] - 1;
  Tensor steps = slice(r.hs, 0, 1, S + 1);
  if (r.mask_tm.defined()) steps = where(unsqueeze(r.mask_tm, 2), steps, scalar_tensor(0.0, DType::Float32));
  std::vector<Tensor> parts{permute(steps, {1, 0, 2}), unsqueeze(select(r.hs, 0, S), 1)};
  if (cs.defined()) parts.push_back(unsqueeze(select(cs, 0, S), 1));
  return concatenate(parts, 1);
}

// Gradients of a packed output (B, S + k, H): each step's output (S, B, H), then h_T (and c_T).
Tensor steps_grad(const Tensor& dout, int64_t S) { return swap_batch_and_time(slice(dout, 1, 0, S)); }

// dx (B, S, I) and dW_ih from the gradient of the input projection dgx (S * B, G*H).
Tensor input_grad(const Tensor& dgx, const Tensor& w_ih, int64_t S, int64_t B) {
  return swap_batch_and_time(reshape(matmul(dgx, w_ih), {S, B, w_ih.shape()[1]}));
}

std::vector<Tensor> device_lstm(const RnnArgs& a, const Tensor& x, const Tensor& h0, const Tensor& c0,
                                const Tensor& w_ih, const Tensor& w_hh, const Tensor& b, const Tensor& mask) {
  if (!step_kernels_cover(a)) return cell_loop(a, x, h0, c0, w_ih, w_hh, b, Tensor(), mask);
  const int64_t B = a.dims.batch, S = a.dims.steps, H = a.dims.hidden, I = a.dims.input;
  DeviceRnn r;
  Tensor cs, gates, packed;
  {
    GradModeGuard no_grad(false);
    r = device_setup(a, x, h0, mask);
    cs = Tensor::empty({S + 1, B, H}, DType::Float32, x.device());
    cuda::copy_cast(a.op, select(cs, 0, 0), c0);
    gates = Tensor::empty({S, B, 4 * H}, DType::Float32, x.device());
    cuda::lstm_sequence_forward(a.op, input_projection(r, w_ih, b), w_hh, r.mask_tm, r.hs, cs, gates);
    packed = pack_outputs(r, cs);
  }
  if (needs_grad({&x, &h0, &c0, &w_ih, &w_hh, &b})) {
    SavedTensor sw_ih(w_ih), sw_hh(w_hh);
    const bool want[6] = {x.requires_grad(),    h0.requires_grad(),   c0.requires_grad(),
                          w_ih.requires_grad(), w_hh.requires_grad(), b.requires_grad()};
    const std::vector<SavedTensor> inputs{SavedTensor(x),    SavedTensor(h0),   SavedTensor(c0),
                                          SavedTensor(w_ih), SavedTensor(w_hh), SavedTensor(b)};
    record("lstm", {x, h0, c0, w_ih, w_hh, b}, packed, [=](const Tensor& g) -> std::vector<Tensor> {
      if (GradMode::is_enabled()) {
        const std::vector<Tensor> in = saved_values(inputs);
        return composite_vjp(in, g, [&] {
          return packed_cell_loop(a, in[0], in[1], in[2], in[3], in[4], in[5], Tensor(), mask);
        });
      }
      GradModeGuard no_grad(false);
      Tensor dout = contiguous(astype(g, DType::Float32));
      Tensor dgates = Tensor::empty({S, B, 4 * H}, DType::Float32, dout.device());
      Tensor dh0 = Tensor::empty({B, H}, DType::Float32, dout.device());
      Tensor dc0 = Tensor::empty({B, H}, DType::Float32, dout.device());
      cuda::lstm_sequence_backward("lstm", sw_hh.get(), r.mask_tm, gates, cs, steps_grad(dout, S),
                                   contiguous(select(dout, 1, S)), contiguous(select(dout, 1, S + 1)), dgates, dh0,
                                   dc0);
      Tensor dg = reshape(dgates, {S * B, 4 * H});
      Tensor dg_t = matrix_transpose(dg);
      return {want[0] ? input_grad(dg, sw_ih.get(), S, B) : Tensor(),
              want[1] ? dh0 : Tensor(),
              want[2] ? dc0 : Tensor(),
              want[3] ? matmul(dg_t, reshape(r.x_tm, {S * B, I})) : Tensor(),
              want[4] ? matmul(dg_t, reshape(slice(r.hs, 0, 0, S), {S * B, H})) : Tensor(),
              want[5] ? sum(dg, {0}) : Tensor()};
    });
  }
  return {slice(packed, 1, 0, S), select(packed, 1, S), select(packed, 1, S + 1)};
}

std::vector<Tensor> device_gru(const RnnArgs& a, const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                               const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh, const Tensor& mask) {
  if (!step_kernels_cover(a)) return cell_loop(a, x, h0, Tensor(), w_ih, w_hh, b_ih, b_hh, mask);
  const int64_t B = a.dims.batch, S = a.dims.steps, H = a.dims.hidden, I = a.dims.input;
  DeviceRnn r;
  Tensor saved, packed;
  {
    GradModeGuard no_grad(false);
    r = device_setup(a, x, h0, mask);
    saved = Tensor::empty({S, B, 4 * H}, DType::Float32, x.device());
    cuda::gru_sequence_forward(a.op, input_projection(r, w_ih, b_ih), w_hh, b_hh, r.mask_tm, r.hs, saved);
    packed = pack_outputs(r, Tensor());
  }
  if (needs_grad({&x, &h0, &w_ih, &w_hh, &b_ih, &b_hh})) {
    SavedTensor sw_ih(w_ih), sw_hh(w_hh);
    const bool want[6] = {x.requires_grad(),    h0.requires_grad(),   w_ih.requires_grad(),
                          w_hh.requires_grad(), b_ih.requires_grad(), b_hh.requires_grad()};
    const std::vector<SavedTensor> inputs{SavedTensor(x),    SavedTensor(h0),   SavedTensor(w_ih),
                                          SavedTensor(w_hh), SavedTensor(b_ih), SavedTensor(b_hh)};
    record("gru", {x, h0, w_ih, w_hh, b_ih, b_hh}, packed, [=](const Tensor& g) -> std::vector<Tensor> {
      if (GradMode::is_enabled()) {
        const std::vector<Tensor> in = saved_values(inputs);
        return composite_vjp(in, g, [&] {
          return packed_cell_loop(a, in[0], in[1], Tensor(), in[2], in[3], in[4], in[5], mask);
        });
      }
      GradModeGuard no_grad(false);
      Tensor dout = contiguous(astype(g, DType::Float32));
      Tensor dgx = Tensor::empty({S, B, 3 * H}, DType::Float32, dout.device());
      Tensor dgh = Tensor::empty({S, B, 3 * H}, DType::Float32, dout.device());
      Tensor dh0 = Tensor::empty({B, H}, DType::Float32, dout.device());
      cuda::gru_sequence_backward("gru", sw_hh.get(), r.mask_tm, saved, r.hs, steps_grad(dout, S),
                                  contiguous(select(dout, 1, S)), dgx, dgh, dh0);
      Tensor dgx2 = reshape(dgx, {S * B, 3 * H}), dgh2 = reshape(dgh, {S * B, 3 * H});
      return {want[0] ? input_grad(dgx2, sw_ih.get(), S, B) : Tensor(),
              want[1] ? dh0 : Tensor(),
              want[2] ? matmul(matrix_transpose(dgx2), reshape(r.x_tm, {S * B, I})) : Tensor(),
              want[3] ? matmul(matrix_transpose(dgh2), reshape(slice(r.hs, 0, 0, S), {S * B, H})) : Tensor(),
              want[4] ? sum(dgx2, {0}) : Tensor(),
              want[5] ? sum(dgh2, {0}) : Tensor()};
    });
  }
  return {slice(packed, 1, 0, S), select(packed, 1, S)};
}

}  // namespace
#endif

std::vector<Tensor> lstm(const Tensor& x_in, const Tensor& h0_in, const Tensor& c0_in, const Tensor& w_ih_in,
                         const Tensor& w_hh_in, const Tensor& b_in, const Tensor& mask_in) {
  RnnArgs a = check_args("lstm", 4, x_in, w_ih_in, w_hh_in, {{&h0_in, "h0"}, {&c0_in, "c0"}}, {{&b_in, "b"}},
                         mask_in);
  const DType kd = a.kernel;
  const cpu::RnnDims d = a.dims;
  const int64_t B = d.batch, S = d.steps, H = d.hidden;
  Tensor x = prepare(x_in, kd), w_ih = prepare(w_ih_in, kd), w_hh = prepare(w_hh_in, kd), b = prepare(b_in, kd);
  Tensor h0 = state_or_zeros(h0_in, a, x.device()), c0 = state_or_zeros(c0_in, a, x.device());
  if (is_cuda(x.device())) LAMINA_CUDA_BRANCH("lstm", return cast_back(device_lstm(a, x, h0, c0, w_ih, w_hh, b, mask_in), a));
  const Tensor mask = time_major_mask(mask_in);

  Tensor gates = Tensor::empty({S, B, 4 * H}, kd), xh = Tensor::empty({S, B, d.input + H}, kd);
  Tensor cells = Tensor::empty({S, B, H}, kd), packed = Tensor::empty({B, S + 2, H}, kd);
  int saved_slices = 1;
  auto run_forward = [&](auto tag) {
    using T = decltype(tag);
    saved_slices = cpu::lstm_forward<T>(d, x.data<T>(), h0.data<T>(), c0.data<T>(), w_ih.data<T>(), w_hh.data<T>(), b.data<T>(),
                         bytes(mask), gates.data<T>(), xh.data<T>(), cells.data<T>(), packed.data<T>());
  };
  if (kd == DType::Float32) run_forward(float{});
  else run_forward(double{});

  if (needs_grad({&x, &h0, &c0, &w_ih, &w_hh, &b})) {
    SavedTensor sx(x), sh0(h0), sc0(c0), sw_ih(w_ih), sw_hh(w_hh), sb(b);
    const bool want[6] = {x.requires_grad(), h0.requires_grad(), c0.requires_grad(),
                          w_ih.requires_grad(), w_hh.requires_grad(), b.requires_grad()};
    record("lstm", {x, h0, c0, w_ih, w_hh, b}, packed,
           [=](const Tensor& g) -> std::vector<Tensor> {
             if (GradMode::is_enabled()) {
               const std::vector<Tensor> in{sx.get(), sh0.get(), sc0.get(), sw_ih.get(), sw_hh.get(), sb.get()};
               return composite_vjp(in, g, [&] {
                 return packed_cell_loop(a, in[0], in[1], in[2], in[3], in[4], in[5], Tensor(), mask_in);
               });
             }
             GradModeGuard no_grad(false);
             Tensor dout = contiguous(astype(g, kd));
             const int64_t I = d.input;
             Tensor dx = empty_if(want[0], {B, S, I}, kd), dh0 = empty_if(want[1], {B, H}, kd),
                    dc0 = empty_if(want[2], {B, H}, kd), dw_ih = empty_if(want[3], {4 * H, I}, kd),
                    dw_hh = empty_if(want[4], {4 * H, H}, kd), db = empty_if(want[5], {4 * H}, kd);
             auto run_backward = [&](auto tag) {
               using T = decltype(tag);
               cpu::lstm_backward<T>(d, dout.data<T>(), xh.data<T>(), sc0.get().data<T>(),
                                     sw_ih.get().data<T>(), sw_hh.get().data<T>(), bytes(mask),
                                     gates.data<T>(), cells.data<T>(), saved_slices, ptr_if<T>(dx),
                                     ptr_if<T>(dh0), ptr_if<T>(dc0), ptr_if<T>(dw_ih), ptr_if<T>(dw_hh),
                                     ptr_if<T>(db));
             };
             if (kd == DType::Float32) run_backward(float{});
             else run_backward(double{});
             return {dx, dh0, dc0, dw_ih, dw_hh, db};
           });
  }
  return cast_back({slice(packed, 1, 0, S), select(packed, 1, S), select(packed, 1, S + 1)}, a);
}

std::vector<Tensor> gru(const Tensor& x_in, const Tensor& h0_in, const Tensor& w_ih_in, const Tensor& w_hh_in,
                        const Tensor& b_ih_in, const Tensor& b_hh_in, const Tensor& mask_in) {
  RnnArgs a = check_args("gru", 3, x_in, w_ih_in, w_hh_in, {{&h0_in, "h0"}}, {{&b_ih_in, "b_ih"}, {&b_hh_in, "b_hh"}},
                         mask_in);
  const DType kd = a.kernel;
  const cpu::RnnDims d = a.dims;
  const int64_t B = d.batch, S = d.steps, H = d.hidden;
  Tensor x = prepare(x_in, kd), w_ih = prepare(w_ih_in, kd), w_hh = prepare(w_hh_in, kd);
  Tensor b_ih = prepare(b_ih_in, kd), b_hh = prepare(b_hh_in, kd);
  Tensor h0 = state_or_zeros(h0_in, a, x.device());
  if (is_cuda(x.device())) LAMINA_CUDA_BRANCH("gru", return cast_back(device_gru(a, x, h0, w_ih, w_hh, b_ih, b_hh, mask_in), a));
  const Tensor mask = time_major_mask(mask_in), x_tm = swap_batch_and_time(x.detach());

  Tensor gates = Tensor::empty({S, B, 3 * H}, kd), hn = Tensor::empty({S, B, H}, kd);
  Tensor hprev = Tensor::empty({S, B, H}, kd), packed = Tensor::empty({B, S + 1, H}, kd);
  auto run_forward = [&](auto tag) {
    using T = decltype(tag);
    cpu::gru_forward<T>(d, x_tm.data<T>(), h0.data<T>(), w_ih.data<T>(), w_hh.data<T>(), b_ih.data<T>(),
                        b_hh.data<T>(), bytes(mask), gates.data<T>(), hn.data<T>(), hprev.data<T>(),
                        packed.data<T>());
  };
  if (kd == DType::Float32) run_forward(float{});
  else run_forward(double{});

  if (needs_grad({&x, &h0, &w_ih, &w_hh, &b_ih, &b_hh})) {
    SavedTensor sx(x_tm), sw_ih(w_ih), sw_hh(w_hh), sx_in(x), sh0(h0), sb_ih(b_ih), sb_hh(b_hh);
    const bool want[6] = {x.requires_grad(),    h0.requires_grad(),   w_ih.requires_grad(),
                          w_hh.requires_grad(), b_ih.requires_grad(), b_hh.requires_grad()};
    record("gru", {x, h0, w_ih, w_hh, b_ih, b_hh}, packed,
           [=](const Tensor& g) -> std::vector<Tensor> {
             if (GradMode::is_enabled()) {
               const std::vector<Tensor> in{sx_in.get(), sh0.get(), sw_ih.get(), sw_hh.get(), sb_ih.get(), sb_hh.get()};
               return composite_vjp(in, g, [&] {
                 return packed_cell_loop(a, in[0], in[1], Tensor(), in[2], in[3], in[4], in[5], mask_in);
               });
             }
             GradModeGuard no_grad(false);
             Tensor dout = contiguous(astype(g, kd));
             const int64_t I = d.input;
             Tensor dx = empty_if(want[0], {S, B, I}, kd), dh0 = empty_if(want[1], {B, H}, kd),
                    dw_ih = empty_if(want[2], {3 * H, I}, kd), dw_hh = empty_if(want[3], {3 * H, H}, kd),
                    db_ih = empty_if(want[4], {3 * H}, kd), db_hh = empty_if(want[5], {3 * H}, kd);
             auto run_backward = [&](auto tag) {
               using T = decltype(tag);
               cpu::gru_backward<T>(d, dout.data<T>(), sx.get().data<T>(), sw_ih.get().data<T>(),
                                    sw_hh.get().data<T>(), bytes(mask), gates.data<T>(), hn.data<T>(),
                                    hprev.data<T>(), ptr_if<T>(dx), ptr_if<T>(dh0), ptr_if<T>(dw_ih),
                                    ptr_if<T>(dw_hh), ptr_if<T>(db_ih), ptr_if<T>(db_hh));
             };
             if (kd == DType::Float32) run_backward(float{});
             else run_backward(double{});
             return {want[0] ? swap_batch_and_time(dx) : dx, dh0, dw_ih, dw_hh, db_ih, db_hh};
           });
  }
  return cast_back({slice(packed, 1, 0, S), select(packed, 1, S)}, a);
}

std::vector<Tensor> lstm_cell(const Tensor& x, const Tensor& h, const Tensor& c, const Tensor& w_ih,
                              const Tensor& w_hh, const Tensor& b) {
  const int64_t H = w_hh.ndim() == 2 ? w_hh.shape()[1] : 0;
  check<ValueError>(x.ndim() == 2 && h.ndim() == 2 && c.ndim() == 2 && w_hh.ndim() == 2 &&
                        w_hh.shape()[0] == 4 * H,
                    "lstm_cell: expected x (batch, I), h and c (batch, H), w_hh (4H, H), got ", shape_str(x.shape()),
                    ", ", shape_str(h.shape()), ", ", shape_str(c.shape()), ", ", shape_str(w_hh.shape()));
  Tensor z = add(add(matmul(x, matrix_transpose(w_ih)), matmul(h, matrix_transpose(w_hh))), b);
  Tensor i = sigmoid(slice(z, 1, 0, H)), f = sigmoid(slice(z, 1, H, 2 * H));
  Tensor g = tanh(slice(z, 1, 2 * H, 3 * H)), o = sigmoid(slice(z, 1, 3 * H, 4 * H));
  Tensor c2 = add(mul(f, c), mul(i, g));
  return {mul(o, tanh(c2)), c2};
}

Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                const Tensor& b_hh) {
  const int64_t H = w_hh.ndim() == 2 ? w_hh.shape()[1] : 0;
  check<ValueError>(x.ndim() == 2 && h.ndim() == 2 && w_hh.ndim() == 2 && w_hh.shape()[0] == 3 * H,
                    "gru_cell: expected x (batch, I), h (batch, H), w_hh (3H, H), got ", shape_str(x.shape()), ", ",
                    shape_str(h.shape()), ", ", shape_str(w_hh.shape()));
  Tensor gi = add(matmul(x, matrix_transpose(w_ih)), b_ih);
  Tensor gh = add(matmul(h, matrix_transpose(w_hh)), b_hh);
  Tensor r = sigmoid(add(slice(gi, 1, 0, H), slice(gh, 1, 0, H)));
  Tensor z = sigmoid(add(slice(gi, 1, H, 2 * H), slice(gh, 1, H, 2 * H)));
  Tensor n = tanh(add(slice(gi, 1, 2 * H, 3 * H), mul(r, slice(gh, 1, 2 * H, 3 * H))));
  return add(mul(rsub(1.0, z), n), mul(z, h));
}

}  // namespace lamina
