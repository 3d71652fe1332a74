// Reverse-mode autograd: the Node an op records, the saved tensors it keeps, grad mode,
// and the engine that walks the graph backwards without recursion.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "core/tensor.h"

namespace lamina {

// Gradient recording is per thread, like PyTorch's.
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled) : prev_(GradMode::is_enabled()) { GradMode::set_enabled(enabled); }
  ~GradModeGuard() { GradMode::set_enabled(prev_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool prev_;
};

// Where a gradient flows: into another node, or into a leaf's .grad.
struct Edge {
  std::shared_ptr<Node> node;
  std::shared_ptr<TensorImpl> leaf;
  bool valid() const { return node || leaf; }
};

// A tensor kept for backward, with the version it had; reading it after an in-place
// change is an error rather than a silently wrong gradient.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t) : tensor_(t), version_(t.defined() ? t.version() : 0) {}
  const Tensor& get() const;

 private:
  Tensor tensor_;
  uint64_t version_ = 0;
};

using VjpFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct InputMeta {
  Shape shape;
  DType dtype;
};

struct Node {
  const char* name = "?";
  std::vector<Edge> next;         // one per op input
  std::vector<InputMeta> inputs;  // what each input gradient must look like
  VjpFn vjp;                      // returns one gradient per input (undefined = zero)
  std::weak_ptr<TensorImpl> retained_output;  // set by Tensor.retain_grad()
  // Set for a view that picks part of its one input (select, slice). The engine writes the
  // view's gradient into that region of the input's gradient buffer instead of running vjp,
  // which embeds it in a fresh zero tensor.
  struct PickedPart {
    std::function<Tensor(const Tensor&)> same_view;  // the same view of the input's gradient
    // The input's strides: when they order its axes densely (a permutation, as of q, k and v
    // picked from one projection), the gradient buffer is laid out the same way, so the
    // gradient leaves the inverse permutation contiguous and a reshape after it copies nothing.
    Shape input_strides;
    // The view is the indices [begin, end) of this axis (-1: not one range). Views that share
    // an axis and do not overlap are copied into a buffer that skipped its zero fill; the
    // engine zeros what none of them covered.
    int64_t axis = -1, begin = 0, end = 0;
  };
  std::optional<PickedPart> picked_part;
  bool released = false;
  ~Node();
};

// True when an op on these inputs must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);
// Records `out`'s history: a node named `name` over `inputs` with the given vjp.
void record(const char* name, const std::vector<Tensor>& inputs, Tensor& out, VjpFn vjp);

// For fused ops whose backward runs native kernels: when the gradient must itself be
// differentiable (create_graph=True), `composite()` recomputes the op's output from the same
// `inputs` with plain ops, under grad mode, and that is differentiated instead: exact
// higher-order gradients at the composite's cost. Returns one gradient per input (undefined
// where the input does not require grad or the output does not depend on it).
std::vector<Tensor> composite_vjp(const std::vector<Tensor>& inputs, const Tensor& grad_output,
                                  const std::function<Tensor()>& composite);

// Accumulates d(roots)/d(leaves) into each leaf's .grad.
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph,
              bool create_graph);
// Returns d(roots)/d(inputs) without touching any .grad (torch.autograd.grad).
std::vector<Tensor> grad(const std::vector<Tensor>& roots, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grads, bool retain_graph, bool create_graph,
                         bool allow_unused);
void retain_grad(const Tensor& t);

// Destroying a long chain of nodes would recurse once per node; this hands the last
// reference to a loop instead.
void release_node(std::shared_ptr<Node>&& node);

}  // namespace lamina
