// The _core extension module: the list of binding areas and the one place where C++
// errors become Python exceptions.
#include <nanobind/nanobind.h>

#include "core/errors.h"

namespace nb = nanobind;

namespace lamina::py {
void init_tensor(nb::module_& m);
void init_creation(nb::module_& m);
void init_ops(nb::module_& m);
void init_autograd(nb::module_& m);
void init_conv(nb::module_& m);
void init_sequence(nb::module_& m);
void init_nn(nb::module_& m);
void init_cuda(nb::module_& m);
void init_function_wrappers(nb::module_& m);
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
  lamina::py::init_nn(m);
  lamina::py::init_cuda(m);
  lamina::py::init_function_wrappers(m);  // last: wraps every function defined above
}
