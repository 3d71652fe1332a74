// Autograd entry points: backward, grad, grad mode.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include "convert.h"
#include "core/autograd.h"
#include "core/errors.h"

#include <set>
#include <string>
#include <nanobind/stl/string.h>

namespace lamina::py {

namespace {

// Node names must outlive every node; Python-defined functions are few, so intern them.
const char* intern(const std::string& name) {
  static std::set<std::string> names;
  return names.insert(name).first->c_str();
}

// Records `output` as produced by a Python autograd.Function whose backward is `fn`.
void record_python_function(const std::string& name, const std::vector<Tensor>& inputs, Tensor output,
                            nb::callable fn) {
  if (!needs_grad(inputs)) return;
  size_t n = inputs.size();
  std::shared_ptr<nb::object> holder(new nb::object(fn), [](nb::object* p) {
    nb::gil_scoped_acquire gil;
    delete p;
  });
  record(intern(name), inputs, output, [holder, n, name](const Tensor& g) -> std::vector<Tensor> {
    nb::gil_scoped_acquire gil;
    nb::object res = (*holder)(g);
    std::vector<Tensor> grads;
    nb::tuple items = nb::isinstance<nb::tuple>(res) ? nb::borrow<nb::tuple>(res) : nb::make_tuple(res);
    check<RuntimeError>(items.size() == n, name, ".backward returned ", items.size(), " gradients for ", n, " inputs");
    for (nb::handle h : items) grads.push_back(h.is_none() ? Tensor() : nb::cast<Tensor>(h));
    return grads;
  });
}

}  // namespace

void init_autograd(nb::module_& m) {
  m.def("_record_function", &record_python_function, nb::arg("name"), nb::arg("inputs"), nb::arg("output"),
        nb::arg("backward"), "Attaches a Python-defined backward to `output` (used by autograd.Function).");
  m.def("retain_grad", &lamina::retain_grad, nb::arg("tensor"));
  m.def("is_grad_enabled", &GradMode::is_enabled, "Whether operations record gradients on this thread.");
  m.def("set_grad_enabled", &GradMode::set_enabled, nb::arg("enabled"),
        "Turns gradient recording on or off for this thread.");
  m.def(
      "backward",
      [](const std::vector<Tensor>& tensors, const std::vector<Tensor>& grads, bool retain_graph, bool create_graph) {
        lamina::backward(tensors, grads, retain_graph, create_graph);
      },
      nb::arg("tensors"), nb::arg("grad_tensors"), nb::arg("retain_graph") = false, nb::arg("create_graph") = false,
      "Accumulates gradients of `tensors` into the .grad of the leaves they depend on.");
  m.def(
      "grad",
      [](const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs, const std::vector<Tensor>& grads,
         bool retain_graph, bool create_graph, bool allow_unused) {
        std::vector<Tensor> res = lamina::grad(outputs, inputs, grads, retain_graph, create_graph, allow_unused);
        nb::list out;
        for (const Tensor& t : res) out.append(t.defined() ? nb::cast(t) : nb::none());
        return out;
      },
      nb::arg("outputs"), nb::arg("inputs"), nb::arg("grad_outputs"), nb::arg("retain_graph") = false,
      nb::arg("create_graph") = false, nb::arg("allow_unused") = false,
      "Gradients of `outputs` with respect to `inputs`, without touching any .grad.");
}

}  // namespace lamina::py
