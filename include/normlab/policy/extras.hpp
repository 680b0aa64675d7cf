// normlab/policy/extras.hpp — extras: what a policy adds at the sites of a layer.
//
// An extra is a tag struct that carries everything about itself:
//
//   struct MyExtra {
//     static constexpr std::string_view word = "my_extra";        // config word
//     static constexpr std::string_view equation = "x <- ...";    // what it computes
//     static constexpr SiteSet sites = {Site::ffn_branch};        // where it acts
//     template <FloatingElement T, class B>
//     struct State : Module<Scalar, Backend> {                                 // per layer
//       explicit State(const ExtraContext& cx);                     // sizes of the layer
//       Variable<Scalar, Backend> ffn_branch(const Variable<Scalar, Backend>& f) const;   // one
//       method per site
//       // parameters: for_each_own_parameter / for_each_child, as any Module
//     };
//   };
//
// The method of a site has the site's name and maps the tensor there to a
// tensor of the same shape: attn_skip, attn_heads, attn_branch, ffn_hidden,
// ffn_branch, ffn_skip (see Site). Optional members:
//   - `static constexpr NormKind norm` with sites {Site::norm}: the extra
//     chooses the kind of every norm of the model (rms_norm);
//   - `static constexpr Placement placement`: the only placement it fits;
//   - State::attn_heads_folded(W_O) (C, C): the Heads map folded into W_O's
//     columns, used instead of attn_heads when every Heads extra has one
//     (per-channel maps g: Concat(g(h)) W_O^T = Concat(h) g(W_O)^T);
//   - State::ffn_hidden_fused(ffn, z): act(fc1(z)) with this extra's Hidden
//     map applied, in one fused node, used when it is the first Hidden extra.
// Parameters named by the State are the layer's own (`layers.3.c_attn`); a
// parameter of kind ParamKind::own_init keeps the value the State gave it
// when the model is initialized.
//
// The built-in extras below are written exactly like a user's.
#pragma once

#include <cmath>
#include <concepts>
#include <string>
#include <string_view>
#include <type_traits>

#include "normlab/modules/attention.hpp"
#include "normlab/modules/layers.hpp"
#include "normlab/policy/policy.hpp"

namespace normlab {
inline namespace v0 {

/// The sizes of the layer an extra's State is built for.
struct ExtraContext {
  int64_t d_model = 0;   ///< C
  int64_t n_heads = 0;   ///< H
  int64_t d_ff = 0;      ///< width of the feed-forward hidden layer
  int64_t n_layers = 0;  ///< N, the depth of the model
  int64_t layer = 0;     ///< index of this layer, 0..N-1
  double ln_eps = 1e-5;
  NormKind norm = NormKind::layer_norm;  ///< the kind a norm of the extra should be
};

/// What every extra declares. Its State is checked when a layer is built
/// (detail::check_extra_state).
template <class E>
concept PolicyExtra = requires {
  { E::word } -> std::convertible_to<std::string_view>;
  { E::equation } -> std::convertible_to<std::string_view>;
  { E::sites } -> std::convertible_to<SiteSet>;
};

/// The run-time description of the extra E, from its own members.
template <PolicyExtra E>
ExtraInfo extra_info() {
  ExtraInfo info;
  info.word = std::string(E::word);
  info.equation = std::string(E::equation);
  info.sites = E::sites;
  if constexpr (requires { E::norm; }) {
    info.sets_norm = true;
    info.norm = E::norm;
  }
  if constexpr (requires { E::placement; }) {
    info.needs_placement = true;
    info.placement = E::placement;
  }
  return info;
}

namespace detail {

/// Whether the State S has the method of site `site` (for Var V).
template <Site site, class S, class V>
constexpr bool has_site_method() {
  if constexpr (site == Site::attn_skip) return requires(const S& s, const V& v) {
      s.attn_skip(v);
    };
  else if constexpr (site == Site::attn_heads)
    return requires(const S& s, const V& v) {
      s.attn_heads(v);
    };
  else if constexpr (site == Site::attn_branch)
    return requires(const S& s, const V& v) {
      s.attn_branch(v);
    };
  else if constexpr (site == Site::ffn_hidden)
    return requires(const S& s, const V& v) {
      s.ffn_hidden(v);
    };
  else if constexpr (site == Site::ffn_branch)
    return requires(const S& s, const V& v) {
      s.ffn_branch(v);
    };
  else if constexpr (site == Site::ffn_skip)
    return requires(const S& s, const V& v) {
      s.ffn_skip(v);
    };
  else
    return true;  // Site::norm has no method
}

/// Calls the method of `site` on the state s.
template <Site site, class S, class V>
V call_site(const S& s, const V& x) {
  if constexpr (site == Site::attn_skip)
    return s.attn_skip(x);
  else if constexpr (site == Site::attn_heads)
    return s.attn_heads(x);
  else if constexpr (site == Site::attn_branch)
    return s.attn_branch(x);
  else if constexpr (site == Site::ffn_hidden)
    return s.ffn_hidden(x);
  else if constexpr (site == Site::ffn_branch)
    return s.ffn_branch(x);
  else if constexpr (site == Site::ffn_skip)
    return s.ffn_skip(x);
  else
    return x;
}

/// Compile-time checks of E's State for Scalar, B, each a static_assert whose
/// message says what is missing.
template <class E, FloatingElement Scalar, class Backend>
constexpr bool check_extra_state() {
  static_assert(
      requires { typename E::template State<Scalar, Backend>; },
      "extra: needs a member `template <FloatingElement T, class B> struct State` "
      "(see normlab/policy/extras.hpp)");
  using S = typename E::template State<Scalar, Backend>;
  using V = Variable<Scalar, Backend>;
  static_assert(std::derived_from<S, Module<Scalar, Backend>>,
                "extra: State<T, B> must derive from Module<T, B>");
  static_assert(std::constructible_from<S, const ExtraContext&>,
                "extra: State<T, B> needs a constructor State(const ExtraContext&)");
  static_assert(
      !E::sites.contains(Site::attn_skip) || has_site_method<Site::attn_skip, S, V>(),
      "extra: sites lists Site::attn_skip, but State has no method attn_skip(const Var&)");
  static_assert(
      !E::sites.contains(Site::attn_heads) || has_site_method<Site::attn_heads, S, V>(),
      "extra: sites lists Site::attn_heads, but State has no method attn_heads(const Var&)");
  static_assert(
      !E::sites.contains(Site::attn_branch) || has_site_method<Site::attn_branch, S, V>(),
      "extra: sites lists Site::attn_branch, but State has no method attn_branch(const Var&)");
  static_assert(
      !E::sites.contains(Site::ffn_hidden) || has_site_method<Site::ffn_hidden, S, V>(),
      "extra: sites lists Site::ffn_hidden, but State has no method ffn_hidden(const Var&)");
  static_assert(
      !E::sites.contains(Site::ffn_branch) || has_site_method<Site::ffn_branch, S, V>(),
      "extra: sites lists Site::ffn_branch, but State has no method ffn_branch(const Var&)");
  static_assert(!E::sites.contains(Site::ffn_skip) || has_site_method<Site::ffn_skip, S, V>(),
                "extra: sites lists Site::ffn_skip, but State has no method ffn_skip(const Var&)");
  static_assert(
      E::sites.contains(Site::norm) == requires { E::norm; },
      "extra: an extra that chooses the norm kind has `static constexpr NormKind norm` "
      "and lists Site::norm in its sites, and only such an extra");
  static_assert(!E::sites.empty(), "extra: sites must name at least one site");
  return true;
}

template <class S, class V>
concept FoldsHeads = requires(const S& s, const V& w) {
  s.attn_heads_folded(w);
};
template <class S, class Scalar, class Backend>
concept FusesHidden = requires(const S& s, const FeedForward<Scalar, Backend>& ffn,
                               const Variable<Scalar, Backend>& z) {
  s.ffn_hidden_fused(ffn, z);
};

}  // namespace detail

// ---- the built-in extras --------------------------------------------------

/// Where NormFormer's head scale gamma_h acts.
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

inline const char* to_string(HeadScalePlacement p) {
  return p == HeadScalePlacement::before_out_proj  ? "before_out_proj"
         : p == HeadScalePlacement::after_out_proj ? "after_out_proj"
                                                   : "none";
}

/// NormFormer's head-wise scaling (Shleifer, Weston, Ott 2021), a learned
/// gamma (`c_attn`, (H,), init 1):
///   before_out_proj (the paper): MHA = Concat(gamma_1 h_1, ..., gamma_H h_H) W_O + b_O,
///     computed as Concat(h) (W_O diag(gamma))^T: a (C, C) product, the same
///     function and gradients as scaling the (B, T, C) heads;
///   after_out_proj (fairseq's code): each group of C/H channels of W_O h + b_O times gamma_h.
template <HeadScalePlacement Where>
struct HeadScale {
  static_assert(Where != HeadScalePlacement::none,
                "HeadScale<Where>: Where must be before_out_proj or after_out_proj");
  static constexpr bool before = Where == HeadScalePlacement::before_out_proj;
  static constexpr std::string_view word =
      before ? "head_scale(before_out_proj)" : "head_scale(after_out_proj)";
  static constexpr std::string_view equation =
      before ? "MHA = Concat(gamma_1 h_1, ..., gamma_H h_H) W_O + b_O, gamma = c_attn (H,) init 1"
             : "MHA = (Concat(h) W_O + b_O) * gamma_h per group of C/H channels, gamma = c_attn "
               "(H,) init 1";
  static constexpr SiteSet sites = {before ? Site::attn_heads : Site::attn_branch};

  template <FloatingElement Scalar, class Backend>
  struct State : Module<Scalar, Backend> {
    using Var = Variable<Scalar, Backend>;
    explicit State(const ExtraContext& cx)
        : c_attn(Tensor<Scalar, Backend>::ones({cx.n_heads}), true) {}
    Var attn_heads(const Var& heads) const {  // (B, T, C)
      return MultiHeadAttention<Scalar, Backend>::scale_heads(heads, c_attn);
    }
    Var attn_heads_folded(const Var& w_o) const {  // (C, C): W_O diag(gamma)
      const int64_t c_out = w_o.size(0), c_in = w_o.size(1);
      return reshape(
          MultiHeadAttention<Scalar, Backend>::scale_heads(reshape(w_o, {1, c_out, c_in}), c_attn),
          {c_out, c_in});
    }
    Var attn_branch(const Var& y) const {  // (B, T, C)
      return MultiHeadAttention<Scalar, Backend>::scale_heads(y, c_attn);
    }
    void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) override {
      f("c_attn", c_attn, ParamKind::scale);
    }
    Var c_attn;  ///< (H,)
  };
};

/// NormFormer's post-attention norm (`attn_ln`, (C,)): x <- x + LN_a(MHA(LN(x))).
struct AttnOutNorm {
  static constexpr std::string_view word = "attn_ln";
  static constexpr std::string_view equation = "Branch_attn(h) = LN_a(h), LN_a = attn_ln (C,)";
  static constexpr SiteSet sites = {Site::attn_branch};
  template <FloatingElement Scalar, class Backend>
  struct State : Module<Scalar, Backend> {
    using Var = Variable<Scalar, Backend>;
    explicit State(const ExtraContext& cx) : attn_ln(cx.d_model, cx.ln_eps, cx.norm) {}
    Var attn_branch(const Var& h) const { return attn_ln.forward(h); }  // (B, T, C)
    void for_each_child(const typename Module<Scalar, Backend>::ChildFn& f) override {
      f("attn_ln", attn_ln);
    }
    Normalization<Scalar, Backend> attn_ln;
  };
};

/// NormFormer's norm of the feed-forward hidden units (`ffn_layernorm`,
/// (d_ff,)), after the activation of fc1: FFN(z) = W2 LN_f(act(W1 z + b1)) + b2.
struct FfnNorm {
  static constexpr std::string_view word = "ffn_ln";
  static constexpr std::string_view equation = "Hidden(a) = LN_f(a), LN_f = ffn_layernorm (d_ff,)";
  static constexpr SiteSet sites = {Site::ffn_hidden};
  template <FloatingElement Scalar, class Backend>
  struct State : Module<Scalar, Backend> {
    using Var = Variable<Scalar, Backend>;
    explicit State(const ExtraContext& cx) : ffn_layernorm(cx.d_ff, cx.ln_eps, cx.norm) {}
    Var ffn_hidden(const Var& a) const { return ffn_layernorm.forward(a); }  // (B, T, d_ff)
    /// act(fc1(z)) then the norm, one fused node where the backend has it.
    Var ffn_hidden_fused(const FeedForward<Scalar, Backend>& ffn, const Var& z) const {
      return ffn.normalized_hidden(z, ffn_layernorm);
    }
    void for_each_child(const typename Module<Scalar, Backend>::ChildFn& f) override {
      f("ffn_layernorm", ffn_layernorm);
    }
    Normalization<Scalar, Backend> ffn_layernorm;
  };
};

/// A norm on the feed-forward sublayer's output, before the residual add
/// (`ffn_out_ln`, (C,)): x <- x + LN_o(FFN(LN(x))). With attn_ln on Pre-LN
/// this is Sandwich-LN (CogView, Ding et al. 2021).
struct FfnOutNorm {
  static constexpr std::string_view word = "ffn_out_ln";
  static constexpr std::string_view equation = "Branch_ffn(f) = LN_o(f), LN_o = ffn_out_ln (C,)";
  static constexpr SiteSet sites = {Site::ffn_branch};
  template <FloatingElement Scalar, class Backend>
  struct State : Module<Scalar, Backend> {
    using Var = Variable<Scalar, Backend>;
    explicit State(const ExtraContext& cx) : ffn_out_ln(cx.d_model, cx.ln_eps, cx.norm) {}
    Var ffn_branch(const Var& f) const { return ffn_out_ln.forward(f); }  // (B, T, C)
    void for_each_child(const typename Module<Scalar, Backend>::ChildFn& f) override {
      f("ffn_out_ln", ffn_out_ln);
    }
    Normalization<Scalar, Backend> ffn_out_ln;
  };
};

/// fairseq's `scale_resids`: a learned per-channel lambda (`w_resid`, (C,),
/// init 1) on the skip path of the feed-forward residual only:
/// x <- lambda * x + FFN(LN(x)).
struct ResidScale {
  static constexpr std::string_view word = "resid_scale";
  static constexpr std::string_view equation =
      "Skip_ffn(x) = lambda * x, lambda = w_resid (C,) init 1";
  static constexpr SiteSet sites = {Site::ffn_skip};
  template <FloatingElement Scalar, class Backend>
  struct State : Module<Scalar, Backend> {
    using Var = Variable<Scalar, Backend>;
    explicit State(const ExtraContext& cx)
        : w_resid(Tensor<Scalar, Backend>::ones({cx.d_model}), true) {}
    Var ffn_skip(const Var& x) const { return x * w_resid; }  // (B, T, C)
    void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) override {
      f("w_resid", w_resid, ParamKind::scale);
    }
    Var w_resid;  ///< (C,)
  };
};

/// DeepNorm's up-weighted residual (DeepNet, Wang et al. 2022) on both
/// sublayers of a Post-LN layer: x <- LN(alpha x + F(x)), alpha = (2N)^(1/4)
/// for N layers, a constant. Pair it with InitScheme::deepnorm.
struct DeepNormResidual {
  static constexpr std::string_view word = "deepnorm";
  static constexpr std::string_view equation = "Skip_s(x) = alpha x, alpha = (2N)^(1/4) (constant)";
  static constexpr SiteSet sites = {Site::attn_skip, Site::ffn_skip};
  static constexpr Placement placement = Placement::post;
  template <FloatingElement Scalar, class Backend>
  struct State : Module<Scalar, Backend> {
    using Var = Variable<Scalar, Backend>;
    explicit State(const ExtraContext& cx)
        : alpha(std::pow(2.0 * static_cast<double>(cx.n_layers), 0.25)) {}
    Var attn_skip(const Var& x) const { return x * alpha; }
    Var ffn_skip(const Var& x) const { return x * alpha; }
    double alpha;  ///< (2N)^(1/4)
  };
};

/// Every norm of the model is an RMSNorm (Zhang & Sennrich 2019):
/// x / sqrt(mean(x^2) + eps) * weight, no bias.
struct UseRMSNorm {
  static constexpr std::string_view word = "rms_norm";
  static constexpr std::string_view equation = "LN(x) = x / sqrt(mean(x^2) + eps) * weight";
  static constexpr SiteSet sites = {Site::norm};
  static constexpr NormKind norm = NormKind::rms_norm;
  template <FloatingElement Scalar, class Backend>
  struct State : Module<Scalar, Backend> {
    explicit State(const ExtraContext&) {}
  };
};

/// The extras every program knows by their words, without registering them.
template <class... Es>
struct ExtraList {};
using BuiltinExtras = ExtraList<HeadScale<before_out_proj>, HeadScale<after_out_proj>, AttnOutNorm,
                                FfnNorm, FfnOutNorm, ResidScale, DeepNormResidual, UseRMSNorm>;

}  // namespace v0
}  // namespace normlab
