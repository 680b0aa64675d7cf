#include "testing.hpp"

namespace normlab::testing {
namespace {

TEST(Shape, NumelStridesAndAxes) {
  Shape s{2, 3, 4};
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.ndim(), 3);
  EXPECT_EQ(s.size(-1), 4);
  EXPECT_EQ(contiguous_strides(s), (std::vector<int64_t>{12, 4, 1}));
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_EQ(s.to_string(), "(2, 3, 4)");
  EXPECT_EQ(Shape{5}.to_string(), "(5,)");
  expect_error([&] { (void)s.size(3); }, {"size", "axis 3", "(2, 3, 4)"});
  expect_error([] { Shape bad{2, -1}; }, {"Shape", ">= 0"});
}

TEST(Shape, BroadcastFollowsNumpyRules) {
  EXPECT_EQ(broadcast_shapes("t", Shape{4, 1, 3}, Shape{5, 1}), (Shape{4, 5, 3}));
  EXPECT_EQ(broadcast_shapes("t", Shape{}, Shape{2, 2}), (Shape{2, 2}));
  expect_error(
      [] {
        broadcast_shapes("add", Shape{2, 3}, Shape{4});
      },
      {"add", "(2, 3)", "(4,)", "cannot be broadcast"});
}

TEST(Tensor, FactoriesAndToVector) {
  EXPECT_EQ(TensorF::zeros({2, 2}).to_vector(), (std::vector<float>{0, 0, 0, 0}));
  EXPECT_EQ(TensorD::ones({3}).to_vector(), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(TensorF::full({2}, 2.5f).to_vector(), (std::vector<float>{2.5f, 2.5f}));
  EXPECT_EQ(TensorD::arange(1, 2, 0.25).to_vector(), (std::vector<double>{1, 1.25, 1.5, 1.75}));
  EXPECT_EQ(TensorI::arange(5, 0, -2).to_vector(), (std::vector<int64_t>{5, 3, 1}));
  auto m = TensorF::from({{1, 2, 3}, {4, 5, 6}});
  EXPECT_EQ(m.shape(), (Shape{2, 3}));
  EXPECT_EQ(m.to_vector(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(TensorD::scalar(7).item(), 7);
  expect_error(
      [] {
        TensorF::from_vector({2, 2}, {1, 2, 3});
      },
      {"from_vector", "(2, 2)", "4", "3"});
  expect_error([] { TensorF::from({{1, 2}, {3}}); }, {"same length", "2", "1"});
  expect_error([&] { (void)m.item(); }, {"item", "(2, 3)"});
}

TEST(Tensor, ReshapeIsAViewCloneIsACopy) {
  auto a = TensorF::from({{1, 2, 3}, {4, 5, 6}});
  auto v = a.reshape({3, -1});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  EXPECT_TRUE(v.shares_storage_with(a));
  v.fill_(9);
  EXPECT_EQ(a.to_vector(), (std::vector<float>(6, 9)));
  auto c = a.clone();
  EXPECT_FALSE(c.shares_storage_with(a));
  c.fill_(1);
  EXPECT_EQ(a.to_vector()[0], 9);
  expect_error([&] { a.reshape({4, 2}); }, {"reshape", "(2, 3)", "(4, 2)"});
  expect_error([&] { a.reshape({-1, -1}); }, {"reshape", "-1"});
  expect_error([&] { a.reshape({4, -1}); }, {"reshape", "-1", "(2, 3)"});
  expect_error([&] { c.copy_from(TensorF::zeros({6})); }, {"copy_from", "(2, 3)", "(6,)"});
}

TEST(Tensor, RowsIsAViewOfARangeOfRows) {
  const TensorI t = TensorI::from_vector({4, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  const TensorI mid = t.rows(1, 2);
  EXPECT_EQ(mid.shape(), (Shape{2, 3}));
  EXPECT_EQ(mid.to_vector(), (std::vector<int64_t>{3, 4, 5, 6, 7, 8}));
  EXPECT_TRUE(mid.shares_storage_with(t));
  EXPECT_EQ(t.rows(3, 1).rows(0, 1).to_vector(), (std::vector<int64_t>{9, 10, 11}));
  EXPECT_EQ(t.rows(4, 0).shape(), (Shape{0, 3}));
  EXPECT_EQ(TensorD::from({1, 2, 3}).rows(2, 1).to_vector(), std::vector<double>{3});
  expect_error([&] { (void)t.rows(3, 2); }, {"rows: range [3, 3 + 2)", "[0, 4)", "(4, 3)"});
  expect_error([&] { (void)t.rows(-1, 1); }, {"rows: range [-1"});
  expect_error([&] { (void)TensorD::scalar(1).rows(0, 1); }, {"has no rows"});
}

TEST(Tensor, PrintsShapeDtypeAndValues) {
  std::ostringstream os;
  os << TensorF::from({{1, 2}, {3, 4}});
  EXPECT_EQ(os.str(), "Tensor(shape=(2, 2), dtype=float32, backend=cpu)\n[[1, 2],\n [3, 4]]");
  std::ostringstream os2;
  os2 << TensorI::arange(0, 10);
  EXPECT_NE(os2.str().find("[0, 1, 2, ..., 7, 8, 9]"), std::string::npos) << os2.str();
}

// Known-answer vectors published with Random123 (Salmon et al. 2011).
TEST(Philox, MatchesPublishedKnownAnswers) {
  auto eq = [](PhiloxBlock b, std::array<uint32_t, 4> want) {
    for (int i = 0; i < 4; ++i) EXPECT_EQ(b.w[i], want[static_cast<size_t>(i)]) << "word " << i;
  };
  eq(philox4x32_10({{0, 0, 0, 0}}, 0), {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  eq(philox4x32_10({{~0u, ~0u, ~0u, ~0u}}, ~0ull),
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  eq(philox4x32_10({{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
                   uint64_t{0x299f31d0} << 32 | 0xa4093822),
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

TEST(Philox, SameSeedSameNumbersAndSuccessiveFillsDiffer) {
  Generator g1(7), g2(7), g3(8);
  auto a = TensorF::normal({1000}, g1).to_vector();
  EXPECT_EQ(a, TensorF::normal({1000}, g2).to_vector());
  EXPECT_NE(a, TensorF::normal({1000}, g3).to_vector());
  EXPECT_NE(a, TensorF::normal({1000}, g1).to_vector());  // the generator advanced
}

TEST(Philox, ValuesDoNotDependOnThreadCountOrSplitting) {
  const ThreadCountGuard threads(2);
  // Element i of a fill depends only on (seed, first block, i): a fill of 10
  // elements equals the first 10 of a fill of 100000 (which runs threaded).
  Generator g1(3), g2(3);
  auto big = TensorD::uniform({100000}, g1).to_vector();
  auto small = TensorD::uniform({10}, g2).to_vector();
  EXPECT_TRUE(std::equal(small.begin(), small.end(), big.begin()));
}

TEST(Philox, MomentsAreThoseOfTheDistributions) {
  Generator g(11);
  for (auto v : {TensorD::normal({200000}, g, 1.0, 2.0).to_vector()}) {
    double m = 0, s = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    for (double x : v) s += (x - m) * (x - m);
    s = std::sqrt(s / static_cast<double>(v.size()));
    EXPECT_NEAR(m, 1.0, 0.02);
    EXPECT_NEAR(s, 2.0, 0.02);
  }
  auto u = TensorF::uniform({200000}, g, -1.f, 3.f).to_vector();
  double m = 0, lo = 1e9, hi = -1e9;
  for (float x : u) {
    m += x;
    lo = std::min(lo, double(x));
    hi = std::max(hi, double(x));
  }
  EXPECT_NEAR(m / static_cast<double>(u.size()), 1.0, 0.02);
  EXPECT_GE(lo, -1.0);
  EXPECT_LT(hi, 3.0);
}

TEST(Shape, SizesFromInputCannotOverflow) {
  // A product of dims past int64 is refused before anything asks numel().
  expect_error(
      [] {
        (void)Shape({int64_t(1) << 40, int64_t(1) << 40});
      },
      {"Shape: (1099511627776, 1099511627776) has more elements than an int64 can count"});
  EXPECT_EQ((Shape{int64_t(1) << 31, int64_t(1) << 31}).numel(), int64_t(1) << 62);
  // Elements that fit an int64 but whose bytes do not fit a size_t: an Error,
  // not a wrapped size and a small block.
  expect_error([] { (void)TensorD::zeros({int64_t(1) << 62}); },
               {"Storage: 4611686018427387904 elements of 8 bytes do not fit the address space"});
}

}  // namespace
}  // namespace normlab::testing
