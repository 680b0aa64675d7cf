// Autograd semantics: accumulation, reuse, no_grad, detach, graph release.
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
