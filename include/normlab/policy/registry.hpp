// normlab/policy/registry.hpp — from a policy chosen at run time (a config
// file) to the compile-time policy type that computes it.
#pragma once

#include <string>
#include <tuple>

#include "normlab/core/error.hpp"
#include "normlab/policy/policy.hpp"

namespace normlab::inline v0 {

/// The policies a config file can name: the presets, both NormFormer
/// head-scale placements with and without residual scaling, and each extra
/// alone on Pre-LN (the NormFormer paper's ablations). Each is compiled into
/// any program that dispatches on a config, so the list stays short; a
/// policy outside it is used by naming its type in C++.
using KnownPolicies =
    std::tuple<PostLN, PreLN, NormFormer, NormFormerFairseq, compose<NormFormer, ResidScale>,
               compose<NormFormerFairseq, ResidScale>, compose<PreLN, HeadScale<before_out_proj>>,
               compose<PreLN, HeadScale<after_out_proj>>, compose<PreLN, AttnOutNorm>,
               compose<PreLN, FfnNorm>, compose<PreLN, ResidScale>, SandwichLN, DeepNorm,
               compose<PreLN, UseRMSNorm>>;

namespace detail {
template <class... Ps>
std::string describe_all(std::tuple<Ps...>*) {
  std::string s;
  ((s += (s.empty() ? "" : ", ") + traits_of<Ps>().describe()), ...);
  return s;
}
template <class F, class... Ps>
bool dispatch_policy(const PolicyTraits& t, F& f, std::tuple<Ps...>*) {
  return ((traits_of<Ps>() == t ? (f.template operator()<Ps>(), true) : false) || ...);
}
}  // namespace detail

/// The known policies, one description each ("pre_ln+attn_ln", ...).
inline std::string known_policy_names() {
  return detail::describe_all(static_cast<KnownPolicies*>(nullptr));
}

/// Calls `f.template operator()<P>()` for every known policy P, in list order.
template <class F>
void for_each_known_policy(F&& f) {
  [&]<class... Ps>(std::tuple<Ps...>*) {
    (f.template operator()<Ps>(), ...);
  }(static_cast<KnownPolicies*>(nullptr));
}

/// Calls `f.template operator()<P>()` for the known policy P whose traits are
/// `t`. Throws Error listing the known policies when none is.
template <class F>
void with_policy(const PolicyTraits& t, F&& f) {
  detail::check(detail::dispatch_policy(t, f, static_cast<KnownPolicies*>(nullptr)), "policy ",
                t.describe(), " is not among the policies a config can select (",
                known_policy_names(), "); use it from C++ by naming its type");
}

}  // namespace normlab::inline v0
