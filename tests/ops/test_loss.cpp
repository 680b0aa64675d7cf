// cross_entropy: values by hand, ignore_index, gradients, float vs double, large logits, errors.
#include <cmath>
#include <limits>

#include "testing.hpp"

namespace normlab::testing {
namespace {

// Row losses of logits {{1, 2, 3}, {0.5, -1, 2}} with targets {2, 1}, by log-sum-exp:
// log(e^1 + e^2 + e^3) - 3 and log(e^0.5 + e^-1 + e^2) + 1.
constexpr double kLoss0 = 0.4076059644443806, kLoss1 = 3.241311296657157;
// Their softmax rows.
const std::vector<double> kSoftmax0{0.09003057317038043, 0.24472847105479759, 0.6652409557748217};
const std::vector<double> kSoftmax1{0.1752903921400367, 0.03911257327068745, 0.7855970345892758};

TEST(CrossEntropy, ForwardMatchesHandComputedLogSumExp) {
  VarD logits(TensorD::from({{1, 2, 3}, {0.5, -1, 2}}));  // (2, 3)
  const VarD loss = cross_entropy(logits, TensorI::from({2, 1}));
  EXPECT_EQ(loss.shape(), Shape{});
  EXPECT_NEAR(loss.item(), (kLoss0 + kLoss1) / 2, 1e-15);
  // Written out in full, too: the hand formula for the first row alone.
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(cross_entropy(VarD(TensorD::from({1, 2, 3})), TensorI::scalar(2)).item(), lse - 3,
              1e-15);
}

TEST(CrossEntropy, BackwardIsSoftmaxMinusOneHotOverCount) {
  VarD logits(TensorD::from({{1, 2, 3}, {0.5, -1, 2}}), true);
  cross_entropy(logits, TensorI::from({2, 1})).backward();
  expect_close(logits.grad().to_vector(),
               {kSoftmax0[0] / 2, kSoftmax0[1] / 2, (kSoftmax0[2] - 1) / 2, kSoftmax1[0] / 2,
                (kSoftmax1[1] - 1) / 2, kSoftmax1[2] / 2},
               1e-15);
}

TEST(CrossEntropy, IgnoredRowsAreExcludedFromTheMeanAndGetNoGradient) {
  // Rows 0 and 2 are the hand-computed rows; row 1 is ignored (default -100).
  VarD logits(TensorD::from({{1, 2, 3}, {7, -3, 5}, {0.5, -1, 2}}), true);
  const VarD loss = cross_entropy(logits, TensorI::from({2, -100, 1}));
  EXPECT_NEAR(loss.item(), (kLoss0 + kLoss1) / 2, 1e-15);
  loss.backward();
  const auto g = logits.grad().to_vector();
  EXPECT_EQ(g[3], 0.0);
  EXPECT_EQ(g[4], 0.0);
  EXPECT_EQ(g[5], 0.0);
  EXPECT_NEAR(g[0], kSoftmax0[0] / 2, 1e-15);
  EXPECT_NEAR(g[7], (kSoftmax1[1] - 1) / 2, 1e-15);

  // A custom ignore_index inside [0, V) ignores that class, like torch.
  VarD l2(TensorD::from({{1, 2, 3}, {7, -3, 5}, {0.5, -1, 2}}));
  EXPECT_NEAR(cross_entropy(l2, TensorI::from({2, 0, 1}), 0).item(), (kLoss0 + kLoss1) / 2, 1e-15);
}

TEST(CrossEntropy, AllIgnoredIsNaNWithZeroGradient) {
  VarD logits(TensorD::from({{1, 2, 3}, {0.5, -1, 2}}), true);
  const VarD loss = cross_entropy(logits, TensorI::from({-100, -100}));
  EXPECT_TRUE(std::isnan(loss.item()));  // torch: 0/0
  loss.backward();
  EXPECT_EQ(logits.grad().to_vector(), std::vector<double>(6, 0.0));
  // No positions at all: the same 0/0.
  EXPECT_TRUE(std::isnan(cross_entropy(VarD(TensorD::zeros({0, 4})), TensorI::zeros({0})).item()));
}

TEST(CrossEntropy, GradcheckWithIgnoredTargets) {
  // logits (2, 3, 7), targets (2, 3) with two ignored positions.
  const TensorI t = TensorI::from_vector({2, 3}, {6, -100, 0, 3, 3, -100});
  expect_gradcheck([&](const std::vector<VarD>& v) { return cross_entropy(v[0], t); },
                   {random_var({2, 3, 7}, 11)});
  // Upstream gradient other than 1 and logits computed by another op.
  expect_gradcheck([&](const std::vector<VarD>& v) { return cross_entropy(v[0] * 2.0, t) * 3.0; },
                   {random_var({2, 3, 7}, 12)});
  // A custom ignore_index.
  const TensorI t5 = TensorI::from_vector({2, 3}, {5, 1, 0, 5, 4, 6});
  expect_gradcheck([&](const std::vector<VarD>& v) { return cross_entropy(v[0], t5, 5); },
                   {random_var({2, 3, 7}, 13)});
}

TEST(CrossEntropy, FloatAgreesWithDouble) {
  Generator gen(21);
  const TensorF lf = TensorF::normal({4, 5, 11}, gen, 0.f, 3.f);
  std::vector<int64_t> tv;
  for (int64_t i = 0; i < 20; ++i) tv.push_back(i % 4 == 1 ? -100 : (i * 7) % 11);
  const TensorI t = TensorI::from_vector({4, 5}, tv);
  VarF xf(lf, true);
  VarD xd(to_double(lf), true);
  const VarF yf = cross_entropy(xf, t);
  const VarD yd = cross_entropy(xd, t);
  expect_close(std::vector<float>{yf.item()}, {yd.item()}, 1e-5);
  yf.backward();
  yd.backward();
  expect_close(xf.grad().to_vector(), xd.grad().to_vector(), 1e-5);
}

TEST(CrossEntropy, LargeLogitsStayFinite) {
  // Row 0: target is the 1000 logit, loss ~ 0. Row 1: log(e^1000 + e^1000 + e^999) - 999.
  const std::vector<double> expected_rows{0.0, 1 + std::log(2 + std::exp(-1.0))};
  VarD xd(TensorD::from({{1000, 0, -1000}, {1000, 1000, 999}}), true);
  const VarD yd = cross_entropy(xd, TensorI::from({0, 2}));
  EXPECT_NEAR(yd.item(), (expected_rows[0] + expected_rows[1]) / 2, 1e-12);
  yd.backward();
  for (double g : xd.grad().to_vector()) EXPECT_TRUE(std::isfinite(g));

  VarF xf(TensorF::from({{1000, 0, -1000}, {1000, 1000, 999}}), true);
  const VarF yf = cross_entropy(xf, TensorI::from({0, 2}));
  EXPECT_TRUE(std::isfinite(yf.item()));
  EXPECT_NEAR(yf.item(), (expected_rows[0] + expected_rows[1]) / 2, 1e-5);
  yf.backward();
  for (float g : xf.grad().to_vector()) EXPECT_TRUE(std::isfinite(g));
}

// The obviously-correct reference: per-row log-sum-exp in long double.
std::vector<double> reference_row_losses(const std::vector<double>& x,
                                         const std::vector<int64_t>& t, int64_t v, int64_t ignore) {
  std::vector<double> out;
  for (size_t r = 0; r < t.size(); ++r) {
    if (t[r] == ignore) {
      out.push_back(0);
      continue;
    }
    long double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < v; ++j) m = std::max<long double>(m, x[r * v + j]);
    for (int64_t j = 0; j < v; ++j) s += std::exp(x[r * v + j] - m);
    out.push_back(static_cast<double>(m + std::log(s) - x[r * v + t[r]]));
  }
  return out;
}

TEST(CrossEntropyKernel, RowLossesMatchReferenceOnTheParallelPath) {
  const ThreadCountGuard threads(2);
  constexpr int64_t n = 40, v = 1000;  // n * v above the parallel grain
  Generator gen(31);
  const TensorD x = TensorD::normal({n, v}, gen, 0.0, 4.0);
  std::vector<int64_t> tv;
  for (int64_t r = 0; r < n; ++r) tv.push_back(r % 7 == 3 ? -1 : (r * 37) % v);
  const TensorI t = TensorI::from_vector({n}, tv);
  TensorD total(Shape{}), losses(Shape{n}), lse(Shape{n});
  cpu::cross_entropy_forward(Cpu{}, total.data(), losses.data(), lse.data(), x.data(), t.data(), n,
                             v, int64_t{-1}, 1.0);
  const auto ref = reference_row_losses(x.to_vector(), tv, v, -1);
  expect_close(losses.to_vector(), ref, 1e-13);
  double sum = 0;
  for (double l : ref) sum += l;
  EXPECT_NEAR(total.item(), sum, 1e-10);
}

TEST(CrossEntropy, ErrorsNameOpShapesAndValues) {
  VarD x(TensorD::zeros({2, 3, 10}));
  expect_error(
      [&] {
        (void)cross_entropy(x, TensorI::zeros({2, 4}));
      },
      {"cross_entropy", "targets shape (2, 4)", "logits (2, 3, 10)", "leading dims (2, 3)"});
  expect_error(
      [&] {
        (void)cross_entropy(x, TensorI::zeros({2, 3, 10}));
      },
      {"cross_entropy", "(2, 3, 10)", "(2, 3)"});
  VarD x2(TensorD::zeros({5, 10}));
  expect_error(
      [&] {
        (void)cross_entropy(x2, TensorI::from({0, 1, 2, 12, 3}));
      },
      {"cross_entropy", "target 12 out of range [0, 10)", "at position 3", "ignore_index is -100"});
  expect_error(
      [&] {
        (void)cross_entropy(x, TensorI::from_vector({2, 3}, {0, 1, 2, -1, 3, 4}));
      },
      {"cross_entropy", "target -1 out of range [0, 10)", "at position (1, 0)"});
  // -100 is only ignored when it is the ignore_index.
  expect_error(
      [&] {
        (void)cross_entropy(x2, TensorI::from({0, -100, 1, 2, 3}), 7);
      },
      {"target -100 out of range [0, 10)", "ignore_index is 7"});
  expect_error([&] { (void)cross_entropy(VarD(TensorD::scalar(1)), TensorI::scalar(0)); },
               {"cross_entropy", "class dim", "()"});
}

}  // namespace
}  // namespace normlab::testing
