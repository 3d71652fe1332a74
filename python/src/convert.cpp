#include "convert.h"

#include <nanobind/stl/string.h>

#include "core/errors.h"
#include "cpu/copy.h"
#include "ops/copy.h"

namespace lamina::py {

namespace {

std::optional<DType> from_dlpack_dtype(nb::dlpack::dtype d) {
  using C = nb::dlpack::dtype_code;
  if (d.lanes != 1) return std::nullopt;
  switch (C(d.code)) {
    case C::Bool: return DType::Bool;
    case C::UInt: if (d.bits == 8) return DType::UInt8; break;
    case C::Int:
      if (d.bits == 32) return DType::Int32;
      if (d.bits == 64) return DType::Int64;
      break;
    case C::Float:
      if (d.bits == 16) return DType::Float16;
      if (d.bits == 32) return DType::Float32;
      if (d.bits == 64) return DType::Float64;
      break;
    case C::Bfloat: if (d.bits == 16) return DType::BFloat16; break;
    default: break;
  }
  return std::nullopt;
}

nb::dlpack::dtype to_dlpack_dtype(DType t) {
  using C = nb::dlpack::dtype_code;
  nb::dlpack::dtype d{};
  d.lanes = 1;
  d.bits = uint8_t(dtype_size(t) * 8);
  switch (t) {
    case DType::Bool: d.code = uint8_t(C::Bool); break;
    case DType::UInt8: d.code = uint8_t(C::UInt); break;
    case DType::Int32: case DType::Int64: d.code = uint8_t(C::Int); break;
    case DType::BFloat16: d.code = uint8_t(C::Bfloat); break;
    default: d.code = uint8_t(C::Float); break;
  }
  return d;
}

nb::module_& numpy() {
  static nb::module_* np = new nb::module_(nb::module_::import_("numpy"));
  return *np;
}

// Wraps an ndarray's memory as a Tensor (zero copy); the ndarray keeps its owner alive.
Tensor wrap_ndarray(const nb::ndarray<nb::ro>& arr, nb::handle source) {
  auto dt = from_dlpack_dtype(arr.dtype());
  if (!dt) throw TypeError("tensor: unsupported array dtype (code " + std::to_string(int(arr.dtype().code)) +
                           ", " + std::to_string(int(arr.dtype().bits)) + " bits)");
  check<TypeError>(arr.device_type() == nb::device::cpu::value, "tensor: only CPU arrays can be imported");
  Shape shape(arr.ndim()), strides(arr.ndim());
  int64_t lo = 0, hi = 0;
  for (size_t i = 0; i < arr.ndim(); ++i) {
    shape[i] = int64_t(arr.shape(i));
    strides[i] = arr.stride_ptr() ? arr.stride(i) : 0;
  }
  if (!arr.stride_ptr()) strides = contiguous_strides(shape);
  bool empty = false;
  for (size_t i = 0; i < arr.ndim(); ++i) {
    if (shape[i] == 0) empty = true;
    int64_t ext = (shape[i] - 1) * strides[i];
    (ext < 0 ? lo : hi) += ext;
  }
  size_t isz = dtype_size(*dt);
  char* data = static_cast<char*>(const_cast<void*>(static_cast<const void*>(arr.data())));
  char* begin = empty ? data : data + lo * int64_t(isz);
  size_t nbytes = empty ? 0 : size_t(hi - lo + 1) * isz;
  auto owner = std::shared_ptr<void>(new nb::object(nb::borrow(source)), [](void* p) {
    nb::gil_scoped_acquire gil;
    delete static_cast<nb::object*>(p);
  });
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::wrap(begin, nbytes, owner);
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = empty ? 0 : -lo;
  impl->dtype = *dt;
  return Tensor(std::move(impl));
}

}  // namespace

DType dtype_arg(nb::handle h) {
  if (nb::isinstance<nb::str>(h)) return dtype_from_name(nb::cast<std::string>(h));
  if (h.is(nb::handle((PyObject*)&PyFloat_Type))) return DType::Float32;
  if (h.is(nb::handle((PyObject*)&PyLong_Type))) return DType::Int64;
  if (h.is(nb::handle((PyObject*)&PyBool_Type))) return DType::Bool;
  if (nb::hasattr(h, "lamina_dtype")) return dtype_from_name(nb::cast<std::string>(h.attr("lamina_dtype")));
  try {
    nb::object d = numpy().attr("dtype")(h);
    return dtype_from_name(nb::cast<std::string>(d.attr("name")));
  } catch (const nb::python_error&) {
    throw TypeError("cannot interpret " + nb::cast<std::string>(nb::repr(h)) + " as a dtype");
  }
}

std::optional<DType> optional_dtype(nb::handle h) {
  if (!h.is_valid() || h.is_none()) return std::nullopt;
  return dtype_arg(h);
}

Shape shape_arg(nb::handle h, const char* op) {
  Shape s;
  if (PyLong_Check(h.ptr()) && !PyBool_Check(h.ptr())) {
    s.push_back(int64_arg<MemoryError>(h, op, "shape entry"));
  } else if (nb::isinstance<nb::tuple>(h) || nb::isinstance<nb::list>(h)) {
    for (nb::handle item : h) {
      check<TypeError>(PyLong_Check(item.ptr()) || PyIndex_Check(item.ptr()), op,
                       ": shape entries must be integers, got ", nb::cast<std::string>(nb::repr(item)));
      s.push_back(int64_arg<MemoryError>(item, op, "shape entry"));
    }
  } else {
    throw TypeError(detail::concat(op, ": shape must be an int or a sequence of ints, got ",
                                   nb::cast<std::string>(nb::repr(h))));
  }
  return s;
}

Tensor to_tensor(nb::handle obj, std::optional<DType> dtype, bool copy) {
  if (nb::isinstance<Tensor>(obj)) {
    Tensor t = nb::cast<Tensor>(obj);
    Tensor out = dtype && *dtype != t.dtype() ? astype(t.detach(), *dtype) : (copy ? clone(t.detach()) : t);
    return out;
  }
  if (PyBool_Check(obj.ptr()) || PyLong_Check(obj.ptr()) || PyFloat_Check(obj.ptr())) {
    DType t = dtype ? *dtype : PyBool_Check(obj.ptr()) ? DType::Bool : PyLong_Check(obj.ptr()) ? DType::Int64 : DType::Float32;
    Tensor out = Tensor::empty({}, t);
    double v;
    if (PyLong_Check(obj.ptr()) && !PyBool_Check(obj.ptr())) {
      int overflow = 0;
      long long iv = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
      check<ValueError>(!overflow, "tensor: Python int ", nb::cast<std::string>(nb::repr(obj)), " does not fit in int64");
      if (t == DType::Int64) {
        *out.data<int64_t>() = iv;
        return out;
      }
      v = double(iv);
    } else {
      v = PyFloat_AsDouble(obj.ptr());
    }
    cpu::fill(out, v);
    return out;
  }
  bool is_sequence = nb::isinstance<nb::list>(obj) || nb::isinstance<nb::tuple>(obj);
  nb::object arr_obj = nb::borrow(obj);
  if (!nb::hasattr(obj, "__dlpack__") || is_sequence) {
    nb::object arr;
    try {
      arr = numpy().attr("asarray")(obj);
    } catch (const nb::python_error& e) {
      throw TypeError(std::string("tensor: cannot convert ") + nb::cast<std::string>(nb::type_name(obj.type())) +
                      " to a tensor: " + e.what());
    }
    std::string kind = nb::cast<std::string>(arr.attr("dtype").attr("kind"));
    if (kind != "f" && kind != "i" && kind != "u" && kind != "b")
      throw TypeError("tensor: cannot convert " + nb::cast<std::string>(nb::type_name(obj.type())) +
                      " holding data of numpy dtype " + nb::cast<std::string>(arr.attr("dtype").attr("name")) +
                      " to a tensor");
    if (is_sequence && !dtype) {
      if (kind == "f") dtype = DType::Float32;
      else if (kind == "i" || kind == "u") dtype = DType::Int64;
    }
    if (kind == "i" || kind == "u") {
      std::string name = nb::cast<std::string>(arr.attr("dtype").attr("name"));
      if (name != "int32" && name != "int64" && name != "uint8")
        arr = arr.attr("astype")(nb::str(name == "uint64" || name == "uint32" ? "int64" : "int64"));
    }
    arr_obj = arr;
  }
  nb::ndarray<nb::ro> nd;
  if (!nb::try_cast(arr_obj, nd))
    throw TypeError(std::string("tensor: cannot convert ") + nb::cast<std::string>(nb::type_name(obj.type())) +
                    " to a tensor");
  Tensor view = wrap_ndarray(nd, arr_obj);
  if (!copy && (!dtype || *dtype == view.dtype())) return view;
  Tensor out = Tensor::empty(view.shape(), dtype ? *dtype : view.dtype());
  cpu::copy_cast(out, view);
  return out;
}

Tensor as_tensor(nb::handle obj) {
  if (nb::isinstance<Tensor>(obj)) return nb::cast<Tensor>(obj);
  return to_tensor(obj, std::nullopt, false);
}

Tensor optional_tensor(nb::handle obj) { return obj.is_none() ? Tensor() : as_tensor(obj); }

Tensor operand(nb::handle obj, const Tensor& other) {
  if (nb::isinstance<Tensor>(obj)) return nb::cast<Tensor>(obj);
  DType o = other.dtype();
  if (PyBool_Check(obj.ptr())) return to_tensor(obj, o);
  if (PyLong_Check(obj.ptr())) return to_tensor(obj, o == DType::Bool ? DType::Int64 : o);
  if (PyFloat_Check(obj.ptr())) return to_tensor(obj, is_floating(o) ? o : DType::Float32);
  return to_tensor(obj, std::nullopt, false);
}

nb::ndarray<> to_ndarray(const Tensor& t) {
  check<TypeError>(t.device().type == Device::Type::CPU, "numpy: the tensor is on ", t.device().str(),
                   "; call .cpu() first");
  auto* keep = new std::shared_ptr<Storage>(t.storage());
  nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<std::shared_ptr<Storage>*>(p); });
  std::vector<size_t> shape(t.shape().begin(), t.shape().end());
  return nb::ndarray<>(t.raw_data(), shape.size(), shape.data(), owner, t.strides().data(), to_dlpack_dtype(t.dtype()),
                       nb::device::cpu::value, 0);
}

nb::object to_numpy(const Tensor& t) {
  Tensor src = t;
  if (t.dtype() == DType::BFloat16) src = astype(t.detach(), DType::Float32);  // numpy has no bfloat16
  nb::ndarray<nb::numpy> arr(to_ndarray(src));
  return nb::cast(arr, nb::rv_policy::reference);
}

}  // namespace lamina::py
