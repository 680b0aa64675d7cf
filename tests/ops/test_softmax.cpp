// softmax (with and without the causal mask) and log_softmax: values, gradients, errors.
#include <cmath>

#include "testing.hpp"

namespace normlab::testing {
namespace {

// The slow, obviously-correct reference: row by row in double; entry j of row i of each
// (tq, n) matrix is kept when j <= i + n - tq (tq = 0: no mask); masked entries are 0.
std::vector<double> reference_softmax(const std::vector<double>& x, int64_t n, int64_t tq) {
  std::vector<double> y(x.size(), 0.0);
  for (size_t r = 0; r < x.size() / n; ++r) {
    const int64_t i = tq ? static_cast<int64_t>(r) % tq : 0;
    const int64_t len = tq ? std::clamp<int64_t>(i + n - tq + 1, 0, n) : n;
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < len; ++j) mx = std::max(mx, x[r * n + j]);
    for (int64_t j = 0; j < len; ++j) sum += std::exp(x[r * n + j] - mx);
    for (int64_t j = 0; j < len; ++j) y[r * n + j] = std::exp(x[r * n + j] - mx) / sum;
  }
  return y;
}

TEST(Softmax, ForwardKnownValues) {
  VarD x(TensorD::from({{1, 2, 3}, {0, 0, 0}, {-1, 0, -1}}));
  const double e = std::exp(1.0);
  expect_close(softmax(x).data().to_vector(),
               {0.09003057317038046, 0.24472847105479764, 0.6652409557748219,  //
                1.0 / 3, 1.0 / 3, 1.0 / 3,                                     //
                1 / (2 + e), e / (2 + e), 1 / (2 + e)},
               1e-15);
  expect_close(softmax(VarD(TensorD::from({5.0}))).data().to_vector(), {1}, 0);
}

TEST(Softmax, MatchesReferenceOnLargeInput) {
  const ThreadCountGuard threads(2);
  // Large enough for the multi-threaded path.
  const auto x = random_var({4, 64, 129}, 1, 0.0, 3.0);
  expect_close(softmax(x).data().to_vector(), reference_softmax(x.data().to_vector(), 129, 0),
               1e-14);
  expect_close(softmax(x, true).data().to_vector(),
               reference_softmax(x.data().to_vector(), 129, 64), 1e-14);
}

TEST(Softmax, CausalMaskSquare) {
  const auto x = random_var({2, 4, 4}, 2);
  const auto y = softmax(x, true).data().to_vector();
  for (int64_t m = 0; m < 2; ++m)
    for (int64_t i = 0; i < 4; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < 4; ++j) {
        const double v = y[(m * 4 + i) * 4 + j];
        if (j > i)
          EXPECT_EQ(v, 0.0) << "masked (" << i << ", " << j << ") of matrix " << m;
        else
          EXPECT_GT(v, 0.0);
        sum += v;
      }
      EXPECT_NEAR(sum, 1.0, 1e-15);
    }
  // Row 0 sees only itself.
  EXPECT_EQ(y[0], 1.0);
  // Unmasked values are the softmax of the visible prefix.
  VarD prefix(
      TensorD::from({x.data().to_vector()[8], x.data().to_vector()[9], x.data().to_vector()[10]}));
  expect_close(std::vector<double>(y.begin() + 8, y.begin() + 11),
               softmax(prefix).data().to_vector(), 1e-15);
}

TEST(Softmax, CausalMaskNonSquareIsBottomRightAligned) {
  // Tq = 2, Tk = 4: query 0 sees keys 0..2, query 1 sees all four.
  VarD x(TensorD::from({{0, 0, 0, 5}, {0, 0, 0, 0}}));
  expect_close(softmax(x, true).data().to_vector(),
               {1.0 / 3, 1.0 / 3, 1.0 / 3, 0, 0.25, 0.25, 0.25, 0.25}, 1e-15);
  // Tq = 4, Tk = 2: queries 0 and 1 see no key (rows of zeros), query 2 sees key 0.
  VarD t(TensorD::from({{1, 2}, {3, 4}, {5, 6}, {7, 7}}), true);
  VarD y = softmax(t, true);
  EXPECT_EQ(y.data().to_vector(), (std::vector<double>{0, 0, 0, 0, 1, 0, 0.5, 0.5}));
  y.backward(TensorD::from({{1, 2}, {3, 4}, {5, 6}, {7, 8}}));
  // Fully masked rows and masked entries get no gradient; a lone key's gradient is 0 too.
  expect_close(t.grad().to_vector(), {0, 0, 0, 0, 0, 0, -0.25, 0.25}, 1e-15);
}

TEST(Softmax, CausalMaskedEntriesGetZeroGradient) {
  auto x = random_var({3, 5, 5}, 3);
  Generator gen(4);
  softmax(x, true).backward(TensorD::normal({3, 5, 5}, gen));
  const auto g = x.grad().to_vector();
  for (int64_t m = 0; m < 3; ++m)
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = i + 1; j < 5; ++j) EXPECT_EQ(g[(m * 5 + i) * 5 + j], 0.0);
}

TEST(Softmax, LargeValuesStayFinite) {
  VarD x(TensorD::from({{1000, 1001, 1002}, {-1000, 0, 1000}}), true);
  VarD y = softmax(x);
  const auto v = y.data().to_vector();
  for (double e : v) EXPECT_TRUE(std::isfinite(e));
  expect_close(std::vector<double>(v.begin(), v.begin() + 3),
               softmax(VarD(TensorD::from({0, 1, 2}))).data().to_vector(), 1e-15);
  expect_close(std::vector<double>(v.begin() + 3, v.end()), {0, 0, 1}, 1e-15);
  y.backward(TensorD::ones({2, 3}));
  for (double e : x.grad().to_vector()) EXPECT_TRUE(std::isfinite(e));

  VarF xf(TensorF::from({{1000, 1001, 1002}, {-1000, 0, 1000}}));
  for (float e : softmax(xf).data().to_vector()) EXPECT_TRUE(std::isfinite(e));
  for (float e : softmax(xf, true).data().to_vector()) EXPECT_TRUE(std::isfinite(e));
  const auto lf = log_softmax(xf).data().to_vector();
  for (float e : lf) EXPECT_TRUE(std::isfinite(e));
  // log_softmax stays finite where softmax underflows: log_softmax([-1000, 0, 1000])[0] = -2000.
  EXPECT_NEAR(lf[3], -2000.0f, 1e-3);
}

TEST(Softmax, Gradcheck) {
  const auto x4 = random_var({2, 3, 5, 5}, 5);
  const auto x3 = random_var({2, 3, 5}, 6);
  const auto tall = random_var({2, 5, 3}, 7);
  expect_gradcheck([](const std::vector<VarD>& v) { return softmax(v[0]); }, {x4});
  expect_gradcheck([](const std::vector<VarD>& v) { return softmax(v[0], true); }, {x4});
  expect_gradcheck([](const std::vector<VarD>& v) { return softmax(v[0]); }, {x3});
  expect_gradcheck([](const std::vector<VarD>& v) { return softmax(v[0], true); }, {x3});
  expect_gradcheck([](const std::vector<VarD>& v) { return softmax(v[0], true); }, {tall});
  // x used twice: the gradients of the two nodes add.
  expect_gradcheck([](const std::vector<VarD>& v) { return softmax(v[0]) * v[0]; }, {x3});
}

TEST(Softmax, FloatAgreesWithDouble) {
  Generator gen(8);
  VarF xf(TensorF::normal({3, 6, 6}, gen, 0.0f, 2.0f), true);
  VarD xd(to_double(xf.data()), true);
  const TensorF up = TensorF::normal({3, 6, 6}, gen);
  for (bool causal : {false, true}) {
    xf.clear_grad();
    xd.clear_grad();
    VarF yf = softmax(xf, causal);
    VarD yd = softmax(xd, causal);
    expect_close(yf.data().to_vector(), yd.data().to_vector(), 1e-5);
    yf.backward(up);
    yd.backward(to_double(up));
    expect_close(xf.grad().to_vector(), xd.grad().to_vector(), 1e-5);
  }
}

TEST(Softmax, EmptyTensorsAreFine) {
  VarD a(TensorD::zeros({0, 4}), true);
  VarD ya = softmax(a, true);
  EXPECT_EQ(ya.shape(), (Shape{0, 4}));
  ya.backward(TensorD::zeros({0, 4}));
  EXPECT_EQ(a.grad().numel(), 0);
  VarD b(TensorD::zeros({3, 0}), true);
  EXPECT_EQ(softmax(b).shape(), (Shape{3, 0}));
  EXPECT_EQ(log_softmax(b).shape(), (Shape{3, 0}));
}

TEST(Softmax, ErrorsNameOpAndShapes) {
  expect_error([] { (void)softmax(VarD(TensorD::scalar(1))); }, {"softmax", "0 dims", "()"});
  expect_error([] { (void)softmax(VarD(TensorD::zeros({5})), true); },
               {"softmax", "causal", "1-d", "(5,)"});
  expect_error([] { (void)softmax(VarD()); }, {"softmax", "undefined"});
}

TEST(LogSoftmax, ForwardIsLogOfSoftmax) {
  VarD k(TensorD::from({1, 2, 3}));
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  expect_close(log_softmax(k).data().to_vector(), {1 - lse, 2 - lse, 3 - lse}, 1e-15);
  const auto x = random_var({3, 4, 9}, 9, 0.0, 2.0);
  expect_close(log_softmax(x).data().to_vector(), log(softmax(x)).data().to_vector(), 1e-14);
  for (double e : exp(log_softmax(x)).data().to_vector()) EXPECT_GT(e, 0.0);
}

TEST(LogSoftmax, Gradcheck) {
  expect_gradcheck([](const std::vector<VarD>& v) { return log_softmax(v[0]); },
                   {random_var({2, 3, 5}, 10)});
  expect_gradcheck([](const std::vector<VarD>& v) { return log_softmax(v[0]); },
                   {random_var({2, 3, 5, 5}, 11, 0.0, 3.0)});
  expect_gradcheck([](const std::vector<VarD>& v) { return log_softmax(v[0]) * v[0]; },
                   {random_var({4, 6}, 12)});
}

TEST(LogSoftmax, FloatAgreesWithDouble) {
  Generator gen(13);
  VarF xf(TensorF::normal({4, 17}, gen, 0.0f, 3.0f), true);
  VarD xd(to_double(xf.data()), true);
  const TensorF up = TensorF::normal({4, 17}, gen);
  VarF yf = log_softmax(xf);
  VarD yd = log_softmax(xd);
  expect_close(yf.data().to_vector(), yd.data().to_vector(), 1e-5);
  yf.backward(up);
  yd.backward(to_double(up));
  expect_close(xf.grad().to_vector(), xd.grad().to_vector(), 1e-5);
}

TEST(LogSoftmax, ErrorsNameOpAndShapes) {
  expect_error([] { (void)log_softmax(VarD(TensorD::scalar(1))); },
               {"log_softmax", "0 dims", "()"});
}

}  // namespace
}  // namespace normlab::testing
