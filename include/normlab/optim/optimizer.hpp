// normlab/optim/optimizer.hpp — parameter groups, optimizer state, and the
// Optimizer base class that SGD, Adam and AdamW derive from.
//
//   AdamW<float, Cpu> opt(model.named_parameters(), {.lr = 6e-4, .beta2 = 0.98});
//   for (int64_t step = 0; step < n; ++step) {
//     opt.set_lr(schedule.lr(step));
//     opt.zero_grad(/*set_to_none=*/true);  // or false: keep and zero the buffers
//     model.loss(tokens, targets).backward();
//     clip_grad_norm(opt.named_parameters(), 1.0);
//     opt.step();
//   }
//
// By default weight decay applies to matrices (ParamKind::weight and
// token_embedding) only: norms' gains and shifts, biases, learned positions
// and NormFormer's scales (c_attn, w_resid) are not decayed — the usual GPT
// recipe (nanoGPT, HF's no_decay list), since shrinking a gain or a scale
// toward 0 changes the function rather than regularizing it.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "normlab/autograd/variable.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/tensor.hpp"
#include "normlab/modules/module.hpp"

namespace normlab {
inline namespace v0 {

namespace detail {
/// `weight_decay`, after checking that it is >= 0 (Error names `who`).
inline double checked_weight_decay(const char* who, double weight_decay) {
  check(weight_decay >= 0, who, ": weight_decay must be >= 0, got ", weight_decay);
  return weight_decay;
}
}  // namespace detail

/// Parameters that share a weight decay.
template <FloatingElement Scalar, class Backend>
struct ParamGroup {
  std::vector<NamedParameter<Scalar, Backend>> params;
  double weight_decay = 0;
};

/// Says whether the parameter `name` of kind `kind` is weight-decayed.
using DecayPredicate = std::function<bool(const std::string& name, ParamKind kind)>;

/// The default rule: decay ParamKind::weight and token_embedding; not
/// norm_weight, norm_bias, bias, position_embedding or scale.
inline bool decays_by_default(const std::string& /*name*/, ParamKind kind) {
  return kind == ParamKind::weight || kind == ParamKind::token_embedding;
}

/// A rule that decays exactly the parameters whose kind is in `kinds`.
inline DecayPredicate decay_kinds(std::set<ParamKind> kinds) {
  return [kinds = std::move(kinds)](const std::string&, ParamKind kind) {
    return kinds.contains(kind);
  };
}

/// Splits `params` into {decayed, not decayed}: group 0 holds the parameters
/// `decays` accepts, with `weight_decay`; group 1 the others, with 0. Both
/// groups keep the order of `params` and either may be empty.
/// Requires: weight_decay >= 0 (throws Error otherwise).
template <FloatingElement Scalar, class Backend>
std::vector<ParamGroup<Scalar, Backend>> split_weight_decay(
    const std::vector<NamedParameter<Scalar, Backend>>& params, double weight_decay,
    const DecayPredicate& decays = decays_by_default) {
  detail::checked_weight_decay("split_weight_decay", weight_decay);
  std::vector<ParamGroup<Scalar, Backend>> groups(2);
  groups[0].weight_decay = weight_decay;
  for (const auto& p : params) groups[decays(p.name, p.kind) ? 0 : 1].params.push_back(p);
  return groups;
}

/// What an optimizer must save to resume exactly: named tensors (moment
/// estimates, momentum buffers; shapes those of their parameters) and named
/// integer counters (step counts). Keys follow torch.optim's state names with
/// the parameter's name appended: `exp_avg.<name>`, `exp_avg_sq.<name>`,
/// `step.<name>`, `momentum_buffer.<name>`, and `step` for the number of
/// step() calls. Hyper-parameters (lr, betas, ...) are not state: they come
/// from the constructor and the schedule. See train/optimizer_state.hpp to store it in
/// a safetensors file.
template <FloatingElement Scalar, class Backend>
struct OptimizerState {
  std::map<std::string, Tensor<Scalar, Backend>> tensors;
  std::map<std::string, int64_t> counters;
};

/// Base of SGD, Adam and AdamW: parameter groups, learning rate, step count.
///
/// An optimizer holds handles to its parameters (it updates the model's own
/// tensors in place) and one state slot per parameter. Parameters are
/// identified by name in the state, so a state loads into an optimizer built
/// over the same names in any group order.
template <FloatingElement Scalar, class Backend>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  Optimizer(Optimizer&&) = default;
  Optimizer& operator=(Optimizer&&) = default;

  /// "SGD", "Adam" or "AdamW" (for messages and logs).
  virtual const char* name() const = 0;

  /// Updates every parameter that has a gradient once, and counts a step.
  /// Parameters without a gradient (grad() undefined) are skipped and their
  /// state is left as it was, like torch.optim with `grad is None`.
  virtual void step() = 0;

  /// A snapshot (copies) of the state; later steps do not change it.
  virtual OptimizerState<Scalar, Backend> state() const = 0;

  /// Replaces the state with `s`, after checking all of it: every key must
  /// belong to a parameter of this optimizer with the right shape, a
  /// parameter's entries must be all present or all absent, and "step" must
  /// be present. Throws Error naming the key on a violation and then changes
  /// nothing. Ensures: given the same parameter values, gradients and lr,
  /// step() continues bit for bit as the optimizer `s` was taken from would.
  virtual void load_state(const OptimizerState<Scalar, Backend>& s) = 0;

  /// Sets every parameter's gradient to zero, keeping the buffers; with
  /// set_to_none, drops them instead (torch's zero_grad(set_to_none=True)).
  ///
  /// Ensures, with set_to_none: has_grad() is false for every parameter; the
  /// next backward hands each one a gradient that the first node to reach it
  /// writes (a GEMM with beta 0, a copy) instead of adding it to a zero fill,
  /// with the same values; a parameter that backward does not reach keeps no
  /// gradient, and step() skips it (no decay, no moment update), where with
  /// zeros it would be stepped with a zero gradient.
  void zero_grad(bool set_to_none = false) {
    for (auto& p : params_) p.value.zero_grad(set_to_none);
  }

  double lr() const { return lr_; }
  /// Requires: lr finite and >= 0 (throws Error naming the value otherwise).
  void set_lr(double lr) {
    check_lr(lr);
    lr_ = lr;
  }

  /// The number of step() calls (restored by load_state).
  int64_t step_count() const { return step_count_; }
  /// The most steps an optimizer counts: 2^62 (no real run comes near; the
  /// bound keeps every step counter, per parameter too, from overflowing).
  static constexpr int64_t kMaxSteps = int64_t{1} << 62;

  const std::vector<ParamGroup<Scalar, Backend>>& param_groups() const { return groups_; }
  /// Every parameter, group by group.
  const std::vector<NamedParameter<Scalar, Backend>>& named_parameters() const { return params_; }

 protected:
  /// Requires: parameter names unique across groups, no variable listed
  /// twice (under any name), every variable defined, weight decays >= 0,
  /// lr >= 0. Throws Error naming the parameter or value otherwise.
  Optimizer(std::vector<ParamGroup<Scalar, Backend>> groups, double lr, const char* who)
      : groups_(std::move(groups)), lr_(lr), who_(who) {
    check_lr(lr);
    std::unordered_map<const void*, std::string> variables;
    for (const auto& g : groups_) {
      detail::check(g.weight_decay >= 0, who_,
                    ": a parameter group's weight_decay must be >= 0, got ", g.weight_decay);
      for (const auto& p : g.params) {
        detail::check(p.value.defined(), who_, ": parameter '", p.name, "' is undefined");
        detail::check(index_.emplace(p.name, params_.size()).second, who_, ": parameter name '",
                      p.name, "' appears twice (names must be unique across groups)");
        const auto [it, fresh] = variables.emplace(p.value.state_ptr().get(), p.name);
        detail::check(fresh, who_, ": parameters '", it->second, "' and '", p.name,
                      "' are the same variable (list a shared parameter once)");
        params_.push_back(p);
        weight_decays_.push_back(g.weight_decay);
      }
    }
  }

  /// The gradient of parameter i, checked against its shape; nullptr when
  /// it has none.
  const Tensor<Scalar, Backend>* grad_of(size_t i) const {
    const Variable<Scalar, Backend>& v = params_[i].value;
    if (!v.has_grad()) return nullptr;
    detail::check(v.grad().shape() == v.shape(), who_, ": gradient of '", params_[i].name,
                  "' has shape ", v.grad().shape(), " but the parameter has shape ", v.shape());
    return &v.grad();
  }

  /// Index of the parameter named `name`, or params_.size().
  size_t index_of(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? params_.size() : it->second;
  }

  /// Counts one step; throws Error (nothing changes) at kMaxSteps.
  void count_step() {
    detail::check(step_count_ < kMaxSteps, who_, "::step: the step count has reached 2^62");
    ++step_count_;
  }

  /// Reads "step" and checks that every other key of `s` is `<prefix>.<name>`
  /// for a prefix in `tensor_prefixes` (tensors, with the parameter's shape)
  /// or `counter_prefixes` (counters) and a parameter of this optimizer.
  int64_t check_state_keys(const OptimizerState<Scalar, Backend>& s,
                           const std::vector<std::string>& tensor_prefixes,
                           const std::vector<std::string>& counter_prefixes) const {
    const auto it = s.counters.find("step");
    detail::check(it != s.counters.end(), who_, "::load_state: the state has no counter 'step'");
    detail::check(it->second >= 0 && it->second < kMaxSteps, who_,
                  "::load_state: counter 'step' must be in [0, 2^62), got ", it->second);
    const auto parameter = [&](const std::string& key, const std::vector<std::string>& prefixes,
                               const char* what) {
      for (const auto& pre : prefixes)
        if (key.size() > pre.size() + 1 && key.compare(0, pre.size(), pre) == 0 &&
            key[pre.size()] == '.') {
          const size_t i = index_of(key.substr(pre.size() + 1));
          detail::check(i < params_.size(), who_, "::load_state: ", what, " '", key,
                        "' names no parameter of this optimizer");
          return i;
        }
      throw Error(detail::concat(who_, "::load_state: unknown ", what, " '", key, "' (", name(),
                                 " keeps ", join(prefixes), ")"));
    };
    for (const auto& [key, t] : s.tensors) {
      const size_t i = parameter(key, tensor_prefixes, "state tensor");
      detail::check(t.defined() && t.shape() == params_[i].value.shape(), who_,
                    "::load_state: state tensor '", key, "' has shape ",
                    t.defined() ? t.shape() : Shape{}, " but parameter '", params_[i].name,
                    "' has shape ", params_[i].value.shape());
    }
    for (const auto& [key, v] : s.counters)
      if (key != "step") {
        parameter(key, counter_prefixes, "state counter");
        detail::check(v >= 1 && v <= it->second, who_, "::load_state: counter '", key,
                      "' must be in [1, step = ", it->second,
                      "] (a parameter is updated at most once per step), got ", v);
      }
    return it->second;
  }

  /// The entry `<prefix>.<param name>` of `m`, or nullptr.
  template <class Map>
  auto find_entry(const Map& m, const std::string& prefix, size_t i) const -> const
      typename Map::mapped_type* {
    const auto it = m.find(prefix + "." + params_[i].name);
    return it == m.end() ? nullptr : &it->second;
  }

  void check_lr(double lr) const {
    detail::check(std::isfinite(lr) && lr >= 0, who_, ": lr must be finite and >= 0, got ", lr);
  }

  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", '" : "'") + v[i] + ".<param>'";
    return s.empty() ? "no per-parameter state" : s;
  }

  std::vector<ParamGroup<Scalar, Backend>> groups_;
  std::vector<NamedParameter<Scalar, Backend>> params_;  // all groups, flattened
  std::vector<double> weight_decays_;                    // per entry of params_
  std::unordered_map<std::string, size_t> index_;        // name -> position in params_
  double lr_;
  int64_t step_count_ = 0;
  const char* who_;
};

}  // namespace v0
}  // namespace normlab
