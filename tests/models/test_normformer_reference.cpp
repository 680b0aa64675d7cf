// The composed TransformerLayer<NormFormer> (policy extras, fused attention
// and FFN nodes, head scale folded into W_O) against the literal equations of
// examples/normformer_reference.hpp: output, dx and every parameter's
// gradient, in double and in float with two threads.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "../../examples/normformer_reference.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

template <class T>
std::vector<double> values(const Tensor<T, Cpu>& t) {
  const std::vector<T> v = t.to_vector();
  return {v.begin(), v.end()};
}

/// Largest |actual - expected| / max(1, |expected|): the measure expect_close bounds.
double max_rel_diff(const std::vector<double>& actual, const std::vector<double>& expected) {
  double m = 0;
  for (size_t i = 0; i < std::min(actual.size(), expected.size()); ++i)
    m = std::max(m, std::abs(actual[i] - expected[i]) / std::max(1.0, std::abs(expected[i])));
  return m;
}

std::string scientific(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

/// The reference's parameters, read out of the composed layer (the same
/// Variables, so both runs write the same gradient buffers).
template <class T>
reference::NormFormerParams<T, Cpu> params_of(const TransformerLayer<NormFormer, T, Cpu>& layer) {
  reference::NormFormerParams<T, Cpu> p;
  p.self_attn_layer_norm_weight = layer.attn_norm->weight;
  p.self_attn_layer_norm_bias = layer.attn_norm->bias;
  p.q_proj_weight = layer.self_attn.q_proj.weight;
  p.q_proj_bias = layer.self_attn.q_proj.bias;
  p.k_proj_weight = layer.self_attn.k_proj.weight;
  p.k_proj_bias = layer.self_attn.k_proj.bias;
  p.v_proj_weight = layer.self_attn.v_proj.weight;
  p.v_proj_bias = layer.self_attn.v_proj.bias;
  p.c_attn = layer.extras.template state<HeadScale<before_out_proj>>().c_attn;
  p.out_proj_weight = layer.self_attn.out_proj.weight;
  p.out_proj_bias = layer.self_attn.out_proj.bias;
  const auto& attn_ln = layer.extras.template state<AttnOutNorm>().attn_ln;
  p.attn_ln_weight = attn_ln.weight;
  p.attn_ln_bias = attn_ln.bias;
  p.final_layer_norm_weight = layer.ffn_norm->weight;
  p.final_layer_norm_bias = layer.ffn_norm->bias;
  p.fc1_weight = layer.ffn.fc1.weight;
  p.fc1_bias = layer.ffn.fc1.bias;
  const auto& ffn_ln = layer.extras.template state<FfnNorm>().ffn_layernorm;
  p.ffn_layernorm_weight = ffn_ln.weight;
  p.ffn_layernorm_bias = ffn_ln.bias;
  p.fc2_weight = layer.ffn.fc2.weight;
  p.fc2_bias = layer.ffn.fc2.bias;
  return p;
}

/// Builds a NormFormer layer (C 16, H 4, d_ff 40) with every norm gain, norm
/// shift and head scale moved away from its init, runs it and the reference
/// on the same x (2, 5, 16) and upstream gradient, and expects the output, dx
/// and every parameter's gradient equal to `tol` (relative, as expect_close).
template <class T>
void expect_composed_equals_reference(double tol) {
  ModelConfig cfg;
  cfg.vocab_size = 11;
  cfg.d_model = 16;
  cfg.n_heads = 4;
  cfg.n_layers = 2;
  cfg.d_ff = 40;
  cfg.max_seq_len = 8;
  cfg.set_policy<NormFormer>();
  Generator gen(21);
  TransformerLayer<NormFormer, T, Cpu> layer(cfg, gen);
  using Tens = Tensor<T, Cpu>;
  using Var = Variable<T, Cpu>;
  for (auto& p : layer.named_parameters())
    if (p.kind == ParamKind::norm_weight || p.kind == ParamKind::scale ||
        p.kind == ParamKind::norm_bias) {
      Tens v = p.value.data();
      v.copy_from(
          Tens::normal(p.value.shape(), gen, T(p.kind == ParamKind::norm_bias ? 0 : 1), T(0.3)));
    }
  const reference::NormFormerParams<T, Cpu> params = params_of(layer);

  // Every parameter of the layer is one the reference reads.
  const std::vector<const Var*> used = {&params.self_attn_layer_norm_weight,
                                        &params.self_attn_layer_norm_bias,
                                        &params.q_proj_weight,
                                        &params.q_proj_bias,
                                        &params.k_proj_weight,
                                        &params.k_proj_bias,
                                        &params.v_proj_weight,
                                        &params.v_proj_bias,
                                        &params.c_attn,
                                        &params.out_proj_weight,
                                        &params.out_proj_bias,
                                        &params.attn_ln_weight,
                                        &params.attn_ln_bias,
                                        &params.final_layer_norm_weight,
                                        &params.final_layer_norm_bias,
                                        &params.fc1_weight,
                                        &params.fc1_bias,
                                        &params.ffn_layernorm_weight,
                                        &params.ffn_layernorm_bias,
                                        &params.fc2_weight,
                                        &params.fc2_bias};
  std::set<const void*> used_states;
  for (const Var* v : used) used_states.insert(v->state_ptr().get());
  const auto named = layer.named_parameters();
  EXPECT_EQ(named.size(), used.size());
  for (const auto& p : named)
    EXPECT_TRUE(used_states.count(p.value.state_ptr().get())) << p.name << " not in the reference";

  const Tens x_data = Tens::normal({2, 5, 16}, gen);
  const Tens dy = Tens::normal({2, 5, 16}, gen);
  typename TransformerLayer<NormFormer, T, Cpu>::Options opt;
  opt.causal = true;

  // The composed layer.
  const Var x_layer(x_data.clone(), true);
  const Var y_layer = layer.forward(x_layer, opt);
  const std::vector<double> out_layer = values(y_layer.data());
  y_layer.backward(dy);
  const std::vector<double> dx_layer = values(x_layer.grad());
  std::vector<std::vector<double>> dparams_layer;
  for (const auto& p : named) dparams_layer.push_back(values(p.value.grad()));
  layer.zero_grad(/*set_to_none=*/true);

  // The equations.
  const Var x_ref(x_data.clone(), true);
  const Var y_ref = reference::normformer_layer_reference(x_ref, params, cfg.n_heads, cfg.ln_eps);
  const std::vector<double> out_ref = values(y_ref.data());
  y_ref.backward(dy);

  {
    SCOPED_TRACE("output");
    expect_close(out_layer, out_ref, tol);
  }
  {
    SCOPED_TRACE("dx");
    expect_close(dx_layer, values(x_ref.grad()), tol);
  }
  double max_dparam = 0;
  for (size_t i = 0; i < named.size(); ++i) {
    SCOPED_TRACE("d " + named[i].name);
    const std::vector<double> g_ref = values(named[i].value.grad());
    expect_close(dparams_layer[i], g_ref, tol);
    max_dparam = std::max(max_dparam, max_rel_diff(dparams_layer[i], g_ref));
  }
  ::testing::Test::RecordProperty("max_rel_diff_output",
                                  scientific(max_rel_diff(out_layer, out_ref)));
  ::testing::Test::RecordProperty("max_rel_diff_dx",
                                  scientific(max_rel_diff(dx_layer, values(x_ref.grad()))));
  ::testing::Test::RecordProperty("max_rel_diff_dparams", scientific(max_dparam));
}

TEST(NormFormerReference, ComposedLayerEqualsTheEquationsInDouble) {
  expect_composed_equals_reference<double>(1e-12);
}

TEST(NormFormerReference, ComposedLayerEqualsTheEquationsInFloatWithTwoThreads) {
  ThreadCountGuard threads(2);
  expect_composed_equals_reference<float>(1e-5);
}

}  // namespace
}  // namespace normlab::testing
