// Python indexing (`t[key]`, `t[key] = value`) lowered to view and index ops.
#pragma once
#include "convert.h"

namespace lamina::py {

Tensor getitem(const Tensor& t, nb::handle key);
void setitem(Tensor& t, nb::handle key, nb::handle value);

}  // namespace lamina::py
