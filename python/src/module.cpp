// The _core extension module: the list of binding areas and the one place where C++
// errors become Python exceptions.
#include <nanobind/nanobind.h>

#include <cstring>
#include <string>

#include "core/errors.h"

namespace nb = nanobind;

namespace {

// Every error a module-level function raises names that function. Conversions shared by
// many ops (tensor-likes, dtypes, shapes, allocation) raise without knowing which op they
// serve, so each function is wrapped once, at import, by a plain C function that calls it
// through vectorcall and, on ValueError / TypeError / IndexError / MemoryError whose message
// does not start with the function's name, re-raises the same type as "name: message".
// Cost: one extra C-level call per op; no Python frame.
void name_error(PyObject* name) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  bool ours = type == PyExc_ValueError || type == PyExc_TypeError || type == PyExc_IndexError ||
              type == PyExc_MemoryError;
  if (ours) {
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject* msg = value ? PyObject_Str(value) : nullptr;
    if (msg && PyUnicode_Tailmatch(msg, name, 0, PY_SSIZE_T_MAX, -1) != 1) {
      PyObject* text = PyUnicode_FromFormat("%U: %U", name, msg);
      PyObject* renamed = text ? PyObject_CallOneArg(type, text) : nullptr;
      Py_XDECREF(text);
      if (renamed) {
        if (tb) PyException_SetTraceback(renamed, tb);
        PyException_SetCause(renamed, nullptr);
        PyException_SetContext(renamed, nullptr);
        Py_DECREF(value);
        value = renamed;
      }
    }
    Py_XDECREF(msg);
    PyErr_Clear();
  }
  PyErr_Restore(type, value, tb);
}

// lamina.debug.detect_anomaly() installs a hook called as hook(name, inputs, result) after
// each module-level function; it raises when the result holds NaN/Inf. None (the default)
// costs one pointer test per call. The hook runs with itself uninstalled, so the ops it
// uses to inspect tensors are not checked again.
PyObject* anomaly_hook = nullptr;

PyObject* run_anomaly_hook(PyObject* name, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                           PyObject* res) {
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  PyObject* inputs = PyTuple_New(nargs + nkw);
  if (!inputs) {
    Py_DECREF(res);
    return nullptr;
  }
  for (Py_ssize_t i = 0; i < nargs + nkw; ++i) {
    Py_INCREF(args[i]);
    PyTuple_SET_ITEM(inputs, i, args[i]);
  }
  PyObject* hook = anomaly_hook;
  anomaly_hook = nullptr;
  PyObject* ok = PyObject_CallFunctionObjArgs(hook, name, inputs, res, nullptr);
  anomaly_hook = hook;
  Py_DECREF(inputs);
  if (!ok) {
    Py_DECREF(res);
    return nullptr;
  }
  Py_DECREF(ok);
  return res;
}

// self is the tuple (function, name).
PyObject* call_named(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* res = PyObject_Vectorcall(PyTuple_GET_ITEM(self, 0), args, nargs, kwnames);
  if (!res) name_error(PyTuple_GET_ITEM(self, 1));
  else if (anomaly_hook) return run_anomaly_hook(PyTuple_GET_ITEM(self, 1), args, PyVectorcall_NARGS(nargs), kwnames, res);
  return res;
}

void set_anomaly_hook(nb::handle hook) {
  PyObject* old = anomaly_hook;
  anomaly_hook = hook.is_none() ? nullptr : hook.inc_ref().ptr();
  Py_XDECREF(old);
}

void name_errors_of_functions(nb::module_& m) {
  nb::object type_of_function = nb::borrow(reinterpret_cast<PyObject*>(Py_TYPE(m.attr("add").ptr())));
  nb::list names = nb::borrow<nb::list>(PyObject_Dir(m.ptr()));
  for (nb::handle h : names) {
    std::string name = nb::cast<std::string>(h);
    nb::object fn = m.attr(h);
    if (name.rfind("__", 0) == 0 || !Py_IS_TYPE(fn.ptr(), (PyTypeObject*)type_of_function.ptr())) continue;
    // The method table entry and its strings live as long as the process (one per function).
    nb::object doc = nb::getattr(fn, "__doc__", nb::none());
    std::string doc_text = doc.is_none() ? std::string() : nb::cast<std::string>(doc);
    auto* def = new PyMethodDef{strdup(name.c_str()), (PyCFunction)(void (*)())call_named,
                                METH_FASTCALL | METH_KEYWORDS, strdup(doc_text.c_str())};
    nb::object self = nb::make_tuple(fn, nb::str(name.c_str()));
    nb::object wrapped = nb::steal(PyCFunction_NewEx(def, self.ptr(), nb::str("lamina._core").ptr()));
    if (!wrapped.is_valid()) throw nb::python_error();
    m.attr(h) = wrapped;
  }
}

}  // namespace

namespace lamina::py {
void init_tensor(nb::module_& m);
void init_creation(nb::module_& m);
void init_ops(nb::module_& m);
void init_autograd(nb::module_& m);
void init_conv(nb::module_& m);
void init_sequence(nb::module_& m);
}  // namespace lamina::py

NB_MODULE(_core, m) {
  m.doc() = "Lamina's native core: tensors, ops and autograd.";
  nb::set_leak_warnings(false);  // type objects legitimately outlive interpreter teardown
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const lamina::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const lamina::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const lamina::IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const lamina::MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const lamina::RuntimeError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "out of memory");
    } catch (const std::bad_cast&) {  // a C++ conversion the bindings did not check first
      PyErr_SetString(PyExc_TypeError, "an argument has the wrong type or does not fit in 64 bits");
    }
  });
  lamina::py::init_tensor(m);
  lamina::py::init_creation(m);
  lamina::py::init_ops(m);
  lamina::py::init_autograd(m);
  lamina::py::init_conv(m);
  lamina::py::init_sequence(m);
  name_errors_of_functions(m);
  m.def("_set_anomaly_hook", &set_anomaly_hook, nb::arg("hook").none(),
        "Installs (or with None removes) the hook lamina.debug.detect_anomaly uses.");
}
