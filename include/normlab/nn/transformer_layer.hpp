// normlab/nn/transformer_layer.hpp — one transformer layer, its norms placed by a policy.
#pragma once

#include <cmath>
#include <optional>

#include "normlab/nn/attention.hpp"
#include "normlab/nn/config.hpp"
#include "normlab/nn/layers.hpp"
#include "normlab/policy/policy.hpp"

namespace normlab::inline v0 {

namespace detail {
/// The primary template of TransformerLayer fails here, with a readable message.
template <class Policy>
constexpr bool check_policy() {
  static_assert(NormPolicy<Policy>,
                "TransformerLayer<Policy, Backend, T>: Policy must be a normalization policy "
                "(PostLN, PreLN, NormFormer, DeepNorm, SandwichLN, compose<PreLN, extras...>, or "
                "a struct defining the traits of the NormPolicy concept in "
                "normlab/policy/policy.hpp)");
  return NormPolicy<Policy>;
}
}  // namespace detail

/// One layer: an attention sublayer, then a feed-forward sublayer, each with
/// the norms the policy places. With LN_1 = self_attn_layer_norm and
/// LN_2 = final_layer_norm (fairseq's names):
///
///   pre placement:   x = a x + D(S_a(Attn(LN_1(x))))
///                    x = a (lambda * x) + D(S_f(FFN(LN_2(x))))
///   post placement:  x = LN_1(a x + D(S_a(Attn(x))))
///                    x = LN_2(a (lambda * x) + D(S_f(FFN(x))))
///
///   FFN(z) = fc2(N_f(act(fc1(z))))
///
/// where a = (2N)^(1/4) for DeepNorm and 1 otherwise; S_a = attn_ln when
/// attn_out_norm, S_f = ffn_out_ln when ffn_out_norm, N_f = ffn_layernorm when
/// ffn_norm (identity otherwise); lambda = w_resid when resid_scale, else 1;
/// D is dropout (training only); Attn scales its heads by c_attn where the
/// policy's head_scale says. Norms are LayerNorm or RMSNorm per the policy.
template <class Policy, class B, FloatingElement T = float>
requires(detail::check_policy<Policy>()) class TransformerLayer : public Module<T, B> {
 public:
  using Var = Variable<T, B>;
  using Norm = NormLayer<Policy::norm, T, B>;
  using policy_type = Policy;

  /// Sizes, eps, activation and (for DeepNorm) the depth N come from `cfg`.
  /// Contract: cfg.validate() passes (throws Error otherwise).
  TransformerLayer(const ModelConfig& cfg, Generator& gen)
      : self_attn(cfg.d_model, cfg.n_heads, gen),
        self_attn_layer_norm(cfg.d_model, cfg.ln_eps),
        ffn(cfg.d_model, cfg.d_ff, cfg.activation_kind(), gen),
        final_layer_norm(cfg.d_model, cfg.ln_eps),
        residual_weight(Policy::deepnorm_residual
                            ? std::pow(2.0 * static_cast<double>(cfg.n_layers), 0.25)
                            : 1.0),
        dropout_p(cfg.dropout),
        attention_dropout_p(cfg.attention_dropout) {
    if constexpr (Policy::attn_out_norm) attn_ln.emplace(cfg.d_model, cfg.ln_eps);
    if constexpr (Policy::ffn_norm) ffn_layernorm.emplace(cfg.d_ff, cfg.ln_eps);
    if constexpr (Policy::ffn_out_norm) ffn_out_ln.emplace(cfg.d_model, cfg.ln_eps);
    if constexpr (Policy::head_scale != HeadScalePlacement::none)
      c_attn = Var(Tensor<T, B>::ones({cfg.n_heads}), true);  // (H,)
    if constexpr (Policy::resid_scale)
      w_resid = Var(Tensor<T, B>::ones({cfg.d_model}), true);  // (C,)
  }

  /// What a forward pass needs besides x.
  struct Options {
    bool causal = true;
    Variable<T, B> key_bias;   ///< (B, 1, 1, T) additive padding mask, or undefined
    Generator* gen = nullptr;  ///< for dropout when training with dropout > 0
  };

  /// x (B, T, C) -> (B, T, C).
  Var forward(const Var& x, const Options& opt) const {
    typename MultiHeadAttention<T, B>::Options attn_opt;
    attn_opt.causal = opt.causal;
    attn_opt.key_bias = opt.key_bias;
    attn_opt.dropout = attention_dropout_p;
    attn_opt.gen = opt.gen;
    if constexpr (Policy::head_scale != HeadScalePlacement::none) {
      attn_opt.head_scale = &c_attn;
      attn_opt.head_scale_at = Policy::head_scale;
    }
    constexpr bool pre = Policy::placement == Placement::pre;

    // Attention sublayer.
    Var h = self_attn.forward(pre ? self_attn_layer_norm.forward(x) : x, attn_opt);  // (B, T, C)
    if constexpr (Policy::attn_out_norm) h = attn_ln->forward(h);
    Var y = residual(x) + drop(h, opt);
    if constexpr (!pre) y = self_attn_layer_norm.forward(y);

    // Feed-forward sublayer.
    const Var ffn_in = pre ? final_layer_norm.forward(y) : y;  // (B, T, C)
    Var f;                                                     // (B, T, d_ff)
    if constexpr (Policy::ffn_norm)
      f = ffn.normalized_hidden(ffn_in, *ffn_layernorm);
    else
      f = ffn.hidden(ffn_in);
    f = ffn.output(f);  // (B, T, C)
    if constexpr (Policy::ffn_out_norm) f = ffn_out_ln->forward(f);
    Var skip = y;
    if constexpr (Policy::resid_scale) skip = skip * w_resid;
    Var out = residual(skip) + drop(f, opt);
    if constexpr (!pre) out = final_layer_norm.forward(out);
    return out;
  }

  void for_each_own_parameter(const typename Module<T, B>::ParameterFn& f) override {
    if constexpr (Policy::head_scale != HeadScalePlacement::none)
      f("c_attn", c_attn, ParamKind::scale);
    if constexpr (Policy::resid_scale) f("w_resid", w_resid, ParamKind::scale);
  }
  void for_each_child(const typename Module<T, B>::ChildFn& f) override {
    f("self_attn", self_attn);
    f("self_attn_layer_norm", self_attn_layer_norm);
    if constexpr (Policy::attn_out_norm) f("attn_ln", *attn_ln);
    f("", ffn);  // fc1, fc2 sit directly in the layer, as in fairseq
    if constexpr (Policy::ffn_norm) f("ffn_layernorm", *ffn_layernorm);
    if constexpr (Policy::ffn_out_norm) f("ffn_out_ln", *ffn_out_ln);
    f("final_layer_norm", final_layer_norm);
  }

  MultiHeadAttention<T, B> self_attn;
  Norm self_attn_layer_norm;
  FeedForward<T, B> ffn;
  Norm final_layer_norm;
  std::optional<Norm> attn_ln;        ///< (C,), only with attn_out_norm
  std::optional<Norm> ffn_layernorm;  ///< (d_ff,), only with ffn_norm
  std::optional<Norm> ffn_out_ln;     ///< (C,), only with ffn_out_norm
  Var c_attn;                         ///< (H,), only with head scaling
  Var w_resid;                        ///< (C,), only with resid_scale
  double residual_weight;             ///< a: (2N)^(1/4) for DeepNorm, else 1
  double dropout_p, attention_dropout_p;

 private:
  Var residual(const Var& x) const {
    if constexpr (Policy::deepnorm_residual)
      return x * residual_weight;
    else
      return x;
  }
  Var drop(const Var& h, const Options& opt) const {
    if (dropout_p == 0 || !this->training()) return h;
    detail::check(opt.gen != nullptr, "TransformerLayer: dropout ", dropout_p,
                  " in training mode needs Options::gen");
    return dropout(h, dropout_p, *opt.gen, true);
  }
};

}  // namespace normlab::inline v0
