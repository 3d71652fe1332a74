// Wrappers around every module-level function, installed once at import: errors name the
// function, and lamina.debug.detect_anomaly() can inspect each result.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <cstring>
#include <string>

namespace nb = nanobind;

namespace lamina::py {

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

// The stub generator reads signatures from nanobind's own function objects, so when it is
// the one importing the module the wrappers stay out of its way.
bool imported_by_stub_generator() {
  nb::object argv = nb::module_::import_("sys").attr("argv");
  if (nb::len(argv) == 0) return false;
  std::string first = nb::cast<std::string>(nb::str(argv[0]));
  return first.size() >= 10 && first.compare(first.size() - 10, 10, "stubgen.py") == 0;
}

}  // namespace

void init_function_wrappers(nb::module_& m) {
  if (!imported_by_stub_generator()) name_errors_of_functions(m);
  m.def("_set_anomaly_hook", &set_anomaly_hook, nb::arg("hook").none(),
        "Installs (or with None removes) the hook lamina.debug.detect_anomaly uses.");
}

}  // namespace lamina::py
