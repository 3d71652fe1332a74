// The Tensor class: properties, operators, indexing, numpy/DLPack interop, repr.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "convert.h"
#include "core/autograd.h"
#include "core/errors.h"
#include "indexing.h"
#include "ops/arith.h"
#include "ops/compare.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/matmul.h"
#include "ops/shape_ops.h"
#include "ops/unary.h"

namespace lamina::py {

namespace {

using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);

// Runs `f`; a typed error whose message does not start with `op` is re-thrown as "op: message"
// (setitem goes through expand / copy_ / the tensor conversion, whose messages name those).
template <class F>
auto named(const char* op, F&& f) -> decltype(f()) {
  auto prefixed = [op](const std::exception& e) {
    std::string msg = e.what();
    return msg.rfind(op, 0) == 0 ? msg : std::string(op) + ": " + msg;
  };
  try {
    return f();
  } catch (const ValueError& e) {
    throw ValueError(prefixed(e));
  } catch (const TypeError& e) {
    throw TypeError(prefixed(e));
  } catch (const IndexError& e) {
    throw IndexError(prefixed(e));
  }
}

nb::tuple shape_tuple(const Shape& s) {
  nb::list l;
  for (int64_t d : s) l.append(d);
  return nb::tuple(l);
}

Shape varargs_shape(nb::args args, const char* op) {
  if (args.size() == 1 && !PyLong_Check(args[0].ptr())) return shape_arg(args[0], op);
  return shape_arg(args, op);
}

nb::object scalar_value(const Tensor& t) {
  check<ValueError>(t.numel() == 1, "only one-element tensors can be converted to Python scalars, got shape ",
                    shape_str(t.shape()));
  Tensor c = contiguous(to_device(t.detach(), Device{}));
  switch (c.dtype()) {
    case DType::Bool: return nb::bool_(*c.data<bool>());
    case DType::UInt8: return nb::int_(int64_t(*c.data<uint8_t>()));
    case DType::Int32: return nb::int_(int64_t(*c.data<int32_t>()));
    case DType::Int64: return nb::int_(*c.data<int64_t>());
    default: return nb::float_(*astype(c, DType::Float64).data<double>());
  }
}

void define_binary(nb::class_<Tensor>& cls, const char* name, const char* rname, const char* iname, BinaryFn fn) {
  cls.def(name, [fn](const Tensor& a, nb::handle b) {
    Tensor y = operand(b, a);
    return run_released(a.numel() + y.numel(), [&] { return fn(a, y); });
  });
  if (rname)
    cls.def(rname, [fn](const Tensor& a, nb::handle b) {
      Tensor x = operand(b, a);
      return run_released(a.numel() + x.numel(), [&] { return fn(x, a); });
    });
  if (iname)
    cls.def(iname, [fn, iname](nb::handle self, nb::handle b) {
      Tensor& a = nb::cast<Tensor&>(self);
      Tensor result = fn(a, operand(b, a));
      check<TypeError>(result.dtype() == a.dtype() || !is_floating(result.dtype()) || is_floating(a.dtype()),
                       iname, ": result dtype ", dtype_name(result.dtype()), " cannot be cast to ",
                       dtype_name(a.dtype()), " in place");
      assign_inplace(a, result, iname);
      return nb::borrow(self);  // `t += x` keeps t the same Python object
    });
}

}  // namespace

std::string tensor_repr(const Tensor& t);

void init_tensor(nb::module_& m) {
  nb::class_<Tensor> cls(m, "Tensor", "An n-dimensional array on a device, with reverse-mode autograd.",
                         nb::is_weak_referenceable());
  cls.def(nb::init<>());
  cls.def_prop_ro("shape", [](const Tensor& t) { return shape_tuple(t.shape()); }, "The size of each axis.");
  cls.def_prop_ro("strides", [](const Tensor& t) { return shape_tuple(t.strides()); }, "Strides in elements.");
  cls.def_prop_ro("ndim", &Tensor::ndim);
  cls.def_prop_ro("size", &Tensor::numel, "Number of elements (numpy's `size`).");
  cls.def("numel", &Tensor::numel);
  cls.def_prop_ro("dtype", [](const Tensor& t) { return std::string(dtype_name(t.dtype())); });
  cls.def_prop_ro("itemsize", &Tensor::itemsize);
  cls.def_prop_ro("nbytes", [](const Tensor& t) { return t.numel() * int64_t(t.itemsize()); });
  cls.def_prop_ro("device", [](const Tensor& t) { return t.device().str(); });
  cls.def_prop_ro("is_cuda", [](const Tensor& t) { return t.device().type == Device::Type::CUDA; });
  cls.def(
      "to",
      [](const Tensor& t, nb::handle device, nb::handle dtype) {
        Tensor out = t;
        if (auto d = optional_dtype(dtype)) out = astype(out, *d);
        if (!device.is_none()) out = to_device(out, Device::parse(nb::cast<std::string>(nb::str(device))));
        return out;
      },
      nb::arg("device").none() = nb::none(), nb::arg("dtype").none() = nb::none(),
      nb::sig("def to(self, device: str | None = None, dtype: str | None = None) -> Tensor"),
      "This tensor on `device` ('cpu', 'cuda', 'cuda:N') and/or as `dtype`; itself when nothing changes.\n\n"
      "Differentiable: the gradient flows back to the source device.");
  cls.def(
      "cuda", [](const Tensor& t, int index) { return to_device(t, Device{Device::Type::CUDA, index}); },
      nb::arg("device") = 0, "This tensor on CUDA device `device` (a copy unless it is already there).");
  cls.def("cpu", [](const Tensor& t) { return to_device(t, Device{}); }, "This tensor in host memory.");
  cls.def("is_contiguous", &Tensor::is_contiguous);
  cls.def_prop_rw("requires_grad", &Tensor::requires_grad,
                  [](Tensor& t, bool v) { t.set_requires_grad(v); });
  cls.def("requires_grad_", [](Tensor& t, bool v) { t.set_requires_grad(v); return t; }, nb::arg("requires_grad") = true);
  cls.def_prop_rw(
      "grad", [](const Tensor& t) -> nb::object { return t.grad().defined() ? nb::cast(t.grad()) : nb::none(); },
      [](Tensor& t, nb::handle g) {
        if (g.is_none()) {
          t.set_grad(Tensor());
          return;
        }
        Tensor gt = nb::cast<Tensor>(g);
        check<ValueError>(gt.shape() == t.shape(), "grad: assigned gradient of shape ", shape_str(gt.shape()),
                          " does not match the tensor's shape ", shape_str(t.shape()));
        t.set_grad(gt);
      },
      nb::arg("value").none());
  cls.def_prop_ro("grad_fn", [](const Tensor& t) -> nb::object {
    return t.grad_fn() ? nb::cast(std::string(t.grad_fn()->name)) : nb::none();
  }, "Name of the op that produced this tensor, or None for a leaf.");
  cls.def_prop_ro("is_leaf", &Tensor::is_leaf);
  cls.def_prop_ro("_version", &Tensor::version);
  cls.def("retain_grad", [](const Tensor& t) { retain_grad(t); });
  cls.def("detach", &Tensor::detach, "A tensor sharing storage with no autograd history.");
  cls.def("zero_grad_", [](Tensor& t) { t.set_grad(Tensor()); });
  cls.def(
      "backward",
      [](const Tensor& t, nb::handle grad, bool retain_graph, bool create_graph) {
        std::vector<Tensor> grads;
        if (!grad.is_none()) grads.push_back(operand(grad, t));
        else {
          check<RuntimeError>(t.numel() == 1, "backward: grad can be implicitly created only for scalar outputs, got shape ",
                              shape_str(t.shape()));
          grads.push_back(full_like_value(t, 1.0));
        }
        nb::gil_scoped_release release;  // Python-defined backward functions re-acquire it
        backward({t}, grads, retain_graph, create_graph);
      },
      nb::arg("gradient").none() = nb::none(), nb::arg("retain_graph") = false, nb::arg("create_graph") = false,
      "Computes gradients of this tensor with respect to graph leaves and accumulates them in .grad.");

  cls.def("numpy", [](const Tensor& t) { return to_numpy(t); },
          "A numpy view of the data (zero copy on CPU; bfloat16 is converted to float32).");
  cls.def(
      "__array__",
      [](const Tensor& t, nb::handle dtype, nb::handle copy) {
        nb::object arr = to_numpy(t);
        if (!dtype.is_none()) arr = arr.attr("astype")(dtype);
        return arr;
      },
      nb::arg("dtype").none() = nb::none(), nb::arg("copy").none() = nb::none());
  cls.def(
      "__dlpack__",
      [](const Tensor& t, nb::kwargs kwargs) -> nb::object {
        // numpy has no bfloat16: hand out a plain (legacy) capsule for it.
        if (t.dtype() == DType::BFloat16) return nb::cast(to_ndarray(t));
        // Otherwise numpy's exporter handles the protocol's keywords (max_version, dl_device, copy).
        nb::ndarray<nb::numpy> arr(to_ndarray(t));
        return nb::cast(arr, nb::rv_policy::reference).attr("__dlpack__")(**kwargs);
      },
      "DLPack capsule sharing this tensor's memory.");
  cls.def("__dlpack_device__", [](const Tensor& t) { return nb::make_tuple(1, 0); });
  cls.def("item", [](const Tensor& t) { return scalar_value(t); }, "The value of a one-element tensor.");
  cls.def("tolist", [](const Tensor& t) { return to_numpy(contiguous(to_device(t.detach(), Device{}))).attr("tolist")(); });
  cls.def("__float__", [](const Tensor& t) { return nb::cast<double>(nb::float_(scalar_value(t))); });
  cls.def("__int__", [](const Tensor& t) { return nb::int_(scalar_value(t)); });
  cls.def("__bool__", [](const Tensor& t) {
    check<ValueError>(t.numel() == 1, "the truth value of a tensor with more than one element is ambiguous");
    return nb::cast<bool>(nb::bool_(scalar_value(t)));
  });
  cls.def("__index__", [](const Tensor& t) {
    check<TypeError>(is_integral(t.dtype()) && t.numel() == 1, "only integer one-element tensors can be used as an index");
    return nb::int_(scalar_value(t));
  });
  cls.def("__len__", [](const Tensor& t) {
    check<TypeError>(t.ndim() > 0, "len() of a 0-d tensor");
    return t.shape()[0];
  });
  cls.def("__repr__", &tensor_repr);
  cls.def("__getitem__", [](const Tensor& t, nb::handle key) { return named("index", [&] { return getitem(t, key); }); },
          nb::arg("key").none());
  cls.def("__setitem__", [](Tensor& t, nb::handle key, nb::handle value) {
    named("setitem", [&] { setitem(t, key, value); });
  }, nb::arg("key").none(), nb::arg("value").none());
  cls.def("__hash__", [](const Tensor& t) { return reinterpret_cast<intptr_t>(t.impl()); });

  define_binary(cls, "__add__", "__radd__", "__iadd__", &add);
  define_binary(cls, "__sub__", "__rsub__", "__isub__", &sub);
  define_binary(cls, "__mul__", "__rmul__", "__imul__", &mul);
  define_binary(cls, "__truediv__", "__rtruediv__", "__itruediv__", &div);
  define_binary(cls, "__floordiv__", "__rfloordiv__", "__ifloordiv__", &floor_divide);
  define_binary(cls, "__mod__", "__rmod__", "__imod__", &remainder);
  define_binary(cls, "__pow__", "__rpow__", "__ipow__", &lamina::pow);
  define_binary(cls, "__matmul__", "__rmatmul__", nullptr, &matmul);
  define_binary(cls, "__and__", "__rand__", nullptr, &logical_and);
  define_binary(cls, "__or__", "__ror__", nullptr, &logical_or);
  define_binary(cls, "__xor__", "__rxor__", nullptr, &logical_xor);
  define_binary(cls, "__eq__", nullptr, nullptr, &eq);
  define_binary(cls, "__ne__", nullptr, nullptr, &ne);
  define_binary(cls, "__lt__", nullptr, nullptr, &lt);
  define_binary(cls, "__le__", nullptr, nullptr, &le);
  define_binary(cls, "__gt__", nullptr, nullptr, &gt);
  define_binary(cls, "__ge__", nullptr, nullptr, &ge);
  cls.def("__neg__", [](const Tensor& a) { return neg(a); });
  cls.def("__pos__", [](const Tensor& a) { return a; });
  cls.def("__abs__", [](const Tensor& a) { return lamina::abs(a); });
  cls.def("__invert__", [](const Tensor& a) {
    check<TypeError>(a.dtype() == DType::Bool, "~ is only supported on bool tensors, got ", dtype_name(a.dtype()));
    return logical_not(a);
  });

  cls.def_prop_ro("T", [](const Tensor& t) {
    std::vector<int64_t> axes(size_t(t.ndim()));
    for (int64_t i = 0; i < t.ndim(); ++i) axes[size_t(i)] = t.ndim() - 1 - i;
    return permute(t, axes);
  });
  cls.def_prop_ro("mT", [](const Tensor& t) {
    check<ValueError>(t.ndim() >= 2, "mT: tensor must have at least 2 dimensions, got shape ", shape_str(t.shape()));
    return matrix_transpose(t);
  });
  cls.def("reshape", [](const Tensor& t, nb::args shape) { return reshape(t, varargs_shape(shape, "reshape")); });
  cls.def("view", [](const Tensor& t, nb::args shape) { return view(t, varargs_shape(shape, "view")); });
  cls.def("expand", [](const Tensor& t, nb::args shape) { return expand(t, varargs_shape(shape, "expand")); });
  cls.def("permute", [](const Tensor& t, nb::args axes) { return permute(t, varargs_shape(axes, "permute")); });
  cls.def("transpose", [](const Tensor& t, int64_t a0, int64_t a1) { return transpose(t, a0, a1); },
          nb::arg("axis0") = -2, nb::arg("axis1") = -1);
  cls.def("contiguous", [](const Tensor& t) { return contiguous(t); });
  cls.def("clone", [](const Tensor& t) { return clone(t); });
  cls.def("astype", [](const Tensor& t, nb::handle dtype) { return astype(t, dtype_arg(dtype)); }, nb::arg("dtype"));
  cls.def("float", [](const Tensor& t) { return astype(t, DType::Float32); });
  cls.def("double", [](const Tensor& t) { return astype(t, DType::Float64); });
  cls.def("long", [](const Tensor& t) { return astype(t, DType::Int64); });
  cls.def("int", [](const Tensor& t) { return astype(t, DType::Int32); });
  cls.def("bool", [](const Tensor& t) { return astype(t, DType::Bool); });
  cls.def("copy_", [](Tensor& t, nb::handle src) {
    named("copy_", [&] { copy_(t, operand(src, t)); });
    return t;
  });
  cls.def("fill_", [](Tensor& t, double v) {
    copy_(t, scalar_tensor(v, t.dtype()));
    return t;
  });
  cls.def("zero_", [](Tensor& t) {
    copy_(t, scalar_tensor(0.0, t.dtype()));
    return t;
  });
}

}  // namespace lamina::py
