// dropout: statistics, reproducibility, identity cases, gradient, errors.
#include <cmath>
#include <limits>

#include "testing.hpp"

namespace normlab::testing {
namespace {

TEST(Dropout, KeepsAboutOneMinusPAndPreservesTheMean) {
  constexpr int64_t n = 100000;
  constexpr double p = 0.3;
  Generator gen(51);
  const VarD y = dropout(VarD(TensorD::ones({n})), p, gen);
  int64_t kept = 0;
  double sum = 0;
  for (double v : y.data().to_vector()) {
    if (v != 0) {
      ++kept;
      EXPECT_EQ(v, 1.0 / (1.0 - p));  // kept elements are scaled by 1 / (1 - p)
    }
    sum += v;
  }
  // Binomial: std of the kept fraction ~ 0.0014, of the mean ~ 0.0021.
  EXPECT_NEAR(static_cast<double>(kept) / n, 1 - p, 0.01);
  EXPECT_NEAR(sum / n, 1.0, 0.015);

  Generator genf(52);
  const auto yf = dropout(VarF(TensorF::ones({n})), 0.5, genf).data().to_vector();
  int64_t keptf = 0;
  for (float v : yf) keptf += v != 0;
  EXPECT_NEAR(static_cast<double>(keptf) / n, 0.5, 0.01);
}

TEST(Dropout, SameSeedSameMaskAndSuccessiveCallsDiffer) {
  const VarD x(TensorD::ones({1000}));
  Generator g1(7), g2(7);
  const auto a = dropout(x, 0.4, g1).data().to_vector();
  const auto b = dropout(x, 0.4, g2).data().to_vector();
  EXPECT_EQ(a, b);
  const auto c = dropout(x, 0.4, g1).data().to_vector();  // the next call draws fresh blocks
  EXPECT_NE(a, c);
  EXPECT_EQ(g1.offset(), 500u);  // two calls of 250 blocks (4 elements a block) each
  Generator g3(8);
  EXPECT_NE(a, dropout(x, 0.4, g3).data().to_vector());
}

TEST(Dropout, FloatAndDoubleModelsDrawTheSameMask) {
  Generator gf(11), gd(11);
  const auto f = dropout(VarF(TensorF::ones({999})), 0.3, gf).data().to_vector();
  const auto d = dropout(VarD(TensorD::ones({999})), 0.3, gd).data().to_vector();
  for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(f[i] != 0, d[i] != 0) << "at " << i;
  EXPECT_EQ(gf.offset(), gd.offset());
}

TEST(DropoutKernel, MaskIsPhiloxUniformThresholdOnTheParallelPath) {
  const ThreadCountGuard threads(2);
  constexpr int64_t n = 50000;  // above the parallel grain
  constexpr double p = 0.25;
  for (uint64_t first : {uint64_t{0}, uint64_t{12345}}) {
    TensorF mask(Shape{n});
    cpu::dropout_mask(Cpu{}, mask.data(), n, 99, first, p);
    const auto m = mask.to_vector();
    for (int64_t i = 0; i < n; ++i) {
      const float u = philox_uniform<float>(99, first, i, 0.f, 1.f);
      ASSERT_EQ(m[i], u >= p ? static_cast<float>(1 / (1 - p)) : 0.f) << "at " << i;
    }
  }
}

TEST(Dropout, EvalModeAndZeroPReturnTheInputItself) {
  VarD x(TensorD::from({1, -2, 3}), true);
  Generator gen(3);
  const VarD e = dropout(x, 0.5, gen, /*training=*/false);
  const VarD z = dropout(x, 0.0, gen);
  for (const VarD& y : {e, z}) {
    EXPECT_EQ(y.state_ptr(), x.state_ptr());  // the same variable: no node
    EXPECT_TRUE(y.is_leaf());
    EXPECT_EQ(y.data().to_vector(), (std::vector<double>{1, -2, 3}));
  }
  EXPECT_EQ(gen.offset(), 0u);  // no random draw
}

TEST(Dropout, POneGivesZerosAndZeroGradient) {
  VarD x(TensorD::from({1, -2, 3, 4}), true);
  Generator gen(4);
  const VarD y = dropout(x, 1.0, gen);
  EXPECT_EQ(y.data().to_vector(), std::vector<double>(4, 0.0));
  y.backward(TensorD::ones({4}));
  EXPECT_EQ(x.grad().to_vector(), std::vector<double>(4, 0.0));
}

TEST(Dropout, BackwardMultipliesByTheMask) {
  VarD x(TensorD::ones({2, 50}), true);
  Generator gen(5);
  const VarD y = dropout(x, 0.3, gen);  // with x = 1, y is the mask itself
  y.backward(TensorD::full({2, 50}, 2.0));
  const auto m = y.data().to_vector(), g = x.grad().to_vector();
  for (size_t i = 0; i < m.size(); ++i) EXPECT_EQ(g[i], 2.0 * m[i]);
}

TEST(Dropout, GradcheckWithFixedMask) {
  // gradcheck calls f repeatedly: a fresh Generator per call fixes the mask.
  expect_gradcheck(
      [](const std::vector<VarD>& v) {
        Generator gen(61);
        return dropout(v[0], 0.3, gen);
      },
      {random_var({4, 5, 3}, 62)});
  expect_gradcheck(
      [](const std::vector<VarD>& v) {
        Generator gen(63);
        return dropout(v[0] * v[0], 0.3, gen) + v[0];
      },
      {random_var({3, 7}, 64)});
}

TEST(Dropout, ErrorsNameP) {
  VarD x(TensorD::ones({3}));
  Generator gen(1);
  expect_error([&] { (void)dropout(x, 1.5, gen); }, {"dropout", "p = 1.5", "not in [0, 1]"});
  expect_error([&] { (void)dropout(x, -0.1, gen); }, {"dropout", "p = -0.1", "not in [0, 1]"});
  expect_error([&] { (void)dropout(x, std::numeric_limits<double>::quiet_NaN(), gen); },
               {"dropout", "p = nan"});
  // A bad p is a bug even where it would not be used.
  expect_error([&] { (void)dropout(x, 2.0, gen, /*training=*/false); }, {"dropout", "p = 2"});
}

}  // namespace
}  // namespace normlab::testing
