// normlab/models/config.hpp — ModelConfig: sizes and policy of a model, validated.
#pragma once

#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "normlab/core/error.hpp"
#include "normlab/modules/layers.hpp"
#include "normlab/policy/registry.hpp"

namespace normlab {
inline namespace v0 {

namespace detail {
/// This machine's physical memory in bytes (0 when it cannot be asked).
inline uint64_t physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGE_SIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
#endif
  return 0;
}
}  // namespace detail

/// Everything that shapes a model, with the names of the config file's keys.
///
/// The policy is `policy` — a preset (post_ln, pre_ln, normformer =
/// pre_ln+head_scale+attn_ln+ffn_ln, sandwich = pre_ln+attn_ln+ffn_out_ln,
/// deepnorm = post_ln+deepnorm) or a whole spec such as "post_ln+attn_ln+ffn_ln"
/// — with the words of `extras` added: any extra the registry knows, built-in
/// (head_scale, attn_ln, ffn_ln, ffn_out_ln, resid_scale, deepnorm, rms_norm)
/// or registered by the program (policy/registry.hpp). A bare head_scale is
/// placed where the `head_scale` key says; `resid_scale: true` and
/// `norm: rms_norm` add those extras. An extra named twice counts once.
struct ModelConfig {
  int64_t vocab_size = 256;
  int64_t d_model = 128;
  int64_t n_heads = 4;
  int64_t n_layers = 4;
  int64_t d_ff = 512;
  int64_t max_seq_len = 128;
  std::string policy = "pre_ln";
  std::vector<std::string> extras;
  std::string head_scale = "before_out_proj";  ///< where a bare head_scale goes
  bool resid_scale = false;
  std::string activation = "gelu";  ///< gelu (exact erf) | gelu_tanh | relu
  std::string norm = "layer_norm";  ///< layer_norm | rms_norm
  double ln_eps = 1e-5;
  std::optional<bool>
      final_norm;  ///< default: true for pre_ln-based policies, false for post_ln/deepnorm
  bool tie_embeddings = true;
  std::string positions = "learned";  ///< learned | sinusoidal
  /// Token embeddings times sqrt(d_model) on input (fairseq's default unless
  /// no_scale_embedding); a tied output projection uses the unscaled table.
  bool embed_scale = false;
  /// fairseq's padding index: positions start at row padding_idx + 1 (the
  /// learned table has max_seq_len + padding_idx + 1 rows; sinusoids are those
  /// of position padding_idx + 1 + t). Absent: rows start at 0.
  std::optional<int64_t> padding_idx;
  double dropout = 0;            ///< on each sublayer's output (training only)
  double attention_dropout = 0;  ///< on the attention probabilities (training only)
  /// On the FFN's hidden units act(fc1(z)), before any ffn_ln (fairseq's
  /// activation_dropout; training only).
  double activation_dropout = 0;
  /// On h_0 = s E[tokens] + P, before the first layer (fairseq applies its
  /// `dropout` there; training only).
  double embed_dropout = 0;

  /// The policy this config asks for, extras in canonical order. Throws Error
  /// naming the key and the accepted values on an unknown policy, extra,
  /// placement or norm, or on extras that do not fit together.
  PolicySpec policy_spec() const {
    const HeadScalePlacement where = head_scale_placement();
    // The keys are checked first so that the error names the key at fault;
    // parse_policy_spec checks how the parts fit together.
    // fairseq's or x-transformers' words ("fairseq:scale_attn+...") name a normlab spec.
    const std::string policy_key = resolve_policy_aliases(policy);
    const std::string preset = policy_key.substr(0, policy_key.find('+'));
    detail::check(detail::find_preset(preset) != nullptr,
                  "config: ", detail::unknown_preset_message(preset));
    for (const std::string& e : extras)
      detail::check(e == "head_scale" || ExtraRegistry::global().find(e) != nullptr,
                    "config: extras: ", detail::unknown_extra_message(e));
    std::string spec = policy_key;
    for (const std::string& e : extras) spec += "+" + e;
    if (resid_scale) spec += "+resid_scale";
    if (norm == "rms_norm")
      spec += "+rms_norm";
    else
      detail::check(norm == "layer_norm", "config: norm \"", norm,
                    "\" is unknown; expected layer_norm or rms_norm");
    try {
      return parse_policy_spec(spec, where);
    } catch (const Error& e) {
      throw Error(detail::concat("config: ", e.what()));
    }
  }
  /// The placement of the config's policy.
  Placement placement() const { return policy_spec().placement; }

  /// Sets the policy keys so that policy_spec() == spec_of<P>(): any static
  /// policy, a user's own composition too, can be described by a config.
  template <class P>
  void set_policy() {
    static_assert(detail::check_policy<P>() && !std::is_same_v<P, RuntimePolicy>,
                  "set_policy<P>: P must be a static policy; for a run-time one use "
                  "set_policy_spec");
    set_policy_keys(P::spec());
  }

  /// Sets the policy keys from a spec like "normformer", "pre_ln+attn_ln",
  /// "deepnorm+attn_ln" or "pre_ln+head_scale(after_out_proj)+resid_scale+rms_norm":
  /// see parse_policy_spec. A bare head_scale goes where the head_scale key
  /// says. Throws Error naming an unknown part.
  void set_policy_spec(const std::string& spec) {
    set_policy_keys(parse_policy_spec(spec, head_scale_placement()));
  }

  /// Sets the policy keys to describe `spec`: policy = its placement (or
  /// deepnorm), extras = its words in order, a head scale as a bare
  /// "head_scale" placed by the head_scale key; resid_scale and norm agree
  /// with the extras (so that older readers see the built-in extras too).
  void set_policy_keys(const PolicySpec& spec) {
    const std::string described = spec.describe();
    const size_t plus = described.find('+');
    policy = described.substr(0, plus);
    extras.clear();
    resid_scale = false;
    norm = "layer_norm";
    int head_scales = 0;
    for (const std::string& w : spec.extras) head_scales += w.rfind("head_scale(", 0) == 0;
    for (size_t i = policy == "deepnorm" ? 1 : 0; i < spec.extras.size(); ++i) {
      const std::string& w = spec.extras[i];
      if (w.rfind("head_scale(", 0) == 0 && head_scales == 1) {
        extras.push_back("head_scale");  // the format older configs have: placed by the key
        head_scale = w.substr(11, w.size() - 12);
      } else {
        extras.push_back(w);
      }
      if (w == "resid_scale") resid_scale = true;
    }
    norm = to_string(norm_kind_of(spec));
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
  /// The factor on token embeddings: sqrt(d_model) with embed_scale, else 1.
  double embedding_scale() const {
    return embed_scale ? std::sqrt(static_cast<double>(d_model)) : 1.0;
  }
  /// The row of the position table that position 0 reads: padding_idx + 1
  /// when a padding index is set, else 0 (fairseq's make_positions).
  int64_t position_offset() const { return padding_idx ? *padding_idx + 1 : 0; }
  /// Rows of the position table (learned or sinusoidal): max_seq_len +
  /// position_offset(). Contract: the config validates (no overflow).
  int64_t position_rows() const { return max_seq_len + position_offset(); }

  /// Whether the model ends in a norm: `final_norm` when set, else the
  /// placement's default (after Pre-LN layers, not after Post-LN ones).
  bool uses_final_norm() const { return final_norm.value_or(placement() == Placement::pre); }

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
    detail::check(activation_dropout >= 0 && activation_dropout < 1,
                  "config: activation_dropout must be in [0, 1), got ", activation_dropout);
    detail::check(embed_dropout >= 0 && embed_dropout < 1,
                  "config: embed_dropout must be in [0, 1), got ", embed_dropout);
    if (padding_idx)
      detail::check(*padding_idx >= 0 && *padding_idx < vocab_size,
                    "config: padding_idx must be a token in [0, vocab_size = ", vocab_size,
                    "), got ", *padding_idx);
    (void)policy_spec();
    (void)head_scale_placement();
    (void)activation_kind();
    (void)position_kind();
    const int64_t params = minimum_parameter_count();
    const uint64_t memory = detail::physical_memory_bytes();
    detail::check(memory == 0 || static_cast<uint64_t>(params) <= memory / 4,
                  "config: the model (vocab_size ", vocab_size, ", d_model ", d_model,
                  ", n_layers ", n_layers, ", d_ff ", d_ff, ", max_seq_len ", max_seq_len,
                  ") has at least ", params, " parameters, ", static_cast<double>(params) * 4,
                  " bytes in float, more than this machine's ", memory, " bytes of memory");
  }

  /// The parameters every policy's model of these sizes has at least
  /// (embeddings, positions, the four projections and fc1/fc2 with biases),
  /// counted without overflow. Throws Error naming the sizes when the count
  /// (or the position table's max_seq_len + padding_idx + 1 rows) does not
  /// fit an int64. Contract: the sizes are positive, padding_idx in [0, vocab_size).
  int64_t minimum_parameter_count() const {
    detail::CheckedCount n;
    const int64_t rows = n.add(max_seq_len, position_offset());
    detail::check(n.fits, "config: the position table of max_seq_len ", max_seq_len,
                  " + padding_idx ", padding_idx.value_or(-1),
                  " + 1 rows has more rows than an int64 can count");
    const int64_t C = d_model;
    const int64_t layer =  // q, k, v, out_proj (C, C) + (C,); fc1, fc2; their biases
        n.add(n.add(n.mul(4, n.mul(C, n.add(C, 1))), n.mul(2, n.mul(d_ff, C))), n.add(d_ff, C));
    const int64_t count =
        n.add(n.add(n.mul(vocab_size, C), positions == "learned" ? n.mul(rows, C) : 0),
              n.mul(n_layers, layer));
    detail::check(n.fits, "config: a model with vocab_size ", vocab_size, ", d_model ", d_model,
                  ", n_layers ", n_layers, ", d_ff ", d_ff, ", max_seq_len ", max_seq_len,
                  " has more parameters than an int64 can count");
    return count;
  }
};

/// fairseq's `transformer_lm` architecture (its base_lm_architecture and the
/// language-modeling task's defaults) for a dictionary of `vocab_size`
/// symbols whose pad is `padding_idx` (fairseq's Dictionary: 1):
///
///   pre_ln with a final norm (base_lm_architecture sets decoder_normalize_before
///   = True for every transformer_lm, whatever the flags say), C 512, H 8,
///   N 6, d_ff 2048, relu, dropout 0.1 on each sublayer's output and on the
///   embeddings, attention_dropout 0, activation_dropout 0, untied output
///   projection, sinusoidal positions from row padding_idx + 1, embeddings
///   times sqrt(C), max_seq_len 1024 (tokens_per_sample), ln_eps 1e-5.
///
/// normlab's own defaults are unchanged by it. Not reproduced: fairseq's
/// initialization zeroes the embedding rows of padding_idx.
/// Contract: the result validates when padding_idx is in [0, vocab_size).
inline ModelConfig fairseq_transformer_lm(int64_t vocab_size, int64_t padding_idx = 1) {
  ModelConfig c;
  c.vocab_size = vocab_size;
  c.d_model = 512;
  c.n_heads = 8;
  c.n_layers = 6;
  c.d_ff = 2048;
  c.max_seq_len = 1024;
  c.policy = "pre_ln";
  c.activation = "relu";
  c.tie_embeddings = false;
  c.positions = "sinusoidal";
  c.embed_scale = true;
  c.padding_idx = padding_idx;
  c.dropout = 0.1;
  c.embed_dropout = 0.1;
  return c;
}

}  // namespace v0
}  // namespace normlab
