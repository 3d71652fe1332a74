#include "ops/attention.h"

#include <cmath>
#include <limits>

#include "core/backend.h"
#include "core/autograd.h"
#include "core/errors.h"
#include "cpu/attention.h"
#if defined(LAMINA_HAVE_CUDA)
#include "kernels/launchers.h"
#endif
#include "ops/arith.h"
#include "ops/compare.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape_ops.h"
#include "ops/softmax.h"

namespace lamina {

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

struct Dims {
  Shape lead;  // leading axes shared by q, k, v
  int64_t heads, lq, lk, d, dv;
  DType out_dtype, kernel;
};

Dims check_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double dropout,
                std::optional<double> scale) {
  for (const Tensor* t : {&q, &k, &v}) check<TypeError>(t->defined(), kOp, ": got an undefined tensor");
  auto shapes = [&] {
    return shape_str(q.shape()) + ", " + shape_str(k.shape()) + ", " + shape_str(v.shape());
  };
  check<ValueError>(q.ndim() >= 2 && k.ndim() == q.ndim() && v.ndim() == q.ndim(), kOp,
                    ": q, k, v must have the same rank (at least 2), got shapes ", shapes());
  const int64_t nd = q.ndim();
  Dims d;
  d.lead.assign(q.shape().begin(), q.shape().end() - 2);
  check<ValueError>(Shape(k.shape().begin(), k.shape().end() - 2) == d.lead &&
                        Shape(v.shape().begin(), v.shape().end() - 2) == d.lead,
                    kOp, ": q, k, v must share their leading axes, got shapes ", shapes());
  d.lq = q.shape()[nd - 2], d.d = q.shape()[nd - 1], d.lk = k.shape()[nd - 2], d.dv = v.shape()[nd - 1];
  check<ValueError>(k.shape()[nd - 1] == d.d, kOp, ": q and k must have the same last axis, got shapes ", shapes());
  check<ValueError>(v.shape()[nd - 2] == d.lk, kOp, ": k and v must have the same length, got shapes ", shapes());
  d.heads = 1;
  for (int64_t s : d.lead) d.heads *= s;
  if (mask.defined()) {
    Shape full = d.lead;
    full.insert(full.end(), {d.lq, d.lk});
    try {
      check<ValueError>(broadcast_shapes(mask.shape(), full, kOp) == full, "");
    } catch (const ValueError&) {
      throw ValueError(std::string(kOp) + ": mask of shape " + shape_str(mask.shape()) +
                       " does not broadcast to the scores' shape " + shape_str(full));
    }
  }
  check<ValueError>(dropout >= 0 && dropout < 1, kOp, ": dropout must be in [0, 1), got ", dropout);
  check<ValueError>(!scale || std::isfinite(*scale), kOp, ": scale must be finite");
  DType t = promote_types(promote_types(q.dtype(), k.dtype()), v.dtype());
  check<TypeError>(is_floating(t), kOp, ": expected floating-point q, k, v, got ", dtype_name(t));
  d.out_dtype = t;
  d.kernel = kernel_dtype(t);
  check_same_device(kOp, q, k);
  check_same_device(kOp, q, v);
  if (mask.defined()) check_same_device(kOp, q, mask);
  return d;
}

// Element offset of each flattened head in a (broadcast) view with the full score shape.
std::vector<int64_t> head_offsets(const Tensor& m, const Shape& lead) {
  std::vector<int64_t> out;
  int64_t n = 1;
  for (int64_t s : lead) n *= s;
  out.reserve(size_t(n));
  for (int64_t hi = 0; hi < n; ++hi) {
    int64_t off = 0, rem = hi;
    for (size_t ax = lead.size(); ax-- > 0;) {
      off += (rem % lead[ax]) * m.strides()[ax];
      rem /= lead[ax];
    }
    out.push_back(off);
  }
  return out;
}

// Whether the CPU kernel reads an operand (lead..., rows, cols) in place: each row contiguous
// and rows at least a row apart (no broadcast or overlapping rows, which the GEMM's leading
// dimension cannot express).
bool rows_in_place(const Tensor& t) {
  const int64_t nd = t.ndim(), rows = t.shape()[nd - 2], cols = t.shape()[nd - 1];
  return (cols <= 1 || t.strides()[nd - 1] == 1) && (rows <= 1 || t.strides()[nd - 2] >= std::max<int64_t>(cols, 1));
}

// The CPU kernel's view of an operand that rows_in_place accepts.
cpu::RowsLayout rows_layout(const Tensor& t, const Dims& d) {
  const int64_t nd = t.ndim();
  cpu::RowsLayout l;
  l.head = head_offsets(t, d.lead);
  l.row = t.shape()[nd - 2] <= 1 ? std::max<int64_t>(t.shape()[nd - 1], 1) : t.strides()[nd - 2];
  return l;
}

// An operand as the CPU kernel reads it: in the kernel dtype, and a view stays a view where
// rows_in_place allows (q, k and v split from one projection are read in place).
Tensor cpu_operand(const Tensor& t, DType kd) {
  Tensor c = astype(t, kd);
  return rows_in_place(c) ? c : contiguous(c);
}

template <class T>
cpu::AttentionArgs<T> kernel_args(const Dims& d, const Tensor& mask, bool causal, double scale) {
  cpu::AttentionArgs<T> a;
  a.heads = d.heads, a.lq = d.lq, a.lk = d.lk, a.d = d.d, a.dv = d.dv;
  a.scale = T(scale);
  a.causal = causal;
  if (mask.defined()) {
    a.mask = mask.raw_data();
    a.bool_mask = mask.dtype() == DType::Bool;
    a.head_offset = head_offsets(mask, d.lead);
    const int64_t nd = mask.ndim();
    a.row_stride = mask.strides()[nd - 2];
    a.col_stride = mask.strides()[nd - 1];
  }
  return a;
}

// The composite of matmul / softmax / where. With zero_empty_rows, a query row that sees no
// key outputs zeros and passes zero gradients, as the fused kernels do; without, softmax
// gives NaN there (the reference's documented behaviour).
Tensor attention_composite(const Dims& d, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                           bool causal, double dropout, double s, bool zero_empty_rows) {
  Tensor scores = mul(matmul(q, matrix_transpose(k)), s);
  const Tensor ninf = scalar_tensor(-std::numeric_limits<double>::infinity(), scores.dtype());
  if (mask.defined()) {
    if (mask.dtype() == DType::Bool) scores = where(mask, scores, ninf);
    else scores = add(scores, mask);
  }
  if (causal) {
    Tensor rows = to_device(reshape(arange(0, double(d.lq), 1, DType::Int64), {d.lq, 1}), q.device());
    Tensor cols = to_device(reshape(arange(0, double(d.lk), 1, DType::Int64), {1, d.lk}), q.device());
    scores = where(ge(rows, cols), scores, ninf);
  }
  Tensor alive;
  if (zero_empty_rows) {
    alive = gt(amax(scores.detach(), {-1}, true), ninf);
    scores = where(alive, scores, scalar_tensor(0.0, scores.dtype()));
  }
  Tensor p = softmax(scores, -1);
  if (zero_empty_rows) p = where(alive, p, scalar_tensor(0.0, p.dtype()));
  if (dropout > 0) p = mul(p, dropout_mask(p.detach(), dropout));
  return matmul(p, v);
}

}  // namespace

#if defined(LAMINA_HAVE_CUDA)
namespace {

// The kernel needs 16-byte aligned rows; a view at an odd offset gets a fresh copy.
Tensor aligned_contiguous(const Tensor& t) {
  Tensor c = contiguous(t);
  return reinterpret_cast<uintptr_t>(c.raw_data()) % 16 == 0 ? c : clone(c);
}

// A bool mask that is the same for every query row and, per flattened head, keeps a prefix of
// the keys (True then False) is key padding: the flash kernel takes it as one key length per
// head, int32 on the device. Any other mask gives an undefined tensor. The mask is copied to
// the host to be checked; a padding mask is one row of Lk bytes per batch, so this is cheap.
Tensor key_padding_lengths(const Dims& d, const Tensor& mask) {
  if (mask.dtype() != DType::Bool) return Tensor();
  Shape full = d.lead;
  full.insert(full.end(), {d.lq, d.lk});
  Tensor host;
  {
    GradModeGuard no_grad(false);
    host = expand(contiguous(to_device(mask.detach(), Device{})), full);
  }
  const int64_t nd = host.ndim();
  if (d.lq > 1 && host.strides()[nd - 2] != 0) return Tensor();
  const int64_t col_stride = host.strides()[nd - 1];
  const uint8_t* keep = static_cast<const uint8_t*>(host.raw_data());
  Tensor lengths = Tensor::empty({d.heads}, DType::Int32);
  int32_t* length = lengths.data<int32_t>();
  const std::vector<int64_t> offsets = head_offsets(host, d.lead);
  for (size_t h = 0; h < offsets.size(); ++h) {
    const uint8_t* row = keep + offsets[h];
    int64_t n = 0;
    while (n < d.lk && row[n * col_stride]) ++n;
    for (int64_t j = n; j < d.lk; ++j)
      if (row[j * col_stride]) return Tensor();
    length[h] = int32_t(n);
  }
  return lengths;
}

// Dtypes, head sizes, lengths and head counts the FMA kernels take: float32 (which computes half
// types too, as the CPU kernel does) and float64.
bool fma_kernel_applies(const Dims& d) {
  return cuda::attention_fma_supported(d.kernel, d.d, d.dv) && d.lq > 0 && d.lk > 0 && d.heads <= 65535 &&
         d.lq < (int64_t(1) << 30) && d.lk < (int64_t(1) << 30);
}

// The mask (already viewed at the full score shape, float masks cast to the kernel dtype) as the
// FMA kernels read it: the CPU kernel's description, with the head offsets on the device.
cuda::AttentionMaskView device_mask_view(const Dims& d, const Tensor& mask) {
  cuda::AttentionMaskView view;
  if (!mask.defined()) return view;
  const std::vector<int64_t> offsets = head_offsets(mask, d.lead);
  Tensor host = Tensor::empty({int64_t(offsets.size())}, DType::Int64);
  std::copy(offsets.begin(), offsets.end(), host.data<int64_t>());
  view.values = mask;
  view.head_offsets = to_device(host, mask.device());
  view.row_stride = mask.strides()[mask.ndim() - 2];
  view.col_stride = mask.strides()[mask.ndim() - 1];
  return view;
}

// The half-type flash kernel covers bfloat16/float16 without a mask or with a key-padding mask
// (and equal q/v head sizes of 64 or 128); it returns an undefined tensor when the FMA kernels
// apply instead (the caller's common path runs them), and otherwise the composite on the
// device, through its matmul / softmax / where kernels, with the CPU kernel's zeros for query
// rows that see no key (head sizes over 128, or over 64 in float64; more than 65535 heads).
Tensor device_attention(const Dims& d, const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                        const Tensor& mask, bool causal, double s) {
  if (d.lk == 0) {  // no keys: zeros, as on the CPU
    Shape out_shape = d.lead;
    out_shape.insert(out_shape.end(), {d.lq, d.dv});
    return zeros(out_shape, d.out_dtype, q_in.device());
  }
  const DType t = q_in.dtype();
  const bool flash_shapes = d.lq > 0 && d.dv == d.d && d.heads <= 65535 && k_in.dtype() == t && v_in.dtype() == t &&
                            cuda::attention_fused_supported(t, d.d);
  Tensor kv_lens;
  if (flash_shapes && mask.defined()) {
    kv_lens = key_padding_lengths(d, mask);
    if (kv_lens.defined()) kv_lens = to_device(kv_lens, q_in.device());
  }
  const bool fused = flash_shapes && (!mask.defined() || kv_lens.defined());
  if (!fused) {
    if (fma_kernel_applies(d)) return Tensor();
    return attention_composite(d, q_in, k_in, v_in, mask, causal, 0.0, s, true);
  }
  Tensor q, k, v;
  {
    GradModeGuard no_grad(false);
    q = aligned_contiguous(reshape(q_in.detach(), {d.heads, d.lq, d.d}));
    k = aligned_contiguous(reshape(k_in.detach(), {d.heads, d.lk, d.d}));
    v = aligned_contiguous(reshape(v_in.detach(), {d.heads, d.lk, d.d}));
  }
  Tensor out = Tensor::empty({d.heads, d.lq, d.d}, t, q.device());
  Tensor lse = Tensor::empty({d.heads, d.lq}, DType::Float32, q.device());
  cuda::attention_forward(kOp, out, lse, q, k, v, s, causal, kv_lens);
  Shape out_shape = d.lead;
  out_shape.insert(out_shape.end(), {d.lq, d.d});
  Tensor result = reshape(out, out_shape);
  if (needs_grad({&q_in, &k_in, &v_in})) {
    const bool want[3] = {q_in.requires_grad(), k_in.requires_grad(), v_in.requires_grad()};
    const Shape qs = q_in.shape(), ks = k_in.shape(), vs = v_in.shape();
    const SavedTensor sq_in(q_in), sk_in(k_in), sv_in(v_in);
    record(kOp, {q_in, k_in, v_in}, result, [=](const Tensor& g) -> std::vector<Tensor> {
      if (GradMode::is_enabled()) {  // the composite in float32, as the CPU computes half types
        const std::vector<Tensor> in{sq_in.get(), sk_in.get(), sv_in.get()};
        return composite_vjp(in, g, [&] {
          auto wide = [](const Tensor& x) { return astype(x, DType::Float32); };
          return astype(attention_composite(d, wide(in[0]), wide(in[1]), wide(in[2]), mask, causal, 0.0, s, true), t);
        });
      }
      GradModeGuard no_grad(false);
      Tensor d_out = aligned_contiguous(reshape(astype(g, t), {d.heads, d.lq, d.d}));
      Tensor dq = Tensor::empty(q.shape(), t, q.device()), dk = Tensor::empty(k.shape(), t, q.device()),
             dv = Tensor::empty(v.shape(), t, q.device());
      cuda::attention_backward(kOp, dq, dk, dv, q, k, v, out, lse, d_out, s, causal, kv_lens);
      return {want[0] ? reshape(dq, qs) : Tensor(), want[1] ? reshape(dk, ks) : Tensor(),
              want[2] ? reshape(dv, vs) : Tensor()};
    });
  }
  return result;
}

}  // namespace
#endif

Tensor scaled_dot_product_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                              bool causal, double dropout, std::optional<double> scale) {
  Dims d = check_args(q, k, v, mask, dropout, scale);
  const double s = scale ? *scale : 1.0 / std::sqrt(double(std::max<int64_t>(d.d, 1)));
  return attention_composite(d, q, k, v, mask, causal, dropout, s, false);
}

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& mask_in,
                                    bool causal, double dropout, std::optional<double> scale) {
  Dims d = check_args(q_in, k_in, v_in, mask_in, dropout, scale);
  const bool float_mask_grad = mask_in.defined() && mask_in.dtype() != DType::Bool && mask_in.requires_grad();
  if (dropout > 0 || float_mask_grad)
    return scaled_dot_product_attention_reference(q_in, k_in, v_in, mask_in, causal, dropout, scale);
  const double s = scale ? *scale : 1.0 / std::sqrt(double(std::max<int64_t>(d.d, 1)));
  const Device dev = q_in.device();
  const bool on_device = is_cuda(dev);
  if (on_device) {
    LAMINA_CUDA_BRANCH(kOp, {
      Tensor result = device_attention(d, q_in, k_in, v_in, mask_in, causal, s);
      if (result.defined()) return result;
    });
  }
  // The fused float32/float64 kernels: the CPU's, or the device's FMA kernels.
  const DType kd = d.kernel;
  auto operand = [&](const Tensor& t) { return on_device ? contiguous(astype(t, kd)) : cpu_operand(t, kd); };
  Tensor q = operand(q_in), k = operand(k_in), v = operand(v_in);
  Tensor mask;
  if (mask_in.defined()) {
    // Cast the small, unbroadcast mask; then view it at the full score shape.
    Shape full = d.lead;
    full.insert(full.end(), {d.lq, d.lk});
    Tensor m = mask_in.detach();
    if (m.dtype() != DType::Bool) m = astype(m, kd);
    mask = expand(m, full);
  }
  // The CPU kernel's arguments, with the operands' layouts.
  auto cpu_args = [&](auto tag) {
    auto a = kernel_args<decltype(tag)>(d, mask, causal, s);
    a.q = rows_layout(q, d);
    a.k = rows_layout(k, d);
    a.v = rows_layout(v, d);
    return a;
  };
  Shape out_shape = d.lead;
  out_shape.insert(out_shape.end(), {d.lq, d.dv});
  Shape lse_shape = d.lead;
  lse_shape.push_back(d.lq);
  Tensor out = Tensor::empty(out_shape, kd, dev), lse = Tensor::empty(lse_shape, kd, dev);
#if defined(LAMINA_HAVE_CUDA)
  // The kernels' (heads, L, D) views of the contiguous operands.
  auto heads_view = [heads = d.heads](const Tensor& t) {
    GradModeGuard no_grad(false);
    return reshape(t.detach(), {heads, t.shape()[t.ndim() - 2], t.shape().back()});
  };
  const cuda::AttentionMaskView mask_view = on_device ? device_mask_view(d, mask) : cuda::AttentionMaskView();
#endif
  if (out.numel() > 0) {
    if (d.lk == 0) {
      GradModeGuard no_grad(false);
      out = zeros(out_shape, kd, dev);
    } else if (on_device) {
      LAMINA_CUDA_BRANCH(kOp, cuda::attention_forward_fma(kOp, heads_view(out), reshape(lse, {d.heads, d.lq}),
                                                          heads_view(q), heads_view(k), heads_view(v), s, causal,
                                                          mask_view));
    } else if (kd == DType::Float32) {
      cpu::attention_forward(cpu_args(float{}), q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(),
                             lse.data<float>());
    } else {
      cpu::attention_forward(cpu_args(double{}), q.data<double>(), k.data<double>(), v.data<double>(),
                             out.data<double>(), lse.data<double>());
    }
  }
  if (needs_grad({&q, &k, &v}) && d.lk > 0 && out.numel() > 0) {
    SavedTensor sq(q), sk(k), sv(v);
    Tensor out_saved = out.detach();  // a detached output avoids a node -> output -> node cycle
    const bool want[3] = {q.requires_grad(), k.requires_grad(), v.requires_grad()};
    record(kOp, {q, k, v}, out, [=](const Tensor& g) -> std::vector<Tensor> {
      if (GradMode::is_enabled()) {
        const std::vector<Tensor> in{sq.get(), sk.get(), sv.get()};
        return composite_vjp(in, g, [&] { return attention_composite(d, in[0], in[1], in[2], mask, causal, 0.0, s, true); });
      }
      GradModeGuard no_grad(false);
      Tensor dout = on_device ? contiguous(astype(g, kd)) : cpu_operand(g, kd);
      Tensor dq = Tensor::empty(sq.get().shape(), kd, dev), dk = Tensor::empty(sk.get().shape(), kd, dev),
             dv = Tensor::empty(sv.get().shape(), kd, dev);
      if (on_device) {
        LAMINA_CUDA_BRANCH(kOp, cuda::attention_backward_fma(
                                    kOp, heads_view(dq), heads_view(dk), heads_view(dv), heads_view(sq.get()),
                                    heads_view(sk.get()), heads_view(sv.get()), heads_view(out_saved),
                                    reshape(lse, {d.heads, d.lq}), heads_view(dout), s, causal, mask_view));
        return {want[0] ? dq : Tensor(), want[1] ? dk : Tensor(), want[2] ? dv : Tensor()};
      }
      auto run = [&](auto tag) {
        using T = decltype(tag);
        cpu::AttentionArgs<T> a = kernel_args<T>(d, mask, causal, s);
        a.q = rows_layout(sq.get(), d);
        a.k = rows_layout(sk.get(), d);
        a.v = rows_layout(sv.get(), d);
        a.dout = rows_layout(dout, d);
        cpu::attention_backward(a, sq.get().data<T>(), sk.get().data<T>(), sv.get().data<T>(), out_saved.data<T>(),
                                lse.data<T>(), dout.data<T>(), dq.data<T>(), dk.data<T>(), dv.data<T>());
      };
      if (kd == DType::Float32) run(float{});
      else run(double{});
      return {want[0] ? dq : Tensor(), want[1] ? dk : Tensor(), want[2] ? dv : Tensor()};
    });
  }
  return kd == d.out_dtype ? out : astype(out, d.out_dtype);
}

}  // namespace lamina
