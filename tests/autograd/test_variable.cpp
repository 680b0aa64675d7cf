// Autograd semantics: accumulation, reuse, no_grad, detach, graph release.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "testing.hpp"

namespace normlab::testing {
namespace {

TEST(Autograd, ChainRuleThroughSeveralOps) {
  // y = (a * b + a) / b at a = 2, b = 4: dy/da = (b + 1) / b, dy/db = -a / b^2.
  VarD a(TensorD::scalar(2), true), b(TensorD::scalar(4), true);
  VarD y = (a * b + a) / b;
  EXPECT_DOUBLE_EQ(y.item(), 2.5);
  y.backward();
  EXPECT_DOUBLE_EQ(a.grad().item(), 1.25);
  EXPECT_DOUBLE_EQ(b.grad().item(), -0.125);
}

TEST(Autograd, VariableUsedTwiceReceivesTheSum) {
  VarD x(TensorD::from({1, 2, 3}), true);
  VarD y = x * x + x;  // dy/dx = 2x + 1, upstream ones
  y.backward(TensorD::ones({3}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{3, 5, 7}));
}

TEST(Autograd, GradientsAccumulateAcrossCallsUntilZeroGrad) {
  VarD x(TensorD::from({1, 2}), true);
  (x * 3.0).backward(TensorD::ones({2}));
  (x * 3.0).backward(TensorD::ones({2}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{6, 6}));
  x.zero_grad();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 0}));
  (x * 2.0).backward(TensorD::from({1, -1}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, -2}));
}

TEST(Autograd, DiamondGraphVisitsSharedNodeOnce) {
  // h = exp(x) feeds two branches; dy/dx = exp(x) * (2 + 3).
  VarD x(TensorD::scalar(0.5), true);
  VarD h = exp(x);
  VarD y = h * 2.0 + h * 3.0;
  y.backward();
  EXPECT_NEAR(x.grad().item(), 5 * std::exp(0.5), 1e-12);
}

TEST(Autograd, NoGradGuardRecordsNothingAndNests) {
  VarD x(TensorD::from({1, 2}), true);
  {
    NoGradGuard g;
    EXPECT_FALSE(grad_enabled());
    VarD y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
    { NoGradGuard inner; }
    EXPECT_FALSE(grad_enabled());
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_TRUE((x * 2.0).requires_grad());
}

TEST(Autograd, DetachCutsTheGraphButSharesData) {
  VarD x(TensorD::from({1, 2}), true);
  VarD d = (x * 2.0).detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  VarD y = x * d;  // d acts as a constant: dy/dx = d
  y.backward(TensorD::ones({2}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 4}));
  VarD xd = x.detach();
  EXPECT_TRUE(xd.data().shares_storage_with(x.data()));
}

TEST(Autograd, InputsThatNeedNoGradGetNone) {
  VarD x(TensorD::from({1, 2}), true), c(TensorD::from({3, 4}), false);
  (x * c).backward(TensorD::ones({2}));
  EXPECT_TRUE(x.has_grad());
  EXPECT_FALSE(c.has_grad());
  VarD k(TensorD::from({1.0}));
  expect_error([&] { (k * 2.0).backward(); }, {"backward", "does not require grad"});
}

TEST(Autograd, GraphIsReleasedAfterBackward) {
  VarD x(TensorD::from({1, 2}), true);
  VarD h = x * 2.0;
  VarD y = h * h;
  y.backward(TensorD::ones({2}));
  expect_error([&] { y.backward(TensorD::ones({2})); }, {"backward", "already released"});
  // A second loss built on the freed intermediate h cannot backpropagate through it.
  VarD z = h * 3.0;
  expect_error([&] { z.backward(TensorD::ones({2})); }, {"backward", "already released"});
  // A fresh forward pass works, and after zero_grad gives the same gradient again.
  x.zero_grad();
  VarD h2 = x * 2.0;
  (h2 * h2).backward(TensorD::ones({2}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{8, 16}));  // d(4x^2)/dx = 8x
}

TEST(Autograd, BackwardChecksShapes) {
  VarD x(TensorD::from({1, 2}), true);
  VarD y = x * 2.0;
  expect_error([&] { y.backward(); }, {"backward", "scalar", "(2,)"});
  expect_error([&] { y.backward(TensorD::ones({3})); }, {"backward", "(3,)", "(2,)"});
}

TEST(Autograd, BackwardOnALeafAddsTheUpstreamGradient) {
  VarD x(TensorD::from({1, 2}), true);
  x.backward(TensorD::from({0.5, 0.25}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0.5, 0.25}));
}

TEST(Autograd, RequiresGradOnlyChangesOnLeaves) {
  VarD x(TensorD::from({1, 2}));
  x.set_requires_grad(true);
  VarD y = x * 2.0;
  expect_error([&] { y.set_requires_grad(false); }, {"set_requires_grad", "leaf", "mul_scalar"});
  expect_error(
      [] {
        VarD u;
        (void)u.shape();
      },
      {"undefined"});
}

TEST(Autograd, DeepChainDoesNotOverflowTheStack) {
  VarD x(TensorD::scalar(1.0), true);
  VarD y = x;
  for (int i = 0; i < 20000; ++i) y = y * 1.0;
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 1.0);
  // Dropping an unreleased deep graph tears it down without recursion.
  VarD z = x;
  for (int i = 0; i < 200000; ++i) z = z + 1.0;
  z = VarD();
  SUCCEED();
}

TEST(Autograd, ViewGradientIsHandedOverAndStillAccumulates) {
  // x -> reshape -> * 3: the reshape node passes its gradient buffer to x
  // (no zero fill, no copy) the first time, and adds into it afterwards.
  VarD x(TensorD::from({{1, 2, 3}, {4, 5, 6}}), true);  // (2, 3)
  VarD w(TensorD::from({1, 2, 3, 4, 5, 6}), true);      // (6,)
  auto loss = [&] { return sum(reshape(x, {6}) * w * 3.0); };
  loss().backward();
  EXPECT_EQ(x.grad().shape(), (Shape{2, 3}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{3, 6, 9, 12, 15, 18}));
  loss().backward();  // x.grad exists now: the ordinary path adds into it
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{6, 12, 18, 24, 30, 36}));
  // Used twice, once through a view: the sum of both paths.
  x.zero_grad();
  sum(reshape(x, {6}) + reshape(reshape(x, {3, 2}), {6}) * 0.0 + reshape(x, {6})).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 2, 2, 2, 2, 2}));
  VarD y(TensorD::from({1, 2}), true);
  sum(reshape(y, {2, 1}) * 2.0 + reshape(reshape(y, {1, 2}), {2, 1})).backward();
  EXPECT_EQ(y.grad().to_vector(), (std::vector<double>{3, 3}));
}

/// y = s x as a node that declares writes_fresh_gradients; `seen` records
/// GradSlots::fresh(0) at each call of its backward.
VarD scaled_writing_fresh(const VarD& x, double s, std::vector<bool>& seen) {
  std::vector<double> v = x.data().to_vector();
  for (double& e : v) e *= s;
  VarD y = make_result<double, Cpu>("scaled", TensorD::from_vector(x.shape(), v), {&x},
                                    [&seen, s](const TensorD& dy, const GradSlots<double, Cpu>& d) {
                                      seen.push_back(d.fresh(0));
                                      const std::vector<double> g = dy.to_vector();
                                      std::vector<double> total =
                                          d.fresh(0) ? std::vector<double>(g.size(), 0.0)
                                                     : d[0]->to_vector();
                                      for (size_t i = 0; i < g.size(); ++i) total[i] += s * g[i];
                                      d[0]->copy_from(TensorD::from_vector(d[0]->shape(), total));
                                    });
  set_writes_fresh_gradients(y);
  return y;
}

TEST(Autograd, FreshGradientIsWrittenByTheFirstNodeAndAddedToByTheRest) {
  std::vector<bool> seen;
  VarD x(TensorD::from({1, 2}), true);
  VarD h = x * 1.0;  // interior, reached by two nodes that write fresh gradients
  sum(scaled_writing_fresh(h, 2.0, seen) + scaled_writing_fresh(h, 3.0, seen)).backward();
  EXPECT_EQ(seen, (std::vector<bool>{true, false}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{5, 5}));

  // A leaf: fresh the first time only; afterwards its gradient accumulates.
  seen.clear();
  VarD w(TensorD::from({1, 2}), true);
  sum(scaled_writing_fresh(w, 2.0, seen) + scaled_writing_fresh(w, 3.0, seen)).backward();
  sum(scaled_writing_fresh(w, 2.0, seen)).backward();
  EXPECT_EQ(seen, (std::vector<bool>{true, false, false}));
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{7, 7}));
}

TEST(Autograd, InputPassedTwiceToAFreshWritingNodeGetsTheSumOfBoth) {
  // L = sum(A A): dL/dA[k][l] = (row sum l of A) + (column sum k of A). matmul
  // writes fresh gradients, but both of its slots are A's one buffer.
  VarD a(TensorD::from({{1, 2}, {3, 4}}), true);
  sum(matmul(a, a)).backward();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{7, 11, 9, 13}));
}

// ---- gradient-ready hooks ----------------------------------------------------

/// Records, for each hooked leaf, the gradient it held when its hook fired,
/// and the order of the hooks.
struct ReadyLog {
  std::vector<std::string> order;
  std::map<std::string, std::vector<double>> grads;
  void watch(VarD& v, const std::string& name) {
    v.set_gradient_ready_hook([this, name](const TensorD& g) {
      order.push_back(name);
      grads[name] = g.defined() ? g.to_vector() : std::vector<double>{};
    });
  }
};

TEST(GradientReadyHook, FiresOnceWithTheCompleteGradientAfterItsLastReader) {
  // A chain w1 -> h1 -> h2 -> y with w2 entering at h2 and w1 read again at the end:
  //   h1 = x * w1, h2 = tanh(h1) * w2, y = sum(h2 + w1 * 3)
  // w2's gradient is final after the node h2 = ... * w2; w1's only after x * w1, the last one
  // to run in reverse order.
  VarD x(TensorD::from({0.5, -1.0}));
  VarD w1(TensorD::from({1.5, 2.0}), true), w2(TensorD::from({-0.5, 0.25}), true);
  ReadyLog log;
  log.watch(w1, "w1");
  log.watch(w2, "w2");
  const VarD y = sum(tanh(x * w1) * w2 + w1 * 3.0);
  // w2 fires while w1's gradient is still partial: at that moment w1 holds only the 3s (or
  // nothing yet), which the w2 hook observes.
  std::vector<double> w1_when_w2_ready;
  w2.set_gradient_ready_hook([&](const TensorD& g) {
    log.order.push_back("w2");
    log.grads["w2"] = g.to_vector();
    w1_when_w2_ready = w1.has_grad() ? w1.grad().to_vector() : std::vector<double>{};
  });
  y.backward();
  EXPECT_EQ(log.order, (std::vector<std::string>{"w2", "w1"}));
  EXPECT_EQ(log.grads["w1"], w1.grad().to_vector());
  EXPECT_EQ(log.grads["w2"], w2.grad().to_vector());
  EXPECT_NE(w1_when_w2_ready, w1.grad().to_vector()) << "w1 was not final when w2 was";
}

TEST(GradientReadyHook, ALeafReadTwiceByOneNodeFiresOnceAndAccumulatesAcrossPasses) {
  VarD a(TensorD::from({{1, 2}, {3, 4}}), true);
  ReadyLog log;
  log.watch(a, "a");
  sum(matmul(a, a)).backward();  // one node, both slots a
  EXPECT_EQ(log.order, std::vector<std::string>{"a"});
  EXPECT_EQ(log.grads["a"], (std::vector<double>{7, 11, 9, 13}));
  sum(matmul(a, a)).backward();  // a second pass: the accumulated gradient
  EXPECT_EQ(log.order, (std::vector<std::string>{"a", "a"}));
  EXPECT_EQ(log.grads["a"], (std::vector<double>{14, 22, 18, 26}));
  // Through a view that hands its buffer over, and on a leaf as the output itself.
  VarD v(TensorD::from({1, 2, 3}), true);
  log.watch(v, "v");
  sum(reshape(v, {3, 1}) * 2.0).backward();
  EXPECT_EQ(log.grads["v"], (std::vector<double>{2, 2, 2}));
  v.backward(TensorD::from({1, 1, 1}));
  EXPECT_EQ(log.grads["v"], (std::vector<double>{3, 3, 3}));
  EXPECT_EQ(log.order.size(), 4u);
  // Removed: no more calls.
  v.set_gradient_ready_hook({});
  sum(v * 1.0).backward();
  EXPECT_EQ(log.order.size(), 4u);
}

TEST(GradientReadyHook, OnlyLeavesThatRequireGrad) {
  VarD x(TensorD::from({1.0}), true);
  VarD c(TensorD::from({1.0}));
  const VarD y = x * 2.0;
  expect_error([&] { (void)c.set_gradient_ready_hook([](const TensorD&) {}); },
               {"set_gradient_ready_hook", "does not require grad"});
  VarD interior = y;
  expect_error([&] { (void)interior.set_gradient_ready_hook([](const TensorD&) {}); },
               {"set_gradient_ready_hook", "was produced by an op"});
}

TEST(GradientReadyHook, AGptsParametersBecomeReadyLastLayerFirst) {
  // What data-parallel training needs: every parameter fires exactly once per backward, with
  // its final gradient, the last layer's before the first layer's.
  const ModelConfig cfg = model_config("normformer");
  GPT<NormFormer, double, Cpu> model(cfg, 3);
  std::vector<std::string> order;
  std::map<std::string, std::vector<double>> at_ready;
  for (auto& p : model.named_parameters()) {
    VarD v = p.value;
    const std::string name = p.name;
    v.set_gradient_ready_hook([&order, &at_ready, name](const TensorD& g) {
      order.push_back(name);
      at_ready[name] = g.to_vector();
    });
  }
  const Tensor<int64_t, Cpu> tokens = Tensor<int64_t, Cpu>::from_vector({1, 4}, {1, 2, 3, 4});
  model.loss(tokens, tokens).backward();
  const auto params = model.named_parameters();
  ASSERT_EQ(order.size(), params.size());
  std::set<std::string> unique(order.begin(), order.end());
  EXPECT_EQ(unique.size(), params.size());
  for (const auto& p : params) EXPECT_EQ(at_ready[p.name], p.value.grad().to_vector()) << p.name;
  const auto position = [&](const std::string& name) {
    return std::find(order.begin(), order.end(), name) - order.begin();
  };
  EXPECT_LT(position("layers.1.fc2.weight"), position("layers.0.fc2.weight"));
  EXPECT_LT(position("layers.0.fc1.weight"), position("layers.0.self_attn.q_proj.weight"));
  // The tied embedding is read first (the lookup) and last (the output projection) in the
  // forward pass: its gradient is final only at the very end.
  EXPECT_EQ(order.back(), "embed_tokens.weight");
}

TEST(Gradcheck, DetectsAWrongBackward) {
  // An op whose backward is deliberately off by 10%: gradcheck must fail.
  auto wrong = [](const std::vector<VarD>& in) {
    const TensorD x = in[0].data();
    TensorD y = x.clone();
    return make_result<double, Cpu>("wrong", y, {&in[0]},
                                    [](const TensorD& dy, const GradSlots<double, Cpu>& d) {
                                      accumulate(Cpu{}, d[0]->data(), dy.data(), dy.numel(), 1.1);
                                    });
  };
  const GradcheckResult r = gradcheck<Cpu>(wrong, {random_var({3, 2}, 1)});
  EXPECT_FALSE(r.ok);
  EXPECT_NEAR(r.max_error, 0.1 / 1.1, 1e-6);
  EXPECT_NE(r.report().find("FAILED"), std::string::npos);
}

}  // namespace
}  // namespace normlab::testing
