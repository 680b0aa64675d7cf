// normlab/policy/policy.hpp — normalization placements and the sites where extras act.
//
// Each sublayer s of a transformer layer (attention, feed-forward) is one
// equation with named sites (x is the residual stream (B, T, C)):
//
//   x <- Post_s( Skip_s(x) + Branch_s( F_s( Pre_s(x) ) ) )
//   F_attn(z) = W_O Heads(Concat_h softmax(q_h k_h^T / sqrt(D)) v_h) + b_O
//   F_ffn(z)  = W_2 Hidden(act(W_1 z + b_1)) + b_2
//
// A *placement* fills Pre_s (Pre-LN) or Post_s (Post-LN) with the sublayer's
// norm. An *extra* acts at one or more of the sites Skip, Heads, Branch and
// Hidden, may own parameters, and states its equation. A policy is a
// placement plus an ordered list of extras:
//
//   using NormFormer = compose<PreLN, HeadScale<before_out_proj>, AttnOutNorm, FfnNorm>;
//
// Extras at one site apply in the order written; extras at different sites
// commute. The built-in extras and the concept a user's extra satisfies are
// in policy/extras.hpp; the registry that composes policies from their names
// at run time is policy/registry.hpp.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "normlab/config.hpp"
#include "normlab/core/error.hpp"
#include "normlab/modules/norm_kind.hpp"

namespace normlab {
inline namespace v0 {

/// Where each sublayer's norm sits relative to the residual add.
enum class Placement {
  post,  ///< x = LN(x + F(x))
  pre,   ///< x = x + F(LN(x))
  none,  ///< x = x + F(x): no norm in the layer (for ReZero-style extras)
};

inline const char* to_string(Placement p) {
  return p == Placement::pre ? "pre_ln" : p == Placement::post ? "post_ln" : "no_ln";
}

/// The sites of a layer where an extra can act, in the order the forward
/// pass reaches them; `norm` is not a site of the equation but the model-wide
/// choice of norm (an extra such as rms_norm sets it).
enum class Site : unsigned {
  attn_skip,    ///< Skip_attn(x), (B, T, C)
  attn_heads,   ///< each head's output before W_O, heads side by side (B, T, C)
  attn_branch,  ///< Branch_attn(F_attn), (B, T, C)
  ffn_hidden,   ///< Hidden(act(W_1 z + b_1)), (B, T, d_ff)
  ffn_branch,   ///< Branch_ffn(F_ffn), (B, T, C)
  ffn_skip,     ///< Skip_ffn(x), (B, T, C)
  norm,         ///< the kind of every norm of the model
};
inline constexpr unsigned kSiteCount = 7;

inline const char* to_string(Site s) {
  constexpr const char* names[kSiteCount] = {
      "attn_skip", "attn_heads", "attn_branch", "ffn_hidden", "ffn_branch", "ffn_skip", "norm"};
  return names[static_cast<unsigned>(s)];
}

/// A set of sites, as a bit mask.
struct SiteSet {
  unsigned bits = 0;
  constexpr SiteSet() = default;
  constexpr SiteSet(std::initializer_list<Site> sites) {
    for (Site s : sites) bits |= 1u << static_cast<unsigned>(s);
  }
  constexpr bool contains(Site s) const { return (bits >> static_cast<unsigned>(s)) & 1u; }
  constexpr bool empty() const { return bits == 0; }
  constexpr bool overlaps(SiteSet o) const { return (bits & o.bits) != 0; }
  /// The first site of the set in forward order (kSiteCount when empty).
  constexpr unsigned first() const {
    for (unsigned i = 0; i < kSiteCount; ++i)
      if ((bits >> i) & 1u) return i;
    return kSiteCount;
  }
  std::string describe() const {
    std::string s;
    for (unsigned i = 0; i < kSiteCount; ++i)
      if ((bits >> i) & 1u) s += std::string(s.empty() ? "" : ", ") + to_string(Site(i));
    return s;
  }
  friend constexpr bool operator==(SiteSet, SiteSet) = default;
};

/// What a policy knows of an extra without building it: its config word, its
/// equation, the sites it acts at, and what it needs of the policy. Comes
/// from the extra's type (extra_info<E>() in policy/extras.hpp).
struct ExtraInfo {
  std::string word;      ///< config word, e.g. "attn_ln" or "head_scale(after_out_proj)"
  std::string equation;  ///< what it computes, e.g. "x <- x + LN_a(MHA(LN(x)))"
  SiteSet sites;
  bool sets_norm = false;                ///< whether it chooses the norm kind (site norm)
  NormKind norm = NormKind::layer_norm;  ///< the kind it chooses, when sets_norm
  bool needs_placement = false;          ///< whether it only makes sense with one placement
  Placement placement = Placement::pre;  ///< that placement, when needs_placement
};

/// A policy as a value: a placement and the words of its extras in canonical
/// order. Two policies that compute the same function have equal specs.
struct PolicySpec {
  Placement placement = Placement::pre;
  std::vector<std::string> extras;
  friend bool operator==(const PolicySpec&, const PolicySpec&) = default;

  /// "post_ln"/"pre_ln"/"no_ln" followed by "+word" for each extra; Post-LN with the
  /// DeepNorm residual first is spelled "deepnorm".
  std::string describe() const {
    std::string s = to_string(placement);
    size_t i = 0;
    if (placement == Placement::post && !extras.empty() && extras[0] == "deepnorm") {
      s = "deepnorm";
      i = 1;
    }
    for (; i < extras.size(); ++i) s += "+" + extras[i];
    return s;
  }
  bool has(std::string_view word) const {
    return std::find(extras.begin(), extras.end(), word) != extras.end();
  }
};

namespace detail {
/// The canonical order of n extras given by their site sets, written to
/// `order` as indices: extras that share a site keep their relative order
/// (they need not commute); among those free to go next, the one whose first
/// site comes first in the forward pass goes first (ties: the earlier one).
/// Two orders that differ only by swapping extras at disjoint sites give the
/// same result. constexpr, so a composed policy orders its extras at compile
/// time with the same rule a run-time spec uses.
constexpr void canonical_permutation(const SiteSet* sites, size_t n, size_t* order) {
  auto placed = [&](size_t i, size_t count) {
    for (size_t k = 0; k < count; ++k)
      if (order[k] == i) return true;
    return false;
  };
  for (size_t k = 0; k < n; ++k) {
    size_t best = n;
    for (size_t i = 0; i < n; ++i) {
      if (placed(i, k)) continue;
      bool free = true;
      for (size_t j = 0; j < i && free; ++j) free = placed(j, k) || !sites[j].overlaps(sites[i]);
      if (free && (best == n || sites[i].first() < sites[best].first())) best = i;
    }
    order[k] = best;
  }
}

/// `extras` in canonical_permutation's order.
inline std::vector<const ExtraInfo*> canonical_order(const std::vector<const ExtraInfo*>& extras) {
  std::vector<SiteSet> sites;
  for (const ExtraInfo* e : extras) sites.push_back(e->sites);
  std::vector<size_t> order(extras.size());
  canonical_permutation(sites.data(), sites.size(), order.data());
  std::vector<const ExtraInfo*> out;
  for (const size_t i : order) out.push_back(extras[i]);
  return out;
}

/// The spec of `placement` with `extras` (each once), after checking that
/// they fit together: each at most once, at most one norm kind, and the
/// placement each needs. Throws Error naming the conflict.
inline PolicySpec make_spec(Placement placement, std::vector<const ExtraInfo*> extras) {
  std::vector<const ExtraInfo*> unique;
  for (const ExtraInfo* e : extras) {
    bool seen = false;
    for (const ExtraInfo* u : unique) seen = seen || u->word == e->word;
    if (!seen) unique.push_back(e);
  }
  const ExtraInfo* norm_setter = nullptr;
  for (const ExtraInfo* e : unique) {
    check(!e->needs_placement || e->placement == placement, "extra \"", e->word, "\" needs the ",
          to_string(e->placement), " placement, but the policy is ", to_string(placement), " (",
          e->equation, ")");
    if (e->sets_norm) {
      check(norm_setter == nullptr, "extras \"", norm_setter ? norm_setter->word : "", "\" and \"",
            e->word, "\" both choose the norm kind; keep one");
      norm_setter = e;
    }
  }
  PolicySpec spec;
  spec.placement = placement;
  for (const ExtraInfo* e : canonical_order(unique)) spec.extras.push_back(e->word);
  return spec;
}
}  // namespace detail

}  // namespace v0
}  // namespace normlab
