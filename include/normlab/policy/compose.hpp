// normlab/policy/compose.hpp — policies as types: a placement and extras.
//
//   PostLN      x = LN(x + F(x))                    (Vaswani et al. 2017)
//   PreLN       x = x + F(LN(x)), final LN          (Xiong et al. 2020)
//   NormFormer  PreLN + head scaling + attn_ln + ffn_ln (Shleifer, Weston, Ott 2021)
//   SandwichLN  x = x + LN_out(F(LN(x))) on both sublayers (CogView, Ding et al. 2021)
//   DeepNorm    x = LN(alpha x + F(x)), alpha = (2N)^(1/4)  (DeepNet, Wang et al. 2022)
//
// compose<Base, Extras...> appends extras to a policy; the result is a type,
// and a site that none of its extras uses costs nothing:
//   using MyPolicy = compose<PreLN, AttnOutNorm, LayerScale>;
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "normlab/policy/extras.hpp"

namespace normlab {
inline namespace v0 {

template <Placement P, class... Extras>
struct ComposedPolicy;

namespace detail {
template <class E, class... Es>
constexpr int count_of() {
  return (0 + ... + (std::is_same_v<E, Es> ? 1 : 0));
}
template <class E, Placement P>
constexpr bool fits_placement() {
  if constexpr (requires { E::placement; })
    return E::placement == P;
  else
    return true;
}
template <class... Es>
constexpr int norm_setters() {
  return (0 + ... + (requires { Es::norm; } ? 1 : 0));
}
template <class... Es>
constexpr NormKind norm_of() {
  NormKind k = NormKind::layer_norm;
  (
      [&] {
        if constexpr (requires { Es::norm; }) k = Es::norm;
      }(),
      ...);
  return k;
}
}  // namespace detail

/// The policy with placement P and Extras applied in order at each site.
/// Make one with compose<PostLN, PreLN or NoLN, Extras...>.
template <Placement P, class... Extras>
struct ComposedPolicy {
  static_assert((PolicyExtra<Extras> && ...),
                "compose<Base, Extras...>: each extra must be a policy extra (a struct with word, "
                "equation, sites and a State template; see normlab/policy/extras.hpp). Built-in "
                "extras: HeadScale<before_out_proj>, HeadScale<after_out_proj>, AttnOutNorm, "
                "FfnNorm, FfnOutNorm, ResidScale, DeepNormResidual, UseRMSNorm");

  static_assert((detail::fits_placement<Extras, P>() && ...),
                "compose<Base, Extras...>: an extra needs the other placement (DeepNormResidual "
                "needs PostLN)");
  static_assert(detail::norm_setters<Extras...>() <= 1,
                "compose<Base, Extras...>: two extras choose the norm kind; keep one");

  static constexpr Placement placement = P;
  /// Whether the model ends in a norm by default (after Pre-LN layers).
  static constexpr bool final_norm = P == Placement::pre;
  /// The kind of every norm of the model (rms_norm when UseRMSNorm is among the extras).
  static constexpr NormKind norm = detail::norm_of<Extras...>();
  /// Whether E is among the extras.
  template <class E>
  static constexpr bool has = (std::is_same_v<E, Extras> || ...);
  using extras = ExtraList<Extras...>;

  /// The policy as a value, its extras in canonical order. Throws Error when
  /// the extras do not fit together (e.g. two norm kinds).
  static PolicySpec spec() {
    const std::vector<ExtraInfo> infos = {extra_info<Extras>()...};
    std::vector<const ExtraInfo*> ptrs;
    for (const ExtraInfo& i : infos) ptrs.push_back(&i);
    return detail::make_spec(P, ptrs);
  }
  /// "pre_ln+head_scale(before_out_proj)+attn_ln+ffn_ln": spec().describe().
  static std::string name() { return spec().describe(); }
};

namespace detail {
template <class P>
struct IsComposedPolicy : std::false_type {};
template <Placement P, class... Es>
struct IsComposedPolicy<ComposedPolicy<P, Es...>> : std::true_type {};

template <class Base, class... Extras>
struct Compose {
  static_assert(IsComposedPolicy<Base>::value,
                "compose<Base, Extras...>: Base must be a policy: PostLN, PreLN, NoLN or a "
                "compose<...> "
                "of them (NormFormer, SandwichLN, DeepNorm, ...)");
  using type = Base;
};
template <Placement P, class... Es, class... Extras>
struct Compose<ComposedPolicy<P, Es...>, Extras...> {
  static_assert((PolicyExtra<Extras> && ...),
                "compose<Base, Extras...>: each extra must be a policy extra (a struct with word, "
                "equation, sites and a State template; see normlab/policy/extras.hpp). Built-in "
                "extras: HeadScale<before_out_proj>, HeadScale<after_out_proj>, AttnOutNorm, "
                "FfnNorm, FfnOutNorm, ResidScale, DeepNormResidual, UseRMSNorm");
  static_assert(((count_of<Extras, Es..., Extras...>() == 1) && ...),
                "compose<Base, Extras...>: an extra can be composed only once");
  using type = ComposedPolicy<P, Es..., Extras...>;
};
}  // namespace detail

/// The policy Base with each of Extras appended.
template <class Base, class... Extras>
using compose = typename detail::Compose<Base, Extras...>::type;

// ---- presets ----------------------------------------------------------------

/// Post-LN (Vaswani et al. 2017): x = LN(x + F(x)) for each sublayer; no final
/// norm. Needs learning-rate warm-up to train (Xiong et al. 2020).
using PostLN = ComposedPolicy<Placement::post>;
/// Pre-LN: x = x + F(LN(x)) for each sublayer, and a final LN after the last layer.
using PreLN = ComposedPolicy<Placement::pre>;
/// No norm in the layers: x = x + F(x), and no final norm. Untrainable when
/// deep on its own; the base of ReZero-style extras (examples/extras/rezero.hpp).
using NoLN = ComposedPolicy<Placement::none>;
/// DeepNorm (DeepNet, Wang et al. 2022), decoder-only form: Post-LN with an
/// up-weighted residual, x = LN(alpha x + F(x)), alpha = (2N)^(1/4) for N
/// layers; pair it with InitScheme::deepnorm (gain beta = (8N)^(-1/4) on
/// v_proj, out_proj, fc1, fc2).
using DeepNorm = compose<PostLN, DeepNormResidual>;
/// NormFormer (Shleifer, Weston, Ott 2021) in the paper's form: Pre-LN plus
/// head scaling before out_proj, attn_ln and ffn_ln.
using NormFormer = compose<PreLN, HeadScale<before_out_proj>, AttnOutNorm, FfnNorm>;
/// NormFormer as fairseq's released code computes it (head scaling after out_proj).
using NormFormerFairseq = compose<PreLN, HeadScale<after_out_proj>, AttnOutNorm, FfnNorm>;
/// Sandwich-LN (CogView): a norm before and after each sublayer.
using SandwichLN = compose<PreLN, AttnOutNorm, FfnOutNorm>;

/// The policy the model's config names, composed at run time from extras
/// chosen by name (policy/registry.hpp): GPT<RuntimePolicy, float, Cpu> is one type
/// for every composition a config or the command line can describe, and
/// computes exactly what the same composition as a static type computes.
struct RuntimePolicy {};

namespace detail {
/// Whether P is a policy a layer can be built with; fails with a readable
/// message otherwise.
template <class P>
constexpr bool check_policy() {
  static_assert(
      IsComposedPolicy<P>::value || std::is_same_v<P, RuntimePolicy>,
      "normlab: Policy must be a normalization policy made by compose<PostLN, PreLN or NoLN, "
      "extras...> (PostLN, PreLN, NormFormer, NormFormerFairseq, SandwichLN, DeepNorm, "
      "or e.g. compose<PreLN, AttnOutNorm, FfnNorm>), or RuntimePolicy. A struct "
      "derived from a policy cannot add or change traits: write the change as an "
      "extra. Built-in extras: HeadScale<before_out_proj>, HeadScale<after_out_proj>, "
      "AttnOutNorm, FfnNorm, FfnOutNorm, ResidScale, DeepNormResidual, UseRMSNorm");
  return IsComposedPolicy<P>::value || std::is_same_v<P, RuntimePolicy>;
}
}  // namespace detail

/// Whether P is a static policy type (ComposedPolicy).
template <class P>
concept NormPolicy = detail::IsComposedPolicy<P>::value;

/// The spec of a static policy type.
template <class P>
PolicySpec spec_of() {
  static_assert(detail::check_policy<P>() && !std::is_same_v<P, RuntimePolicy>,
                "spec_of<P>: RuntimePolicy has no spec of its own; read it from the config");
  return P::spec();
}

}  // namespace v0
}  // namespace normlab
