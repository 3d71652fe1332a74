// Functional ops: lamina.add(a, b), lamina.sum(x, axis=...), ... Each accepts tensors or
// anything tensor-like (numpy arrays, lists, scalars).
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "convert.h"
#include "core/errors.h"
#include "core/host_cache.h"
#include "core/parallel.h"
#include "cpu/gemm.h"
#include "ops/arith.h"
#include "ops/compare.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/einsum.h"
#include "ops/index.h"
#include "ops/join.h"
#include "ops/linear.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/scan.h"
#include "ops/shape_ops.h"
#include "ops/softmax.h"
#include "ops/unary.h"

namespace lamina::py {

namespace {

// (a, b) with Python scalars taking the other operand's dtype.
std::pair<Tensor, Tensor> operands(nb::handle a, nb::handle b) {
  if (nb::isinstance<Tensor>(a) || !nb::isinstance<Tensor>(b)) {
    Tensor ta = as_tensor(a);
    return {ta, operand(b, ta)};
  }
  Tensor tb = nb::cast<Tensor>(b);
  return {operand(a, tb), tb};
}

// None -> all axes; int -> one axis; sequence -> those axes.
Axes axes_arg(nb::handle h, const char* op) {
  if (h.is_none()) return {};
  return shape_arg(h, op);
}

// A sequence of tensor-likes (a Tensor itself is not a sequence of tensors here).
std::vector<Tensor> tensor_list(nb::handle h, const char* op) {
  check<TypeError>(!nb::isinstance<Tensor>(h) && PySequence_Check(h.ptr()), op,
                   ": expected a sequence of tensors");
  std::vector<Tensor> out;
  for (nb::handle item : nb::borrow<nb::sequence>(h)) out.push_back(as_tensor(item));
  return out;
}

// numpy pad_width: int, (before, after), or one such entry per axis.
std::vector<std::vector<int64_t>> pad_width_arg(nb::handle h) {
  if (!PySequence_Check(h.ptr()) || nb::isinstance<Tensor>(h)) return {shape_arg(h, "pad")};
  std::vector<std::vector<int64_t>> out;
  nb::sequence seq = nb::borrow<nb::sequence>(h);
  bool nested = nb::len(seq) > 0 && PySequence_Check(seq[0].ptr());
  if (!nested) return {shape_arg(h, "pad")};
  for (nb::handle item : seq) out.push_back(shape_arg(item, "pad"));
  return out;
}

using Binary = Tensor (*)(const Tensor&, const Tensor&);
using Unary = Tensor (*)(const Tensor&);

void def_binary(nb::module_& m, const char* name, Binary fn, const char* doc) {
  m.def(name, [fn](nb::handle a, nb::handle b) {
    auto [x, y] = operands(a, b);
    return run_released(x.numel() + y.numel(), [&] { return fn(x, y); });
  }, nb::arg("a"), nb::arg("b"), doc);
}

void def_unary(nb::module_& m, const char* name, Unary fn, const char* doc) {
  m.def(name, [fn](nb::handle a) {
    Tensor x = as_tensor(a);
    return run_released(x.numel(), [&] { return fn(x); });
  }, nb::arg("x"), doc);
}

void def_reduction(nb::module_& m, const char* name, Tensor (*fn)(const Tensor&, const Axes&, bool), const char* doc) {
  m.def(name, [fn, name](nb::handle x, nb::handle axis, bool keepdims) {
    Tensor t = as_tensor(x);
    Axes axes = axes_arg(axis, name);
    return run_released(t.numel(), [&] { return fn(t, axes, keepdims); });
  }, nb::arg("x"), nb::arg("axis").none() = nb::none(), nb::arg("keepdims") = false, doc);
}

// Reductions with a ddof argument (var, std).
void def_moment(nb::module_& m, const char* name, Tensor (*fn)(const Tensor&, const Axes&, bool, double),
                const char* doc) {
  m.def(name, [fn, name](nb::handle x, nb::handle axis, bool keepdims, double ddof) {
    Tensor t = as_tensor(x);
    return fn(t, axes_arg(axis, name), keepdims, ddof);
  }, nb::arg("x"), nb::arg("axis").none() = nb::none(), nb::arg("keepdims") = false, nb::arg("ddof") = 0.0, doc);
}

// Ops along one optional axis (None: the flattened tensor): argmax, argmin.
void def_arg_reduction(nb::module_& m, const char* name, Tensor (*fn)(const Tensor&, std::optional<int64_t>, bool),
                       const char* doc) {
  m.def(name, [fn](nb::handle x, std::optional<int64_t> axis, bool keepdims) { return fn(as_tensor(x), axis, keepdims); },
        nb::arg("x"), nb::arg("axis").none() = nb::none(), nb::arg("keepdims") = false, doc);
}

// Ops along one axis with a default: softmax, log_softmax.
void def_axis_op(nb::module_& m, const char* name, Tensor (*fn)(const Tensor&, int64_t), const char* doc) {
  m.def(name, [fn](nb::handle x, int64_t axis) { return fn(as_tensor(x), axis); }, nb::arg("x"),
        nb::arg("axis") = -1, doc);
}

}  // namespace

void init_ops(nb::module_& m) {
  def_binary(m, "add", &add, "a + b, broadcasting.");
  def_binary(m, "subtract", &sub, "a - b, broadcasting.");
  def_binary(m, "multiply", &mul, "a * b, broadcasting.");
  def_binary(m, "divide", &div, "a / b (true division; integers give float32).");
  def_binary(m, "floor_divide", &floor_divide, "a // b with Python semantics.");
  def_binary(m, "remainder", &remainder, "a % b with Python semantics (sign of b).");
  def_binary(m, "power", &lamina::pow, "a ** b.");
  def_binary(m, "maximum", &maximum, "Elementwise maximum; NaN propagates.");
  def_binary(m, "minimum", &minimum, "Elementwise minimum; NaN propagates.");
  def_binary(m, "matmul", &matmul, "Matrix product with numpy semantics (batch axes broadcast).");
  m.def("linear", [](nb::handle x, nb::handle w, nb::handle b, const std::string& activation) {
    Tensor a[3] = {as_tensor(x), as_tensor(w), optional_tensor(b)};
    return run_released(a[0].numel() + a[1].numel(), [&] { return linear(a[0], a[1], a[2], activation); });
  }, nb::arg("x"), nb::arg("w"), nb::arg("b").none() = nb::none(), nb::arg("activation") = "linear",
        "activation(x @ w + b): the dense-layer op. x (..., in), w (in, out), b (out,) or None;\n"
        "activation 'linear', 'relu' or 'gelu_tanh' (GELU, tanh approximation). With a bias, float32\n"
        "on the CPU and any one floating dtype on CUDA run one GEMM with the bias and activation\n"
        "applied to each output tile in registers (no extra pass over the output).");
  def_binary(m, "equal", &eq, "a == b.");
  def_binary(m, "not_equal", &ne, "a != b.");
  def_binary(m, "less", &lt, "a < b.");
  def_binary(m, "less_equal", &le, "a <= b.");
  def_binary(m, "greater", &gt, "a > b.");
  def_binary(m, "greater_equal", &ge, "a >= b.");
  def_binary(m, "logical_and", &logical_and, "Elementwise logical and.");
  def_binary(m, "logical_or", &logical_or, "Elementwise logical or.");
  def_binary(m, "logical_xor", &logical_xor, "Elementwise logical xor.");

  def_unary(m, "logical_not", &logical_not, "Elementwise logical not.");
  def_unary(m, "isnan", &isnan, "True where x is NaN.");
  def_unary(m, "isinf", &isinf, "True where x is +-inf.");
  def_unary(m, "isfinite", &isfinite, "True where x is finite.");
  def_unary(m, "negative", &neg, "-x.");
  def_unary(m, "abs", &lamina::abs, "|x|.");
  def_unary(m, "sign", &sign, "-1, 0 or 1 (NaN stays NaN).");
  def_unary(m, "exp", &lamina::exp, "e**x.");
  def_unary(m, "log", &lamina::log, "Natural logarithm.");
  def_unary(m, "log1p", &lamina::log1p, "log(1 + x), accurate near 0.");
  def_unary(m, "expm1", &lamina::expm1, "exp(x) - 1, accurate near 0.");
  def_unary(m, "sqrt", &lamina::sqrt, "Square root.");
  def_unary(m, "rsqrt", &rsqrt, "1 / sqrt(x).");
  def_unary(m, "sin", &lamina::sin, "Sine.");
  def_unary(m, "cos", &lamina::cos, "Cosine.");
  def_unary(m, "tanh", &lamina::tanh, "Hyperbolic tangent.");
  def_unary(m, "sigmoid", &sigmoid, "1 / (1 + exp(-x)), computed stably.");
  def_unary(m, "relu", &relu, "max(x, 0).");
  def_unary(m, "selu", &selu, "Scaled exponential linear unit.");
  def_unary(m, "silu", &silu, "x * sigmoid(x) (swish).");
  def_unary(m, "softplus", &softplus, "log(1 + exp(x)), computed stably.");
  def_unary(m, "erf", &lamina::erf, "The error function.");
  def_unary(m, "square", &square, "x * x.");
  def_unary(m, "reciprocal", &reciprocal, "1 / x.");
  def_unary(m, "floor", &lamina::floor, "Round down.");
  def_unary(m, "ceil", &lamina::ceil, "Round up.");
  def_unary(m, "round", &lamina::round, "Round half to even.");
  m.def("leaky_relu", [](nb::handle x, double slope) { return leaky_relu(as_tensor(x), slope); }, nb::arg("x"),
        nb::arg("negative_slope") = 0.01, "x if x > 0 else negative_slope * x.");
  m.def("elu", [](nb::handle x, double alpha) { return elu(as_tensor(x), alpha); }, nb::arg("x"),
        nb::arg("alpha") = 1.0, "x if x > 0 else alpha * (exp(x) - 1).");
  m.def("gelu", [](nb::handle x, nb::handle approximate) {
    bool tanh_form = false;
    if (PyBool_Check(approximate.ptr())) tanh_form = approximate.ptr() == Py_True;
    else if (!approximate.is_none()) {
      check<TypeError>(nb::isinstance<nb::str>(approximate), "gelu: approximate must be 'none', 'tanh' or a bool, got ",
                       nb::cast<std::string>(nb::repr(approximate)));
      std::string s = nb::cast<std::string>(approximate);
      check<ValueError>(s == "none" || s == "tanh", "gelu: approximate must be 'none' or 'tanh', got '", s, "'");
      tanh_form = s == "tanh";
    }
    return gelu(as_tensor(x), tanh_form);
  }, nb::arg("x"), nb::arg("approximate").none() = nb::none(),
        "Gaussian error linear unit; approximate='tanh' (or True) uses the tanh form.");
  m.def("clip", [](nb::handle x, std::optional<double> lo, std::optional<double> hi) {
    return clip(as_tensor(x), lo, hi);
  }, nb::arg("x"), nb::arg("min").none() = nb::none(), nb::arg("max").none() = nb::none(), "Limits x to [min, max].");
  m.def("where", [](nb::handle c, nb::handle a, nb::handle b) {
    Tensor cond = as_tensor(c);
    auto [x, y] = operands(a, b);
    return where(cond, x, y);
  }, nb::arg("condition"), nb::arg("x"), nb::arg("y"), "condition ? x : y, broadcasting all three.");

  def_reduction(m, "sum", &sum, "Sum over `axis` (None: all axes).");
  def_reduction(m, "mean", &mean, "Mean over `axis` (None: all axes).");
  def_reduction(m, "prod", &prod, "Product over `axis` (None: all axes).");
  def_reduction(m, "max", &amax, "Maximum over `axis` (None: all axes); NaN propagates.");
  def_reduction(m, "min", &amin, "Minimum over `axis` (None: all axes); NaN propagates.");
  def_reduction(m, "logsumexp", &logsumexp, "log(sum(exp(x))) over `axis`, computed stably.");
  def_moment(m, "var", &var, "Variance over `axis` with divisor n - ddof.");
  def_moment(m, "std", &std_dev, "Standard deviation over `axis` with divisor n - ddof.");
  def_arg_reduction(m, "argmax", &argmax, "Index (int64) of the first maximum along `axis` (None: flattened).");
  def_arg_reduction(m, "argmin", &argmin, "Index (int64) of the first minimum along `axis` (None: flattened).");
  def_axis_op(m, "softmax", &softmax, "exp(x) / sum(exp(x)) along `axis`, computed stably.");
  def_axis_op(m, "log_softmax", &log_softmax, "x - logsumexp(x) along `axis`, computed stably.");
  m.def("cumsum", [](nb::handle x, std::optional<int64_t> axis) { return cumsum(as_tensor(x), axis); }, nb::arg("x"),
        nb::arg("axis").none() = nb::none(), "Running sum along `axis` (None: flattened).");

  m.def("reshape", [](nb::handle x, nb::handle shape) { return reshape(as_tensor(x), shape_arg(shape, "reshape")); },
        nb::arg("x"), nb::arg("shape"), "A view with a new shape when possible, else a copy.");
  m.def("flatten", [](nb::handle x, int64_t s, int64_t e) { return flatten(as_tensor(x), s, e); }, nb::arg("x"),
        nb::arg("start_axis") = 0, nb::arg("end_axis") = -1);
  m.def("permute", [](nb::handle x, nb::handle axes) { return permute(as_tensor(x), shape_arg(axes, "permute")); },
        nb::arg("x"), nb::arg("axes"));
  m.def("transpose", [](nb::handle x, nb::handle axes) {
    Tensor t = as_tensor(x);
    if (axes.is_none()) {
      std::vector<int64_t> rev(size_t(t.ndim()));
      for (int64_t i = 0; i < t.ndim(); ++i) rev[size_t(i)] = t.ndim() - 1 - i;
      return permute(t, rev);
    }
    return permute(t, shape_arg(axes, "transpose"));
  }, nb::arg("x"), nb::arg("axes").none() = nb::none(), "Reverses or permutes the axes (numpy.transpose).");
  m.def("swapaxes", [](nb::handle x, int64_t a0, int64_t a1) { return transpose(as_tensor(x), a0, a1); },
        nb::arg("x"), nb::arg("axis0"), nb::arg("axis1"));
  m.def("squeeze", [](nb::handle x, nb::handle axis) { return squeeze(as_tensor(x), axes_arg(axis, "squeeze")); },
        nb::arg("x"), nb::arg("axis").none() = nb::none());
  m.def("expand_dims", [](nb::handle x, int64_t axis) { return unsqueeze(as_tensor(x), axis); }, nb::arg("x"),
        nb::arg("axis"));
  m.def("unsqueeze", [](nb::handle x, int64_t axis) { return unsqueeze(as_tensor(x), axis); }, nb::arg("x"),
        nb::arg("axis"));
  m.def("broadcast_to", [](nb::handle x, nb::handle shape) { return expand(as_tensor(x), shape_arg(shape, "broadcast_to")); },
        nb::arg("x"), nb::arg("shape"), "A read-only broadcast view.");
  m.def("astype", [](nb::handle x, nb::handle dtype) { return astype(as_tensor(x), dtype_arg(dtype)); }, nb::arg("x"),
        nb::arg("dtype"));
  m.def("contiguous", [](nb::handle x) { return contiguous(as_tensor(x)); }, nb::arg("x"));

  m.def("take", [](nb::handle x, nb::handle idx, int64_t axis) { return take(as_tensor(x), as_tensor(idx), axis); },
        nb::arg("x"), nb::arg("indices"), nb::arg("axis") = 0, "numpy.take along one axis.");
  m.def("gather", [](nb::handle x, int64_t axis, nb::handle idx) { return gather(as_tensor(x), axis, as_tensor(idx)); },
        nb::arg("x"), nb::arg("axis"), nb::arg("index"), "Values at `index` along `axis` (take_along_axis).");
  m.def("scatter_add", [](nb::handle x, int64_t axis, nb::handle idx, nb::handle src) {
    return scatter_add(as_tensor(x), axis, as_tensor(idx), as_tensor(src));
  }, nb::arg("x"), nb::arg("axis"), nb::arg("index"), nb::arg("src"), "A copy of x with src added at index along axis.");
  m.def("one_hot", [](nb::handle idx, int64_t n, nb::handle dtype) {
    return one_hot(as_tensor(idx), n, optional_dtype(dtype).value_or(DType::Float32));
  }, nb::arg("indices"), nb::arg("num_classes"), nb::arg("dtype").none() = nb::none());

  m.def("concatenate", [](nb::handle ts, int64_t axis) { return concatenate(tensor_list(ts, "concatenate"), axis); },
        nb::arg("tensors"), nb::arg("axis") = 0, "Joins tensors along an existing axis (dtypes promote).");
  m.def("concat", [](nb::handle ts, int64_t axis) { return concatenate(tensor_list(ts, "concat"), axis); },
        nb::arg("tensors"), nb::arg("axis") = 0, "Alias of concatenate.");
  m.def("stack", [](nb::handle ts, int64_t axis) { return stack(tensor_list(ts, "stack"), axis); }, nb::arg("tensors"),
        nb::arg("axis") = 0, "Joins same-shaped tensors along a new axis (dtypes promote).");
  m.def("split", [](nb::handle x, nb::handle ios, int64_t axis) {
    if (PyLong_Check(ios.ptr()) || PyIndex_Check(ios.ptr())) return split(as_tensor(x), int64_arg(ios, "split", "sections"), axis);
    return split(as_tensor(x), std::vector<int64_t>(shape_arg(ios, "split")), axis);
  }, nb::arg("x"), nb::arg("indices_or_sections"), nb::arg("axis") = 0,
        "numpy.split: an int gives equal sections, a list gives split points; returns views.");
  m.def("chunk", [](nb::handle x, int64_t chunks, int64_t axis) { return chunk(as_tensor(x), chunks, axis); },
        nb::arg("x"), nb::arg("chunks"), nb::arg("axis") = 0, "torch.chunk: pieces of ceil(n / chunks), the last smaller.");
  m.def("pad", [](nb::handle x, nb::handle pw, const std::string& mode, double value) {
    return pad(as_tensor(x), pad_width_arg(pw), mode, value);
  }, nb::arg("x"), nb::arg("pad_width"), nb::arg("mode") = "constant", nb::arg("value") = 0.0,
        "numpy.pad with modes 'constant' (value), 'edge', 'reflect' and 'wrap'.");
  m.def("einsum", [](const std::string& subscripts, nb::args ops) {
    std::vector<Tensor> ts;
    for (nb::handle h : ops) ts.push_back(as_tensor(h));
    return einsum(subscripts, ts);
  }, nb::arg("subscripts"), nb::arg("operands"), "numpy.einsum (explicit or implicit output, '...' broadcast axes).");

  m.def("get_num_threads", &get_num_threads, "Threads used by CPU kernels.");
  m.def("set_num_threads", &set_num_threads, nb::arg("n"), "Sets the threads used by CPU kernels.");
  m.def(
      "cpu_memory_stats",
      [] {
        const HostCacheStats s = host_cache_stats();
        nb::dict d;
        d["cached_bytes"] = s.cached_bytes;
        d["hits"] = s.hits;
        d["misses"] = s.misses;
        return d;
      },
      nb::sig("def cpu_memory_stats() -> dict[str, int]"),
      "The host buffer cache: bytes held for reuse (freed buffers of 128 KiB and more, at most 1 GiB), "
      "requests served from it (hits) and ones that went to the system allocator (misses).");
  m.def("cpu_empty_cache", &host_empty_cache, "Returns the host buffers cached for reuse to the system.");
  m.def("cpu_isa", &cpu::gemm_isa,
        "Instruction set of the CPU matrix kernels: 'avx512', 'avx2' or 'generic' (the CPU's widest; "
        "LAMINA_CPU_ISA=avx2 or generic in the environment caps it).");
}

}  // namespace lamina::py
