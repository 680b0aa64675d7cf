// normlab/optim/adam.hpp — Adam (L2 penalty in the gradient) and AdamW
// (decoupled weight decay), as torch.optim.Adam and torch.optim.AdamW.
//
// Per parameter p with gradient g, at its t-th update (t counts the steps in
// which p had a gradient, as in PyTorch):
//
//   Adam:   g = g + wd * p
//   AdamW:  p = p - lr * wd * p                      (Loshchilov & Hutter 2019)
//   both:   m = beta1 * m + (1 - beta1) * g
//           v = beta2 * v + (1 - beta2) * g^2
//           p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// The NormFormer release trains with AdamW, betas (0.9, 0.98), eps 1e-8,
// weight decay 0.01 (DESIGN.md §1); the defaults here are PyTorch's.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "normlab/backend/backend.hpp"
#include "normlab/optim/optimizer.hpp"

namespace normlab {
inline namespace v0 {

/// torch.optim.Adam's hyper-parameters and defaults.
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;  ///< L2 coefficient added to the gradient (decayed kinds only)
};

/// torch.optim.AdamW's hyper-parameters and defaults.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  ///< decoupled decay coefficient (decayed kinds only)
};

namespace detail {

/// The update both Adam variants share; `decoupled` picks AdamW's decay.
template <FloatingElement Scalar, class Backend>
class AdamFamily : public Optimizer<Scalar, Backend> {
  using Base = Optimizer<Scalar, Backend>;

 public:
  double beta1() const { return beta1_; }
  double beta2() const { return beta2_; }
  double eps() const { return eps_; }

  void step() override {
    this->count_step();
    for (size_t i = 0; i < this->params_.size(); ++i) {
      const Tensor<Scalar, Backend>* grad = this->grad_of(i);
      if (!grad) continue;
      Slot& s = slots_[i];
      const Tensor<Scalar, Backend>& p = this->params_[i].value.data();
      if (!s.exp_avg.defined()) {
        s.exp_avg = Tensor<Scalar, Backend>::zeros(p.shape());     // same shape as p
        s.exp_avg_sq = Tensor<Scalar, Backend>::zeros(p.shape());  // same shape as p
      }
      ++s.step;
      AdamWStepArgs a;
      a.lr = this->lr_;
      a.beta1 = beta1_;
      a.beta2 = beta2_;
      a.eps = eps_;
      (decoupled_ ? a.weight_decay : a.l2) = this->weight_decays_[i];
      a.bias_correction1 = 1 - std::pow(beta1_, static_cast<double>(s.step));
      a.bias_correction2 = 1 - std::pow(beta2_, static_cast<double>(s.step));
      if (p.numel())
        adamw_step(Backend{}, p.data(), grad->data(), s.exp_avg.data(), s.exp_avg_sq.data(),
                   p.numel(), a);
    }
  }

  /// "step", and for each parameter updated at least once `exp_avg.<name>`,
  /// `exp_avg_sq.<name>` (its shape) and the counter `step.<name>`.
  OptimizerState<Scalar, Backend> state() const override {
    OptimizerState<Scalar, Backend> st;
    st.counters["step"] = this->step_count_;
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (!slots_[i].exp_avg.defined()) continue;
      const std::string& n = this->params_[i].name;
      st.tensors["exp_avg." + n] = slots_[i].exp_avg.clone();
      st.tensors["exp_avg_sq." + n] = slots_[i].exp_avg_sq.clone();
      st.counters["step." + n] = slots_[i].step;
    }
    return st;
  }

  void load_state(const OptimizerState<Scalar, Backend>& s) override {
    const int64_t steps = this->check_state_keys(s, {"exp_avg", "exp_avg_sq"}, {"step"});
    std::vector<Slot> slots(slots_.size());
    for (size_t i = 0; i < slots.size(); ++i) {
      const Tensor<Scalar, Backend>* m = this->find_entry(s.tensors, "exp_avg", i);
      const Tensor<Scalar, Backend>* v = this->find_entry(s.tensors, "exp_avg_sq", i);
      const int64_t* t = this->find_entry(s.counters, "step", i);
      const int present = (m != nullptr) + (v != nullptr) + (t != nullptr);
      normlab::detail::check(present == 0 || present == 3, this->who_, "::load_state: parameter '",
                             this->params_[i].name,
                             "' needs all of exp_avg, exp_avg_sq and step or none; found",
                             m ? " exp_avg" : "", v ? " exp_avg_sq" : "", t ? " step" : "");
      if (present == 0) continue;
      slots[i] = {m->clone(), v->clone(), *t};
    }
    slots_ = std::move(slots);
    this->step_count_ = steps;
  }

 protected:
  AdamFamily(std::vector<ParamGroup<Scalar, Backend>> groups, double lr, double beta1, double beta2,
             double eps, bool decoupled, const char* who)
      : Base(std::move(groups), lr, who),
        beta1_(beta1),
        beta2_(beta2),
        eps_(eps),
        decoupled_(decoupled) {
    for (const auto& [field, beta] : {std::pair{"beta1", beta1}, std::pair{"beta2", beta2}})
      normlab::detail::check(beta >= 0 && beta < 1, who, ": ", field, " must be in [0, 1), got ",
                             beta);
    normlab::detail::check(std::isfinite(eps) && eps >= 0, who,
                           ": eps must be finite and >= 0, got ", eps);
    slots_.resize(this->params_.size());
  }

 private:
  struct Slot {
    Tensor<Scalar, Backend>
        exp_avg;  // m, shape of the parameter; undefined before its first update
    Tensor<Scalar, Backend> exp_avg_sq;  // v, shape of the parameter
    int64_t step = 0;                    // updates of this parameter
  };
  double beta1_, beta2_, eps_;
  bool decoupled_;
  std::vector<Slot> slots_;  // per parameter, in named_parameters() order
};

}  // namespace detail

/// torch.optim.Adam: the weight decay is an L2 penalty added to the gradient,
/// so it passes through the moment estimates.
template <FloatingElement Scalar, class Backend>
class Adam : public detail::AdamFamily<Scalar, Backend> {
 public:
  /// One group per entry of `groups`, each with its own weight_decay
  /// (o.weight_decay is not used).
  /// Requires: o.lr >= 0, betas in [0, 1), eps >= 0, decays >= 0, unique
  /// parameters (throws Error naming the field or parameter otherwise).
  Adam(std::vector<ParamGroup<Scalar, Backend>> groups, const AdamOptions& o)
      : detail::AdamFamily<Scalar, Backend>(std::move(groups), o.lr, o.beta1, o.beta2, o.eps, false,
                                            "Adam") {}
  /// `params` split by `decays` (split_weight_decay) with o.weight_decay.
  explicit Adam(const std::vector<NamedParameter<Scalar, Backend>>& params,
                const AdamOptions& o = {}, const DecayPredicate& decays = decays_by_default)
      : Adam(split_weight_decay(params, detail::checked_weight_decay("Adam", o.weight_decay),
                                decays),
             o) {}
  /// Every parameter of `module`, split by `decays`.
  explicit Adam(Module<Scalar, Backend>& module, const AdamOptions& o = {},
                const DecayPredicate& decays = decays_by_default)
      : Adam(module.named_parameters(), o, decays) {}

  const char* name() const override { return "Adam"; }
};

/// torch.optim.AdamW: decoupled weight decay p <- p - lr * wd * p, applied
/// before the Adam update and outside the moment estimates.
template <FloatingElement Scalar, class Backend>
class AdamW : public detail::AdamFamily<Scalar, Backend> {
 public:
  /// One group per entry of `groups`, each with its own weight_decay
  /// (o.weight_decay is not used).
  /// Requires: o.lr >= 0, betas in [0, 1), eps >= 0, decays >= 0, unique
  /// parameters (throws Error naming the field or parameter otherwise).
  AdamW(std::vector<ParamGroup<Scalar, Backend>> groups, const AdamWOptions& o)
      : detail::AdamFamily<Scalar, Backend>(std::move(groups), o.lr, o.beta1, o.beta2, o.eps, true,
                                            "AdamW") {}
  /// `params` split by `decays` (split_weight_decay) with o.weight_decay.
  explicit AdamW(const std::vector<NamedParameter<Scalar, Backend>>& params,
                 const AdamWOptions& o = {}, const DecayPredicate& decays = decays_by_default)
      : AdamW(split_weight_decay(params, detail::checked_weight_decay("AdamW", o.weight_decay),
                                 decays),
              o) {}
  /// Every parameter of `module`, split by `decays`.
  explicit AdamW(Module<Scalar, Backend>& module, const AdamWOptions& o = {},
                 const DecayPredicate& decays = decays_by_default)
      : AdamW(module.named_parameters(), o, decays) {}

  const char* name() const override { return "AdamW"; }
};

}  // namespace v0
}  // namespace normlab
