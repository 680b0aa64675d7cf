// reshape, permute, transpose, slice, concat: values, views, gradients, errors.
#include "testing.hpp"

namespace normlab::testing {
namespace {

TEST(ShapeOps, ReshapeIsAViewWithInferredDim) {
  VarD x(TensorD::arange(0, 12), true);
  const VarD y = reshape(x, {3, -1});
  EXPECT_EQ(y.shape(), (Shape{3, 4}));
  EXPECT_TRUE(y.data().shares_storage_with(x.data()));
  EXPECT_EQ(y.data().to_vector(), x.data().to_vector());
  y.backward(TensorD::arange(0, 12).reshape({3, 4}));
  EXPECT_EQ(x.grad().to_vector(), TensorD::arange(0, 12).to_vector());
  expect_error([&] { (void)reshape(x, {5, -1}); }, {"reshape", "-1", "12 elements"});
  expect_error([&] { (void)reshape(x, {5, 2}); }, {"reshape", "(12,)", "(5, 2)"});
}

TEST(ShapeOps, TransposeAndPermuteValues) {
  VarD x(TensorD::from({{1, 2, 3}, {4, 5, 6}}));  // (2, 3)
  const VarD t = transpose(x, 0, 1);
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_EQ(t.data().to_vector(), (std::vector<double>{1, 4, 2, 5, 3, 6}));
  // (2, 3, 4) -> (4, 2, 3): y[k, i, j] = x[i, j, k].
  VarD z(TensorD::arange(0, 24).reshape({2, 3, 4}));
  const VarD p = permute(z, {2, 0, 1});
  ASSERT_EQ(p.shape(), (Shape{4, 2, 3}));
  const auto pv = p.data().to_vector();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k)
        EXPECT_EQ(pv[static_cast<size_t>(k * 6 + i * 3 + j)], i * 12 + j * 4 + k);
  // Negative entries, and the (B, T, H, D) -> (B, H, T, D) head split a layer uses.
  EXPECT_EQ(permute(z, {-1, 0, 1}).data().to_vector(), pv);
  VarD h(TensorD::arange(0, 48).reshape({2, 3, 4, 2}));
  const VarD heads = transpose(h, 1, 2);
  EXPECT_EQ(heads.shape(), (Shape{2, 4, 3, 2}));
  EXPECT_EQ(heads.data().to_vector()[2], 8);  // [0, 0, 1, 0] = h[0, 1, 0, 0]
}

TEST(ShapeOps, SliceValues) {
  VarD x(TensorD::arange(0, 24).reshape({2, 3, 4}));
  EXPECT_EQ(slice(x, 1, 1, 3).shape(), (Shape{2, 2, 4}));
  EXPECT_EQ(slice(x, 2, 1, 2).data().to_vector(), (std::vector<double>{1, 5, 9, 13, 17, 21}));
  EXPECT_EQ(slice(x, 0, -1, 2).data().to_vector(), TensorD::arange(12, 24).to_vector());
  EXPECT_EQ(slice(x, -1, 0, -2).shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(slice(x, 1, 2, 2).shape(), (Shape{2, 0, 4}));  // empty slice is allowed
}

TEST(ShapeOps, ConcatValues) {
  VarD a(TensorD::from({{1, 2}, {3, 4}})), b(TensorD::from_vector({2, 1}, {5, 6}));
  const VarD c = concat<double, Cpu>({a, b}, 1);
  EXPECT_EQ(c.shape(), (Shape{2, 3}));
  EXPECT_EQ(c.data().to_vector(), (std::vector<double>{1, 2, 5, 3, 4, 6}));
  const VarD r = concat<double, Cpu>({a, a}, 0);
  EXPECT_EQ(r.data().to_vector(), (std::vector<double>{1, 2, 3, 4, 1, 2, 3, 4}));
  // Slicing the pieces back out recovers them.
  EXPECT_EQ(slice(c, 1, 2, 3).data().to_vector(), b.data().to_vector());
}

TEST(ShapeOps, Gradcheck) {
  const VarD x = random_var({2, 3, 4}, 1), y = random_var({2, 5, 4}, 2), w = random_var({3, 4}, 3);
  expect_gradcheck([](const std::vector<VarD>& v) { return reshape(v[0], {4, -1}) * 2.0; }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return transpose(v[0], 0, 2); }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return permute(v[0], {1, 2, 0}); }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return slice(v[0], 1, 1, 3); }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return slice(v[0], 2, 0, 1); }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return concat(v, 1); }, {x, y});
  // Overlapping slices of one input and concat of an input with itself accumulate.
  expect_gradcheck(
      [](const std::vector<VarD>& v) {
        return slice(v[0], 1, 0, 2) * slice(v[0], 1, 1, 3) + slice(transpose(v[0], 0, 0), 1, 1, 3);
      },
      {x});
  expect_gradcheck(
      [](const std::vector<VarD>& v) {
        return concat<double, Cpu>({v[0], v[0]}, 0);
      },
      {w});
  // The attention head split: (B, T, H*D) -> (B, H, T, D) and back.
  expect_gradcheck(
      [](const std::vector<VarD>& v) {
        const VarD h = transpose(reshape(v[0], {2, 3, 2, 2}), 1, 2);  // (B, H, T, D)
        return reshape(transpose(h * h, 1, 2), {2, 3, 4});
      },
      {x});
}

TEST(ShapeOps, FloatAgreesWithDouble) {
  Generator gen(4);
  VarF x(TensorF::normal({3, 4, 5}, gen));
  const VarD xd(to_double(x.data()));
  expect_close(permute(slice(x, 1, 1, 4), {2, 0, 1}).data().to_vector(),
               permute(slice(xd, 1, 1, 4), {2, 0, 1}).data().to_vector(), 0);
}

TEST(ShapeOps, ErrorsNameOpAndShapes) {
  VarD x(TensorD::zeros({2, 3, 4}));
  expect_error([&] { (void)permute(x, {0, 1}); }, {"permute", "(0, 1)", "(2, 3, 4)"});
  expect_error([&] { (void)permute(x, {0, 1, 1}); }, {"permute", "(0, 1, 1)", "not a permutation"});
  expect_error([&] { (void)permute(x, {0, 1, 3}); }, {"permute", "(0, 1, 3)"});
  expect_error([&] { (void)transpose(x, 0, 3); }, {"transpose", "axis 3", "(2, 3, 4)"});
  expect_error([&] { (void)slice(x, 1, 2, 5); },
               {"slice", "[2, 5)", "axis 1 of size 3", "(2, 3, 4)"});
  expect_error([&] { (void)slice(x, 1, 2, 1); }, {"slice", "[2, 1)"});
  expect_error([&] { (void)slice(x, 3, 0, 1); }, {"slice", "axis 3"});
  expect_error([&] { (void)concat<double, Cpu>({}, 0); }, {"concat", "at least one"});
  VarD y(TensorD::zeros({2, 5, 5}));
  expect_error(
      [&] {
        (void)concat<double, Cpu>({x, y}, 1);
      },
      {"concat", "input 1 has shape (2, 5, 5)", "(2, 3, 4)", "axis 1"});
}

}  // namespace
}  // namespace normlab::testing
