// normlab/policy/policy.hpp — normalization-placement policies.
//
// A policy is an empty tag struct whose `static constexpr` traits say where
// the norms of a transformer layer sit and which extra operations it has.
// TransformerLayer reads them with `if constexpr`, so a feature a policy does
// not enable owns no parameter and costs no time. Notation: x is the residual
// stream (B, T, C), F a sublayer (attention or feed-forward), LN a norm.
//
//   PostLN      x = LN(x + F(x))                    (Vaswani et al. 2017)
//   PreLN       x = x + F(LN(x)), final LN          (Xiong et al. 2020)
//   NormFormer  PreLN + head scaling + attn_ln + ffn_ln (Shleifer, Weston, Ott 2021)
//   SandwichLN  x = x + LN_out(F(LN(x))) on both sublayers (CogView, Ding et al. 2021)
//   DeepNorm    x = LN(alpha x + F(x)), alpha = (2N)^(1/4)  (DeepNet, Wang et al. 2022)
//
// Extras compose onto a base by type, each alone or in any combination:
//   using NormFormer = compose<PreLN, HeadScale<before_out_proj>, AttnOutNorm, FfnNorm>;
// A user's own policy is a struct that inherits a base and overrides traits:
//   struct PreLNWithAttnLN : PreLN {
//     static constexpr bool attn_out_norm = true;
//     static std::string name() { return "pre_ln_attn_ln"; }
//   };
#pragma once

#include <concepts>
#include <string>

#include "normlab/config.hpp"

namespace normlab::inline v0 {

/// Where each sublayer's norm sits relative to the residual add.
enum class Placement {
  post,  ///< x = LN(x + F(x))
  pre,   ///< x = x + F(LN(x))
};

/// NormFormer's learned per-head scale gamma_h (parameter `c_attn`, (H,), init 1).
enum class HeadScalePlacement {
  none,
  /// The paper's form: MHA = Concat(gamma_1 h_1, ..., gamma_H h_H) W_O + b_O.
  before_out_proj,
  /// fairseq's released code: y = Concat(h_1..h_H) W_O + b_O, then each
  /// contiguous group of C/H channels of y (bias included) times gamma_h.
  after_out_proj,
};
inline constexpr HeadScalePlacement before_out_proj = HeadScalePlacement::before_out_proj;
inline constexpr HeadScalePlacement after_out_proj = HeadScalePlacement::after_out_proj;

/// Which normalization every norm of the model computes.
enum class NormKind {
  layer_norm,  ///< (x - mean) / sqrt(var + eps) * weight + bias
  rms_norm,    ///< x / sqrt(mean(x^2) + eps) * weight (no bias)
};

inline const char* to_string(HeadScalePlacement p) {
  return p == HeadScalePlacement::before_out_proj  ? "before_out_proj"
         : p == HeadScalePlacement::after_out_proj ? "after_out_proj"
                                                   : "none";
}
inline const char* to_string(NormKind k) {
  return k == NormKind::rms_norm ? "rms_norm" : "layer_norm";
}

/// The traits every policy defines. `final_norm` is the default of a model's
/// final norm after the last layer (a model config may override it).
template <class P>
concept NormPolicy = requires {
  { P::placement } -> std::convertible_to<Placement>;
  { P::final_norm } -> std::convertible_to<bool>;
  { P::head_scale } -> std::convertible_to<HeadScalePlacement>;
  { P::attn_out_norm } -> std::convertible_to<bool>;
  { P::ffn_norm } -> std::convertible_to<bool>;
  { P::ffn_out_norm } -> std::convertible_to<bool>;
  { P::resid_scale } -> std::convertible_to<bool>;
  { P::deepnorm_residual } -> std::convertible_to<bool>;
  { P::norm } -> std::convertible_to<NormKind>;
  { P::name() } -> std::convertible_to<std::string>;
};

// ---- bases ------------------------------------------------------------------

/// Post-LN (Vaswani et al. 2017): x = LN(x + F(x)) for each sublayer; no final
/// norm. Needs learning-rate warm-up to train (Xiong et al. 2020).
struct PostLN {
  static constexpr Placement placement = Placement::post;
  static constexpr bool final_norm = false;
  static constexpr HeadScalePlacement head_scale = HeadScalePlacement::none;
  static constexpr bool attn_out_norm = false;
  static constexpr bool ffn_norm = false;
  static constexpr bool ffn_out_norm = false;
  static constexpr bool resid_scale = false;
  static constexpr bool deepnorm_residual = false;
  static constexpr NormKind norm = NormKind::layer_norm;
  static std::string name() { return "post_ln"; }
};

/// Pre-LN: x = x + F(LN(x)) for each sublayer, and a final LN after the last layer.
struct PreLN : PostLN {
  static constexpr Placement placement = Placement::pre;
  static constexpr bool final_norm = true;
  static std::string name() { return "pre_ln"; }
};

/// DeepNorm (DeepNet, Wang et al. 2022), decoder-only form: Post-LN with an
/// up-weighted residual, x = LN(alpha x + F(x)), alpha = (2N)^(1/4) for N
/// layers; pair it with InitScheme::deepnorm (gain beta = (8N)^(-1/4) on
/// v_proj, out_proj, fc1, fc2).
struct DeepNorm : PostLN {
  static constexpr bool deepnorm_residual = true;
  static std::string name() { return "deepnorm"; }
};

// ---- extras -----------------------------------------------------------------
// Each extra is a tag with a member template `apply<P>` that derives from P
// and overrides the traits it sets.

/// Head-wise scaling of the attention output by gamma_h (`c_attn`, (H,), init 1),
/// before or after the output projection (see HeadScalePlacement).
template <HeadScalePlacement Where>
struct HeadScale {
  static_assert(Where != HeadScalePlacement::none,
                "HeadScale<Where>: Where must be before_out_proj or after_out_proj");
  template <class P>
  struct apply : P {
    static_assert(P::head_scale == HeadScalePlacement::none,
                  "HeadScale: the policy already scales heads; compose it only once");
    static constexpr HeadScalePlacement head_scale = Where;
    static std::string name() { return P::name() + "+head_scale(" + to_string(Where) + ")"; }
  };
};

/// A norm on the attention sublayer's output, before the residual add
/// (`attn_ln`, (C,)): x = x + LN_a(MHA(LN(x))).
struct AttnOutNorm {
  template <class P>
  struct apply : P {
    static constexpr bool attn_out_norm = true;
    static std::string name() { return P::name() + "+attn_ln"; }
  };
};

/// A norm inside the feed-forward sublayer, after the activation of fc1
/// (`ffn_layernorm`, (d_ff,)): FFN(z) = W2 LN_f(act(W1 z + b1)) + b2.
struct FfnNorm {
  template <class P>
  struct apply : P {
    static constexpr bool ffn_norm = true;
    static std::string name() { return P::name() + "+ffn_ln"; }
  };
};

/// A norm on the feed-forward sublayer's output, before the residual add
/// (`ffn_out_ln`, (C,)): x = x + LN_o(FFN(LN(x))). With AttnOutNorm on Pre-LN
/// this is Sandwich-LN.
struct FfnOutNorm {
  template <class P>
  struct apply : P {
    static constexpr bool ffn_out_norm = true;
    static std::string name() { return P::name() + "+ffn_out_ln"; }
  };
};

/// fairseq's `scale_resids`: a learned per-channel lambda (`w_resid`, (C,),
/// init 1) on the skip path of the feed-forward residual only:
/// x = lambda * x + FFN(LN(x)).
struct ResidScale {
  template <class P>
  struct apply : P {
    static constexpr bool resid_scale = true;
    static std::string name() { return P::name() + "+resid_scale"; }
  };
};

/// Every norm of the model becomes an RMSNorm (Zhang & Sennrich 2019).
struct UseRMSNorm {
  template <class P>
  struct apply : P {
    static constexpr NormKind norm = NormKind::rms_norm;
    static std::string name() { return P::name() + "+rms_norm"; }
  };
};

/// An extra: something compose<> can apply to a policy.
template <class E>
concept PolicyExtra = requires {
  typename E::template apply<PostLN>;
};

namespace detail {
template <class Base, class... Extras>
struct Compose {
  using type = Base;
};
template <class Base, class E, class... Rest>
struct Compose<Base, E, Rest...> {
  static_assert(PolicyExtra<E>,
                "compose<Base, Extras...>: each extra must be a policy extra: HeadScale<"
                "before_out_proj>, HeadScale<after_out_proj>, AttnOutNorm, FfnNorm, FfnOutNorm, "
                "ResidScale or UseRMSNorm");
  using type = typename Compose<typename E::template apply<Base>, Rest...>::type;
};
}  // namespace detail

/// The policy Base with each of Extras applied in order.
template <class Base, class... Extras>
requires NormPolicy<Base>
using compose = typename detail::Compose<Base, Extras...>::type;

// ---- presets ----------------------------------------------------------------

/// NormFormer (Shleifer, Weston, Ott 2021) in the paper's form: Pre-LN plus
/// head scaling before out_proj, attn_ln and ffn_ln.
using NormFormer = compose<PreLN, HeadScale<before_out_proj>, AttnOutNorm, FfnNorm>;
/// NormFormer as fairseq's released code computes it (head scaling after out_proj).
using NormFormerFairseq = compose<PreLN, HeadScale<after_out_proj>, AttnOutNorm, FfnNorm>;
/// Sandwich-LN (CogView): a norm before and after each sublayer.
using SandwichLN = compose<PreLN, AttnOutNorm, FfnOutNorm>;

// ---- run-time description -------------------------------------------------

/// A policy's traits as a value, to compare a policy type with a config.
struct PolicyTraits {
  Placement placement = Placement::pre;
  HeadScalePlacement head_scale = HeadScalePlacement::none;
  bool attn_out_norm = false, ffn_norm = false, ffn_out_norm = false, resid_scale = false,
       deepnorm_residual = false;
  NormKind norm = NormKind::layer_norm;
  friend bool operator==(const PolicyTraits&, const PolicyTraits&) = default;

  /// "post_ln"/"pre_ln"/"deepnorm" followed by "+extra" for each extra.
  std::string describe() const {
    std::string s = deepnorm_residual             ? "deepnorm"
                    : placement == Placement::pre ? "pre_ln"
                                                  : "post_ln";
    if (head_scale != HeadScalePlacement::none)
      s += std::string("+head_scale(") + to_string(head_scale) + ")";
    if (attn_out_norm) s += "+attn_ln";
    if (ffn_norm) s += "+ffn_ln";
    if (ffn_out_norm) s += "+ffn_out_ln";
    if (resid_scale) s += "+resid_scale";
    if (norm == NormKind::rms_norm) s += "+rms_norm";
    return s;
  }
};

template <NormPolicy P>
constexpr PolicyTraits traits_of() {
  return PolicyTraits{P::placement,    P::head_scale,  P::attn_out_norm,     P::ffn_norm,
                      P::ffn_out_norm, P::resid_scale, P::deepnorm_residual, P::norm};
}

}  // namespace normlab::inline v0
