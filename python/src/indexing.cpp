#include "indexing.h"

#include <nanobind/stl/string.h>

#include "core/backend.h"
#include "core/autograd.h"
#include "core/errors.h"
#include "ops/copy.h"
#include "ops/index.h"
#include "ops/shape_ops.h"

namespace lamina::py {

namespace {

// One entry of an index key, parsed from Python once so that gradients can replay it
// without touching Python objects.
struct IndexItem {
  enum Kind { Int, Slice, NewAxis, Ellipsis, Array } kind;
  int64_t index = 0;
  std::optional<int64_t> start, stop;
  int64_t step = 1;
  Tensor array;
};

std::optional<int64_t> opt_int(nb::handle h) {
  if (h.is_none()) return std::nullopt;
  check<TypeError>(PyIndex_Check(h.ptr()), "slice indices must be integers or None, got ",
                   nb::cast<std::string>(nb::repr(h)));
  return int64_arg<IndexError>(h, "index", "slice index");
}

IndexItem parse_item(nb::handle h, const Tensor& like) {
  IndexItem it{IndexItem::Int};
  if (h.is(nb::ellipsis())) {
    it.kind = IndexItem::Ellipsis;
  } else if (h.is_none()) {
    it.kind = IndexItem::NewAxis;
  } else if (PySlice_Check(h.ptr())) {
    it.kind = IndexItem::Slice;
    it.start = opt_int(h.attr("start"));
    it.stop = opt_int(h.attr("stop"));
    it.step = h.attr("step").is_none() ? 1 : *opt_int(h.attr("step"));
    check<ValueError>(it.step != 0, "slice step cannot be zero");
  } else if (PyIndex_Check(h.ptr()) && !PyBool_Check(h.ptr()) && !nb::isinstance<Tensor>(h) &&
             !nb::hasattr(h, "__array__")) {
    it.index = int64_arg<IndexError>(h, "index", "integer index");
  } else if (nb::isinstance<Tensor>(h) || nb::isinstance<nb::list>(h) || nb::hasattr(h, "__array__") ||
             PyBool_Check(h.ptr())) {
    it.kind = IndexItem::Array;
    it.array = nb::isinstance<Tensor>(h) ? nb::cast<Tensor>(h).detach() : to_tensor(h, std::nullopt, false);
    check<IndexError>(it.array.dtype() == DType::Bool || is_integral(it.array.dtype()),
                      "arrays used as indices must be of integer or boolean type, got ", dtype_name(it.array.dtype()));
  } else {
    throw IndexError("only integers, slices (':'), ellipsis ('...'), None and integer or boolean arrays are valid "
                     "indices, got " + nb::cast<std::string>(nb::repr(h)));
  }
  (void)like;
  return it;
}

std::vector<IndexItem> parse_key(nb::handle key, const Tensor& like) {
  std::vector<IndexItem> items;
  if (nb::isinstance<nb::tuple>(key))
    for (nb::handle h : key) items.push_back(parse_item(h, like));
  else
    items.push_back(parse_item(key, like));
  return items;
}

int64_t axes_used(const IndexItem& it) {
  if (it.kind == IndexItem::Int || it.kind == IndexItem::Slice) return 1;
  if (it.kind == IndexItem::Array) return it.array.dtype() == DType::Bool ? std::max<int64_t>(it.array.ndim(), 1) : 1;
  return 0;
}

// Applies ints/slices/None/Ellipsis; returns the view and, for the one array index
// allowed, its position in `adv` and the view axis it applies to in `adv_axis`.
Tensor apply_basic(const Tensor& t, const std::vector<IndexItem>& items, int64_t& adv, int64_t& adv_axis) {
  int64_t consumed = 0, ellipses = 0, arrays = 0;
  for (const IndexItem& it : items) {
    consumed += axes_used(it);
    ellipses += it.kind == IndexItem::Ellipsis;
    arrays += it.kind == IndexItem::Array;
  }
  check<IndexError>(ellipses <= 1, "an index can only have a single ellipsis ('...')");
  check<IndexError>(arrays <= 1, "indexing with more than one array index is not supported");
  check<IndexError>(consumed <= t.ndim(), "too many indices for tensor: tensor is ", t.ndim(), "-dimensional, but ",
                    consumed, " were indexed");
  Tensor out = t;
  int64_t axis = 0;
  adv = -1;
  adv_axis = -1;
  for (size_t i = 0; i < items.size(); ++i) {
    const IndexItem& it = items[i];
    switch (it.kind) {
      case IndexItem::Ellipsis: axis += t.ndim() - consumed; break;
      case IndexItem::NewAxis: out = unsqueeze(out, axis++); break;
      case IndexItem::Slice: out = slice(out, axis++, it.start, it.stop, it.step); break;
      case IndexItem::Int: out = select(out, axis, it.index); break;
      case IndexItem::Array:
        adv = int64_t(i);
        adv_axis = axis;
        axis += axes_used(it);
        break;
    }
  }
  return out;
}

// t[mask] = v with numpy semantics: the mask covers t's leading axes, and v is either one
// value or broadcasts to (number of selected positions, *remaining axes).
Tensor put_masked(const Tensor& t, const Tensor& mask, const Tensor& v) {
  if (mask.ndim() == 0) return masked_fill(t, to_device(mask, t.device()), v);
  int64_t k = mask.ndim();
  check<IndexError>(k <= t.ndim() && Shape(t.shape().begin(), t.shape().begin() + k) == mask.shape(),
                    "setitem: boolean index of shape ", shape_str(mask.shape()),
                    " does not match the leading axes of the tensor's shape ", shape_str(t.shape()));
  if (v.numel() == 1) {
    Shape mshape = mask.shape();
    mshape.resize(size_t(t.ndim()), 1);
    return masked_fill(t, reshape(to_device(mask, t.device()), mshape), reshape(v, {}));
  }
  Tensor m = contiguous(to_device(mask, Device{}));  // the selected rows decide the update's shape
  const bool* p = m.data<bool>();
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < m.numel(); ++i)
    if (p[i]) rows.push_back(i);
  Tensor idx = Tensor::empty({int64_t(rows.size())}, DType::Int64);
  std::copy(rows.begin(), rows.end(), idx.data<int64_t>());
  Shape flat{m.numel()};
  flat.insert(flat.end(), t.shape().begin() + k, t.shape().end());
  return reshape(index_put(reshape(t, flat), idx, v), t.shape());
}

}  // namespace

Tensor getitem(const Tensor& t, nb::handle key) {
  std::vector<IndexItem> items = parse_key(key, t);
  int64_t adv, adv_axis;
  Tensor view = apply_basic(t, items, adv, adv_axis);
  if (adv < 0) return view;
  const Tensor& idx = items[size_t(adv)].array;
  if (idx.dtype() == DType::Bool) return masked_select(view, idx, adv_axis);
  return take(view, idx, adv_axis);
}

void setitem(Tensor& t, nb::handle key, nb::handle value) {
  Tensor v = operand(value, t);
  if (!nb::isinstance<Tensor>(value)) v = to_device(v, t.device());  // Python data goes where t is
  std::vector<IndexItem> items = parse_key(key, t);
  if (items.size() == 1 && items[0].kind == IndexItem::Array) {
    const Tensor& idx = items[0].array;
    Tensor updated = idx.dtype() == DType::Bool ? put_masked(t, idx, v) : index_put(t, idx, v);
    assign_inplace(t, updated, "setitem");
    return;
  }
  int64_t adv, adv_axis;
  {
    GradModeGuard no_grad(false);
    apply_basic(t, items, adv, adv_axis);
  }
  check<IndexError>(adv < 0, "setitem: an array index is only supported as the whole key (t[idx] = v)");
  if (!needs_grad({&t, &v})) {
    check_inplace(t, false, "setitem");
    GradModeGuard no_grad(false);
    copy_(apply_basic(t, items, adv, adv_axis), v);
    return;
  }
  // Differentiable path: build the updated tensor out of place, then adopt it.
  auto region_of = [items](const Tensor& base) {
    int64_t a, ax;
    return apply_basic(base, items, a, ax);
  };
  assign_inplace(t, put_region(t, v, region_of), "setitem");
}

}  // namespace lamina::py
