// Python <-> Tensor conversion shared by the binding files.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <optional>
#include <string>

#include "core/errors.h"

#include "core/tensor.h"

namespace lamina::py {

namespace nb = nanobind;

// Any tensor-like object (Tensor, numpy array, DLPack producer, nested lists, scalar)
// as a new Tensor. Python floats become float32 and ints int64 unless dtype is given;
// numpy arrays keep their dtype.
Tensor to_tensor(nb::handle obj, std::optional<DType> dtype = std::nullopt, bool copy = true);
// A tensor-like argument of an op: a Tensor as is, anything else converted without a copy
// when possible.
Tensor as_tensor(nb::handle obj);
// None -> an undefined tensor (the op's default), else as_tensor.
Tensor optional_tensor(nb::handle obj);
// The operand of a binary op next to `other`: Python scalars are "weak" and take
// other's dtype when they fit its kind (x_float32 * 2.0 stays float32).
Tensor operand(nb::handle obj, const Tensor& other);
// A zero-copy numpy view of a CPU tensor that keeps the storage alive.
nb::object to_numpy(const Tensor& t);
nb::ndarray<> to_ndarray(const Tensor& t);
DType dtype_arg(nb::handle h);  // "float32", lamina dtype string, numpy dtype or type
std::optional<DType> optional_dtype(nb::handle h);
// A Python int (or __index__ object) as int64; one that does not fit raises `Error` naming
// `op` and `what` (never a C++ cast error).
template <class Error = ValueError>
int64_t int64_arg(nb::handle h, const char* op, const char* what) {
  nb::object i = nb::steal(PyNumber_Index(h.ptr()));
  if (!i.is_valid()) {
    PyErr_Clear();
    throw TypeError(detail::concat(op, ": ", what, " must be an integer, got ", nb::cast<std::string>(nb::repr(h))));
  }
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow)
    throw Error(detail::concat(op, ": ", what, " ", nb::cast<std::string>(nb::repr(h)), " does not fit in 64 bits"));
  return int64_t(v);
}
Shape shape_arg(nb::handle h, const char* op);  // int or sequence of ints

// Runs fn() with the GIL released when the operands are large enough for the kernel time
// to matter (releasing costs ~0.1 us, too much for tiny ops), so other Python threads run.
constexpr int64_t kReleaseGilElements = 1 << 15;
template <class Fn>
Tensor run_released(int64_t elements, Fn&& fn) {
  if (elements < kReleaseGilElements) return fn();
  nb::gil_scoped_release release;
  return fn();
}

}  // namespace lamina::py
