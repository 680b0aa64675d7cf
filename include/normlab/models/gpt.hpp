// normlab/models/gpt.hpp — GPT: a decoder-only causal language model.
#pragma once

#include <algorithm>
#include <functional>
#include <optional>
#include <vector>

#include "normlab/models/transformer_layer.hpp"
#include "normlab/modules/init.hpp"
#include "normlab/ops/loss.hpp"

namespace normlab {
inline namespace v0 {

namespace detail {
/// Throws unless the config's policy is the one the model type was built for
/// (any policy is, for RuntimePolicy).
template <class Policy>
void check_config_policy(const char* model, const ModelConfig& cfg) {
  if constexpr (!std::is_same_v<Policy, RuntimePolicy>) {
    const PolicySpec wanted = cfg.policy_spec();
    check(wanted == Policy::spec(), model, "<", Policy::name(), ">: the config asks for policy ",
          wanted.describe(), " but this model type computes ", Policy::name());
  }
}
}  // namespace detail

/// What GPT and Encoder share: token and position embeddings, the layers and
/// the final norm, turning tokens (B, T) into hidden states (B, T, C):
///
///   h_0 = s embed_tokens[tokens] + P[o..o+T-1]   // (B, T, C), then embed_dropout
///   h_i = layers[i](h_{i-1})  for i = 1..N
///   h   = layer_norm(h_N)  when the model has a final norm
///
/// P is `embed_positions.weight` (learned) or fixed sinusoids, both of
/// max_seq_len + o rows; s = sqrt(C) with `embed_scale` (fairseq), else 1;
/// o = padding_idx + 1 when `padding_idx` is set (fairseq's positions), else 0.
///
/// With `padding_idx` set and a pad token in the batch (fairseq's
/// make_positions and self_attn_padding_mask):
///
///   P row of (b, t) = pad + #{t' <= t : tokens[b, t'] != pad}, or pad for a pad token
///   scores[b, :, :, j] += -1e9 where tokens[b, j] == pad  (pad keys masked)
///
/// so a row's real tokens count their positions from its first real token
/// (left padding shifts nothing), and pads read row pad (zero for sinusoids).
/// Row pad of embed_tokens and of a learned P starts at zero and gets no
/// gradient from these lookups (nn.Embedding's padding_idx, as in fairseq);
/// a tied output projection still trains embed_tokens' row.
/// fairseq adds -inf, which makes a query that sees only pads NaN; -1e9 keeps
/// it finite and gives every other query exactly the same weights. Finding
/// the pads reads the tokens on the host (a synchronization on CUDA).
template <class Policy, FloatingElement Scalar, class Backend>
class TransformerStack : public Module<Scalar, Backend> {
  static_assert(detail::check_policy<Policy>());

 public:
  using Var = Variable<Scalar, Backend>;
  using Layer = TransformerLayer<Policy, Scalar, Backend>;
  using Norm = typename Layer::Norm;
  using policy_type = Policy;
  /// Called with (i, h_i) for the residual stream entering the first layer
  /// (i = 0) and leaving each layer (i = 1..N), before the final norm: how
  /// diagnostics watch activations without changing the forward pass.
  using LayerObserver = std::function<void(int64_t index, const Var& h)>;

  const ModelConfig& config() const { return config_; }
  /// The target the models' losses ignore by default: padding_idx when set
  /// (fairseq's criteria), else -100 (torch's default).
  int64_t ignore_index() const { return config_.padding_idx.value_or(-100); }
  /// The generator of dropout masks in training mode (saved by checkpoints
  /// that must resume exactly).
  Generator& dropout_generator() const { return dropout_gen_; }

  void for_each_child(const typename Module<Scalar, Backend>::ChildFn& f) override {
    f("embed_tokens", embed_tokens);
    if (embed_positions) f("embed_positions", *embed_positions);
    for (size_t i = 0; i < layers.size(); ++i) f("layers." + std::to_string(i), layers[i]);
    if (final_norm) f("layer_norm", *final_norm);
  }

 protected:
  /// `model` names the model in errors. Contract: cfg validates and names this
  /// Policy (throws Error otherwise). The derived model initializes.
  TransformerStack(const char* model, const ModelConfig& cfg, uint64_t seed)
      : config_(validated(model, cfg)),
        model_(model),
        construction_gen_(seed),
        embed_tokens(cfg.vocab_size, cfg.d_model, construction_gen_, ParamKind::token_embedding,
                     cfg.padding_idx),
        dropout_gen_(seed ^ 0x9E3779B97F4A7C15ull) {
    if (cfg.position_kind() == PositionKind::learned)
      embed_positions.emplace(cfg.position_rows(), cfg.d_model, construction_gen_,
                              ParamKind::position_embedding, cfg.padding_idx);
    else
      sinusoids_ = Var(sinusoidal_positions<Scalar, Backend>(cfg.position_rows(), cfg.d_model,
                                                             cfg.padding_idx.value_or(-1)));
    const PolicySpec spec = cfg.policy_spec();  // parsed once for every layer
    layers.reserve(static_cast<size_t>(cfg.n_layers));
    for (int64_t i = 0; i < cfg.n_layers; ++i) layers.emplace_back(cfg, spec, construction_gen_, i);
    if (cfg.uses_final_norm()) final_norm.emplace(cfg.d_model, cfg.ln_eps, norm_kind_of(spec));
  }

  /// Sets the padding rows of the token and learned position tables to zero
  /// (fairseq's and torch's nn.Embedding init): for the derived model, after
  /// its initializer redrew the tables. A no-op without padding_idx.
  void zero_padding_rows() {
    embed_tokens.zero_padding_row();
    if (embed_positions) embed_positions->zero_padding_row();
  }

  /// tokens (B, T) int64 -> hidden states (B, T, C). Throws when tokens is not
  /// 2-D, T exceeds max_seq_len or a token is not in [0, V).
  Var hidden_states(const Tensor<int64_t, Backend>& tokens, bool causal, const Var& key_bias,
                    const LayerObserver& observe) const {
    detail::check(tokens.ndim() == 2, model_, ": tokens must be (B, T), got shape ",
                  tokens.shape());
    const int64_t Tn = tokens.size(1);
    detail::check(Tn >= 1 && Tn <= config_.max_seq_len, model_, ": sequence length ", Tn,
                  " is outside [1, max_seq_len = ", config_.max_seq_len, "]");
    const Var& table = embed_positions ? embed_positions->weight : sinusoids_;
    Var positions;  // (B, T, C) with pad tokens, else (T, C)
    Var pad_bias;   // (B, 1, 1, T) with pad tokens
    if (config_.padding_idx) padded_positions(tokens, table, positions, pad_bias);
    if (!positions.defined()) {
      const int64_t first = config_.position_offset();  // row of position 0
      positions = slice(table, 0, first, first + Tn);   // (T, C)
    }
    Var tokens_in = embed_tokens.forward(tokens);  // (B, T, C)
    if (config_.embed_scale) tokens_in = tokens_in * config_.embedding_scale();
    Var h = tokens_in + positions;  // (B, T, C)
    if (config_.embed_dropout > 0 && this->training())
      h = dropout(h, config_.embed_dropout, dropout_gen_, true);
    typename Layer::Options opt;
    opt.causal = causal;
    opt.key_bias = !pad_bias.defined()  ? key_bias
                   : key_bias.defined() ? key_bias + pad_bias
                                        : pad_bias;
    opt.gen = &dropout_gen_;
    if (observe) observe(0, h);
    for (size_t i = 0; i < layers.size(); ++i) {
      h = layers[i].forward(h, opt);  // (B, T, C)
      if (observe) observe(static_cast<int64_t>(i) + 1, h);
    }
    if (final_norm) h = final_norm->forward(h);
    return h;
  }

 private:
  /// With a pad token in tokens (B, T): positions (B, T, C), the rows of
  /// `table` fairseq's make_positions picks, and pad_bias (B, 1, 1, T), -1e9
  /// at the pads. Without one: both left undefined.
  void padded_positions(const Tensor<int64_t, Backend>& tokens, const Var& table, Var& positions,
                        Var& pad_bias) const {
    const int64_t pad = *config_.padding_idx, Bn = tokens.size(0), Tn = tokens.size(1);
    const std::vector<int64_t> tok = tokens.to_vector();  // (B*T)
    if (std::find(tok.begin(), tok.end(), pad) == tok.end()) return;
    std::vector<int64_t> rows(tok.size());  // (B*T) row of the position table
    std::vector<Scalar> bias(tok.size(), Scalar(0));
    for (int64_t b = 0; b < Bn; ++b) {
      int64_t seen = 0;  // real tokens of row b so far
      for (int64_t t = 0; t < Tn; ++t) {
        const size_t i = static_cast<size_t>(b * Tn + t);
        const bool is_pad = tok[i] == pad;
        rows[i] = is_pad ? pad : pad + ++seen;
        if (is_pad) bias[i] = Scalar(-1e9);
      }
    }
    positions = embedding(Tensor<int64_t, Backend>::from_vector({Bn, Tn}, rows), table, pad);
    pad_bias = Var(Tensor<Scalar, Backend>::from_vector({Bn, 1, 1, Tn}, bias));
  }

  static const ModelConfig& validated(const char* model, const ModelConfig& cfg) {
    cfg.validate();
    detail::check_config_policy<Policy>(model, cfg);
    return cfg;
  }

  ModelConfig config_;
  const char* model_;

 protected:
  Generator construction_gen_;  // feeds the constructors; the model's init redraws everything

 public:
  Embedding<Scalar, Backend> embed_tokens;  ///< (V, C)
  std::optional<Embedding<Scalar, Backend>>
      embed_positions;  ///< (max_seq_len + position_offset, C), when learned
  std::vector<Layer> layers;
  std::optional<Norm> final_norm;  ///< the final norm (key "layer_norm"), when the model has one

 private:
  Var sinusoids_;                  // (max_seq_len + position_offset, C), when sinusoidal
  mutable Generator dropout_gen_;  // dropout masks in training mode
};

/// A decoder-only causal LM (fairseq's transformer_lm names): the stack's
/// hidden states h (B, T, C) with causal attention, then
///
///   logits = h E^T   // (B, T, V)
///
/// where E is `embed_tokens.weight` when tied, else `output_projection.weight`.
template <class Policy, FloatingElement Scalar, class Backend>
class GPT : public TransformerStack<Policy, Scalar, Backend> {
  static_assert(detail::check_policy<Policy>());

 public:
  using Var = Variable<Scalar, Backend>;

  /// Builds the model `cfg` describes and initializes it by `init` from `seed`.
  /// Contract: cfg validates and names this Policy (throws Error otherwise).
  explicit GPT(const ModelConfig& cfg, uint64_t seed = 0, InitScheme init = InitScheme::fairseq)
      : TransformerStack<Policy, Scalar, Backend>("GPT", cfg, seed) {
    if (!cfg.tie_embeddings)
      output_projection = Var(Tensor<Scalar, Backend>::zeros({cfg.vocab_size, cfg.d_model}), true);
    initialize(*this, init, cfg.n_layers, seed);
    this->zero_padding_rows();
  }

  using typename TransformerStack<Policy, Scalar, Backend>::LayerObserver;

  /// tokens (B, T) int64 -> logits (B, T, V); `observe`, when set, sees the
  /// residual stream around every layer.
  /// Throws when tokens is not 2-D, T exceeds max_seq_len or a token is not in [0, V).
  Var forward(const Tensor<int64_t, Backend>& tokens, const LayerObserver& observe = {}) const {
    const Var h = this->hidden_states(tokens, true, Var(), observe);  // (B, T, C)
    const Var& table = output_projection.defined() ? output_projection : this->embed_tokens.weight;
    return matmul(h, table, false, true);  // (B, T, V)
  }

  /// Mean next-token cross-entropy of forward(tokens) against targets (B, T);
  /// targets equal to ignore_index do not count.
  Var loss(const Tensor<int64_t, Backend>& tokens, const Tensor<int64_t, Backend>& targets,
           int64_t ignore_index) const {
    return cross_entropy(forward(tokens), targets, ignore_index);
  }
  /// loss(tokens, targets, ignore_index()): pad targets do not count when the
  /// config has a padding_idx (fairseq's criterion), else targets of -100.
  Var loss(const Tensor<int64_t, Backend>& tokens, const Tensor<int64_t, Backend>& targets) const {
    return loss(tokens, targets, this->ignore_index());
  }
  void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) override {
    if (output_projection.defined())
      f("output_projection.weight", output_projection, ParamKind::weight);
  }

  Var output_projection;  ///< (V, C), only when untied
};

}  // namespace v0
}  // namespace normlab
