// normlab/models/encoder.hpp — Encoder: a bidirectional transformer with a masked-LM head.
#pragma once

#include <optional>
#include <vector>

#include "normlab/models/gpt.hpp"

namespace normlab {
inline namespace v0 {

/// A bidirectional encoder with a masked-LM head (RoBERTa's layout, fairseq
/// names): the stack's hidden states h (B, T, C), every token attending to
/// every non-padding token, then
///
///   z = lm_head.layer_norm(act(lm_head.dense(h)))   // (B, T, C)
///   logits = z E^T + lm_head.bias                   // (B, T, V)
///
/// E is embed_tokens.weight (the head is always tied). A padding mask (B, T)
/// with 1 at padding keeps every query from attending to those keys; with the
/// config's padding_idx, tokens equal to it are masked too (TransformerStack).
template <class Policy, FloatingElement Scalar, class Backend>
class Encoder : public TransformerStack<Policy, Scalar, Backend> {
 public:
  using Var = Variable<Scalar, Backend>;
  using Norm = typename TransformerStack<Policy, Scalar, Backend>::Norm;

  /// The masked-LM head.
  struct LMHead : Module<Scalar, Backend> {
    LMHead(const ModelConfig& cfg, Generator& gen)
        : dense(cfg.d_model, cfg.d_model, gen),
          layer_norm(cfg.d_model, cfg.ln_eps, norm_kind_of(cfg.policy_spec())),
          bias(Tensor<Scalar, Backend>::zeros({cfg.vocab_size}), true),
          activation(cfg.activation_kind()) {}
    void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) override {
      f("bias", bias, ParamKind::bias);
    }
    void for_each_child(const typename Module<Scalar, Backend>::ChildFn& f) override {
      f("dense", dense);
      f("layer_norm", layer_norm);
    }
    Linear<Scalar, Backend> dense;  ///< (C, C)
    Norm layer_norm;                ///< (C,)
    Var bias;                       ///< (V,)
    Activation activation;
  };

  /// Builds the model `cfg` describes (tie_embeddings is ignored: the head is
  /// tied) and initializes it by `init` from `seed`.
  /// Contract: cfg validates and names this Policy (throws Error otherwise).
  explicit Encoder(const ModelConfig& cfg, uint64_t seed = 0, InitScheme init = InitScheme::fairseq)
      : TransformerStack<Policy, Scalar, Backend>("Encoder", cfg, seed),
        lm_head(cfg, this->construction_gen_) {
    initialize(*this, init, cfg.n_layers, seed);
    this->zero_padding_rows();
  }

  /// tokens (B, T) int64, optional padding (B, T) int64 (nonzero = padding)
  /// -> logits (B, T, V). Throws on shapes that do not fit the config.
  Var forward(const Tensor<int64_t, Backend>& tokens,
              const Tensor<int64_t, Backend>& padding = {}) const {
    Var key_bias;
    if (padding.defined()) {
      detail::check(padding.shape() == tokens.shape(), "Encoder: padding mask of shape ",
                    padding.shape(), " does not match tokens ", tokens.shape());
      // -1e9 rather than -inf: a row of padding only stays finite.
      std::vector<Scalar> bias;
      for (int64_t p : padding.to_vector()) bias.push_back(p != 0 ? Scalar(-1e9) : Scalar(0));
      key_bias =
          Var(Tensor<Scalar, Backend>::from_vector({tokens.size(0), 1, 1, tokens.size(1)}, bias));
    }
    const Var h = this->hidden_states(tokens, false, key_bias, {});  // (B, T, C)
    const Var z =
        lm_head.layer_norm.forward(activate(lm_head.dense.forward(h), lm_head.activation));
    return matmul(z, this->embed_tokens.weight, false, true) + lm_head.bias;  // (B, T, V)
  }

  /// Mean cross-entropy over the positions whose target is not `ignored`
  /// (the masked positions of an MLM batch); `ignored` defaults to
  /// ignore_index(): padding_idx when the config sets one (fairseq's
  /// masked_lm criterion, whose unmasked targets are the pad), else -100.
  Var mlm_loss(const Tensor<int64_t, Backend>& tokens, const Tensor<int64_t, Backend>& targets,
               const Tensor<int64_t, Backend>& padding = {},
               std::optional<int64_t> ignored = std::nullopt) const {
    return cross_entropy(forward(tokens, padding), targets, ignored.value_or(this->ignore_index()));
  }

  void for_each_child(const typename Module<Scalar, Backend>::ChildFn& f) override {
    TransformerStack<Policy, Scalar, Backend>::for_each_child(f);
    f("lm_head", lm_head);
  }

  LMHead lm_head;
};

}  // namespace v0
}  // namespace normlab
