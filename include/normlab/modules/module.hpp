// normlab/modules/module.hpp — Module: named parameters, sub-modules, train/eval mode.
//
// Parameter names are dotted paths built from the names modules give their
// parameters and children, e.g. `layers.3.self_attn.q_proj.weight` — the
// keys of fairseq's state_dict, so checkpoints compare with PyTorch directly.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "normlab/autograd/variable.hpp"

namespace normlab {
inline namespace v0 {

/// What a parameter is, for initialization schemes and optimizer groups
/// (e.g. no weight decay on norms, biases and scales).
enum class ParamKind {
  weight,              ///< a Linear's (out, in) matrix
  bias,                ///< a Linear's (out,) bias
  norm_weight,         ///< a norm's gain, init 1
  norm_bias,           ///< a norm's shift, init 0
  token_embedding,     ///< (V, C) token table
  position_embedding,  ///< (max_seq_len [+ padding_idx + 1], C) learned positions
  scale,               ///< a learned multiplicative scale, init 1 (c_attn, w_resid)
  /// Initialized by the module that owns it (a user extra's documented init,
  /// e.g. LayerScale's small constant or ReZero's 0): init schemes keep the
  /// value it was built with, and it is not decayed by default.
  own_init,
};

/// A named parameter of a model.
template <FloatingElement Scalar, class Backend>
struct NamedParameter {
  std::string name;
  Variable<Scalar, Backend> value;
  ParamKind kind;
};

/// Base of every layer and model.
///
/// A module lists its own parameters and its direct children; everything else
/// (names, counts, modes) is derived from those two lists. Copying a module
/// copies handles: the copy shares its parameters (like a Variable).
template <FloatingElement Scalar, class Backend>
class Module {
 public:
  using Var = Variable<Scalar, Backend>;
  using ParameterFn = std::function<void(const std::string& name, Var& p, ParamKind kind)>;
  using ChildFn = std::function<void(const std::string& name, Module& child)>;

  Module() = default;
  Module(const Module&) = default;
  Module& operator=(const Module&) = default;
  virtual ~Module() = default;

  /// Calls f on each parameter this module owns directly, in a fixed order.
  virtual void for_each_own_parameter(const ParameterFn&) {}
  /// Calls f on each direct child, in a fixed order. A child named "" adds
  /// its parameters without a prefix of its own.
  virtual void for_each_child(const ChildFn&) {}

  /// Every parameter of this module and its descendants, depth first, with
  /// dotted names below `prefix`.
  void for_each_parameter(const ParameterFn& f, const std::string& prefix = "") {
    for_each_own_parameter(
        [&](const std::string& name, Var& p, ParamKind kind) { f(join(prefix, name), p, kind); });
    for_each_child([&](const std::string& name, Module& child) {
      child.for_each_parameter(f, join(prefix, name));
    });
  }

  std::vector<NamedParameter<Scalar, Backend>> named_parameters() {
    std::vector<NamedParameter<Scalar, Backend>> out;
    for_each_parameter([&](const std::string& name, Var& p, ParamKind kind) {
      out.push_back({name, p, kind});
    });
    return out;
  }
  std::vector<Var> parameters() {
    std::vector<Var> out;
    for_each_parameter([&](const std::string&, Var& p, ParamKind) { out.push_back(p); });
    return out;
  }
  /// The number of scalar parameters.
  int64_t parameter_count() {
    int64_t n = 0;
    for_each_parameter([&](const std::string&, Var& p, ParamKind) { n += p.numel(); });
    return n;
  }
  /// Sets every parameter's gradient to zero, keeping the buffers; with
  /// set_to_none, drops them (see Optimizer::zero_grad).
  void zero_grad(bool set_to_none = false) {
    for_each_parameter(
        [set_to_none](const std::string&, Var& p, ParamKind) { p.zero_grad(set_to_none); });
  }

  /// Training mode (dropout active) for this module and all descendants.
  void train(bool on = true) {
    training_ = on;
    for_each_child([on](const std::string&, Module& child) { child.train(on); });
  }
  void eval() { train(false); }
  bool training() const { return training_; }

 private:
  static std::string join(const std::string& prefix, const std::string& name) {
    return prefix.empty() ? name : name.empty() ? prefix : prefix + "." + name;
  }
  bool training_ = true;
};

}  // namespace v0
}  // namespace normlab
