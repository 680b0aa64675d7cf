// Transformer layers and GPT for every policy: parameter names and counts
// against the analytic formulas, gradients by finite differences, errors.
#include <cmath>
#include <set>

#include "testing.hpp"

namespace normlab::testing {
namespace {

using TensorI64 = Tensor<int64_t, Cpu>;

/// A config whose policy keys describe the policy type P.
template <class P>
ModelConfig config_for(int64_t C = 8, int64_t H = 2, int64_t L = 2, int64_t d_ff = 12) {
  ModelConfig c;
  c.vocab_size = 11;
  c.d_model = C;
  c.n_heads = H;
  c.n_layers = L;
  c.d_ff = d_ff;
  c.max_seq_len = 6;
  c.set_policy<P>();
  return c;
}

/// Whether the policy P scales heads (either placement).
template <class P>
constexpr bool kHeadScale =
    P::template has<HeadScale<before_out_proj>> || P::template has<HeadScale<after_out_proj>>;

/// Parameters of one layer, from the equations: 4 projections with bias,
/// fc1/fc2 with bias, two norms, and the extras a policy adds.
template <class P>
int64_t layer_parameter_count(int64_t C, int64_t H, int64_t d_ff) {
  const int64_t norm = P::norm == NormKind::rms_norm ? 1 : 2;  // gain (+ shift)
  int64_t n = 4 * (C * C + C) + (C * d_ff + d_ff) + (d_ff * C + C) + 2 * norm * C;
  if (kHeadScale<P>) n += H;
  if (P::template has<AttnOutNorm>) n += norm * C;
  if (P::template has<FfnNorm>) n += norm * d_ff;
  if (P::template has<FfnOutNorm>) n += norm * C;
  if (P::template has<ResidScale>) n += C;
  return n;
}

template <class P>
class EveryPolicy : public ::testing::Test {};
using Policies =
    ::testing::Types<PostLN, PreLN, NormFormer, NormFormerFairseq, compose<NormFormer, ResidScale>,
                     compose<PreLN, HeadScale<before_out_proj>>, compose<PreLN, AttnOutNorm>,
                     compose<PreLN, FfnNorm>, compose<PreLN, ResidScale>, SandwichLN, DeepNorm,
                     compose<PreLN, UseRMSNorm>>;
TYPED_TEST_SUITE(EveryPolicy, Policies);

TYPED_TEST(EveryPolicy, ParameterCountMatchesTheFormula) {
  using P = TypeParam;
  const ModelConfig cfg = config_for<P>();
  GPT<P, double, Cpu> model(cfg, 1);
  const int64_t C = cfg.d_model, V = cfg.vocab_size;
  const int64_t norm = P::norm == NormKind::rms_norm ? 1 : 2;
  const int64_t expected = V * C + cfg.max_seq_len * C +
                           cfg.n_layers * layer_parameter_count<P>(C, cfg.n_heads, cfg.d_ff) +
                           (P::final_norm ? norm * C : 0);
  EXPECT_EQ(model.parameter_count(), expected);
  EXPECT_EQ(model.layers[0].parameter_count(), layer_parameter_count<P>(C, cfg.n_heads, cfg.d_ff));
}

TYPED_TEST(EveryPolicy, ParameterNamesAreFairseqKeysAndOnlyEnabledFeaturesOwnAny) {
  using P = TypeParam;
  GPT<P, double, Cpu> model(config_for<P>(), 1);
  std::set<std::string> names;
  for (const auto& p : model.named_parameters()) EXPECT_TRUE(names.insert(p.name).second) << p.name;
  for (const char* key :
       {"embed_tokens.weight", "embed_positions.weight", "layers.0.self_attn.q_proj.weight",
        "layers.0.self_attn.k_proj.bias", "layers.0.self_attn.v_proj.weight",
        "layers.1.self_attn.out_proj.bias", "layers.0.self_attn_layer_norm.weight",
        "layers.1.fc1.weight", "layers.1.fc2.bias", "layers.1.final_layer_norm.weight"})
    EXPECT_TRUE(names.count(key)) << key;
  const bool ln = P::norm == NormKind::layer_norm;
  EXPECT_EQ(names.count("layers.1.final_layer_norm.bias"), ln ? 1u : 0u);
  EXPECT_EQ(names.count("layers.1.c_attn"), kHeadScale<P> ? 1u : 0u);
  EXPECT_EQ(names.count("layers.1.attn_ln.weight"), P::template has<AttnOutNorm> ? 1u : 0u);
  EXPECT_EQ(names.count("layers.1.ffn_layernorm.weight"), P::template has<FfnNorm> ? 1u : 0u);
  EXPECT_EQ(names.count("layers.1.ffn_out_ln.weight"), P::template has<FfnOutNorm> ? 1u : 0u);
  EXPECT_EQ(names.count("layers.1.w_resid"), P::template has<ResidScale> ? 1u : 0u);
  EXPECT_EQ(names.count("layer_norm.weight"), P::final_norm ? 1u : 0u);
  EXPECT_EQ(names.count("output_projection.weight"), 0u);  // tied by default
}

TYPED_TEST(EveryPolicy, GradcheckOfTheLossOverEveryParameter) {
  using P = TypeParam;
  ModelConfig cfg = config_for<P>(4, 2, 2, 6);
  cfg.vocab_size = 7;
  GPT<P, double, Cpu> model(cfg, 3, InitScheme::fairseq);
  // Move norms and scales away from 1/0 so that every path carries gradient.
  Generator gen(4);
  for (auto& p : model.named_parameters())
    if (p.kind == ParamKind::norm_weight || p.kind == ParamKind::scale ||
        p.kind == ParamKind::norm_bias) {
      Tensor<double, Cpu> v = p.value.data();
      v.copy_from(
          TensorD::normal(p.value.shape(), gen, p.kind == ParamKind::norm_bias ? 0 : 1, 0.3));
    }
  const TensorI64 tokens = TensorI64::from_vector({2, 3}, {1, 5, 2, 6, 0, 3});
  const TensorI64 targets = TensorI64::from_vector({2, 3}, {5, 2, -100, 0, 3, 4});
  GradcheckOptions opt;
  opt.eps = 1e-6;
  expect_gradcheck([&](const std::vector<VarD>&) { return model.loss(tokens, targets); },
                   model.parameters(), opt);
}

TYPED_TEST(EveryPolicy, SameSeedSameModelAndLogits) {
  using P = TypeParam;
  const ModelConfig cfg = config_for<P>();
  GPT<P, float, Cpu> a(cfg, 9), b(cfg, 9), c(cfg, 10);
  const TensorI64 tokens = TensorI64::from_vector({1, 4}, {3, 1, 4, 1});
  const auto la = a.forward(tokens).data().to_vector();
  EXPECT_EQ(la, b.forward(tokens).data().to_vector());
  EXPECT_NE(la, c.forward(tokens).data().to_vector());
  EXPECT_EQ(a.forward(tokens).shape(), (Shape{1, 4, 11}));
}

TEST(TransformerLayer, NormFormerOverPreLNIsTwoCPlusTwoDffPlusH) {
  // DESIGN.md §1: 2C + 2 d_ff + H per layer (+ C with residual scaling).
  const int64_t C = 16, H = 4, d_ff = 40;
  const int64_t pre = layer_parameter_count<PreLN>(C, H, d_ff);
  EXPECT_EQ(layer_parameter_count<NormFormer>(C, H, d_ff) - pre, 2 * C + 2 * d_ff + H);
  EXPECT_EQ((layer_parameter_count<compose<NormFormer, ResidScale>>(C, H, d_ff)) - pre,
            2 * C + 2 * d_ff + H + C);
  Generator gen(1);
  TransformerLayer<NormFormer, float, Cpu> nf(config_for<NormFormer>(C, H, 2, d_ff), gen);
  TransformerLayer<PreLN, float, Cpu> pl(config_for<PreLN>(C, H, 2, d_ff), gen);
  EXPECT_EQ(nf.parameter_count() - pl.parameter_count(), 2 * C + 2 * d_ff + H);
}

TEST(TransformerLayer, HeadScaleOfOneIsTheIdentityAndPlacementsDifferOtherwise) {
  const ModelConfig cfg = config_for<compose<PreLN, HeadScale<before_out_proj>>>();
  GPT<compose<PreLN, HeadScale<before_out_proj>>, double, Cpu> before(cfg, 5);
  ModelConfig cfg_after = cfg;
  cfg_after.head_scale = "after_out_proj";
  GPT<compose<PreLN, HeadScale<after_out_proj>>, double, Cpu> after(cfg_after, 5);
  GPT<PreLN, double, Cpu> plain(config_for<PreLN>(), 5);
  const TensorI64 tokens = TensorI64::from_vector({1, 5}, {1, 2, 3, 4, 5});
  // Same seed, same draws (c_attn is set to 1 by init, not drawn): identical models.
  const auto lp = plain.forward(tokens).data().to_vector();
  expect_close(before.forward(tokens).data().to_vector(), lp, 1e-12);
  expect_close(after.forward(tokens).data().to_vector(), lp, 1e-12);
  for (auto* layer : {&before.layers[0], &before.layers[1]}) {
    TensorD g = layer->extras.template state<HeadScale<before_out_proj>>().c_attn.data();
    g.copy_from(TensorD::from({0.5, 2.0}));
  }
  for (auto* layer : {&after.layers[0], &after.layers[1]}) {
    TensorD g = layer->extras.template state<HeadScale<after_out_proj>>().c_attn.data();
    g.copy_from(TensorD::from({0.5, 2.0}));
  }
  const auto lb = before.forward(tokens).data().to_vector();
  const auto la = after.forward(tokens).data().to_vector();
  double diff = 0, diff_plain = 0;
  for (size_t i = 0; i < lb.size(); ++i) {
    diff = std::max(diff, std::abs(lb[i] - la[i]));
    diff_plain = std::max(diff_plain, std::abs(lb[i] - lp[i]));
  }
  EXPECT_GT(diff, 1e-3);  // out_proj's bias is scaled only after it
  EXPECT_GT(diff_plain, 1e-3);
}

TEST(TransformerLayer, DeepNormResidualWeight) {
  ModelConfig cfg = config_for<DeepNorm>();
  cfg.n_layers = 8;
  GPT<DeepNorm, float, Cpu> model(cfg, 1, InitScheme::deepnorm);
  EXPECT_DOUBLE_EQ(model.layers[3].extras.state<DeepNormResidual>().alpha, std::pow(16.0, 0.25));
  static_assert(!PostLN::has<DeepNormResidual>);  // Post-LN's skip path is x itself
}

TEST(Gpt, UntiedHeadSinusoidsAndFinalNormOverride) {
  ModelConfig cfg = config_for<PreLN>();
  cfg.tie_embeddings = false;
  cfg.positions = "sinusoidal";
  cfg.final_norm = false;
  GPT<PreLN, float, Cpu> model(cfg, 2);
  std::set<std::string> names;
  for (const auto& p : model.named_parameters()) names.insert(p.name);
  EXPECT_TRUE(names.count("output_projection.weight"));
  EXPECT_FALSE(names.count("embed_positions.weight"));
  EXPECT_FALSE(names.count("layer_norm.weight"));
  EXPECT_EQ(model.forward(TensorI64::from_vector({2, 3}, {1, 2, 3, 4, 5, 6})).shape(),
            (Shape{2, 3, 11}));
}

TEST(Gpt, SinusoidalPositionsFollowFairseq) {
  const auto pe = sinusoidal_positions<double, Cpu>(3, 6).to_vector();  // half = 3
  // position 2, i = 1: w = 10000^(-1/2) = 0.01
  EXPECT_NEAR(pe[2 * 6 + 1], std::sin(2 * 0.01), 1e-15);
  EXPECT_NEAR(pe[2 * 6 + 3 + 1], std::cos(2 * 0.01), 1e-15);
  EXPECT_EQ(pe[0 * 6 + 3], 1.0);  // cos(0)
}

/// h_0, the residual stream entering the first layer, of model(tokens).
template <class Model>
std::vector<double> first_hidden(const Model& model, const TensorI64& tokens) {
  std::vector<double> h0;
  (void)model.forward(tokens, [&](int64_t i, const VarD& h) {
    if (i == 0) h0 = h.data().to_vector();
  });
  return h0;
}

TEST(Gpt, EmbedScaleMultipliesTheInputEmbeddingsBySqrtC) {
  ModelConfig cfg = config_for<PreLN>();  // C = 8
  cfg.embed_scale = true;
  GPT<PreLN, double, Cpu> model(cfg, 3);
  const TensorI64 tokens = TensorI64::from_vector({1, 3}, {4, 0, 10});
  const std::vector<double> h0 = first_hidden(model, tokens);
  const std::vector<double> E = model.embed_tokens.weight.data().to_vector();
  const std::vector<double> P = model.embed_positions->weight.data().to_vector();
  for (int64_t t = 0; t < 3; ++t)
    for (int64_t c = 0; c < 8; ++c) {
      const int64_t tok = tokens.to_vector()[static_cast<size_t>(t)];
      EXPECT_EQ(
          h0[static_cast<size_t>(t * 8 + c)],
          std::sqrt(8.0) * E[static_cast<size_t>(tok * 8 + c)] + P[static_cast<size_t>(t * 8 + c)]);
    }
  EXPECT_EQ(cfg.embedding_scale(), std::sqrt(8.0));
  cfg.embed_scale = false;
  EXPECT_EQ(cfg.embedding_scale(), 1.0);
}

TEST(Gpt, PaddingIdxStartsPositionsAtRowPaddingIdxPlusOne) {
  for (const char* positions : {"learned", "sinusoidal"}) {
    SCOPED_TRACE(positions);
    ModelConfig cfg = config_for<PostLN>();  // max_seq_len 6, C 8
    cfg.positions = positions;
    cfg.padding_idx = 2;
    GPT<PostLN, double, Cpu> model(cfg, 4);
    const bool learned = cfg.positions == "learned";
    // fairseq: max_seq_len + padding_idx + 1 rows; row padding_idx of the sinusoids is zero.
    const std::vector<double> P = learned ? model.embed_positions->weight.data().to_vector()
                                          : sinusoidal_positions<double, Cpu>(9, 8, 2).to_vector();
    ASSERT_EQ(P.size(), 9u * 8u);
    if (!learned) {  // the same sinusoids as without padding_idx, but for the pad row
      const std::vector<double> plain = sinusoidal_positions<double, Cpu>(9, 8).to_vector();
      for (size_t i = 0; i < P.size(); ++i) EXPECT_EQ(P[i], i / 8 == 2 ? 0.0 : plain[i]) << i;
    }
    const TensorI64 tokens = TensorI64::from_vector({1, 4}, {5, 6, 7, 8});  // no pad token
    const std::vector<double> h0 = first_hidden(model, tokens);
    const std::vector<double> E = model.embed_tokens.weight.data().to_vector();
    for (size_t t = 0; t < 4; ++t)
      for (size_t c = 0; c < 8; ++c)
        EXPECT_EQ(h0[t * 8 + c], E[(5 + t) * 8 + c] + P[(3 + t) * 8 + c]) << t << " " << c;
  }
}

TEST(Gpt, PadTokensAreMaskedReadThePadRowAndTheirTargetsAreIgnored) {
  ModelConfig cfg = config_for<PreLN>();
  cfg.padding_idx = 1;
  cfg.embed_scale = true;
  GPT<PreLN, double, Cpu> model(cfg, 5);
  const int64_t V = 11;
  // The real tokens' logits of a padded row are those of the row alone:
  // right padding (pads after) and left padding (positions count real tokens).
  const std::vector<double> alone =
      model.forward(TensorI64::from_vector({1, 3}, {4, 7, 9})).data().to_vector();  // (1,3,V)
  const std::vector<double> padded =
      model.forward(TensorI64::from_vector({2, 5}, {4, 7, 9, 1, 1, 1, 1, 4, 7, 9}))
          .data()
          .to_vector();  // (2,5,V)
  for (size_t t = 0; t < 3; ++t)
    for (size_t v = 0; v < static_cast<size_t>(V); ++v) {
      EXPECT_NEAR(padded[t * V + v], alone[t * V + v], 1e-12) << "right, t " << t;
      EXPECT_NEAR(padded[(5 + 2 + t) * V + v], alone[t * V + v], 1e-12) << "left, t " << t;
    }
  // A pad reads row padding_idx of the position table.
  const std::vector<double> h0 =
      first_hidden(model, TensorI64::from_vector({1, 3}, {4, 1, 9}));  // 9 is position 2
  const std::vector<double> E = model.embed_tokens.weight.data().to_vector();
  const std::vector<double> P = model.embed_positions->weight.data().to_vector();
  for (size_t c = 0; c < 8; ++c) {
    EXPECT_EQ(h0[8 + c], std::sqrt(8.0) * E[8 + c] + P[1 * 8 + c]);
    EXPECT_EQ(h0[16 + c], std::sqrt(8.0) * E[9 * 8 + c] + P[3 * 8 + c]);
  }
  // loss(tokens, targets) ignores the targets equal to padding_idx.
  const TensorI64 tokens = TensorI64::from_vector({1, 4}, {4, 7, 1, 1});
  const TensorI64 targets = TensorI64::from_vector({1, 4}, {7, 1, 1, 1});
  EXPECT_EQ(model.ignore_index(), 1);
  EXPECT_EQ(model.loss(tokens, targets).item(), model.loss(tokens, targets, 1).item());
  EXPECT_EQ(
      model.loss(tokens, targets).item(),
      model.loss(TensorI64::from_vector({1, 1}, {4}), TensorI64::from_vector({1, 1}, {7})).item());
  GPT<PreLN, double, Cpu> plain(config_for<PreLN>(), 5);
  EXPECT_EQ(plain.ignore_index(), -100);
}

TEST(Gpt, PaddingRowsStartAtZeroAndTheirLookupsGetNoGradient) {
  for (const InitScheme init : {InitScheme::fairseq, InitScheme::gpt2, InitScheme::deepnorm}) {
    SCOPED_TRACE(to_string(init));
    ModelConfig cfg = config_for<PreLN>();  // C 8
    cfg.padding_idx = 1;
    cfg.tie_embeddings = false;  // so that only the lookups could reach row 1 of embed_tokens
    GPT<PreLN, double, Cpu> model(cfg, 7, init);
    const std::vector<double> E = model.embed_tokens.weight.data().to_vector();
    const std::vector<double> P = model.embed_positions->weight.data().to_vector();
    for (size_t c = 0; c < 8; ++c) {
      EXPECT_EQ(E[8 + c], 0.0);
      EXPECT_EQ(P[8 + c], 0.0);
      EXPECT_NE(E[2 * 8 + c], 0.0);
      EXPECT_NE(P[2 * 8 + c], 0.0);
    }
    // Pad targets counted (ignore -100): the pads' outputs reach the loss through their own
    // residual stream, yet rows 1 of both tables get nothing (nn.Embedding's padding_idx).
    const TensorI64 tokens = TensorI64::from_vector({1, 4}, {4, 7, 1, 1});
    const TensorI64 targets = TensorI64::from_vector({1, 4}, {7, 1, 3, 5});
    model.loss(tokens, targets, -100).backward();
    const std::vector<double> dE = model.embed_tokens.weight.grad().to_vector();
    const std::vector<double> dP = model.embed_positions->weight.grad().to_vector();
    double used = 0;
    for (size_t c = 0; c < 8; ++c) {
      EXPECT_EQ(dE[8 + c], 0.0) << c;
      EXPECT_EQ(dP[8 + c], 0.0) << c;
      used += std::abs(dE[4 * 8 + c]) + std::abs(dP[2 * 8 + c]);
    }
    EXPECT_GT(used, 0.0) << "the real tokens' rows get gradients";
  }
}

TEST(Gpt, EmbedDropoutDropsTheFirstHiddenStateInTrainingOnly) {
  ModelConfig cfg = config_for<PreLN>();
  GPT<PreLN, double, Cpu> plain(cfg, 6);
  cfg.embed_dropout = 0.5;
  GPT<PreLN, double, Cpu> model(cfg, 6);
  const TensorI64 tokens = TensorI64::from_vector({2, 6}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1});
  const std::vector<double> kept = first_hidden(plain, tokens);
  const std::vector<double> dropped = first_hidden(model, tokens);  // training mode
  ASSERT_EQ(dropped.size(), kept.size());
  size_t zeros = 0;
  for (size_t i = 0; i < kept.size(); ++i) {
    if (dropped[i] == 0) {
      ++zeros;
    } else {
      EXPECT_NEAR(dropped[i], kept[i] / 0.5, 1e-12) << i;
    }
  }
  EXPECT_GT(zeros, kept.size() / 4);  // 96 elements, p = 0.5
  EXPECT_LT(zeros, kept.size() * 3 / 4);
  model.eval();
  EXPECT_EQ(first_hidden(model, tokens), kept);
  EXPECT_EQ(model.forward(tokens).data().to_vector(), [&] {
    plain.eval();
    return plain.forward(tokens).data().to_vector();
  }());
}

template <class P>
void expect_activation_dropout_in_training_only() {
  ModelConfig cfg = config_for<P>();
  GPT<P, double, Cpu> plain(cfg, 7);
  cfg.activation_dropout = 0.5;
  GPT<P, double, Cpu> model(cfg, 7);
  const TensorI64 tokens = TensorI64::from_vector({1, 5}, {3, 1, 4, 1, 5});
  // Only the layers' FFN changes: h_0 is the same, the logits are not.
  EXPECT_EQ(first_hidden(model, tokens), first_hidden(plain, tokens));
  const std::vector<double> trained = model.forward(tokens).data().to_vector();
  plain.eval();
  const std::vector<double> reference = plain.forward(tokens).data().to_vector();
  EXPECT_NE(trained, reference);
  for (double x : trained) EXPECT_TRUE(std::isfinite(x));
  model.eval();
  EXPECT_EQ(model.forward(tokens).data().to_vector(), reference);
}

TEST(Gpt, ActivationDropoutInTrainingOnly) {
  expect_activation_dropout_in_training_only<PreLN>();
  expect_activation_dropout_in_training_only<NormFormer>();  // before ffn_layernorm (unfused)
}

// fairseq's order inside the FFN: fc1, activation, activation dropout, then ffn_layernorm
// (NormFormer), then fc2: out = y + fc2(LN_ffn(drop(act(fc1(LN_2(y)))))). The layer's output is
// rebuilt from its parts with the mask that the same generator draws.
TEST(TransformerLayer, ActivationDropoutActsOnTheActivationBeforeTheFfnNorm) {
  ModelConfig cfg = config_for<NormFormer>(8, 2, 1, 12);
  cfg.activation_dropout = 0.5;
  Generator init(3);
  TransformerLayer<NormFormer, double, Cpu> layer(cfg, init, 0);
  layer.train();
  const VarD x = random_var({2, 5, 8}, 4);  // (B, T, C)
  Generator gen(11), same(11);
  typename TransformerLayer<NormFormer, double, Cpu>::Options opt;
  opt.gen = &gen;
  const std::vector<double> out = layer.forward(x, opt).data().to_vector();

  // y, the residual stream after attention: the layer's output with fc2 zeroed, in eval mode.
  Generator init_again(3);  // the same parameters
  TransformerLayer<NormFormer, double, Cpu> no_ffn(cfg, init_again, 0);
  no_ffn.ffn.fc2.weight = VarD(TensorD::zeros({8, 12}));
  no_ffn.ffn.fc2.bias = VarD(TensorD::zeros({8}));
  no_ffn.eval();
  const VarD y = no_ffn.forward(x, {});  // (B, T, C)

  const VarD a = layer.ffn.hidden(layer.ffn_norm->forward(y));                  // (B, T, d_ff)
  const VarD mask = dropout(VarD(TensorD::ones({2, 5, 12})), 0.5, same, true);  // 0 or 2
  const VarD expected = y + layer.ffn.output(layer.extras.template at<Site::ffn_hidden>(a * mask));
  expect_close(out, expected.data().to_vector(), 1e-12);
  // Dropping after the FFN norm instead gives other numbers: the test tells them apart.
  const VarD after_norm =
      y + layer.ffn.output(layer.extras.template at<Site::ffn_hidden>(a) * mask);
  double gap = 0;
  const std::vector<double> wrong = after_norm.data().to_vector();
  for (size_t i = 0; i < out.size(); ++i) gap = std::max(gap, std::abs(out[i] - wrong[i]));
  EXPECT_GT(gap, 1e-3);
}

TEST(Gpt, FairseqTransformerLmPreset) {
  const ModelConfig c = fairseq_transformer_lm(1000);
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.placement(), Placement::pre);  // fairseq's base_lm_architecture forces it
  EXPECT_TRUE(c.uses_final_norm());
  EXPECT_EQ(c.d_model, 512);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_layers, 6);
  EXPECT_EQ(c.d_ff, 2048);
  EXPECT_EQ(c.max_seq_len, 1024);
  EXPECT_EQ(c.activation_kind(), Activation::relu);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.position_kind(), PositionKind::sinusoidal);
  EXPECT_TRUE(c.embed_scale);
  EXPECT_EQ(c.padding_idx, std::optional<int64_t>(1));
  EXPECT_EQ(c.position_rows(), 1026);
  EXPECT_EQ(c.dropout, 0.1);
  EXPECT_EQ(c.embed_dropout, 0.1);
  EXPECT_EQ(c.attention_dropout, 0.0);
  EXPECT_EQ(c.activation_dropout, 0.0);
  // normlab's defaults are not fairseq's.
  const ModelConfig d;
  EXPECT_FALSE(d.embed_scale);
  EXPECT_FALSE(d.padding_idx.has_value());
  EXPECT_EQ(d.position_offset(), 0);
  EXPECT_EQ(d.embed_dropout, 0.0);
  EXPECT_EQ(d.activation_dropout, 0.0);
}

TEST(Gpt, InitSchemesDrawTheDocumentedScales) {
  ModelConfig cfg = config_for<PreLN>(64, 4, 4, 256);
  cfg.vocab_size = 300;
  auto std_of = [](const VarF& v) {
    const auto x = v.data().to_vector();
    double s = 0;
    for (float f : x) s += static_cast<double>(f) * f;
    return std::sqrt(s / static_cast<double>(x.size()));
  };
  GPT<PreLN, float, Cpu> gpt2(cfg, 1, InitScheme::gpt2);
  EXPECT_NEAR(std_of(gpt2.layers[0].self_attn.q_proj.weight), 0.02, 0.002);
  EXPECT_NEAR(std_of(gpt2.layers[0].ffn.fc2.weight), 0.02 / std::sqrt(8.0), 0.0005);
  EXPECT_NEAR(std_of(gpt2.embed_tokens.weight), 0.02, 0.002);
  EXPECT_EQ(gpt2.layers[0].self_attn.q_proj.bias.data().to_vector(), std::vector<float>(64, 0.f));
  EXPECT_EQ(gpt2.layers[0].ffn_norm->weight.data().to_vector(), std::vector<float>(64, 1.f));
  GPT<PreLN, float, Cpu> fs(cfg, 1, InitScheme::fairseq);
  // Xavier-uniform: std = gain * sqrt(2 / (fan_in + fan_out)).
  EXPECT_NEAR(std_of(fs.layers[0].ffn.fc1.weight), std::sqrt(2.0 / (64 + 256)), 0.003);
  EXPECT_NEAR(std_of(fs.layers[0].self_attn.k_proj.weight), std::sqrt(2.0 / 128) / std::sqrt(2.0),
              0.003);
  EXPECT_NEAR(std_of(fs.embed_tokens.weight), 1 / 8.0, 0.005);
  ModelConfig dcfg = cfg;
  dcfg.policy = "deepnorm";
  GPT<DeepNorm, float, Cpu> dn(dcfg, 1, InitScheme::deepnorm);
  const double beta = std::pow(32.0, -0.25);
  EXPECT_NEAR(std_of(dn.layers[0].self_attn.v_proj.weight), beta * std::sqrt(2.0 / 128), 0.003);
  EXPECT_NEAR(std_of(dn.layers[0].self_attn.q_proj.weight), std::sqrt(2.0 / 128), 0.005);
}

TEST(Gpt, ErrorsNameWhatWasExpected) {
  ModelConfig cfg = config_for<PreLN>();
  expect_error([&] { GPT<PostLN, float, Cpu> m(cfg); },
               {"GPT<post_ln>", "config asks for policy pre_ln", "computes post_ln"});
  cfg.n_heads = 3;
  expect_error([&] { GPT<PreLN, float, Cpu> m(cfg); }, {"d_model 8", "n_heads 3"});
  cfg = config_for<PreLN>();
  cfg.d_ff = 0;
  expect_error([&] { GPT<PreLN, float, Cpu> m(cfg); }, {"d_ff must be positive, got 0"});
  GPT<PreLN, float, Cpu> model(config_for<PreLN>());
  expect_error(
      [&] {
        (void)model.forward(TensorI64::zeros({2, 7}));
      },
      {"sequence length 7", "max_seq_len = 6"});
  expect_error([&] { (void)model.forward(TensorI64::zeros({7})); },
               {"tokens must be (B, T)", "(7,)"});
  expect_error(
      [&] {
        (void)model.forward(TensorI64::from_vector({1, 2}, {3, 11}));
      },
      {"embedding", "11", "[0, 11)"});
}

TEST(Gpt, DropoutOnlyInTrainingMode) {
  ModelConfig cfg = config_for<PreLN>();
  cfg.dropout = 0.3;
  cfg.attention_dropout = 0.2;
  GPT<PreLN, float, Cpu> model(cfg, 1);
  const TensorI64 tokens = TensorI64::from_vector({1, 4}, {3, 1, 4, 1});
  EXPECT_NE(model.forward(tokens).data().to_vector(), model.forward(tokens).data().to_vector());
  model.eval();
  EXPECT_FALSE(model.layers[1].self_attn.training());
  EXPECT_EQ(model.forward(tokens).data().to_vector(), model.forward(tokens).data().to_vector());
}

}  // namespace
}  // namespace normlab::testing
