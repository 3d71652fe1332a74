// numpy-like repr: tensor([[1., 2.], ...], dtype=float64, requires_grad=True).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include "convert.h"
#include "core/autograd.h"
#include "ops/copy.h"

using namespace nanobind::literals;

namespace lamina::py {

std::string tensor_repr(const Tensor& t) {
  nb::module_ np = nb::module_::import_("numpy");
  nb::object arr = to_numpy(contiguous(to_device(t.detach(), Device{})));
  std::string body = nb::cast<std::string>(np.attr("array2string")(
      arr, "separator"_a = ", ", "prefix"_a = "tensor(", "threshold"_a = 1000, "edgeitems"_a = 3));
  std::string out = "tensor(" + body;
  if (t.dtype() != DType::Float32 && t.dtype() != DType::Int64 && t.dtype() != DType::Bool)
    out += std::string(", dtype=") + dtype_name(t.dtype());
  if (t.numel() == 0) out += std::string(", shape=") + shape_str(t.shape());
  if (t.device().type != Device::Type::CPU) out += ", device='" + t.device().str() + "'";
  if (t.grad_fn()) out += std::string(", grad_fn=<") + t.grad_fn()->name + ">";
  else if (t.requires_grad()) out += ", requires_grad=True";
  return out + ")";
}

}  // namespace lamina::py
