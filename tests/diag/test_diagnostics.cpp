// Diagnostics: per-layer gradient norms by group, residual-stream norms.
#include <cmath>

#include "normlab/diag/diagnostics.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

using TensorI64 = Tensor<int64_t, Cpu>;

ModelConfig small() {
  return model_config("normformer", {.layers = 3});
}

TEST(Diagnostics, GradientNormsAreFrobeniusNormsPerLayerAndGroup) {
  GPT<NormFormer, double, Cpu> model(small(), 1);
  const TensorI64 tokens = TensorI64::from_vector({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  model.loss(tokens, tokens).backward();
  const LayerGradientNorms g = layer_gradient_norms(model);
  ASSERT_EQ(g.norms.size(), 3u);
  EXPECT_EQ(g.groups, (std::vector<std::string>{"c_attn", "self_attn.q_proj", "self_attn.k_proj",
                                                "self_attn.v_proj", "self_attn.out_proj",
                                                "self_attn_layer_norm", "attn_ln", "fc1", "fc2",
                                                "ffn_layernorm", "final_layer_norm"}));
  // By hand for one entry: layer 2's fc2 weight.
  double sq = 0;
  for (double x : model.layers[2].ffn.fc2.weight.grad().to_vector()) sq += x * x;
  EXPECT_DOUBLE_EQ(g.at(2, "fc2"), std::sqrt(sq));
  // With biases: fc2 weight and bias together.
  const LayerGradientNorms all = layer_gradient_norms(model, GradientNormScope::all);
  double sq_all = sq;
  for (double x : model.layers[2].ffn.fc2.bias.grad().to_vector()) sq_all += x * x;
  EXPECT_DOUBLE_EQ(all.at(2, "fc2"), std::sqrt(sq_all));
  expect_error([&] { (void)g.at(0, "fc3"); }, {"no parameter group \"fc3\""});
  expect_error([&] { (void)g.at(3, "fc2"); }, {"layer 3", "[0, 3)"});
}

TEST(Diagnostics, NoGradientsNoRows) {
  GPT<PreLN, float, Cpu> model(
      [] {
        ModelConfig c = small();
        c.policy = "pre_ln";
        return c;
      }(),
      1);
  EXPECT_TRUE(layer_gradient_norms(model).norms.empty());
}

TEST(Diagnostics, ResidualStreamNormsFollowTheForwardPass) {
  GPT<NormFormer, double, Cpu> model(small(), 2);
  const TensorI64 tokens = TensorI64::from_vector({1, 3}, {4, 1, 9});
  const std::vector<double> norms = residual_stream_norms(model, tokens);
  ASSERT_EQ(norms.size(), 4u);  // embeddings + 3 layers
  // Index 0 by hand: mean over tokens of |embed_tokens[t] + embed_positions[p]|.
  const auto E = model.embed_tokens.weight.data().to_vector();
  const auto P = model.embed_positions->weight.data().to_vector();
  double mean = 0;
  const int64_t ids[3] = {4, 1, 9};
  for (int p = 0; p < 3; ++p) {
    double sq = 0;
    for (int c = 0; c < 8; ++c) {
      const double x = E[static_cast<size_t>(ids[p] * 8 + c)] + P[static_cast<size_t>(p * 8 + c)];
      sq += x * x;
    }
    mean += std::sqrt(sq) / 3;
  }
  EXPECT_NEAR(norms[0], mean, 1e-12);
  for (double n : norms) EXPECT_GT(n, 0);
  EXPECT_TRUE(grad_enabled());  // the guard was released
}

}  // namespace
}  // namespace normlab::testing
