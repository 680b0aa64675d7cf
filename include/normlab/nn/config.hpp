// normlab/nn/config.hpp — ModelConfig: sizes and policy of a model, validated.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "normlab/core/error.hpp"
#include "normlab/nn/layers.hpp"
#include "normlab/policy/policy.hpp"

namespace normlab::inline v0 {

/// Everything that shapes a model, with the names of the config file's keys.
///
/// The policy is `policy` (a preset) plus `extras` composed onto it, the
/// head-scale placement, `resid_scale` and the norm kind. Presets:
///   post_ln, pre_ln, normformer (= pre_ln + head_scale + attn_ln + ffn_ln),
///   sandwich (= pre_ln + attn_ln + ffn_out_ln), deepnorm.
/// Extras: head_scale, attn_ln, ffn_ln, ffn_out_ln; the policy is the union of
/// the preset's and these (listing one the preset implies changes nothing).
struct ModelConfig {
  int64_t vocab_size = 256;
  int64_t d_model = 128;
  int64_t n_heads = 4;
  int64_t n_layers = 4;
  int64_t d_ff = 512;
  int64_t max_seq_len = 128;
  std::string policy = "pre_ln";
  std::vector<std::string> extras;
  std::string head_scale = "before_out_proj";  ///< where head scaling goes, when it is on
  bool resid_scale = false;
  std::string activation = "gelu";  ///< gelu (exact erf) | gelu_tanh | relu
  std::string norm = "layer_norm";  ///< layer_norm | rms_norm
  double ln_eps = 1e-5;
  std::optional<bool>
      final_norm;  ///< default: true for pre_ln-based policies, false for post_ln/deepnorm
  bool tie_embeddings = true;
  std::string positions = "learned";  ///< learned | sinusoidal
  double dropout = 0;                 ///< on each sublayer's output (training only)
  double attention_dropout = 0;       ///< on the attention probabilities (training only)

  /// The policy this config asks for. Throws Error naming the key and the
  /// accepted values on an unknown policy, extra, placement or norm.
  PolicyTraits policy_traits() const {
    PolicyTraits t;
    const HeadScalePlacement where = head_scale_placement();
    if (policy == "post_ln") {
      t.placement = Placement::post;
    } else if (policy == "pre_ln") {
      t.placement = Placement::pre;
    } else if (policy == "normformer") {
      t.placement = Placement::pre;
      t.head_scale = where;
      t.attn_out_norm = t.ffn_norm = true;
    } else if (policy == "sandwich") {
      t.placement = Placement::pre;
      t.attn_out_norm = t.ffn_out_norm = true;
    } else if (policy == "deepnorm") {
      t.placement = Placement::post;
      t.deepnorm_residual = true;
    } else {
      throw Error(detail::concat("config: unknown policy \"", policy,
                                 "\"; expected one of post_ln, pre_ln, normformer, sandwich, "
                                 "deepnorm"));
    }
    for (const std::string& e : extras) {  // a union: naming an extra the preset has is harmless
      if (e == "head_scale")
        t.head_scale = where;
      else if (e == "attn_ln")
        t.attn_out_norm = true;
      else if (e == "ffn_ln")
        t.ffn_norm = true;
      else if (e == "ffn_out_ln")
        t.ffn_out_norm = true;
      else
        throw Error(detail::concat("config: extras: unknown extra \"", e,
                                   "\"; expected head_scale, attn_ln, ffn_ln or ffn_out_ln"));
    }
    t.resid_scale = resid_scale;
    if (norm == "rms_norm")
      t.norm = NormKind::rms_norm;
    else
      detail::check(norm == "layer_norm", "config: norm \"", norm,
                    "\" is unknown; expected layer_norm or rms_norm");
    return t;
  }

  /// Sets the policy keys (policy, extras, head_scale, resid_scale, norm) so
  /// that policy_traits() == traits_of<P>(): any policy, a user's own too,
  /// can be described by a config.
  template <NormPolicy P>
  void set_policy() {
    constexpr PolicyTraits t = traits_of<P>();
    policy = t.deepnorm_residual             ? "deepnorm"
             : t.placement == Placement::pre ? "pre_ln"
                                             : "post_ln";
    extras.clear();
    if (t.head_scale != HeadScalePlacement::none) {
      extras.push_back("head_scale");
      head_scale = to_string(t.head_scale);
    }
    if (t.attn_out_norm) extras.push_back("attn_ln");
    if (t.ffn_norm) extras.push_back("ffn_ln");
    if (t.ffn_out_norm) extras.push_back("ffn_out_ln");
    resid_scale = t.resid_scale;
    norm = to_string(t.norm);
  }

  /// Sets the policy keys from a spec like "normformer", "pre_ln+attn_ln" or
  /// "pre_ln+head_scale(after_out_proj)+resid_scale+rms_norm": a preset, then
  /// extras (head_scale, head_scale(before_out_proj|after_out_proj), attn_ln,
  /// ffn_ln, ffn_out_ln, resid_scale, rms_norm) joined by '+'. The spelling of
  /// PolicyTraits::describe() is accepted. Throws Error naming an unknown part.
  void set_policy_spec(const std::string& spec) {
    std::vector<std::string> parts;
    size_t at = 0;
    for (size_t plus; (plus = spec.find('+', at)) != std::string::npos; at = plus + 1)
      parts.push_back(spec.substr(at, plus - at));
    parts.push_back(spec.substr(at));
    policy = parts[0];
    extras.clear();
    resid_scale = false;
    norm = "layer_norm";
    for (size_t i = 1; i < parts.size(); ++i) {
      const std::string& e = parts[i];
      if (e == "resid_scale") {
        resid_scale = true;
      } else if (e == "rms_norm") {
        norm = "rms_norm";
      } else if (e.rfind("head_scale(", 0) == 0 && e.back() == ')') {
        extras.push_back("head_scale");
        head_scale = e.substr(11, e.size() - 12);
      } else {
        extras.push_back(e);
      }
    }
    try {
      (void)policy_traits();
    } catch (const Error& err) {
      throw Error(detail::concat("policy \"", spec, "\": ", err.what()));
    }
  }

  HeadScalePlacement head_scale_placement() const {
    if (head_scale == "before_out_proj") return HeadScalePlacement::before_out_proj;
    if (head_scale == "after_out_proj") return HeadScalePlacement::after_out_proj;
    throw Error(detail::concat("config: head_scale \"", head_scale,
                               "\" is unknown; expected before_out_proj or after_out_proj"));
  }
  Activation activation_kind() const {
    if (activation == "gelu") return Activation::gelu;
    if (activation == "gelu_tanh") return Activation::gelu_tanh;
    if (activation == "relu") return Activation::relu;
    throw Error(detail::concat("config: activation \"", activation,
                               "\" is unknown; expected gelu, gelu_tanh or relu"));
  }
  PositionKind position_kind() const {
    if (positions == "learned") return PositionKind::learned;
    if (positions == "sinusoidal") return PositionKind::sinusoidal;
    throw Error(detail::concat("config: positions \"", positions,
                               "\" is unknown; expected learned or sinusoidal"));
  }
  /// Whether the model ends in a norm: `final_norm` when set, else the
  /// placement's default (after Pre-LN layers, not after Post-LN ones).
  bool uses_final_norm() const {
    return final_norm.value_or(policy_traits().placement == Placement::pre);
  }

  /// Throws Error naming the first key whose value is invalid.
  void validate() const {
    auto positive = [](const char* key, int64_t v) {
      detail::check(v > 0, "config: ", key, " must be positive, got ", v);
    };
    positive("vocab_size", vocab_size);
    positive("d_model", d_model);
    positive("n_heads", n_heads);
    positive("n_layers", n_layers);
    positive("d_ff", d_ff);
    positive("max_seq_len", max_seq_len);
    detail::check(d_model % n_heads == 0, "config: d_model ", d_model,
                  " must be divisible by n_heads ", n_heads);
    detail::check(ln_eps >= 0, "config: ln_eps must be >= 0, got ", ln_eps);
    detail::check(dropout >= 0 && dropout < 1, "config: dropout must be in [0, 1), got ", dropout);
    detail::check(attention_dropout >= 0 && attention_dropout < 1,
                  "config: attention_dropout must be in [0, 1), got ", attention_dropout);
    (void)policy_traits();
    (void)head_scale_placement();
    (void)activation_kind();
    (void)position_kind();
  }
};

}  // namespace normlab::inline v0
