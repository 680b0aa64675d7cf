// normlab/nn/encoder.hpp — Encoder: a bidirectional transformer with a masked-LM head.
#pragma once

#include <optional>
#include <vector>

#include "normlab/nn/gpt.hpp"

namespace normlab::inline v0 {

/// A bidirectional encoder with a masked-LM head (RoBERTa's layout, fairseq names):
///
///   h_0 = embed_tokens[tokens] + P[0..T-1]                       // (B, T, C)
///   h_i = layers[i](h_{i-1}), every token attends to every non-padding token
///   h   = layer_norm(h_N)  when the model has a final norm
///   z   = lm_head.layer_norm(act(lm_head.dense(h)))               // (B, T, C)
///   logits = z E^T + lm_head.bias                                // (B, T, V)
///
/// E is embed_tokens.weight (the head is always tied). A padding mask (B, T)
/// with 1 at padding keeps every query from attending to those keys.
template <class Policy, class B, FloatingElement T = float>
class Encoder : public Module<T, B> {
 public:
  using Var = Variable<T, B>;
  using Layer = TransformerLayer<Policy, B, T>;
  using Norm = typename Layer::Norm;
  using policy_type = Policy;

  /// The masked-LM head.
  struct LMHead : Module<T, B> {
    LMHead(const ModelConfig& cfg, Generator& gen)
        : dense(cfg.d_model, cfg.d_model, gen),
          layer_norm(cfg.d_model, cfg.ln_eps),
          bias(Tensor<T, B>::zeros({cfg.vocab_size}), true),
          activation(cfg.activation_kind()) {}
    void for_each_own_parameter(const typename Module<T, B>::ParameterFn& f) override {
      f("bias", bias, ParamKind::bias);
    }
    void for_each_child(const typename Module<T, B>::ChildFn& f) override {
      f("dense", dense);
      f("layer_norm", layer_norm);
    }
    Linear<T, B> dense;  ///< (C, C)
    Norm layer_norm;     ///< (C,)
    Var bias;            ///< (V,)
    Activation activation;
  };

  /// Builds the model `cfg` describes (tie_embeddings is ignored: the head is
  /// tied) and initializes it by `init` from `seed`.
  /// Contract: cfg validates and names this Policy (throws Error otherwise).
  explicit Encoder(const ModelConfig& cfg, uint64_t seed = 0, InitScheme init = InitScheme::gpt2)
      : config_(validated(cfg)),
        construction_gen_(seed),
        embed_tokens(cfg.vocab_size, cfg.d_model, construction_gen_),
        lm_head(cfg, construction_gen_),
        dropout_gen_(seed ^ 0x9E3779B97F4A7C15ull) {
    if (cfg.position_kind() == PositionKind::learned)
      embed_positions.emplace(cfg.max_seq_len, cfg.d_model, construction_gen_,
                              ParamKind::position_embedding);
    else
      sinusoids_ = Var(sinusoidal_positions<T, B>(cfg.max_seq_len, cfg.d_model));
    layers.reserve(static_cast<size_t>(cfg.n_layers));
    for (int64_t i = 0; i < cfg.n_layers; ++i) layers.emplace_back(cfg, construction_gen_);
    if (cfg.uses_final_norm()) layer_norm.emplace(cfg.d_model, cfg.ln_eps);
    initialize(*this, init, cfg.n_layers, seed);
  }

  const ModelConfig& config() const { return config_; }

  /// tokens (B, T) int64, optional padding (B, T) int64 (nonzero = padding)
  /// -> logits (B, T, V). Throws on shapes that do not fit the config.
  Var forward(const Tensor<int64_t, B>& tokens, const Tensor<int64_t, B>& padding = {}) const {
    detail::check(tokens.ndim() == 2, "Encoder: tokens must be (B, T), got shape ", tokens.shape());
    const int64_t Bn = tokens.size(0), Tn = tokens.size(1);
    detail::check(Tn >= 1 && Tn <= config_.max_seq_len, "Encoder: sequence length ", Tn,
                  " is outside [1, max_seq_len = ", config_.max_seq_len, "]");
    typename Layer::Options opt;
    opt.causal = false;
    opt.gen = &dropout_gen_;
    if (padding.defined()) {
      detail::check(padding.shape() == tokens.shape(), "Encoder: padding mask of shape ",
                    padding.shape(), " does not match tokens ", tokens.shape());
      // -1e9 rather than -inf: a row of padding only stays finite.
      std::vector<T> bias;
      for (int64_t p : padding.to_vector()) bias.push_back(p != 0 ? T(-1e9) : T(0));
      opt.key_bias = Var(Tensor<T, B>::from_vector({Bn, 1, 1, Tn}, bias));  // (B, 1, 1, T)
    }
    const Var positions = embed_positions ? slice(embed_positions->weight, 0, 0, Tn)  // (T, C)
                                          : slice(sinusoids_, 0, 0, Tn);
    Var h = embed_tokens.forward(tokens) + positions;  // (B, T, C)
    for (const Layer& layer : layers) h = layer.forward(h, opt);
    if (layer_norm) h = layer_norm->forward(h);
    const Var z =
        lm_head.layer_norm.forward(activate(lm_head.dense.forward(h), lm_head.activation));
    return matmul(z, embed_tokens.weight, false, true) + lm_head.bias;  // (B, T, V)
  }

  /// Mean cross-entropy over the positions whose target is not ignore_index
  /// (the masked positions of an MLM batch).
  Var mlm_loss(const Tensor<int64_t, B>& tokens, const Tensor<int64_t, B>& targets,
               const Tensor<int64_t, B>& padding = {}, int64_t ignore_index = -100) const {
    return cross_entropy(forward(tokens, padding), targets, ignore_index);
  }

  void for_each_child(const typename Module<T, B>::ChildFn& f) override {
    f("embed_tokens", embed_tokens);
    if (embed_positions) f("embed_positions", *embed_positions);
    for (size_t i = 0; i < layers.size(); ++i) f("layers." + std::to_string(i), layers[i]);
    if (layer_norm) f("layer_norm", *layer_norm);
    f("lm_head", lm_head);
  }

 private:
  static const ModelConfig& validated(const ModelConfig& cfg) {
    cfg.validate();
    detail::check_config_policy<Policy>("Encoder", cfg);
    return cfg;
  }

  ModelConfig config_;
  Generator construction_gen_;

 public:
  Embedding<T, B> embed_tokens;                    ///< (V, C)
  std::optional<Embedding<T, B>> embed_positions;  ///< (max_seq_len, C), when learned
  std::vector<Layer> layers;
  std::optional<Norm> layer_norm;  ///< the final norm, when the model has one
  LMHead lm_head;

 private:
  Var sinusoids_;
  mutable Generator dropout_gen_;
};

}  // namespace normlab::inline v0
