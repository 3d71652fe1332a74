#include "ops/recurrent.h"

#include "core/backend.h"
#include "core/autograd.h"
#include "core/errors.h"
#include "cpu/recurrent.h"
#include "ops/arith.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/shape_ops.h"
#include "ops/unary.h"

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
  require_cpu(op, x);
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
  check<RuntimeError>(x.device().type == Device::Type::CPU, op, ": this build of Lamina has no CUDA support");
  return a;
}

Tensor prepare(const Tensor& t, DType kd) { return contiguous(astype(t, kd)); }

Tensor state_or_zeros(const Tensor& s, const RnnArgs& a) {
  return s.defined() ? prepare(s, a.kernel) : zeros({a.dims.batch, a.dims.hidden}, a.kernel, {});
}

Tensor mask_bytes(const Tensor& mask) {
  if (!mask.defined()) return {};
  return contiguous(astype(mask.detach(), DType::Bool));
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

}  // namespace

std::vector<Tensor> lstm(const Tensor& x_in, const Tensor& h0_in, const Tensor& c0_in, const Tensor& w_ih_in,
                         const Tensor& w_hh_in, const Tensor& b_in, const Tensor& mask_in) {
  RnnArgs a = check_args("lstm", 4, x_in, w_ih_in, w_hh_in, {{&h0_in, "h0"}, {&c0_in, "c0"}}, {{&b_in, "b"}},
                         mask_in);
  const DType kd = a.kernel;
  const cpu::RnnDims d = a.dims;
  const int64_t B = d.batch, S = d.steps, H = d.hidden;
  Tensor x = prepare(x_in, kd), w_ih = prepare(w_ih_in, kd), w_hh = prepare(w_hh_in, kd), b = prepare(b_in, kd);
  Tensor h0 = state_or_zeros(h0_in, a), c0 = state_or_zeros(c0_in, a), mask = mask_bytes(mask_in);

  Tensor gates = Tensor::empty({B, S, 4 * H}, kd), hprev = Tensor::empty({B, S, H}, kd);
  Tensor cells = Tensor::empty({B, S, H}, kd), packed = Tensor::empty({B, S + 2, H}, kd);
  auto run_forward = [&](auto tag) {
    using T = decltype(tag);
    cpu::lstm_forward<T>(d, x.data<T>(), h0.data<T>(), c0.data<T>(), w_ih.data<T>(), w_hh.data<T>(), b.data<T>(),
                         bytes(mask), gates.data<T>(), hprev.data<T>(), cells.data<T>(), packed.data<T>());
  };
  if (kd == DType::Float32) run_forward(float{});
  else run_forward(double{});

  if (needs_grad({&x, &h0, &c0, &w_ih, &w_hh, &b})) {
    SavedTensor sx(x), sc0(c0), sw_ih(w_ih), sw_hh(w_hh);
    const bool want[6] = {x.requires_grad(), h0.requires_grad(), c0.requires_grad(),
                          w_ih.requires_grad(), w_hh.requires_grad(), b.requires_grad()};
    record("lstm", {x, h0, c0, w_ih, w_hh, b}, packed,
           [=](const Tensor& g) -> std::vector<Tensor> {
             refuse_double_backward("lstm", "a loop of lstm_cell");
             GradModeGuard no_grad(false);
             Tensor dout = contiguous(astype(g, kd));
             const int64_t I = d.input;
             Tensor dx = empty_if(want[0], {B, S, I}, kd), dh0 = empty_if(want[1], {B, H}, kd),
                    dc0 = empty_if(want[2], {B, H}, kd), dw_ih = empty_if(want[3], {4 * H, I}, kd),
                    dw_hh = empty_if(want[4], {4 * H, H}, kd), db = empty_if(want[5], {4 * H}, kd);
             auto run_backward = [&](auto tag) {
               using T = decltype(tag);
               cpu::lstm_backward<T>(d, dout.data<T>(), sx.get().data<T>(), sc0.get().data<T>(),
                                     sw_ih.get().data<T>(), sw_hh.get().data<T>(), bytes(mask),
                                     gates.data<T>(), hprev.data<T>(), cells.data<T>(), ptr_if<T>(dx),
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
  Tensor h0 = state_or_zeros(h0_in, a), mask = mask_bytes(mask_in);

  Tensor gates = Tensor::empty({B, S, 3 * H}, kd), hn = Tensor::empty({B, S, H}, kd);
  Tensor hprev = Tensor::empty({B, S, H}, kd), packed = Tensor::empty({B, S + 1, H}, kd);
  auto run_forward = [&](auto tag) {
    using T = decltype(tag);
    cpu::gru_forward<T>(d, x.data<T>(), h0.data<T>(), w_ih.data<T>(), w_hh.data<T>(), b_ih.data<T>(),
                        b_hh.data<T>(), bytes(mask), gates.data<T>(), hn.data<T>(), hprev.data<T>(),
                        packed.data<T>());
  };
  if (kd == DType::Float32) run_forward(float{});
  else run_forward(double{});

  if (needs_grad({&x, &h0, &w_ih, &w_hh, &b_ih, &b_hh})) {
    SavedTensor sx(x), sw_ih(w_ih), sw_hh(w_hh);
    const bool want[6] = {x.requires_grad(),    h0.requires_grad(),   w_ih.requires_grad(),
                          w_hh.requires_grad(), b_ih.requires_grad(), b_hh.requires_grad()};
    record("gru", {x, h0, w_ih, w_hh, b_ih, b_hh}, packed,
           [=](const Tensor& g) -> std::vector<Tensor> {
             refuse_double_backward("gru", "a loop of gru_cell");
             GradModeGuard no_grad(false);
             Tensor dout = contiguous(astype(g, kd));
             const int64_t I = d.input;
             Tensor dx = empty_if(want[0], {B, S, I}, kd), dh0 = empty_if(want[1], {B, H}, kd),
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
             return {dx, dh0, dw_ih, dw_hh, db_ih, db_hh};
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
