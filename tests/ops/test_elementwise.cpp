// Element-wise ops: values, broadcasting, gradients, errors.
#include <cmath>

#include "testing.hpp"

namespace normlab::testing {
namespace {

TEST(Elementwise, BinaryForwardValues) {
  VarD a(TensorD::from({{1, 2, 3}, {4, 5, 6}})), b(TensorD::from({{2, 4, 8}, {1, 2, 3}}));
  EXPECT_EQ((a + b).data().to_vector(), (std::vector<double>{3, 6, 11, 5, 7, 9}));
  EXPECT_EQ((a - b).data().to_vector(), (std::vector<double>{-1, -2, -5, 3, 3, 3}));
  EXPECT_EQ((a * b).data().to_vector(), (std::vector<double>{2, 8, 24, 4, 10, 18}));
  EXPECT_EQ((a / b).data().to_vector(), (std::vector<double>{0.5, 0.5, 0.375, 4, 2.5, 2}));
}

TEST(Elementwise, BroadcastingForwardValues) {
  VarD m(TensorD::from({{1, 2, 3}, {4, 5, 6}}));       // (2, 3)
  VarD row(TensorD::from({10, 20, 30}));               // (3,)
  VarD col(TensorD::from_vector({2, 1}, {100, 200}));  // (2, 1)
  EXPECT_EQ((m + row).data().to_vector(), (std::vector<double>{11, 22, 33, 14, 25, 36}));
  EXPECT_EQ((m * col).data().to_vector(), (std::vector<double>{100, 200, 300, 800, 1000, 1200}));
  VarD outer = col + row;  // (2, 1) + (3,) -> (2, 3)
  EXPECT_EQ(outer.shape(), (Shape{2, 3}));
  EXPECT_EQ(outer.data().to_vector(), (std::vector<double>{110, 120, 130, 210, 220, 230}));
  VarD s(TensorD::scalar(2));
  EXPECT_EQ((m - s).data().to_vector(), (std::vector<double>{-1, 0, 1, 2, 3, 4}));
}

TEST(Elementwise, BroadcastGradientIsSumOverReusedElements) {
  VarD m(TensorD::from({{1, 2, 3}, {4, 5, 6}}), true);
  VarD row(TensorD::from({10, 20, 30}), true);
  (m * row).backward(TensorD::ones({2, 3}));
  EXPECT_EQ(row.grad().to_vector(), (std::vector<double>{5, 7, 9}));  // column sums of m
  EXPECT_EQ(m.grad().to_vector(), (std::vector<double>{10, 20, 30, 10, 20, 30}));
}

TEST(Elementwise, AddOfOneShapeHandsTheGradientOnToFreshAndUsedBuffers) {
  // u and w are interior: add is the first node to reach their gradients
  // (fresh, written by a copy). x is reached three times: the outer add
  // writes its gradient, the product and the exp add to it.
  const VarD x = random_var({3, 7}, 1);
  const VarD u = x * 2.0, w = exp(x);
  const VarD y = (u + w) + x;
  Generator gen(5);
  const TensorD r = TensorD::normal({3, 7}, gen);
  y.backward(r);
  const auto xv = x.data().to_vector(), rv = r.to_vector();
  std::vector<double> expect;
  for (size_t i = 0; i < xv.size(); ++i) expect.push_back(rv[i] * (2.0 + std::exp(xv[i]) + 1.0));
  expect_close(x.grad().to_vector(), expect, 1e-15);
  expect_gradcheck([](const std::vector<VarD>& v) { return (v[0] * 2.0 + exp(v[1])) + v[0]; },
                   {random_var({2, 5}, 2), random_var({2, 5}, 3)});
}

TEST(Elementwise, AddOfOneShapeGivesItsGradientBufferToOneOperandOnly) {
  // The first operand takes over the upstream gradient's buffer, the second
  // gets a copy: two buffers, so a second backward adds once into each.
  const VarD a = random_var({4, 6}, 1), b = random_var({4, 6}, 2);
  Generator gen(7);
  const TensorD r = TensorD::normal({4, 6}, gen);
  const auto rv = r.to_vector();
  (a + b).backward(r);
  EXPECT_EQ(a.grad().to_vector(), rv);
  EXPECT_EQ(b.grad().to_vector(), rv);
  EXPECT_NE(a.grad().data(), b.grad().data());
  (a + b).backward(r);
  std::vector<double> twice;
  for (double v : rv) twice.push_back(2 * v);
  EXPECT_EQ(a.grad().to_vector(), twice);
  EXPECT_EQ(b.grad().to_vector(), twice);
  EXPECT_EQ(r.to_vector(), rv);  // the caller's upstream gradient is never taken over
  // x + x: one state passed twice keeps one zero-filled buffer with both adds.
  const VarD x = random_var({4, 6}, 3);
  (x + x).backward(r);
  EXPECT_EQ(x.grad().to_vector(), twice);
}

TEST(Elementwise, ScalarOpsAndOperators) {
  VarD x(TensorD::from({1, 2, 4}));
  EXPECT_EQ((x + 1.0).data().to_vector(), (std::vector<double>{2, 3, 5}));
  EXPECT_EQ((1.0 - x).data().to_vector(), (std::vector<double>{0, -1, -3}));
  EXPECT_EQ((x - 1.0).data().to_vector(), (std::vector<double>{0, 1, 3}));
  EXPECT_EQ((3.0 * x).data().to_vector(), (std::vector<double>{3, 6, 12}));
  EXPECT_EQ((x / 2.0).data().to_vector(), (std::vector<double>{0.5, 1, 2}));
  EXPECT_EQ((4.0 / x).data().to_vector(), (std::vector<double>{4, 2, 1}));
  EXPECT_EQ(pow(x, 2.0).data().to_vector(), (std::vector<double>{1, 4, 16}));
  EXPECT_EQ((-x).data().to_vector(), (std::vector<double>{-1, -2, -4}));
}

TEST(Elementwise, UnaryForwardValues) {
  VarD x(TensorD::from({-1.5, 0.0, 0.5, 2.0}));
  expect_close(exp(x).data().to_vector(), {std::exp(-1.5), 1, std::exp(0.5), std::exp(2.0)}, 1e-15);
  expect_close(tanh(x).data().to_vector(), {std::tanh(-1.5), 0, std::tanh(0.5), std::tanh(2.0)},
               1e-15);
  EXPECT_EQ(relu(x).data().to_vector(), (std::vector<double>{0, 0, 0.5, 2}));
  VarD p(TensorD::from({0.25, 1, 4}));
  expect_close(log(p).data().to_vector(), {std::log(0.25), 0, std::log(4.0)}, 1e-15);
  EXPECT_EQ(sqrt(p).data().to_vector(), (std::vector<double>{0.5, 1, 2}));
  // GELU reference values: x * Phi(x) with Phi from erfc, and the tanh form written out.
  for (double v : {-3.0, -1.0, -0.1, 0.0, 0.7, 2.5}) {
    VarD t(TensorD::scalar(v));
    EXPECT_NEAR(gelu(t).item(), v * 0.5 * std::erfc(-v / std::sqrt(2.0)), 1e-15);
    const double u = std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v);
    EXPECT_NEAR(gelu(t, GeluApproximation::tanh).item(), 0.5 * v * (1 + std::tanh(u)), 1e-15);
  }
  // Known value: GELU(1) = 0.8413447460685429 (Phi(1) = 0.8413...).
  EXPECT_NEAR(gelu(VarD(TensorD::scalar(1.0))).item(), 0.8413447460685429, 1e-15);
}

TEST(Elementwise, GradcheckBinaryWithBroadcasting) {
  // (2,1,4) op (3,1): both operands broadcast.
  const auto a = random_var({2, 1, 4}, 1), b = random_var({3, 1}, 2, 3.0);  // b away from 0
  expect_gradcheck([](const std::vector<VarD>& v) { return v[0] + v[1]; }, {a, b});
  expect_gradcheck([](const std::vector<VarD>& v) { return v[0] - v[1]; }, {a, b});
  expect_gradcheck([](const std::vector<VarD>& v) { return v[0] * v[1]; }, {a, b});
  expect_gradcheck([](const std::vector<VarD>& v) { return v[0] / v[1]; }, {a, b});
  expect_gradcheck([](const std::vector<VarD>& v) { return v[1] / v[0] * v[0]; }, {a, b});
  // Same shape (the parallel path), with an operand used twice.
  const auto c = random_var({5, 7}, 3);
  expect_gradcheck([](const std::vector<VarD>& v) { return v[0] * v[0] - v[0]; }, {c});
}

TEST(Elementwise, GradcheckUnary) {
  const auto x = random_var({3, 5}, 4);
  const auto pos = VarD(TensorD::uniform({3, 5}, *std::make_unique<Generator>(5), 0.5, 2.0), true);
  expect_gradcheck([](const std::vector<VarD>& v) { return exp(v[0]); }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return tanh(v[0]); }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return gelu(v[0]); }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return gelu(v[0], GeluApproximation::tanh); },
                   {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return relu(v[0]); }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return -v[0] * 2.5 + 1.0; }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return log(v[0]); }, {pos});
  expect_gradcheck([](const std::vector<VarD>& v) { return sqrt(v[0]); }, {pos});
  expect_gradcheck([](const std::vector<VarD>& v) { return 3.0 / v[0] - v[0]; }, {pos});
  expect_gradcheck([](const std::vector<VarD>& v) { return pow(v[0], 1.5); }, {pos});
}

TEST(Elementwise, FloatAgreesWithDouble) {
  Generator gen(9);
  VarF af(TensorF::normal({4, 6}, gen)), bf(TensorF::normal({6}, gen));
  VarD ad(to_double(af.data())), bd(to_double(bf.data()));
  const auto f = gelu(af * bf + exp(af) / (bf * bf + 1.0)).data().to_vector();
  const auto d = gelu(ad * bd + exp(ad) / (bd * bd + 1.0)).data().to_vector();
  expect_close(f, d, 1e-5);
}

TEST(Elementwise, ErrorsNameOpAndShapes) {
  VarD a(TensorD::zeros({2, 3})), b(TensorD::zeros({2}));
  expect_error([&] { (void)(a * b); }, {"mul", "(2, 3)", "(2,)"});
  expect_error(
      [&] {
        (void)(a / VarD(TensorD::zeros({4, 1, 5})));
      },
      {"div", "(2, 3)", "(4, 1, 5)"});
}

TEST(Elementwise, EmptyTensorsAreFine) {
  VarD e(TensorD::zeros({0, 3}), true);
  VarD y = exp(e) + VarD(TensorD::ones({3}));
  EXPECT_EQ(y.shape(), (Shape{0, 3}));
  y.backward(TensorD::zeros({0, 3}));
  EXPECT_EQ(e.grad().numel(), 0);
}

}  // namespace
}  // namespace normlab::testing
