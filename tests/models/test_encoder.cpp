// Encoder with a masked-LM head: names, padding, gradients.
#include <set>

#include "testing.hpp"

namespace normlab::testing {
namespace {

using TensorI64 = Tensor<int64_t, Cpu>;

ModelConfig small(const std::string& policy) {
  return model_config(
      policy, {.vocab = 9, .d_model = 4, .heads = 2, .layers = 2, .d_ff = 6, .max_seq_len = 5});
}

TEST(Encoder, ParameterNamesFollowRoberta) {
  Encoder<NormFormer, float, Cpu> model(small("normformer"), 1);
  std::set<std::string> names;
  for (const auto& p : model.named_parameters()) names.insert(p.name);
  for (const char* key :
       {"embed_tokens.weight", "layers.1.c_attn", "layers.0.attn_ln.bias", "lm_head.dense.weight",
        "lm_head.dense.bias", "lm_head.layer_norm.weight", "lm_head.bias", "layer_norm.weight"})
    EXPECT_TRUE(names.count(key)) << key;
  EXPECT_FALSE(names.count("output_projection.weight"));
}

TEST(Encoder, AttentionIsBidirectional) {
  Encoder<PreLN, double, Cpu> model(small("pre_ln"), 2);
  const auto a = model.forward(TensorI64::from_vector({1, 4}, {1, 2, 3, 4})).data().to_vector();
  const auto b = model.forward(TensorI64::from_vector({1, 4}, {1, 2, 3, 5})).data().to_vector();
  // Changing the last token changes the logits of the first (a causal model would not).
  bool first_changed = false;
  for (int v = 0; v < 9; ++v)
    first_changed = first_changed || a[static_cast<size_t>(v)] != b[static_cast<size_t>(v)];
  EXPECT_TRUE(first_changed);
}

TEST(Encoder, PaddedKeysDoNotInfluenceOtherPositions) {
  Encoder<PreLN, double, Cpu> model(small("pre_ln"), 3);
  const TensorI64 pad = TensorI64::from_vector({1, 4}, {0, 0, 0, 1});
  const auto a =
      model.forward(TensorI64::from_vector({1, 4}, {1, 2, 3, 4}), pad).data().to_vector();
  const auto b =
      model.forward(TensorI64::from_vector({1, 4}, {1, 2, 3, 7}), pad).data().to_vector();
  for (size_t i = 0; i < 3 * 9; ++i) EXPECT_NEAR(a[i], b[i], 1e-12) << "at " << i;
  expect_error(
      [&] {
        (void)model.forward(TensorI64::zeros({1, 4}), TensorI64::zeros({1, 3}));
      },
      {"padding mask of shape (1, 3)", "(1, 4)"});
}

TEST(Encoder, MaskedLMLossIgnoresThePadTargetsWhenTheConfigHasAPaddingIdx) {
  // fairseq's masked_lm: the unmasked positions' targets are the pad.
  ModelConfig cfg = small("pre_ln");
  cfg.padding_idx = 1;
  Encoder<PreLN, double, Cpu> model(cfg, 5);
  EXPECT_EQ(model.ignore_index(), 1);
  const TensorI64 tokens = TensorI64::from_vector({1, 4}, {2, 8, 3, 6});
  const TensorI64 targets = TensorI64::from_vector({1, 4}, {1, 4, 1, 1});  // only position 1
  const double by_default = model.mlm_loss(tokens, targets).item();
  EXPECT_EQ(by_default, model.mlm_loss(tokens, targets, {}, 1).item());
  EXPECT_EQ(by_default,
            model.mlm_loss(tokens, TensorI64::from_vector({1, 4}, {-100, 4, -100, -100}), {}, -100)
                .item());
  EXPECT_NE(by_default, model.mlm_loss(tokens, targets, {}, -100).item());  // pads counted
  Encoder<PreLN, double, Cpu> plain(small("pre_ln"), 5);
  EXPECT_EQ(plain.ignore_index(), -100);
}

TEST(Encoder, GradcheckOfTheMaskedLMLoss) {
  for (const std::string policy : {"pre_ln", "post_ln"}) {
    SCOPED_TRACE(policy);
    const TensorI64 tokens = TensorI64::from_vector({2, 3}, {1, 8, 2, 6, 8, 3});
    const TensorI64 targets = TensorI64::from_vector({2, 3}, {-100, 4, -100, -100, 0, -100});
    const TensorI64 pad = TensorI64::from_vector({2, 3}, {0, 0, 1, 0, 0, 0});
    auto check = [&](auto& model) {
      GradcheckOptions opt;
      opt.eps = 1e-6;
      expect_gradcheck(
          [&](const std::vector<VarD>&) { return model.mlm_loss(tokens, targets, pad); },
          model.parameters(), opt);
    };
    if (policy == "pre_ln") {
      Encoder<PreLN, double, Cpu> m(small(policy), 4, InitScheme::fairseq);
      check(m);
    } else {
      Encoder<PostLN, double, Cpu> m(small(policy), 4, InitScheme::fairseq);
      check(m);
    }
  }
}

}  // namespace
}  // namespace normlab::testing
