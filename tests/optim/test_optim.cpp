// Optimizers: one and two steps of each written out by hand, replays of the
// PyTorch fixtures (tools/reference/make_optim_fixture.py), default weight
// decay groups on a NormFormer GPT, gradient clipping, state save/load through
// safetensors with a bit-identical continuation, and error messages.
#include <cmath>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "normlab/optim/optim.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

template <class T>
using Params = std::vector<NamedParameter<T, Cpu>>;

/// Sets the gradient of leaf `v` to `g` (a leaf's backward adds the upstream
/// gradient into a zeroed buffer).
template <class T>
void set_grad(Variable<T, Cpu>& v, const Tensor<T, Cpu>& g) {
  v.clear_grad();
  v.backward(g);
}

template <class T>
NamedParameter<T, Cpu> param(const std::string& name, std::vector<T> values,
                             ParamKind kind = ParamKind::weight) {
  const int64_t n = static_cast<int64_t>(values.size());
  return {name, Variable<T, Cpu>(Tensor<T, Cpu>::from_vector({n}, values), true), kind};
}

// ---- hand-computed updates ---------------------------------------------------

TEST(AdamW, TwoStepsByHand) {
  // p = (1, -2), lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.1.
  Params<double> ps{param<double>("w", {1.0, -2.0})};
  AdamW<double, Cpu> opt(ps, {.lr = 0.1, .weight_decay = 0.1});
  set_grad(ps[0].value, TensorD::from({0.5, 0.0}));
  opt.step();
  // Step 1, element 0: p = 1 * (1 - 0.1 * 0.1) = 0.99; m = 0.1 * 0.5 = 0.05;
  // v = 0.001 * 0.25 = 0.00025; m / (1 - 0.9) = 0.5, v / (1 - 0.999) = 0.25.
  const double p1 = 0.99 - 0.1 * 0.5 / (std::sqrt(0.25) + 1e-8);  // 0.89000000002
  // Element 1 has g = 0: m = v = 0, only the decay acts.
  expect_close(ps[0].value.data().to_vector(), {p1, -2.0 * 0.99}, 1e-15);
  EXPECT_EQ(opt.step_count(), 1);

  set_grad(ps[0].value, TensorD::from({-0.25, 0.0}));
  opt.step();
  // Step 2: m = 0.9 * 0.05 + 0.1 * (-0.25) = 0.02;
  // v = 0.999 * 0.00025 + 0.001 * 0.0625 = 0.00031225;
  // bias corrections 1 - 0.9^2 = 0.19 and 1 - 0.999^2 = 0.001999.
  const double p2 = p1 * 0.99 - 0.1 * (0.02 / 0.19) / (std::sqrt(0.00031225 / 0.001999) + 1e-8);
  expect_close(ps[0].value.data().to_vector(), {p2, -2.0 * 0.99 * 0.99}, 1e-14);
  const auto st = opt.state();
  expect_close(st.tensors.at("exp_avg.w").to_vector(), {0.02, 0.0}, 1e-15);
  expect_close(st.tensors.at("exp_avg_sq.w").to_vector(), {0.00031225, 0.0}, 1e-15);
  EXPECT_EQ(st.counters.at("step.w"), 2);
  EXPECT_EQ(st.counters.at("step"), 2);
}

TEST(Adam, WeightDecayIsAnL2TermInTheGradient) {
  // p = 1, g = 0.5, lr 0.1, wd 0.1: the gradient becomes 0.5 + 0.1 * 1 = 0.6.
  Params<double> ps{param<double>("w", {1.0})};
  Adam<double, Cpu> opt(ps, {.lr = 0.1, .weight_decay = 0.1});
  set_grad(ps[0].value, TensorD::from({0.5}));
  opt.step();
  // m = 0.06, v = 0.00036; corrected 0.6 and 0.36: p = 1 - 0.1 * 0.6 / (0.6 + 1e-8).
  const double p1 = 1 - 0.1 * 0.6 / (0.6 + 1e-8);
  expect_close(ps[0].value.data().to_vector(), {p1}, 1e-15);
  set_grad(ps[0].value, TensorD::from({-0.25}));
  opt.step();
  const double g2 = -0.25 + 0.1 * p1;
  const double m2 = 0.9 * 0.06 + 0.1 * g2, v2 = 0.999 * 0.00036 + 0.001 * g2 * g2;
  const double p2 = p1 - 0.1 * (m2 / 0.19) / (std::sqrt(v2 / 0.001999) + 1e-8);
  expect_close(ps[0].value.data().to_vector(), {p2}, 1e-14);
}

TEST(SGD, PlainMomentumNesterovAndDampeningByHand) {
  // p = 1, lr 0.1, weight decay 0.1; g = 0.5 then -0.25.
  struct Case {
    SGDOptions o;
    double p1, p2;
  };
  const Case cases[] = {
      // no momentum: g' = 0.6 -> 0.94; g' = -0.25 + 0.094 = -0.156 -> 0.9556
      {{.lr = 0.1, .weight_decay = 0.1}, 0.94, 0.9556},
      // momentum 0.9: buf = 0.6 -> 0.94; buf = 0.54 - 0.156 = 0.384 -> 0.9016
      {{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1}, 0.94, 0.9016},
      // nesterov: buf = 0.6, d = 0.6 + 0.54 = 1.14 -> 0.886;
      // g' = -0.25 + 0.0886 = -0.1614, buf = 0.3786, d = -0.1614 + 0.34074 = 0.17934 -> 0.868066
      {{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true}, 0.886, 0.868066},
      // dampening 0.5 (not applied to the first buffer): buf = 0.54 + 0.5 * (-0.156) = 0.462
      {{.lr = 0.1, .momentum = 0.9, .dampening = 0.5, .weight_decay = 0.1}, 0.94, 0.8938},
  };
  for (const Case& c : cases) {
    Params<double> ps{param<double>("w", {1.0})};
    SGD<double, Cpu> opt(ps, c.o);
    set_grad(ps[0].value, TensorD::from({0.5}));
    opt.step();
    expect_close(ps[0].value.data().to_vector(), {c.p1}, 1e-15);
    set_grad(ps[0].value, TensorD::from({-0.25}));
    opt.step();
    expect_close(ps[0].value.data().to_vector(), {c.p2}, 1e-15);
    EXPECT_EQ(opt.state().tensors.count("momentum_buffer.w"), c.o.momentum != 0 ? 1u : 0u);
  }
}

TEST(Optimizer, SkipsParametersWithoutAGradientAndKeepsTheirStateEmpty) {
  Params<double> ps{param<double>("a", {1.0}), param<double>("b", {2.0})};
  AdamW<double, Cpu> opt(ps, {.lr = 0.1});
  set_grad(ps[0].value, TensorD::from({1.0}));
  opt.step();
  EXPECT_NE(ps[0].value.item(), 1.0);
  EXPECT_EQ(ps[1].value.item(), 2.0);  // no gradient: not even decayed
  const auto st = opt.state();
  EXPECT_EQ(st.tensors.count("exp_avg.b"), 0u);
  EXPECT_EQ(st.counters.count("step.b"), 0u);
  EXPECT_EQ(st.counters.at("step.a"), 1);
}

TEST(Optimizer, ZeroGradSetLrAndFloat) {
  Params<float> ps{param<float>("w", {1.f, 2.f})};
  SGD<float, Cpu> opt(ps, {.lr = 0.5});
  set_grad(ps[0].value, TensorF::from({1.f, -1.f}));
  opt.set_lr(0.25);
  EXPECT_EQ(opt.lr(), 0.25);
  opt.step();
  EXPECT_EQ(ps[0].value.data().to_vector(), (std::vector<float>{0.75f, 2.25f}));
  opt.zero_grad();
  EXPECT_EQ(ps[0].value.grad().to_vector(), (std::vector<float>{0.f, 0.f}));
  opt.step();  // a zero gradient still counts as one (like torch with set_to_none=False)
  EXPECT_EQ(ps[0].value.data().to_vector(), (std::vector<float>{0.75f, 2.25f}));
  EXPECT_EQ(opt.step_count(), 2);
  EXPECT_STREQ(opt.name(), "SGD");
}

ModelConfig tiny_config() {
  ModelConfig c = model_config("pre_ln");
  c.set_policy<compose<NormFormer, ResidScale>>();
  return c;
}

TEST(Optimizer, ZeroGradSetToNoneDropsGradientsAndTrainsBitForBitTheSame) {
  // Two copies of a NormFormer GPT trained three steps, one zero-filling its
  // gradients, one dropping them: backward writes the dropped ones fresh
  // (GEMMs with beta 0, copies) with the same values as adding into zeros.
  GPT<compose<NormFormer, ResidScale>, float, Cpu> filled(tiny_config(), 3),
      dropped(tiny_config(), 3);
  AdamW<float, Cpu> opt_filled(filled, {.lr = 1e-2, .weight_decay = 0.01});
  AdamW<float, Cpu> opt_dropped(dropped, {.lr = 1e-2, .weight_decay = 0.01});
  const int64_t B = 2, T = 5, vocab = tiny_config().vocab_size;
  std::vector<int64_t> ids, next;
  for (int64_t i = 0; i < B * T; ++i) ids.push_back(i * 7 % vocab), next.push_back(i * 3 % vocab);
  const auto tokens = Tensor<int64_t, Cpu>::from_vector({B, T}, ids);
  const auto targets = Tensor<int64_t, Cpu>::from_vector({B, T}, next);
  for (int step = 0; step < 3; ++step) {
    opt_filled.zero_grad();
    opt_dropped.zero_grad(/*set_to_none=*/true);
    for (auto& p : dropped.named_parameters()) EXPECT_FALSE(p.value.has_grad()) << p.name;
    filled.loss(tokens, targets).backward();
    dropped.loss(tokens, targets).backward();
    opt_filled.step();
    opt_dropped.step();
  }
  const auto a = filled.named_parameters(), b = dropped.named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].value.grad().to_vector(), b[i].value.grad().to_vector()) << a[i].name;
    EXPECT_EQ(a[i].value.data().to_vector(), b[i].value.data().to_vector()) << a[i].name;
  }
  dropped.zero_grad(/*set_to_none=*/true);  // the module's form too
  for (auto& p : dropped.named_parameters()) EXPECT_FALSE(p.value.has_grad()) << p.name;
}

TEST(Optimizer, ZeroGradSetToNoneSkipsParametersBackwardDoesNotReach) {
  // After zero_grad(true) a parameter that the next backward does not reach
  // has no gradient and is not stepped (torch: grad None); zero-filled, it is
  // stepped with a zero gradient (decayed).
  for (const bool set_to_none : {false, true}) {
    Params<double> ps{param<double>("a", {1.0}), param<double>("b", {2.0})};
    AdamW<double, Cpu> opt(ps, {.lr = 0.1, .weight_decay = 0.1});
    set_grad(ps[0].value, TensorD::from({1.0}));
    set_grad(ps[1].value, TensorD::from({1.0}));
    opt.step();
    const double b1 = ps[1].value.item();
    opt.zero_grad(set_to_none);
    ps[0].value.backward(TensorD::from({0.5}));  // reaches a only
    opt.step();
    EXPECT_EQ(ps[1].value.has_grad(), !set_to_none);
    if (set_to_none)
      EXPECT_EQ(ps[1].value.item(), b1);
    else
      EXPECT_LT(ps[1].value.item(), b1);  // decay, and the moments from step 1
    EXPECT_EQ(opt.state().counters.at("step.b"), set_to_none ? 1 : 2);
  }
}

// ---- PyTorch fixtures ------------------------------------------------------

const std::string kFixtures = std::string(NORMLAB_TEST_FIXTURES) + "/optim/";

/// The fixture's parameters with the kinds a model would give them; the
/// default decay rule then builds torch's two groups.
Params<double> fixture_params(const io::SafetensorsReader& r) {
  const std::pair<const char*, ParamKind> kinds[] = {
      {"fc1.weight", ParamKind::weight},
      {"embed_tokens.weight", ParamKind::token_embedding},
      {"fc1.bias", ParamKind::bias},
      {"layer_norm.weight", ParamKind::norm_weight}};
  Params<double> ps;
  for (const auto& [name, kind] : kinds)
    ps.push_back({name, VarD(r.read<double, Cpu>(std::string("init.") + name), true), kind});
  return ps;
}

/// Replays the fixture: the gradients of every step, then the parameters
/// after it and the final state against PyTorch's (relative 1e-12).
void replay(const std::string& file, Optimizer<double, Cpu>& opt, Params<double>& ps,
            const io::SafetensorsReader& r) {
  const int steps = std::stoi(r.metadata().at("steps"));
  ASSERT_EQ(steps, 5);
  for (int k = 0; k < steps; ++k) {
    for (auto& p : ps) {
      const std::string g = "grad." + std::to_string(k) + "." + p.name;
      if (r.contains(g))
        set_grad(p.value, r.read<double, Cpu>(g));
      else
        p.value.clear_grad();
    }
    opt.step();
    for (const auto& p : ps) {
      SCOPED_TRACE(file + ": step " + std::to_string(k) + ", " + p.name);
      expect_close(p.value.data().to_vector(),
                   r.read<double, Cpu>("param." + std::to_string(k) + "." + p.name).to_vector(),
                   1e-12);
    }
  }
  const auto expected = read_state<double, Cpu>(r, "state.");
  const auto actual = opt.state();
  EXPECT_EQ(actual.counters, expected.counters) << file;
  ASSERT_EQ(actual.tensors.size(), expected.tensors.size()) << file;
  for (const auto& [key, t] : expected.tensors) {
    SCOPED_TRACE(file + ": state " + key);
    ASSERT_TRUE(actual.tensors.contains(key));
    const auto e = t.to_vector();
    expect_close(actual.tensors.at(key).to_vector(), std::vector<double>(e.begin(), e.end()),
                 1e-12);
  }
}

/// Expects |actual[i] - expected[i]| <= ulps * epsilon * scale[i] for every
/// i, scale[i] being the sum of the magnitudes of the terms that were added.
template <class T>
void expect_ulps_of_scale(const std::vector<T>& actual, const std::vector<T>& expected,
                          const std::vector<double>& scale, int ulps) {
  ASSERT_EQ(actual.size(), expected.size());
  const double eps = std::numeric_limits<T>::epsilon();
  int64_t bad = 0;
  for (size_t i = 0; i < actual.size(); ++i)
    if (std::abs(static_cast<double>(actual[i]) - expected[i]) > ulps * eps * scale[i] && bad++ < 5)
      ADD_FAILURE() << "at " << i << ": " << actual[i] << " vs " << expected[i];
  EXPECT_EQ(bad, 0) << "elements more than " << ulps << " ulps of their terms apart";
}

/// The CPU kernel (vectorized over blocks) against AdamWElementUpdate applied
/// element by element, for Adam's coupled term, AdamW's decoupled decay and
/// both; n spans several blocks and a partial one.
template <class T>
void expect_adamw_kernel_matches_element_update() {
  const int64_t n = 3 * cpu::kOptimBlock + 77;
  Generator gen(9);
  using Tens = Tensor<T, Cpu>;
  const std::vector<T> p0 = Tens::normal({n}, gen).to_vector();
  const std::vector<T> g = Tens::normal({n}, gen).to_vector();
  const std::vector<T> m0 = Tens::normal({n}, gen, T(0), T(0.1)).to_vector();
  std::vector<T> v0 = Tens::normal({n}, gen, T(0), T(0.1)).to_vector();
  for (T& x : v0) x = x * x;  // second moments are >= 0
  for (const auto& [wd, l2] : {std::pair{0.1, 0.0}, std::pair{0.0, 0.01}, std::pair{0.1, 0.01}}) {
    SCOPED_TRACE(::testing::Message() << "weight_decay " << wd << " l2 " << l2);
    AdamWStepArgs a;
    a.lr = 1e-3;
    a.beta1 = 0.9;
    a.beta2 = 0.98;
    a.eps = 1e-8;
    a.weight_decay = wd;
    a.l2 = l2;
    a.bias_correction1 = 1 - std::pow(0.9, 3);
    a.bias_correction2 = 1 - std::pow(0.98, 3);
    std::vector<T> p = p0, m = m0, v = v0, pe = p0, me = m0, ve = v0;
    adamw_step(Cpu{}, p.data(), g.data(), m.data(), v.data(), n, a);
    const AdamWElementUpdate<T> update(a);
    for (int64_t i = 0; i < n; ++i) update(pe.data(), g.data(), me.data(), ve.data(), i);
    // A rounding or two of the terms apart at most: the kernel and the
    // scalar loop may fuse a multiply and an add differently.
    std::vector<double> scale_m(n), scale_v(n), scale_p(n);
    for (int64_t i = 0; i < n; ++i) {
      const double gk = std::abs(g[i] + a.l2 * p0[i]);
      scale_m[i] = a.beta1 * std::abs(m0[i]) + (1 - a.beta1) * gk;
      scale_v[i] = ve[i];  // a sum of non-negative terms
      scale_p[i] = std::abs(p0[i]) + a.lr / a.bias_correction1 * std::abs(me[i]) /
                                         (std::sqrt(ve[i] / a.bias_correction2) + a.eps);
    }
    expect_ulps_of_scale(p, pe, scale_p, 2);
    expect_ulps_of_scale(m, me, scale_m, 2);
    expect_ulps_of_scale(v, ve, scale_v, 2);
  }
}

TEST(AdamWKernel, CpuStepIsTheElementUpdateOnEveryElement) {
  expect_adamw_kernel_matches_element_update<float>();
  expect_adamw_kernel_matches_element_update<double>();
}

TEST(TorchFixture, AdamWMatchesTorchOptimAdamW) {
  const auto r = io::SafetensorsReader::open(kFixtures + "adamw.safetensors");
  EXPECT_EQ(r.metadata().at("optimizer"), "torch.optim.AdamW");
  EXPECT_EQ(r.metadata().at("no_decay"), "fc1.bias,layer_norm.weight");
  Params<double> ps = fixture_params(r);
  AdamW<double, Cpu> opt(
      ps, {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-8, .weight_decay = 0.01});
  replay("adamw", opt, ps, r);
  // layer_norm.weight had no gradient at steps 0 and 2: its own step count is 3.
  EXPECT_EQ(opt.state().counters.at("step.layer_norm.weight"), 3);
}

TEST(TorchFixture, AdamMatchesTorchOptimAdam) {
  const auto r = io::SafetensorsReader::open(kFixtures + "adam.safetensors");
  EXPECT_EQ(r.metadata().at("optimizer"), "torch.optim.Adam");
  Params<double> ps = fixture_params(r);
  Adam<double, Cpu> opt(
      ps, {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-8, .weight_decay = 0.01});
  replay("adam", opt, ps, r);
}

TEST(TorchFixture, NesterovSGDMatchesTorchOptimSGD) {
  const auto r = io::SafetensorsReader::open(kFixtures + "sgd.safetensors");
  EXPECT_EQ(r.metadata().at("optimizer"), "torch.optim.SGD");
  Params<double> ps = fixture_params(r);
  SGD<double, Cpu> opt(
      ps, {.lr = 0.1, .momentum = 0.9, .dampening = 0, .weight_decay = 0.01, .nesterov = true});
  replay("sgd", opt, ps, r);
}

// ---- weight decay groups ---------------------------------------------------

TEST(ParamGroups, NormFormerDecaysMatricesAndEmbeddingsOnly) {
  GPT<compose<NormFormer, ResidScale>, float, Cpu> model(tiny_config(), 1);
  AdamW<float, Cpu> opt(model, {.lr = 1e-3, .weight_decay = 0.01});
  ASSERT_EQ(opt.param_groups().size(), 2u);
  EXPECT_EQ(opt.param_groups()[0].weight_decay, 0.01);
  EXPECT_EQ(opt.param_groups()[1].weight_decay, 0.0);
  std::set<std::string> decayed, kept;
  for (const auto& p : opt.param_groups()[0].params) decayed.insert(p.name);
  for (const auto& p : opt.param_groups()[1].params) kept.insert(p.name);
  for (const char* name :
       {"embed_tokens.weight", "layers.0.self_attn.q_proj.weight",
        "layers.0.self_attn.k_proj.weight", "layers.0.self_attn.v_proj.weight",
        "layers.1.self_attn.out_proj.weight", "layers.0.fc1.weight", "layers.1.fc2.weight"})
    EXPECT_TRUE(decayed.contains(name)) << name;
  for (const char* name :
       {"embed_positions.weight", "layers.0.c_attn", "layers.1.c_attn", "layers.0.w_resid",
        "layers.1.w_resid", "layers.0.attn_ln.weight", "layers.0.attn_ln.bias",
        "layers.0.ffn_layernorm.weight", "layers.0.ffn_layernorm.bias",
        "layers.0.self_attn_layer_norm.weight", "layers.1.final_layer_norm.bias",
        "layers.0.self_attn.q_proj.bias", "layers.1.fc1.bias", "layers.1.fc2.bias",
        "layer_norm.weight", "layer_norm.bias"})
    EXPECT_TRUE(kept.contains(name)) << name;
  EXPECT_EQ(decayed.size() + kept.size(), model.named_parameters().size());
  // 1 embedding + 2 layers x (4 projections + fc1 + fc2).
  EXPECT_EQ(decayed.size(), 13u);

  // With zero gradients Adam's update is 0: decayed tensors shrink by exactly
  // (1 - lr * wd), the others (c_attn, w_resid, norms, biases) stay put.
  auto before = model.named_parameters();
  std::vector<std::vector<float>> values;
  for (auto& p : before) {
    values.push_back(p.value.data().to_vector());
    set_grad(p.value, TensorF::zeros(p.value.shape()));
  }
  opt.step();
  const float shrink = static_cast<float>(1 - 1e-3 * 0.01);
  for (size_t i = 0; i < before.size(); ++i) {
    std::vector<float> expected = values[i];
    if (decayed.contains(before[i].name))
      for (float& x : expected) x *= shrink;
    EXPECT_EQ(before[i].value.data().to_vector(), expected) << before[i].name;
  }
}

TEST(ParamGroups, KindsAndPredicatesAreConfigurable) {
  GPT<compose<NormFormer, ResidScale>, double, Cpu> model(tiny_config(), 1);
  const auto only_weights =
      split_weight_decay(model.named_parameters(), 0.1, decay_kinds({ParamKind::weight}));
  for (const auto& p : only_weights[0].params) EXPECT_EQ(p.kind, ParamKind::weight) << p.name;
  EXPECT_EQ(only_weights[0].params.size(), 12u);
  const auto scales_too = split_weight_decay(
      model.named_parameters(), 0.1, [](const std::string& name, ParamKind kind) {
        return decays_by_default(name, kind) || name.ends_with("c_attn");
      });
  EXPECT_EQ(scales_too[0].params.size(), 15u);
  SGD<double, Cpu> opt(scales_too, {.lr = 0.1});
  EXPECT_EQ(opt.param_groups()[0].weight_decay, 0.1);
  EXPECT_EQ(opt.named_parameters().size(), model.named_parameters().size());
}

// ---- clipping ---------------------------------------------------------------

TEST(ClipGradNorm, ReturnsTheNormAndScalesLikeTorch) {
  Params<double> ps{param<double>("a", {0, 0}), param<double>("b", {0}),
                    param<double>("no_grad", {7})};
  set_grad(ps[0].value, TensorD::from({3.0, 4.0}));
  set_grad(ps[1].value, TensorD::from({12.0}));
  const double norm = clip_grad_norm(ps, 6.5);  // sqrt(9 + 16 + 144) = 13
  EXPECT_DOUBLE_EQ(norm, 13.0);
  const double coef = 6.5 / (13.0 + 1e-6);
  expect_close(ps[0].value.grad().to_vector(), {3 * coef, 4 * coef}, 1e-15);
  expect_close(ps[1].value.grad().to_vector(), {12 * coef}, 1e-15);
  EXPECT_FALSE(ps[2].value.has_grad());
  EXPECT_NEAR(grad_norm(ps), 6.5, 1e-6);
}

TEST(ClipGradNorm, BelowMaxNormNothingChanges) {
  Params<float> ps{param<float>("a", {0, 0})};
  set_grad(ps[0].value, TensorF::from({0.3f, 0.4f}));
  EXPECT_NEAR(clip_grad_norm(ps, 1.0), 0.5, 1e-7);
  EXPECT_EQ(ps[0].value.grad().to_vector(), (std::vector<float>{0.3f, 0.4f}));
}

TEST(ClipGradNorm, NonFiniteNormIsReturnedAndGradientsLeftAlone) {
  Params<double> ps{param<double>("a", {0, 0})};
  set_grad(ps[0].value, TensorD::from({std::numeric_limits<double>::infinity(), 1.0}));
  EXPECT_TRUE(std::isinf(clip_grad_norm(ps, 1.0)));
  EXPECT_EQ(ps[0].value.grad().to_vector()[1], 1.0);
  set_grad(ps[0].value, TensorD::from({std::nan(""), 1.0}));
  EXPECT_TRUE(std::isnan(clip_grad_norm(ps, 1.0)));
  EXPECT_EQ(ps[0].value.grad().to_vector()[1], 1.0);
}

TEST(ClipGradNorm, SumOfSquaresIsIndependentOfTheThreadCount) {
  // 100003 elements: 25 chunks of 4096, the last partial; parallel above the grain.
  Generator gen(5);
  const TensorF x = TensorF::normal({100003}, gen);
  const auto v = x.to_vector();
  double expected = 0;  // the documented order: chunk sums, added in chunk order
  for (size_t c = 0; c < v.size(); c += 4096) {
    double acc = 0;
    for (size_t k = c; k < std::min(v.size(), c + 4096); ++k)
      acc += static_cast<double>(v[k]) * static_cast<double>(v[k]);
    expected += acc;
  }
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  for (int t : {1, 2, 3}) {
    omp_set_num_threads(t);
    EXPECT_EQ(sum_of_squares(Cpu{}, x.data(), x.numel()), expected) << t << " threads";
  }
  omp_set_num_threads(threads);
#else
  EXPECT_EQ(sum_of_squares(Cpu{}, x.data(), x.numel()), expected);
#endif
  EXPECT_EQ(sum_of_squares(Cpu{}, x.data(), 0), 0.0);
}

// ---- state save / load -----------------------------------------------------

/// Two small parameters and a schedule of gradients; "b" has none at steps 0
/// and 3, so its state starts late and a saved state can lack it.
struct Toy {
  Params<double> ps{param<double>("a", {0.5, -1.0, 2.0}),
                    param<double>("b", {1.0, 0.25}, ParamKind::bias)};

  void grads(int k) {
    Generator gen(100 + static_cast<uint64_t>(k));
    set_grad(ps[0].value, TensorD::normal({3}, gen));
    if (k == 0 || k == 3)
      ps[1].value.clear_grad();
    else
      set_grad(ps[1].value, TensorD::normal({2}, gen));
  }
  Toy clone_values() const {
    Toy t;
    for (size_t i = 0; i < ps.size(); ++i) {
      TensorD v = t.ps[i].value.data();
      v.copy_from(ps[i].value.data());
    }
    return t;
  }
  std::vector<double> values() const {
    std::vector<double> out;
    for (const auto& p : ps)
      for (double x : p.value.data().to_vector()) out.push_back(x);
    return out;
  }
};

/// Runs 2 steps on `make`'s optimizer, saves its state (safetensors bytes),
/// loads it into a fresh optimizer over copies of the parameters, and runs 4
/// more steps on both: they must agree bit for bit. The state is also checked
/// to matter: a fresh optimizer without it ends elsewhere.
template <class Make>
void expect_exact_resume(Make make) {
  Toy original;
  auto a = make(original.ps);
  for (int k = 0; k < 2; ++k) {
    original.grads(k);
    a->step();
  }
  io::SafetensorsWriter w;
  w.add("model.a", original.ps[0].value.data());  // the state shares a file with weights
  write_state(w, a->state(), "optim.");
  const auto r = io::SafetensorsReader::from_bytes(w.to_bytes(), "checkpoint");
  EXPECT_TRUE(r.contains("optim.step"));
  EXPECT_EQ(r.info("optim.step").dtype, io::DType::I64);

  Toy resumed = original.clone_values(), cold = original.clone_values();
  auto b = make(resumed.ps);
  auto c = make(cold.ps);
  b->load_state(read_state<double, Cpu>(r, "optim."));
  EXPECT_EQ(b->step_count(), 2);
  for (int k = 2; k < 6; ++k) {
    original.grads(k);
    resumed.grads(k);
    cold.grads(k);
    a->step();
    b->step();
    c->step();
  }
  EXPECT_EQ(original.values(), resumed.values());
  EXPECT_NE(original.values(), cold.values());
  EXPECT_EQ(a->step_count(), 6);
  EXPECT_EQ(b->step_count(), 6);
}

TEST(OptimizerState, AdamWResumesBitForBitThroughSafetensors) {
  expect_exact_resume([](Params<double>& ps) {
    return std::make_unique<AdamW<double, Cpu>>(ps, AdamWOptions{.lr = 0.05, .beta2 = 0.98});
  });
}

TEST(OptimizerState, AdamResumesBitForBitThroughSafetensors) {
  expect_exact_resume([](Params<double>& ps) {
    return std::make_unique<Adam<double, Cpu>>(ps, AdamOptions{.lr = 0.05, .weight_decay = 0.1});
  });
}

TEST(OptimizerState, NesterovSGDResumesBitForBitThroughSafetensors) {
  expect_exact_resume([](Params<double>& ps) {
    return std::make_unique<SGD<double, Cpu>>(
        ps, SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
  });
}

TEST(OptimizerState, FloatStateRoundTripsExactly) {
  Params<float> ps{param<float>("w", {0.1f, 0.2f, 0.3f})};
  AdamW<float, Cpu> opt(ps, {.lr = 0.01f});
  set_grad(ps[0].value, TensorF::from({1e-3f, -2.f, 3e4f}));
  opt.step();
  io::SafetensorsWriter w;
  write_state(w, opt.state());
  const auto r = io::SafetensorsReader::from_bytes(w.to_bytes(), "state");
  EXPECT_EQ(r.info("exp_avg_sq.w").dtype, io::DType::F32);
  const auto back = read_state<float, Cpu>(r);
  EXPECT_EQ(back.tensors.at("exp_avg_sq.w").to_vector(),
            opt.state().tensors.at("exp_avg_sq.w").to_vector());
  EXPECT_EQ(back.counters, opt.state().counters);
}

// ---- errors ----------------------------------------------------------------

TEST(OptimizerErrors, ConstructionNamesTheFieldAndValue) {
  Params<double> ps{param<double>("w", {1.0})};
  expect_error([&] { (void)AdamW<double, Cpu>(ps, {.lr = -1}); },
               {"AdamW", "lr must be finite and >= 0", "-1"});
  expect_error([&] { (void)AdamW<double, Cpu>(ps, {.beta2 = 1.0}); },
               {"AdamW", "beta2 must be in [0, 1)", "got 1"});
  expect_error([&] { (void)Adam<double, Cpu>(ps, {.eps = -1e-8}); }, {"Adam", "eps", "-1e-08"});
  expect_error([&] { (void)AdamW<double, Cpu>(ps, {.weight_decay = -0.5}); },
               {"AdamW", "weight_decay must be >= 0", "-0.5"});
  expect_error([&] { (void)SGD<double, Cpu>(ps, {.lr = 0.1, .nesterov = true}); },
               {"SGD", "nesterov needs momentum > 0 and dampening 0", "momentum 0"});
  expect_error([&] { (void)SGD<double, Cpu>(ps, {.momentum = -0.9}); },
               {"SGD", "momentum", "-0.9"});
  Params<double> twice{ps[0], {"alias", ps[0].value, ParamKind::weight}};
  expect_error([&] { (void)SGD<double, Cpu>(twice, {}); },
               {"parameters 'w' and 'alias' are the same variable"});
  Params<double> same_name{ps[0], param<double>("w", {2.0})};
  expect_error([&] { (void)SGD<double, Cpu>(same_name, {}); },
               {"parameter name 'w' appears twice"});
  SGD<double, Cpu> opt(ps, {});
  expect_error([&] { opt.set_lr(std::nan("")); }, {"SGD", "lr must be finite", "nan"});
  expect_error([&] { clip_grad_norm(ps, 0.0); }, {"clip_grad_norm", "max_norm", "got 0"});
  expect_error([&] { split_weight_decay(ps, -1.0); },
               {"split_weight_decay", "weight_decay must be >= 0, got -1"});
}

TEST(OptimizerErrors, TheStepCountStopsAtItsBoundInsteadOfOverflowing) {
  Params<double> ps{param<double>("w", {1.0, 2.0})};
  AdamW<double, Cpu> opt(ps, {.lr = 0.1});
  set_grad(ps[0].value, TensorD::from({1.0, 1.0}));
  opt.step();
  auto s = opt.state();
  s.counters["step"] = Optimizer<double, Cpu>::kMaxSteps - 1;
  opt.load_state(s);
  opt.step();  // the last step that can be counted
  EXPECT_EQ(opt.step_count(), (Optimizer<double, Cpu>::kMaxSteps));
  const std::vector<double> before = ps[0].value.data().to_vector();
  expect_error([&] { opt.step(); }, {"AdamW::step: the step count has reached 2^62"});
  EXPECT_EQ(ps[0].value.data().to_vector(), before) << "a refused step changes nothing";
}

TEST(OptimizerErrors, LoadStateChecksEveryKeyAndChangesNothingOnError) {
  Params<double> ps{param<double>("w", {1.0, 2.0}), param<double>("b", {0.0}, ParamKind::bias)};
  AdamW<double, Cpu> opt(ps, {.lr = 0.1});
  set_grad(ps[0].value, TensorD::from({1.0, 1.0}));
  opt.step();
  const auto good = opt.state();

  auto s = good;
  s.counters.erase("step");
  expect_error([&] { opt.load_state(s); }, {"AdamW::load_state", "no counter 'step'"});
  s = good;
  s.tensors["exp_avg.nope"] = TensorD::zeros({1});
  expect_error([&] { opt.load_state(s); },
               {"state tensor 'exp_avg.nope' names no parameter of this optimizer"});
  s = good;
  s.tensors["momentum_buffer.w"] = TensorD::zeros({2});
  expect_error([&] { opt.load_state(s); },
               {"unknown state tensor 'momentum_buffer.w'", "AdamW keeps 'exp_avg.<param>'"});
  s = good;
  s.tensors["exp_avg.w"] = TensorD::zeros({3});
  expect_error([&] { opt.load_state(s); },
               {"state tensor 'exp_avg.w' has shape (3,)", "parameter 'w' has shape (2,)"});
  s = good;
  s.tensors.erase("exp_avg_sq.w");
  expect_error(
      [&] { opt.load_state(s); },
      {"parameter 'w' needs all of exp_avg, exp_avg_sq and step or none", "found exp_avg step"});
  s = good;
  s.counters["step.w"] = 0;
  expect_error([&] { opt.load_state(s); }, {"counter 'step.w' must be in [1, step = 1]", "got 0"});
  // Counters that would overflow at the next step (a hostile checkpoint):
  // the step count is bounded, and no parameter counts more steps than it.
  s = good;
  s.counters["step"] = std::numeric_limits<int64_t>::max();
  expect_error([&] { opt.load_state(s); },
               {"counter 'step' must be in [0, 2^62), got 9223372036854775807"});
  s = good;
  s.counters["step.w"] = std::numeric_limits<int64_t>::max();
  expect_error([&] { opt.load_state(s); },
               {"counter 'step.w' must be in [1, step = 1]", "got 9223372036854775807"});

  SGD<double, Cpu> plain(ps, {.lr = 0.1});
  expect_error([&] { plain.load_state(good); },
               {"SGD::load_state", "unknown state tensor 'exp_avg.w'", "no per-parameter state"});

  // Nothing was applied by the failed loads.
  EXPECT_EQ(opt.state().tensors.at("exp_avg.w").to_vector(),
            good.tensors.at("exp_avg.w").to_vector());
  EXPECT_EQ(opt.step_count(), 1);

  io::SafetensorsWriter w;
  w.add("step", TensorI::from({1, 2}));
  const auto r = io::SafetensorsReader::from_bytes(w.to_bytes(), "bad.safetensors");
  expect_error([&] { read_state<double, Cpu>(r); },
               {"bad.safetensors", "optimizer counter 'step' must hold one integer", "(2,)"});
}

}  // namespace
}  // namespace normlab::testing
