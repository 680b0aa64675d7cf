// normlab/optim/sgd.hpp — stochastic gradient descent with optional
// (Nesterov) momentum, as torch.optim.SGD.
//
// Per parameter p with gradient g (weight decay coupled, i.e. an L2 penalty):
//
//   g   = g + wd * p
//   buf = g                                       at p's first update
//   buf = momentum * buf + (1 - dampening) * g    afterwards
//   g   = g + momentum * buf   (nesterov)   or   buf   (otherwise)
//   p   = p - lr * g
//
// With momentum 0 there is no buffer and the update is p = p - lr * g.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "normlab/backend/backend.hpp"
#include "normlab/optim/optimizer.hpp"

namespace normlab {
inline namespace v0 {

/// torch.optim.SGD's hyper-parameters (torch has no default lr; 0.01 here).
struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  ///< L2 coefficient added to the gradient (decayed kinds only)
  bool nesterov = false;
};

template <FloatingElement Scalar, class Backend>
class SGD : public Optimizer<Scalar, Backend> {
  using Base = Optimizer<Scalar, Backend>;

 public:
  /// One group per entry of `groups`, each with its own weight_decay
  /// (o.weight_decay is not used).
  /// Requires: lr >= 0, momentum >= 0, dampening in [0, 1], nesterov only
  /// with momentum > 0 and dampening 0 (as torch), decays >= 0, unique
  /// parameters. Throws Error naming the field or parameter otherwise.
  SGD(std::vector<ParamGroup<Scalar, Backend>> groups, const SGDOptions& o)
      : Base(std::move(groups), o.lr, "SGD"), options_(o) {
    normlab::detail::check(std::isfinite(o.momentum) && o.momentum >= 0,
                           "SGD: momentum must be finite and >= 0, got ", o.momentum);
    normlab::detail::check(o.dampening >= 0 && o.dampening <= 1,
                           "SGD: dampening must be in [0, 1], got ", o.dampening);
    normlab::detail::check(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
                           "SGD: nesterov needs momentum > 0 and dampening 0, got momentum ",
                           o.momentum, " and dampening ", o.dampening);
    buffers_.resize(this->params_.size());
  }
  /// `params` split by `decays` (split_weight_decay) with o.weight_decay.
  explicit SGD(const std::vector<NamedParameter<Scalar, Backend>>& params, const SGDOptions& o = {},
               const DecayPredicate& decays = decays_by_default)
      : SGD(split_weight_decay(params, detail::checked_weight_decay("SGD", o.weight_decay), decays),
            o) {}
  /// Every parameter of `module`, split by `decays`.
  explicit SGD(Module<Scalar, Backend>& module, const SGDOptions& o = {},
               const DecayPredicate& decays = decays_by_default)
      : SGD(module.named_parameters(), o, decays) {}

  const char* name() const override { return "SGD"; }
  const SGDOptions& options() const { return options_; }

  void step() override {
    this->count_step();
    const bool momentum = options_.momentum != 0;
    for (size_t i = 0; i < this->params_.size(); ++i) {
      const Tensor<Scalar, Backend>* grad = this->grad_of(i);
      if (!grad) continue;
      const Tensor<Scalar, Backend>& p = this->params_[i].value.data();
      Tensor<Scalar, Backend>& buf = buffers_[i];  // same shape as p, when momentum != 0
      SgdStepArgs a;
      a.lr = this->lr_;
      a.momentum = options_.momentum;
      a.dampening = options_.dampening;
      a.weight_decay = this->weight_decays_[i];
      a.nesterov = options_.nesterov;
      a.first_step = momentum && !buf.defined();
      if (a.first_step) buf = Tensor<Scalar, Backend>(p.shape());  // written whole by the kernel
      if (p.numel())
        sgd_step(Backend{}, p.data(), grad->data(), momentum ? buf.data() : nullptr, p.numel(), a);
    }
  }

  /// "step", and with momentum `momentum_buffer.<name>` for each parameter
  /// updated at least once.
  OptimizerState<Scalar, Backend> state() const override {
    OptimizerState<Scalar, Backend> st;
    st.counters["step"] = this->step_count_;
    for (size_t i = 0; i < buffers_.size(); ++i)
      if (buffers_[i].defined())
        st.tensors["momentum_buffer." + this->params_[i].name] = buffers_[i].clone();
    return st;
  }

  void load_state(const OptimizerState<Scalar, Backend>& s) override {
    const std::vector<std::string> tensors = options_.momentum != 0
                                                 ? std::vector<std::string>{"momentum_buffer"}
                                                 : std::vector<std::string>{};
    const int64_t steps = this->check_state_keys(s, tensors, {});
    std::vector<Tensor<Scalar, Backend>> buffers(buffers_.size());
    for (size_t i = 0; i < buffers.size(); ++i)
      if (const Tensor<Scalar, Backend>* b = this->find_entry(s.tensors, "momentum_buffer", i))
        buffers[i] = b->clone();
    buffers_ = std::move(buffers);
    this->step_count_ = steps;
  }

 private:
  SGDOptions options_;
  std::vector<Tensor<Scalar, Backend>>
      buffers_;  // per parameter; undefined before its first update
};

}  // namespace v0
}  // namespace normlab
