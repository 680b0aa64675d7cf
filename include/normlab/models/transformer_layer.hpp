// normlab/models/transformer_layer.hpp — one transformer layer, its norms placed by a policy.
#pragma once

#include <cmath>
#include <optional>
#include <set>
#include <string>

#include "normlab/models/config.hpp"
#include "normlab/modules/attention.hpp"
#include "normlab/modules/layers.hpp"
#include "normlab/policy/registry.hpp"

namespace normlab {
inline namespace v0 {

/// One layer: an attention sublayer, then a feed-forward sublayer, each the
/// equation of policy/policy.hpp with the norms the placement puts and the
/// extras the policy adds. With LN_1 = attn_norm and LN_2 = ffn_norm
/// (checkpoint keys self_attn_layer_norm and final_layer_norm, fairseq's):
///
///   pre placement:   x = Skip_a(x) + D(Branch_a(Attn(LN_1(x))))
///                    x = Skip_f(x) + D(Branch_f(FFN(LN_2(x))))
///   post placement:  x = LN_1(Skip_a(x) + D(Branch_a(Attn(x))))
///                    x = LN_2(Skip_f(x) + D(Branch_f(FFN(x))))
///   no_ln placement: x = Skip_a(x) + D(Branch_a(Attn(x))), then the same for FFN
///
///   Attn(z) = W_O Heads(Concat_h h_h) + b_O,   FFN(z) = fc2(Hidden(act(fc1(z))))
///
/// where each of Skip, Heads, Branch, Hidden is the composition of the
/// policy's extras at that site, in order (identity without one), and D is
/// dropout (training only); activation_dropout drops act(fc1(z)) before Hidden. Norms are LayerNorm
/// or RMSNorm per the policy. Policy is a static policy (compose<...>) or RuntimePolicy, whose
/// extras come from the config; both run the extras' same code.
template <class Policy, FloatingElement Scalar, class Backend>
class TransformerLayer : public Module<Scalar, Backend> {
  static_assert(detail::check_policy<Policy>());

 public:
  using Var = Variable<Scalar, Backend>;
  using Norm = Normalization<Scalar, Backend>;
  using policy_type = Policy;
  using Extras = LayerExtras<Policy, Scalar, Backend>;

  /// Sizes, eps, activation, the policy (for RuntimePolicy) and the depth N
  /// come from `cfg`; `layer` is this layer's index (extras may use it).
  /// Contract: cfg.validate() passes and, for a static Policy, cfg names it
  /// (the model checks; throws Error otherwise).
  TransformerLayer(const ModelConfig& cfg, Generator& gen, int64_t layer = 0)
      : TransformerLayer(cfg, cfg.policy_spec(), gen, layer) {}

  /// The same with the config's policy already parsed: a model parses it
  /// once for all its layers. Contract: spec == cfg.policy_spec().
  TransformerLayer(const ModelConfig& cfg, const PolicySpec& spec, Generator& gen, int64_t layer)
      : TransformerLayer(cfg, spec, norm_kind_of(spec), gen, layer) {}

  /// What a forward pass needs besides x.
  struct Options {
    bool causal = true;
    Variable<Scalar, Backend> key_bias;  ///< (B, 1, 1, T) additive padding mask, or undefined
    Generator* gen = nullptr;            ///< for dropout when training with dropout > 0
  };

  /// x (B, T, C) -> (B, T, C).
  Var forward(const Var& x, const Options& opt) const {
    typename MultiHeadAttention<Scalar, Backend>::Options attn_opt;
    attn_opt.causal = opt.causal;
    attn_opt.key_bias = opt.key_bias;
    attn_opt.dropout = attention_dropout_p;
    attn_opt.gen = opt.gen;
    const bool pre = extras.placement() == Placement::pre;
    const bool post = extras.placement() == Placement::post;

    // Attention sublayer.
    const Var heads = self_attn.attend(pre ? attn_norm->forward(x) : x, attn_opt);
    Var h = extras.project_heads(self_attn.out_proj, heads);  // (B, T, C)
    h = extras.template at<Site::attn_branch>(h);
    Var y = extras.template at<Site::attn_skip>(x) + drop(h, dropout_p, opt);  // (B, T, C)
    if (post) y = attn_norm->forward(y);

    // Feed-forward sublayer.
    const Var ffn_in = pre ? ffn_norm->forward(y) : y;    // (B, T, C)
    Var f = activation_dropout_p > 0 && this->training()  // (B, T, d_ff)
                ? extras.template at<Site::ffn_hidden>(
                      drop(ffn.hidden(ffn_in), activation_dropout_p, opt))  // Hidden(drop(act))
                : extras.hidden(ffn, ffn_in);
    f = extras.template at<Site::ffn_branch>(ffn.output(f));  // (B, T, C)
    Var out = extras.template at<Site::ffn_skip>(y) + drop(f, dropout_p, opt);
    if (post) out = ffn_norm->forward(out);
    return out;
  }

  /// The extras' own parameters (c_attn, w_resid, ...), then, as children:
  /// self_attn, attn_norm (key self_attn_layer_norm), the attention extras'
  /// modules (attn_ln), fc1, fc2, the feed-forward extras' modules
  /// (ffn_layernorm, ffn_out_ln), ffn_norm (key final_layer_norm): fairseq's
  /// order and keys. In normlab's own words "final" is only the model's
  /// last norm (TransformerStack::final_norm, config key final_norm).
  void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) override {
    extras.for_each_own_parameter(f);
  }
  void for_each_child(const typename Module<Scalar, Backend>::ChildFn& f) override {
    f("self_attn", self_attn);
    if (attn_norm) f("self_attn_layer_norm", *attn_norm);
    extras.for_each_child(true, f);
    f("", ffn);  // fc1, fc2 sit directly in the layer, as in fairseq
    extras.for_each_child(false, f);
    if (ffn_norm) f("final_layer_norm", *ffn_norm);
  }

  MultiHeadAttention<Scalar, Backend> self_attn;
  std::optional<Norm> attn_norm;  ///< (C,), LN_1 (self_attn_layer_norm); none with no_ln
  FeedForward<Scalar, Backend> ffn;
  std::optional<Norm> ffn_norm;  ///< (C,), LN_2 (final_layer_norm); none with no_ln
  Extras extras;
  double dropout_p, attention_dropout_p, activation_dropout_p;

 private:
  TransformerLayer(const ModelConfig& cfg, const PolicySpec& spec, NormKind norm, Generator& gen,
                   int64_t layer)
      : self_attn(cfg.d_model, cfg.n_heads, gen),
        ffn(cfg.d_model, cfg.d_ff, cfg.activation_kind(), gen),
        extras(spec, ExtraContext{cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.n_layers, layer,
                                  cfg.ln_eps, norm}),
        dropout_p(cfg.dropout),
        attention_dropout_p(cfg.attention_dropout),
        activation_dropout_p(cfg.activation_dropout) {
    if (spec.placement != Placement::none) {
      attn_norm.emplace(cfg.d_model, cfg.ln_eps, norm);
      ffn_norm.emplace(cfg.d_model, cfg.ln_eps, norm);
    }
    std::set<std::string> names;
    this->for_each_parameter([&](const std::string& name, Var&, ParamKind) {
      detail::check(names.insert(name).second, "policy ", spec.describe(),
                    ": two parts of the layer name a parameter \"", name,
                    "\"; an extra's parameters need names of their own");
    });
  }

  Var drop(const Var& h, double p, const Options& opt) const {
    if (p == 0 || !this->training()) return h;
    detail::check(opt.gen != nullptr, "TransformerLayer: dropout ", p,
                  " in training mode needs Options::gen");
    return dropout(h, p, *opt.gen, true);
  }
};

}  // namespace v0
}  // namespace normlab
