// normlab/autograd/variable.hpp — Variable, graph nodes and reverse-mode backward().
//
// Define-by-run: every op on Variables that require grad records a Node that
// holds what its backward pass needs. backward() walks the graph from the
// output in reverse topological order, then releases it (nodes and the
// tensors they saved), like PyTorch without retain_graph.
//
// Gradient convention (llm.c): a node's backward *adds* into the gradients of
// its inputs. The engine gives every input that requires grad a zeroed
// gradient before the first node writes to it, so a variable used twice
// receives the sum, and a leaf's gradient accumulates across backward() calls
// until zero_grad(). A node may instead declare that it writes fresh
// gradients (Node::writes_fresh_gradients): the engine then skips the zero
// fill of a gradient that this node is the first to reach, hands the buffer
// uninitialized and says so (GradSlots::fresh), and the backward writes it
// (a GEMM with beta 0) rather than adding to zeros — one pass over memory
// instead of three.
#pragma once

#include <algorithm>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "normlab/autograd/grad_mode.hpp"
#include "normlab/core/tensor.hpp"

namespace normlab {
inline namespace v0 {

template <FloatingElement Scalar, class Backend>
struct Node;

namespace detail {

/// The state a Variable handle points to.
template <FloatingElement Scalar, class Backend>
struct VariableState {
  Tensor<Scalar, Backend> data;
  Tensor<Scalar, Backend> grad;  // undefined until a backward pass reaches it
  bool requires_grad = false;
  std::shared_ptr<Node<Scalar, Backend>> grad_fn;  // null for leaves and after release
  bool released = false;                           // was an op output whose graph backward() freed
  /// A leaf's Variable::set_gradient_ready_hook, or empty.
  std::function<void(const Tensor<Scalar, Backend>& grad)> gradient_ready;

  VariableState() = default;
  VariableState(const VariableState&) = delete;
  VariableState& operator=(const VariableState&) = delete;
  // Tears a graph down iteratively: dropping the last handle to the output
  // of a long chain must not recurse once per op and overflow the stack.
  ~VariableState() {
    std::vector<std::shared_ptr<Node<Scalar, Backend>>> pending;
    if (grad_fn) pending.push_back(std::move(grad_fn));
    while (!pending.empty()) {
      std::shared_ptr<Node<Scalar, Backend>> node = std::move(pending.back());
      pending.pop_back();
      if (node.use_count() != 1) continue;  // still referenced elsewhere
      for (auto& in : node->inputs)
        if (in.use_count() == 1 && in->grad_fn) pending.push_back(std::move(in->grad_fn));
    }
  }
};

}  // namespace detail

/// The gradients a node's backward adds into: `d[i]` is the gradient of input
/// i, or nullptr when input i does not require grad (skip its computation).
///
/// fresh(i): only for a node with Node::writes_fresh_gradients, d[i] holds no
/// value yet (uninitialized memory) and the backward must write every
/// element of it instead of adding; false for every slot of other nodes.
template <FloatingElement Scalar, class Backend>
class GradSlots : public std::vector<Tensor<Scalar, Backend>*> {
 public:
  using std::vector<Tensor<Scalar, Backend>*>::vector;
  bool fresh(size_t i) const { return i < fresh_.size() && fresh_[i]; }
  /// The GEMM beta for slot i: 0 (write) when fresh, 1 (add) otherwise.
  Scalar beta(size_t i) const { return fresh(i) ? Scalar(0) : Scalar(1); }
  /// Fills the fresh slots from `first` on with zeros: for a backward that
  /// adds into them (sums over rows) or writes nothing (empty sums).
  void zero_fresh(size_t first = 0) const {
    for (size_t i = first; i < this->size(); ++i)
      if ((*this)[i] && fresh(i)) (*this)[i]->fill_(Scalar(0));
  }
  void set_fresh(size_t i) {
    if (fresh_.size() <= i) fresh_.resize(i + 1, false);
    fresh_[i] = true;
  }

 private:
  std::vector<bool> fresh_;
};

/// One recorded op: its inputs and a function that, given the gradient of its
/// output, adds the gradients of its inputs.
template <FloatingElement Scalar, class Backend>
struct Node {
  using BackwardFn =
      std::function<void(const Tensor<Scalar, Backend>& dout, const GradSlots<Scalar, Backend>& d)>;

  std::string name;  // the op, for error messages
  std::vector<std::shared_ptr<detail::VariableState<Scalar, Backend>>> inputs;
  BackwardFn backward;
  /// Every input's gradient is the output's gradient in that input's shape
  /// (a view op such as reshape; an add of two same-shape operands). The
  /// engine hands the output's gradient buffer to the first input that has no
  /// gradient yet and is passed once, instead of zero-filling a new one, and
  /// runs `backward` (which must compute the same thing) for the other
  /// inputs only, with that input's slot null; not at all when none is left.
  bool gradient_is_view = false;
  /// The backward writes (rather than adds into) every slot GradSlots::fresh
  /// marks; the engine then leaves those gradients unfilled.
  bool writes_fresh_gradients = false;
};

/// A tensor that can take part in automatic differentiation.
///
/// A Variable is a handle: copies share data, gradient and graph position.
/// Leaves are made by the user (parameters, inputs); op results are interior
/// and carry the node that produced them.
template <FloatingElement Scalar, class Backend>
class Variable {
 public:
  using value_type = Scalar;
  using backend_type = Backend;
  using TensorType = Tensor<Scalar, Backend>;

  Variable() = default;
  /// A leaf holding `data` (not copied); `requires_grad` makes backward() fill its grad().
  explicit Variable(TensorType data, bool requires_grad = false)
      : state_(std::make_shared<detail::VariableState<Scalar, Backend>>()) {
    detail::check(data.defined(), "Variable: cannot wrap an undefined tensor");
    state_->data = std::move(data);
    state_->requires_grad = requires_grad;
  }

  bool defined() const { return state_ != nullptr; }
  /// The value. The tensor is a handle: writing into it (copy_from) updates the
  /// variable in place, which is how optimizers step parameters.
  const TensorType& data() const { return state().data; }
  const Shape& shape() const { return state().data.shape(); }
  int ndim() const { return shape().ndim(); }
  int64_t numel() const { return shape().numel(); }
  int64_t size(int axis) const { return shape().size(axis); }
  Scalar item() const { return data().item(); }

  /// The accumulated gradient of a leaf after backward(); undefined before.
  const TensorType& grad() const { return state().grad; }
  bool has_grad() const { return state().grad.defined(); }
  bool requires_grad() const { return state().requires_grad; }
  bool is_leaf() const { return state().grad_fn == nullptr && !state().released; }

  /// Marks a leaf as needing (or not) a gradient.
  /// Contract: only on leaves; throws Error on an op result.
  Variable& set_requires_grad(bool on) {
    detail::check(state().grad_fn == nullptr && !state().released,
                  "set_requires_grad: only leaf variables can change requires_grad; this one "
                  "was produced by ",
                  state().grad_fn ? state().grad_fn->name : "an op");
    state_->requires_grad = on;
    return *this;
  }
  /// Sets the gradient to zero, keeping the buffer; with set_to_none, drops
  /// it (clear_grad), so the next backward writes a fresh one.
  void zero_grad(bool set_to_none = false) {
    if (set_to_none)
      clear_grad();
    else if (state().grad.defined())
      state_->grad.fill_(Scalar(0));
  }
  /// Drops the gradient buffer.
  void clear_grad() { state_->grad = TensorType(); }

  /// Calls `hook(grad())` in every backward() that reaches this leaf, as soon
  /// as its gradient of that pass is complete: after the last node that reads
  /// it has run, while the nodes that do not lead to it may still be running
  /// (how data-parallel training starts a bucket's all-reduce during backward,
  /// like PyTorch's register_post_accumulate_grad_hook). The gradient is the
  /// accumulated one (earlier passes' sum plus this pass's); it may be
  /// undefined when no gradient reached the leaf through a node that ran.
  /// Fires at most once per backward(); an empty function removes the hook.
  /// Contract: only on leaves that require grad (throws Error otherwise); the
  /// hook must not run backward() itself.
  Variable& set_gradient_ready_hook(std::function<void(const TensorType& grad)> hook) {
    detail::check(
        state().grad_fn == nullptr && !state().released && state().requires_grad,
        "set_gradient_ready_hook: only leaves that require grad have a gradient to "
        "report; this one ",
        state().grad_fn || state().released ? "was produced by an op" : "does not require grad");
    state_->gradient_ready = std::move(hook);
    return *this;
  }

  /// A leaf that shares this variable's data but is cut from the graph and
  /// does not require grad.
  Variable detach() const { return Variable(state().data, false); }

  /// Backpropagates from this scalar (numel 1) output: afterwards every leaf
  /// that requires grad and reaches it holds d(this)/d(leaf) added to its grad.
  /// Releases the graph. Throws when this is not a scalar, does not require
  /// grad, or its graph was already released.
  void backward() const {
    detail::check(numel() == 1, "backward: an implicit gradient needs a scalar output, got shape ",
                  shape(), "; pass the upstream gradient explicitly");
    run_backward(TensorType::ones(shape()));
  }
  /// Backpropagates with the given gradient of this output (same shape).
  void backward(const TensorType& upstream) const {
    detail::check(upstream.shape() == shape(), "backward: upstream gradient has shape ",
                  upstream.shape(), " but the output has shape ", shape());
    run_backward(upstream);
  }

  /// For ops: the shared state (the graph links to it).
  const std::shared_ptr<detail::VariableState<Scalar, Backend>>& state_ptr() const {
    return state_;
  }

 private:
  detail::VariableState<Scalar, Backend>& state() const {
    detail::check(state_ != nullptr,
                  "Variable: use of an undefined (default-constructed) variable");
    return *state_;
  }

  void run_backward(const TensorType& upstream) const;

  std::shared_ptr<detail::VariableState<Scalar, Backend>> state_;
};

template <FloatingElement Scalar, class Backend>
void Variable<Scalar, Backend>::run_backward(const TensorType& upstream) const {
  using State = detail::VariableState<Scalar, Backend>;
  detail::check(!state().released,
                "backward: the graph behind this variable was already released by an earlier "
                "backward(); run the forward pass again");
  detail::check(state().requires_grad,
                "backward: the output does not require grad (no input requires grad, or it "
                "was computed under NoGradGuard)");

  // Reverse topological order by iterative depth-first search. `order` owns
  // the states: releasing a node below may drop the last other reference.
  std::vector<std::shared_ptr<State>> order;
  std::unordered_set<State*> seen;
  std::vector<std::pair<std::shared_ptr<State>, size_t>> stack{{state_, 0}};
  seen.insert(state_.get());
  while (!stack.empty()) {
    auto& [s, next] = stack.back();
    if (s->grad_fn && next < s->grad_fn->inputs.size()) {
      const std::shared_ptr<State>& in = s->grad_fn->inputs[next++];
      detail::check(!in->released,
                    "backward: part of this graph was already released by an earlier "
                    "backward() (",
                    s->grad_fn->name, " reads a freed intermediate)");
      if (in->requires_grad && seen.insert(in.get()).second) stack.push_back({in, 0});
      continue;
    }
    order.push_back(std::move(s));
    stack.pop_back();
  }

  State& root = *state_;
  if (!root.grad_fn) {  // backward on a leaf: its gradient is the upstream one
    if (!root.grad.defined()) root.grad = TensorType::zeros(root.data.shape());
    accumulate(Backend{}, root.grad.data(), upstream.data(), upstream.numel(), Scalar(1));
    if (root.gradient_ready) root.gradient_ready(root.grad);
    return;
  }
  // Leaves with a gradient-ready hook: how many nodes of this graph still read
  // each (a node that reads one twice counts once). Empty when none has one,
  // and then the loop below does no bookkeeping.
  std::unordered_map<State*, size_t> readers_left;
  for (const auto& s : order)
    if (s->grad_fn)
      for (size_t i = 0; i < s->grad_fn->inputs.size(); ++i) {
        State* in = s->grad_fn->inputs[i].get();
        if (in->grad_fn || !in->gradient_ready || !in->requires_grad) continue;
        bool first = true;  // count each node once per leaf
        for (size_t j = 0; j < i && first; ++j) first = s->grad_fn->inputs[j].get() != in;
        if (first) ++readers_left[in];
      }
  // Called once a node has run (or was skipped): fires the hooks of the
  // leaves it was the last reader of.
  const auto node_done = [&readers_left](const Node<Scalar, Backend>& node) {
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      State* in = node.inputs[i].get();
      const auto it = readers_left.find(in);
      if (it == readers_left.end()) continue;
      bool first = true;
      for (size_t j = 0; j < i && first; ++j) first = node.inputs[j].get() != in;
      if (first && --it->second == 0) in->gradient_ready(in->grad);
    }
  };
  root.grad = upstream.clone();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    State* s = it->get();
    if (!s->grad_fn) continue;  // leaf: keeps its grad
    std::shared_ptr<Node<Scalar, Backend>> node = std::move(s->grad_fn);
    s->released = true;
    if (s->grad.defined()) {
      // How often each input is passed to this node (x * x: twice).
      auto passes = [&](const State& in) {
        return std::count_if(node->inputs.begin(), node->inputs.end(),
                             [&](const auto& other) { return other.get() == &in; });
      };
      // A view's or a same-shape add's first input without a gradient takes
      // over the output's gradient buffer: no zero fill, no copy.
      size_t taken = node->inputs.size();
      if (node->gradient_is_view)
        for (size_t i = 0; i < node->inputs.size() && taken == node->inputs.size(); ++i) {
          State& in = *node->inputs[i];
          if (in.requires_grad && !in.grad.defined() && passes(in) == 1) {
            in.grad = s->grad.reshape(in.data.shape());
            taken = i;
          }
        }
      GradSlots<Scalar, Backend> slots(node->inputs.size(), nullptr);
      bool any_slot = false;
      for (size_t i = 0; i < node->inputs.size(); ++i) {
        State& in = *node->inputs[i];
        if (!in.requires_grad || i == taken) continue;
        any_slot = true;
        if (!in.grad.defined()) {
          // An input passed twice to this node (x * x) has two slots on one
          // buffer, and a write through one would discard the other's: zeroed.
          if (node->writes_fresh_gradients && passes(in) == 1) {
            in.grad = TensorType(in.data.shape());  // written by the backward
#ifndef NDEBUG
            // Debug builds (the sanitizer tests) fill it with NaN, so that an
            // element a backward fails to write shows in every result.
            in.grad.fill_(std::numeric_limits<Scalar>::quiet_NaN());
#endif
            slots.set_fresh(i);
          } else {
            in.grad = TensorType::zeros(in.data.shape());
          }
        }
        slots[i] = &in.grad;
      }
      if (any_slot) node->backward(s->grad, slots);
    }
    if (!readers_left.empty()) node_done(*node);
    s->grad = TensorType();  // interior gradients are not kept
  }
}

namespace detail {
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> record_node(
    std::string name, Tensor<Scalar, Backend> out,
    std::vector<std::shared_ptr<VariableState<Scalar, Backend>>> inputs,
    typename Node<Scalar, Backend>::BackwardFn backward) {
  bool needs_grad = false;
  if (grad_enabled())
    for (const auto& s : inputs) needs_grad = needs_grad || s->requires_grad;
  Variable<Scalar, Backend> result(std::move(out), false);
  if (!needs_grad) return result;
  auto node = std::make_shared<Node<Scalar, Backend>>();
  node->name = std::move(name);
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  result.state_ptr()->requires_grad = true;
  result.state_ptr()->grad_fn = std::move(node);
  return result;
}
}  // namespace detail

/// For ops: wraps `out` as the result of op `name` on `inputs`. When grad mode
/// is on and some input requires grad, records a node whose backward is
/// `backward` (its GradSlots follow the order of `inputs`); otherwise the
/// result is a leaf that needs no grad.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> make_result(
    std::string name, Tensor<Scalar, Backend> out,
    std::initializer_list<const Variable<Scalar, Backend>*> inputs,
    typename Node<Scalar, Backend>::BackwardFn backward) {
  std::vector<std::shared_ptr<detail::VariableState<Scalar, Backend>>> states;
  for (const auto* v : inputs) states.push_back(v->state_ptr());
  return detail::record_node(std::move(name), std::move(out), std::move(states),
                             std::move(backward));
}

/// Declares that the node behind `result` writes fresh gradients
/// (Node::writes_fresh_gradients); nothing for a result that recorded no node.
template <FloatingElement Scalar, class Backend>
void set_writes_fresh_gradients(const Variable<Scalar, Backend>& result) {
  if (const auto& node = result.state_ptr()->grad_fn) node->writes_fresh_gradients = true;
}

/// Same, for ops with a run-time number of inputs (concat).
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> make_result(std::string name, Tensor<Scalar, Backend> out,
                                      const std::vector<Variable<Scalar, Backend>>& inputs,
                                      typename Node<Scalar, Backend>::BackwardFn backward) {
  std::vector<std::shared_ptr<detail::VariableState<Scalar, Backend>>> states;
  for (const auto& v : inputs) states.push_back(v.state_ptr());
  return detail::record_node(std::move(name), std::move(out), std::move(states),
                             std::move(backward));
}

}  // namespace v0
}  // namespace normlab
