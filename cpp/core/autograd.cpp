#include "core/autograd.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "core/errors.h"
#include "ops/arith.h"
#include "ops/copy.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/shape_ops.h"

namespace lamina {

namespace {
thread_local bool grad_enabled = true;
}

bool GradMode::is_enabled() { return grad_enabled; }
void GradMode::set_enabled(bool enabled) { grad_enabled = enabled; }

const Tensor& SavedTensor::get() const {
  if (tensor_.defined() && tensor_.version() != version_)
    throw RuntimeError(detail::concat(
        "one of the tensors needed for gradient computation has been modified by an in-place "
        "operation (saved at version ", version_, ", now version ", tensor_.version(), ")"));
  return tensor_;
}

void release_node(std::shared_ptr<Node>&& node) {
  thread_local std::vector<std::shared_ptr<Node>> pending;
  thread_local bool draining = false;
  if (!node) return;
  if (node.use_count() > 1) {
    node.reset();
    return;
  }
  pending.push_back(std::move(node));
  if (draining) return;
  draining = true;
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    n.reset();
  }
  draining = false;
}

Node::~Node() {
  VjpFn fn = std::move(vjp);
  fn = nullptr;
  for (Edge& e : next) release_node(std::move(e.node));
}

std::vector<Tensor> composite_vjp(const std::vector<Tensor>& inputs, const Tensor& grad_output,
                                  const std::function<Tensor()>& composite) {
  std::vector<Tensor> wanted, result(inputs.size());
  std::vector<size_t> where;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) {
      wanted.push_back(inputs[i]);
      where.push_back(i);
    }
  if (wanted.empty()) return result;
  GradModeGuard record(true);
  const Tensor out = composite();
  // Only the composite's graph is walked: grad() skips what lies beyond the inputs.
  std::vector<Tensor> grads = grad({out}, wanted, {grad_output}, true, true, true);
  for (size_t k = 0; k < where.size(); ++k) result[where[k]] = std::move(grads[k]);
  return result;
}

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(const char* name, const std::vector<Tensor>& inputs, Tensor& out, VjpFn vjp) {
  auto node = std::make_shared<Node>();
  node->name = name;
  node->vjp = std::move(vjp);
  node->next.reserve(inputs.size());
  node->inputs.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined() && t.requires_grad()) {
      if (t.is_leaf()) e.leaf = t.impl_ptr();
      else e.node = t.grad_fn();
    }
    node->next.push_back(std::move(e));
    node->inputs.push_back(t.defined() ? InputMeta{t.shape(), t.dtype()} : InputMeta{{}, DType::Float32});
  }
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
}

void retain_grad(const Tensor& t) {
  check<RuntimeError>(t.requires_grad(), "retain_grad: the tensor does not require grad");
  if (t.is_leaf()) return;
  t.grad_fn()->retained_output = t.impl_ptr();
}

namespace {

// Nothing but this handle sees the tensor or its memory, so it may be changed in place.
bool exclusively_owned(const Tensor& t) {
  return t.is_contiguous() && t.impl_ptr().use_count() == 1 && t.storage().use_count() == 1 && t.offset() == 0;
}

// acc += g may run in place: acc is held by `handles` handles (all the caller's), owns its
// memory alone, and g matches it.
bool summable_in_place(const Tensor& acc, const Tensor& g, long handles) {
  return acc.is_contiguous() && acc.impl_ptr().use_count() == handles && acc.storage().use_count() == 1 &&
         acc.offset() == 0 && acc.dtype() == g.dtype() && acc.shape() == g.shape() && acc.device() == g.device();
}

Tensor accumulate(const Tensor& acc, const Tensor& g) { return acc.defined() ? add(acc, g) : g; }

// A gradient sum in the engine's buffers: in place when nothing else sees the running sum
// and no graph of the backward pass is being built.
void accumulate_into(Tensor& acc, const Tensor& g, bool create_graph) {
  if (!acc.defined()) {
    acc = g;
  } else if (!create_graph && summable_in_place(acc, g, 1)) {
    add_into(acc, g);
  } else {
    acc = add(acc, g);
  }
}

// Makes a gradient fit the input it flows into: same dtype, and its own memory when it
// becomes a leaf's .grad (so later in-place updates of .grad touch nothing else).
Tensor conform(const Tensor& g, const InputMeta& meta, const char* node_name) {
  if (g.shape() != meta.shape)
    throw RuntimeError(detail::concat("backward of ", node_name, " produced a gradient of shape ",
                                      shape_str(g.shape()), " for an input of shape ",
                                      shape_str(meta.shape)));
  return g.dtype() == meta.dtype ? g : astype(g, meta.dtype);
}

Tensor own(const Tensor& g) { return exclusively_owned(g) ? g : clone(g); }

// The strides that lay `shape` out densely in the axis order of `strides` (by decreasing
// stride), when `strides` are those (sides of 1 aside): a permutation of a contiguous layout.
std::optional<Shape> dense_permuted_strides(const Shape& shape, const Shape& strides) {
  const size_t nd = shape.size();
  if (strides.size() != nd) return std::nullopt;
  std::vector<size_t> order(nd);
  for (size_t i = 0; i < nd; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return strides[a] > strides[b]; });
  Shape laid(nd);
  int64_t step = 1;
  for (size_t i = nd; i-- > 0;) {
    const size_t axis = order[i];
    if (shape[axis] != 1 && strides[axis] != step) return std::nullopt;
    laid[axis] = step;
    step *= shape[axis];
  }
  return laid;
}

// A gradient buffer of `meta`'s shape with unset values, laid out like `strides` when those
// are a permutation of a contiguous layout, else contiguous.
Tensor empty_laid_out(const InputMeta& meta, const Shape& strides, const Device& device) {
  const int64_t n = checked_numel(meta.shape, "empty");
  std::optional<Shape> laid = n > 0 ? dense_permuted_strides(meta.shape, strides) : std::nullopt;
  if (!laid || *laid == contiguous_strides(meta.shape)) return Tensor::empty(meta.shape, meta.dtype, device);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Tensor::empty({n}, meta.dtype, device).storage();
  impl->shape = meta.shape;
  impl->strides = std::move(*laid);
  impl->dtype = meta.dtype;
  return Tensor(std::move(impl));
}

// Whether a gradient buffer may be written in place: nothing else holds it or its memory,
// and no two of its elements share an address.
bool writable_in_place(const Tensor& acc) {
  return acc.impl_ptr().use_count() == 1 && acc.storage().use_count() == 1 &&
         dense_permuted_strides(acc.shape(), acc.strides()).has_value();
}

struct Engine {
  Engine(bool retain, bool create) : retain_graph(retain), create_graph(create) {}
  bool retain_graph;
  bool create_graph;
  // grad() mode: capture gradients here instead of accumulating into .grad.
  std::unordered_map<TensorImpl*, size_t> capture_leaf;
  std::unordered_map<Node*, size_t> capture_node;
  std::vector<Tensor> captured;

  void deliver_leaf(const std::shared_ptr<TensorImpl>& leaf, const Tensor& g) {
    auto it = capture_leaf.find(leaf.get());
    if (it != capture_leaf.end()) {
      captured[it->second] = accumulate(captured[it->second], g);
      return;
    }
    if (!capture_leaf.empty() || !capture_node.empty()) return;
    if (!leaf->requires_grad) return;
    // Nothing but the leaf holds its .grad (no Python handle, no graph): sum in place, as
    // PyTorch does, instead of allocating a new gradient per backward.
    Tensor prev(leaf->grad);
    if (prev.defined() && !create_graph && !prev.requires_grad() && summable_in_place(prev, g, 2)) {
      add_into(prev, g);
      return;
    }
    Tensor next = prev.defined() ? add(prev, g) : (create_graph ? g : own(g));
    if (!create_graph) next = next.detach();
    leaf->grad = next.impl_ptr();
  }

  // grad() mode: the nodes no captured input can be reached from. Their gradients are never
  // computed (a gradient with respect to a layer's input need not run the layers before it).
  std::unordered_set<Node*> irrelevant;

  std::unordered_map<Node*, Tensor> buffer;  // the gradient gathered so far for each node's output
  // Buffers that skipped their zero fill (see Node::PickedPart): the ranges of one axis
  // written so far; every other value is unset until settled().
  struct Written {
    int64_t axis;
    std::vector<std::pair<int64_t, int64_t>> ranges;
  };
  std::unordered_map<Node*, Written> partly_written;

  // buffer[n], with zeros wherever no view's gradient was written.
  Tensor& settled(Node* n) {
    Tensor& acc = buffer[n];
    auto it = partly_written.find(n);
    if (it == partly_written.end()) return acc;
    Written w = std::move(it->second);
    partly_written.erase(it);
    std::sort(w.ranges.begin(), w.ranges.end());
    int64_t from = 0;
    for (const auto& [begin, end] : w.ranges) {
      if (from < begin) fill_memory(slice(acc, w.axis, from, begin, 1), 0.0);
      from = std::max(from, end);
    }
    if (from < acc.shape()[size_t(w.axis)]) fill_memory(slice(acc, w.axis, from, std::nullopt, 1), 0.0);
    return acc;
  }

  // Writes the gradient g of a view that picks part of its input into that part of the
  // input's gradient buffer: a copy into a buffer without a zero fill while the views
  // arriving pick disjoint ranges of one axis (q, k and v of one projection), else an add
  // into a settled buffer.
  void add_to_view(const Node& view_node, const Tensor& g) {
    Node* consumer = view_node.next[0].node.get();
    const Node::PickedPart& pick = *view_node.picked_part;
    Tensor& acc = buffer[consumer];
    if (!acc.defined()) {
      acc = empty_laid_out(view_node.inputs[0], pick.input_strides, g.device());
      if (pick.axis >= 0) {
        partly_written[consumer] = Written{pick.axis, {{pick.begin, pick.end}}};
        copy_(pick.same_view(acc), g);
        return;
      }
      fill_memory(acc, 0.0);
    } else if (auto it = partly_written.find(consumer); it != partly_written.end()) {
      auto overlaps = [&](const std::pair<int64_t, int64_t>& r) { return r.first < pick.end && pick.begin < r.second; };
      if (pick.axis == it->second.axis &&
          std::none_of(it->second.ranges.begin(), it->second.ranges.end(), overlaps)) {
        it->second.ranges.emplace_back(pick.begin, pick.end);
        copy_(pick.same_view(acc), g);
        return;
      }
      settled(consumer);
    } else if (!writable_in_place(acc)) {
      acc = clone(acc);
    }
    add_into(pick.same_view(buffer[consumer]), g);
  }
  bool pruned(Node* n) const { return irrelevant.count(n) != 0; }
  // Whether n's input gradients can reach anything: always in backward(); in grad() mode only
  // through a kept node or a captured leaf.
  bool feeds_anything(Node* n) const {
    if (capture_leaf.empty() && capture_node.empty()) return true;
    for (const Edge& e : n->next)
      if ((e.node && !pruned(e.node.get())) || (e.leaf && capture_leaf.count(e.leaf.get()))) return true;
    return false;
  }

  // Marks the nodes of `order`'s graph from which no captured node or leaf is reachable and
  // recounts `deps` over the rest. Iterative (graphs can be 100,000 nodes deep): a topological
  // order from the roots, then relevance decided children first.
  void keep_paths_to_captured(const std::vector<Node*>& roots, std::unordered_map<Node*, int>& deps) {
    std::unordered_map<Node*, int> left = deps;
    std::vector<Node*> topo, ready;
    for (Node* n : roots)
      if (left[n] == 0) ready.push_back(n);
    while (!ready.empty()) {
      Node* n = ready.back();
      ready.pop_back();
      topo.push_back(n);
      for (const Edge& e : n->next)
        if (e.node && --left[e.node.get()] == 0) ready.push_back(e.node.get());
    }
    std::unordered_set<Node*> relevant;
    for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
      Node* n = *it;
      bool reaches = capture_node.count(n) != 0;
      for (const Edge& e : n->next)
        reaches = reaches || (e.node && relevant.count(e.node.get())) || (e.leaf && capture_leaf.count(e.leaf.get()));
      if (reaches) relevant.insert(n);
      else irrelevant.insert(n);
    }
    for (auto& [n, count] : deps) count = 0;
    for (Node* n : relevant)
      for (const Edge& e : n->next)
        if (e.node && relevant.count(e.node.get())) ++deps[e.node.get()];
  }

  void run(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads) {
    check<ValueError>(roots.size() == grads.size(), "backward: got ", roots.size(), " tensors but ",
                      grads.size(), " gradients");
    std::unordered_map<Node*, int> deps;
    std::vector<Node*> stack;
    std::unordered_set<Node*> seen;

    for (size_t i = 0; i < roots.size(); ++i) {
      const Tensor& r = roots[i];
      check<RuntimeError>(r.requires_grad(),
                          "element ", i, " of tensors does not require grad and does not have a grad_fn");
      Tensor g = grads[i];
      check<ValueError>(g.shape() == r.shape(), "backward: gradient of shape ", shape_str(g.shape()),
                        " does not match the tensor's shape ", shape_str(r.shape()));
      if (g.dtype() != r.dtype()) g = astype(g, r.dtype());
      if (r.is_leaf()) {
        deliver_leaf(r.impl_ptr(), g);
        continue;
      }
      Node* n = r.grad_fn().get();
      accumulate_into(buffer[n], g, create_graph);
      if (seen.insert(n).second) stack.push_back(n);
    }
    std::vector<Node*> order = stack;
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const Edge& e : n->next) {
        if (!e.node) continue;
        ++deps[e.node.get()];
        if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
      }
    }
    if (!capture_leaf.empty() || !capture_node.empty()) keep_paths_to_captured(order, deps);
    std::vector<Node*> ready;
    for (Node* n : order)
      if (!pruned(n) && deps[n] == 0) ready.push_back(n);

    GradModeGuard mode(create_graph);
    while (!ready.empty()) {
      Node* n = ready.back();
      ready.pop_back();
      auto it = buffer.find(n);
      Tensor g;
      if (it != buffer.end()) {
        settled(n);
        g = std::move(it->second);
        buffer.erase(it);
      }
      std::vector<Tensor> input_grads;
      if (g.defined()) {
        if (auto out = n->retained_output.lock()) {
          Tensor prev(out->grad);
          out->grad = (prev.defined() ? add(prev, g) : clone(g)).impl_ptr();
        }
        auto cap = capture_node.find(n);
        if (cap != capture_node.end()) captured[cap->second] = accumulate(captured[cap->second], g);
        if (n->released)
          throw RuntimeError(detail::concat(
              "backward of ", n->name, ": trying to backward through the graph a second time; "
              "pass retain_graph=True the first time"));
        if (!feeds_anything(n)) {
          // grad() mode: a captured node whose inputs lead to nothing captured.
        } else if (n->picked_part && !create_graph && n->next.size() == 1 && n->next[0].node) {
          add_to_view(*n, g);
        } else {
          try {
            input_grads = n->vjp(g);
          } catch (const RuntimeError& e) {
            throw RuntimeError(detail::concat("backward of ", n->name, ": ", e.what()));
          }
        }
        if (!retain_graph) {
          n->vjp = nullptr;
          n->released = true;
        }
      }
      for (size_t i = 0; i < n->next.size(); ++i) {
        const Edge& e = n->next[i];
        if (e.node && pruned(e.node.get())) continue;
        // Moved out, so a gradient nothing else holds reaches a leaf without a copy (own()).
        Tensor gi = i < input_grads.size() ? std::move(input_grads[i]) : Tensor();
        if (gi.defined() && e.valid()) gi = conform(gi, n->inputs[i], n->name);
        if (e.node) {
          if (gi.defined()) accumulate_into(settled(e.node.get()), gi, create_graph);
          if (--deps[e.node.get()] == 0) ready.push_back(e.node.get());
        } else if (e.leaf && gi.defined()) {
          deliver_leaf(e.leaf, gi);
        }
      }
    }
  }
};

std::vector<Tensor> ones_like_all(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads) {
  if (!grads.empty()) return grads;
  std::vector<Tensor> out;
  for (const Tensor& r : roots) {
    check<RuntimeError>(r.numel() == 1, "grad can be implicitly created only for scalar outputs, got shape ",
                        shape_str(r.shape()));
    out.push_back(full_like_value(r, 1.0));
  }
  return out;
}

}  // namespace

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph,
              bool create_graph) {
  Engine engine(retain_graph || create_graph, create_graph);
  engine.run(roots, ones_like_all(roots, grads));
}

std::vector<Tensor> grad(const std::vector<Tensor>& roots, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grads, bool retain_graph, bool create_graph,
                         bool allow_unused) {
  Engine engine(retain_graph || create_graph, create_graph);
  engine.captured.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    check<RuntimeError>(t.requires_grad(), "grad: input ", i, " does not require grad");
    if (t.is_leaf()) engine.capture_leaf[t.impl()] = i;
    else engine.capture_node[t.grad_fn().get()] = i;
  }
  engine.run(roots, ones_like_all(roots, grads));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!engine.captured[i].defined()) {
      check<RuntimeError>(allow_unused, "grad: input ", i,
                          " was not used in the graph; pass allow_unused=True");
      continue;
    }
    if (!create_graph) engine.captured[i] = engine.captured[i].detach();
  }
  return engine.captured;
}

}  // namespace lamina
