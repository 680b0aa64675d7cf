// sum and mean: values over all elements and along axes, keepdim, gradients, errors.
#include "testing.hpp"

namespace normlab::testing {
namespace {

TEST(Reduction, SumAndMeanHandComputed) {
  VarD x(TensorD::from({{1, 2, 3}, {4, 5, 6}}));  // (2, 3)
  EXPECT_EQ(sum(x).shape(), Shape{});
  EXPECT_EQ(sum(x).item(), 21);
  EXPECT_EQ(mean(x).item(), 3.5);
  EXPECT_EQ(sum(x, 0).data().to_vector(), (std::vector<double>{5, 7, 9}));
  EXPECT_EQ(sum(x, 1).data().to_vector(), (std::vector<double>{6, 15}));
  EXPECT_EQ(sum(x, -1).data().to_vector(), (std::vector<double>{6, 15}));
  EXPECT_EQ(mean(x, 0).data().to_vector(), (std::vector<double>{2.5, 3.5, 4.5}));
  EXPECT_EQ(mean(x, 1).data().to_vector(), (std::vector<double>{2, 5}));
}

TEST(Reduction, KeepdimShapes) {
  VarD x(TensorD::zeros({2, 3, 4}));
  EXPECT_EQ(sum(x, 1).shape(), (Shape{2, 4}));
  EXPECT_EQ(sum(x, 1, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(mean(x, -1, true).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(mean(x, 0).shape(), (Shape{3, 4}));
}

TEST(Reduction, MiddleAxisValues) {
  // x[i, j, k] = 100 i + 10 j + k; sum over j = 3 (100 i + k) + 30.
  std::vector<double> v;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) v.push_back(100 * i + 10 * j + k);
  VarD x(TensorD::from_vector({2, 3, 4}, v));
  std::vector<double> expected;
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) expected.push_back(3 * (100 * i + k) + 30);
  EXPECT_EQ(sum(x, 1).data().to_vector(), expected);
}

TEST(Reduction, LongSumIsAccurateAndThreadIndependent) {
  const ThreadCountGuard threads(2);  // the chunked parallel path
  // 1e6 copies of 0.1f: a naive float running sum drifts by ~1%; double
  // accumulation in fixed-size chunks keeps it exact to float rounding.
  VarF x(TensorF::full({1000000}, 0.1f));
  EXPECT_NEAR(sum(x).item(), 100000.0f * 1.0000000015f, 1.0f);
  EXPECT_NEAR(mean(x).item(), 0.1f, 1e-7f);
  // Wide inner dimension (more than one column block).
  VarD w(TensorD::ones({3, 5, 700}));
  EXPECT_EQ(sum(w, 1).data().to_vector(), std::vector<double>(2100, 5.0));
}

TEST(Reduction, Gradcheck) {
  const VarD x = random_var({3, 4, 5}, 7);
  expect_gradcheck([](const std::vector<VarD>& v) { return sum(v[0]); }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return mean(v[0]); }, {x});
  for (int axis : {0, 1, 2, -1}) {
    SCOPED_TRACE(::testing::Message() << "axis " << axis);
    expect_gradcheck([axis](const std::vector<VarD>& v) { return sum(v[0], axis); }, {x});
    expect_gradcheck([axis](const std::vector<VarD>& v) { return mean(v[0], axis, true); }, {x});
  }
  // Composed with broadcasting: mean over an axis, kept, then subtracted.
  expect_gradcheck([](const std::vector<VarD>& v) { return (v[0] - mean(v[0], -1, true)) * v[0]; },
                   {x});
}

TEST(Reduction, FloatAgreesWithDouble) {
  Generator gen(3);
  VarF x(TensorF::normal({6, 50, 7}, gen));
  const VarD xd(to_double(x.data()));
  expect_close(sum(x, 1).data().to_vector(), sum(xd, 1).data().to_vector(), 1e-5);
  expect_close(std::vector<float>{mean(x).item()}, {mean(xd).item()}, 1e-5);
}

TEST(Reduction, EmptyInputs) {
  VarD e(TensorD::zeros({0, 3}), true);
  EXPECT_EQ(sum(e).item(), 0);
  EXPECT_EQ(sum(e, 0).data().to_vector(), std::vector<double>(3, 0.0));
  sum(e, 0).backward(TensorD::ones({3}));
  EXPECT_EQ(e.grad().numel(), 0);
  expect_error([&] { (void)mean(e); }, {"mean", "zero elements", "(0, 3)"});
  expect_error([&] { (void)mean(e, 0); }, {"mean", "zero elements", "(0, 3)", "axis 0"});
}

TEST(Reduction, BadAxisNamesOpAndShape) {
  VarD x(TensorD::zeros({2, 3}));
  expect_error([&] { (void)sum(x, 2); }, {"sum", "axis 2", "(2, 3)", "-2 to 1"});
  expect_error([&] { (void)mean(x, -3); }, {"mean", "axis -3", "(2, 3)"});
}

}  // namespace
}  // namespace normlab::testing
