// Creation functions: from data, constants, ranges, random draws.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include "convert.h"
#include "core/errors.h"
#include "core/random.h"
#include "ops/copy.h"
#include "ops/creation.h"

namespace lamina::py {

namespace {

DType dt(nb::handle h, DType fallback) { return optional_dtype(h).value_or(fallback); }

Tensor with_grad(Tensor t, bool requires_grad) {
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

Device device_arg(nb::handle h) {
  if (h.is_none()) return Device{};
  return Device::parse(nb::cast<std::string>(nb::str(h)));
}

}  // namespace

void init_creation(nb::module_& m) {
  m.def(
      "tensor",
      [](nb::handle data, nb::handle dtype, bool requires_grad, nb::handle device) {
        return with_grad(to_device(to_tensor(data, optional_dtype(dtype), true), device_arg(device)), requires_grad);
      },
      nb::arg("data"), nb::arg("dtype").none() = nb::none(), nb::arg("requires_grad") = false,
      nb::arg("device").none() = nb::none(),
      "A new tensor holding a copy of `data` (array, nested lists, scalar or tensor).\n\n"
      "Python floats become float32 and ints int64; numpy arrays keep their dtype.");
  m.def(
      "asarray", [](nb::handle data, nb::handle dtype) { return to_tensor(data, optional_dtype(dtype), false); },
      nb::arg("data"), nb::arg("dtype").none() = nb::none(),
      "Like tensor(), but shares memory with a CPU numpy array or tensor when no conversion is needed.");
  m.def(
      "from_dlpack", [](nb::handle obj) { return to_tensor(obj, std::nullopt, false); }, nb::arg("obj"),
      "A tensor sharing memory with any object that implements __dlpack__ (numpy, PyTorch CPU).");
  auto shaped = [&m](const char* name, double value, const char* doc) {
    m.def(
        name,
        [value](nb::handle shape, nb::handle dtype, bool requires_grad, nb::handle device) {
          return with_grad(full(shape_arg(shape, "zeros"), value, dt(dtype, DType::Float32), device_arg(device)), requires_grad);
        },
        nb::arg("shape"), nb::arg("dtype").none() = nb::none(), nb::arg("requires_grad") = false,
        nb::arg("device").none() = nb::none(), doc);
  };
  shaped("zeros", 0.0, "A tensor of zeros.");
  shaped("ones", 1.0, "A tensor of ones.");
  m.def(
      "empty",
      [](nb::handle shape, nb::handle dtype, bool requires_grad, nb::handle device) {
        return with_grad(Tensor::empty(shape_arg(shape, "empty"), dt(dtype, DType::Float32), device_arg(device)),
                         requires_grad);
      },
      nb::arg("shape"), nb::arg("dtype").none() = nb::none(), nb::arg("requires_grad") = false,
      nb::arg("device").none() = nb::none(),
      "A tensor with uninitialised contents.");
  m.def(
      "full",
      [](nb::handle shape, double value, nb::handle dtype, bool requires_grad, nb::handle device) {
        return with_grad(full(shape_arg(shape, "full"), value, dt(dtype, DType::Float32), device_arg(device)),
                         requires_grad);
      },
      nb::arg("shape"), nb::arg("fill_value"), nb::arg("dtype").none() = nb::none(), nb::arg("requires_grad") = false,
      nb::arg("device").none() = nb::none(),
      "A tensor filled with `fill_value`.");
  auto like = [&m](const char* name, std::optional<double> value) {
    m.def(
        name,
        [value](const Tensor& t, nb::handle dtype, bool requires_grad) {
          DType d = dt(dtype, t.dtype());
          Tensor out = value ? full(t.shape(), *value, d, t.device()) : Tensor::empty(t.shape(), d, t.device());
          return with_grad(out, requires_grad);
        },
        nb::arg("tensor"), nb::arg("dtype").none() = nb::none(), nb::arg("requires_grad") = false,
        "A tensor with the shape (and by default the dtype) of `tensor`.");
  };
  like("zeros_like", 0.0);
  like("ones_like", 1.0);
  like("empty_like", std::nullopt);
  m.def(
      "full_like",
      [](const Tensor& t, double value, nb::handle dtype, bool requires_grad) {
        return with_grad(full(t.shape(), value, dt(dtype, t.dtype()), t.device()), requires_grad);
      },
      nb::arg("tensor"), nb::arg("fill_value"), nb::arg("dtype").none() = nb::none(),
      nb::arg("requires_grad") = false);
  m.def(
      "arange",
      [](double start, nb::handle stop, double step, nb::handle dtype, nb::handle device) {
        bool all_int = true;
        double lo = start, hi;
        if (stop.is_none()) {
          lo = 0;
          hi = start;
        } else {
          check<TypeError>(PyLong_Check(stop.ptr()) || PyFloat_Check(stop.ptr()) || PyIndex_Check(stop.ptr()),
                           "arange: stop must be a number, got ", nb::cast<std::string>(nb::repr(stop)));
          if (PyFloat_Check(stop.ptr())) {
            hi = PyFloat_AsDouble(stop.ptr());
          } else {
            nb::object i = nb::steal(PyNumber_Index(stop.ptr()));
            hi = i.is_valid() ? PyLong_AsDouble(i.ptr()) : -1.0;
            if (hi == -1.0 && PyErr_Occurred()) {
              PyErr_Clear();
              throw ValueError("arange: stop must be an integer or float that fits a double, got " +
                               nb::cast<std::string>(nb::repr(stop)));
            }
          }
          all_int = PyLong_Check(stop.ptr());
        }
        all_int = all_int && lo == std::floor(lo) && step == std::floor(step);
        return to_device(arange(lo, hi, step, dt(dtype, all_int ? DType::Int64 : DType::Float32)), device_arg(device));
      },
      nb::arg("start"), nb::arg("stop").none() = nb::none(), nb::arg("step") = 1.0,
      nb::arg("dtype").none() = nb::none(), nb::arg("device").none() = nb::none(),
      "Evenly spaced values in [start, stop) (int64 for integer arguments, else float32).");
  m.def(
      "linspace",
      [](double start, double stop, int64_t num, bool endpoint, nb::handle dtype, nb::handle device) {
        return to_device(linspace(start, stop, num, endpoint, dt(dtype, DType::Float32)), device_arg(device));
      },
      nb::arg("start"), nb::arg("stop"), nb::arg("num") = 50, nb::arg("endpoint") = true,
      nb::arg("dtype").none() = nb::none(), nb::arg("device").none() = nb::none());
  m.def(
      "eye", [](int64_t n, std::optional<int64_t> mcols, int64_t k, nb::handle dtype, nb::handle device) {
        return to_device(eye(n, mcols.value_or(n), k, dt(dtype, DType::Float32)), device_arg(device));
      },
      nb::arg("n"), nb::arg("m").none() = nb::none(), nb::arg("k") = 0, nb::arg("dtype").none() = nb::none(),
      nb::arg("device").none() = nb::none());

  m.def("rand", [](nb::args shape, nb::handle dtype, nb::handle device) {
          const Shape sh = shape_arg(shape.size() == 1 && !PyLong_Check(shape[0].ptr()) ? shape[0] : nb::handle(shape), "rand");
          return rand(sh, dt(dtype, DType::Float32), device_arg(device));
        },
        nb::arg("shape"), nb::kw_only(), nb::arg("dtype").none() = nb::none(), nb::arg("device").none() = nb::none(), "Uniform samples in [0, 1).");
  m.def("randn", [](nb::args shape, nb::handle dtype, nb::handle device) {
          const Shape sh = shape_arg(shape.size() == 1 && !PyLong_Check(shape[0].ptr()) ? shape[0] : nb::handle(shape), "randn");
          return randn(sh, dt(dtype, DType::Float32), device_arg(device));
        },
        nb::arg("shape"), nb::kw_only(), nb::arg("dtype").none() = nb::none(), nb::arg("device").none() = nb::none(), "Standard normal samples.");
  m.def(
      "uniform",
      [](double low, double high, nb::handle shape, nb::handle dtype, nb::handle device) {
        return uniform(shape_arg(shape, "uniform"), low, high, dt(dtype, DType::Float32), device_arg(device));
      },
      nb::arg("low") = 0.0, nb::arg("high") = 1.0, nb::arg("shape") = nb::tuple(), nb::arg("dtype").none() = nb::none(),
      nb::arg("device").none() = nb::none());
  m.def(
      "normal",
      [](double mean, double std, nb::handle shape, nb::handle dtype, nb::handle device) {
        return normal(shape_arg(shape, "normal"), mean, std, dt(dtype, DType::Float32), device_arg(device));
      },
      nb::arg("mean") = 0.0, nb::arg("std") = 1.0, nb::arg("shape") = nb::tuple(), nb::arg("dtype").none() = nb::none(),
      nb::arg("device").none() = nb::none());
  m.def(
      "randint",
      [](int64_t low, std::optional<int64_t> high, nb::handle shape, nb::handle dtype) {
        int64_t lo = high ? low : 0, hi = high ? *high : low;
        return randint(lo, hi, shape_arg(shape, "randint"), dt(dtype, DType::Int64));
      },
      nb::arg("low"), nb::arg("high").none() = nb::none(), nb::arg("shape") = nb::tuple(),
      nb::arg("dtype").none() = nb::none(), "Integers uniform in [low, high).");
  m.def("randperm", &randperm, nb::arg("n"), "A random permutation of 0..n-1.");
  m.def("dropout_mask", &dropout_mask, nb::arg("like"), nb::arg("rate"),
        "Inverted-dropout keep mask: 1/(1-rate) with probability 1-rate, else 0.");
  m.def("_seed", [](uint64_t s) { Generator::global().seed(s); }, nb::arg("seed"));
  m.def("_get_rng_state", [] {
    auto& g = Generator::global();
    return nb::make_tuple(g.initial_seed(), g.offset());
  });
  m.def("_set_rng_state", [](uint64_t seed, uint64_t offset) { Generator::global().set_state(seed, offset); });
}

}  // namespace lamina::py
