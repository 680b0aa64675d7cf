// matmul: values for every transpose flag and batch layout, gradients, errors.
#include "testing.hpp"

namespace normlab::testing {
namespace {

/// Reference C = op(A) op(B) for one (M, K) x (K, N) product, straight from
/// the definition, on stored row-major matrices.
std::vector<double> naive_matmul(const std::vector<double>& a, const std::vector<double>& b,
                                 int64_t M, int64_t N, int64_t K, bool ta, bool tb) {
  std::vector<double> c(static_cast<size_t>(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double x = ta ? a[static_cast<size_t>(k * M + i)] : a[static_cast<size_t>(i * K + k)];
        const double y = tb ? b[static_cast<size_t>(j * K + k)] : b[static_cast<size_t>(k * N + j)];
        acc += x * y;
      }
      c[static_cast<size_t>(i * N + j)] = acc;
    }
  return c;
}

TEST(Matmul, HandComputed2D) {
  VarD a(TensorD::from({{1, 2, 3}, {4, 5, 6}}));       // (2, 3)
  VarD b(TensorD::from({{7, 8}, {9, 10}, {11, 12}}));  // (3, 2)
  const VarD c = matmul(a, b);
  EXPECT_EQ(c.shape(), (Shape{2, 2}));
  EXPECT_EQ(c.data().to_vector(), (std::vector<double>{58, 64, 139, 154}));
  // a^T a: (3, 2) x (2, 3) without a transposed copy.
  EXPECT_EQ(matmul(a, a, true, false).data().to_vector(),
            (std::vector<double>{17, 22, 27, 22, 29, 36, 27, 36, 45}));
  // a a^T: (2, 3) x (3, 2).
  EXPECT_EQ(matmul(a, a, false, true).data().to_vector(), (std::vector<double>{14, 32, 32, 77}));
}

TEST(Matmul, EveryTransposeFlagMatchesTheDefinition) {
  const int64_t M = 5, N = 4, K = 6;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const VarD a = random_var(ta ? Shape{K, M} : Shape{M, K}, 10);
      const VarD b = random_var(tb ? Shape{N, K} : Shape{K, N}, 11);
      const VarD c = matmul(a, b, ta, tb);
      EXPECT_EQ(c.shape(), (Shape{M, N}));
      expect_close(c.data().to_vector(),
                   naive_matmul(a.data().to_vector(), b.data().to_vector(), M, N, K, ta, tb),
                   1e-12);
    }
}

TEST(Matmul, BatchedAndSharedOperands) {
  // (2, 3, 4, 5) x (2, 3, 5, 6): a batch of 6 products.
  const VarD a = random_var({2, 3, 4, 5}, 1), b = random_var({2, 3, 5, 6}, 2);
  const VarD c = matmul(a, b);
  ASSERT_EQ(c.shape(), (Shape{2, 3, 4, 6}));
  const auto av = a.data().to_vector(), bv = b.data().to_vector(), cv = c.data().to_vector();
  for (int p = 0; p < 6; ++p) {
    const std::vector<double> ap(av.begin() + p * 20, av.begin() + (p + 1) * 20);
    const std::vector<double> bp(bv.begin() + p * 30, bv.begin() + (p + 1) * 30);
    const std::vector<double> cp(cv.begin() + p * 24, cv.begin() + (p + 1) * 24);
    expect_close(cp, naive_matmul(ap, bp, 4, 6, 5, false, false), 1e-12);
  }
  // (3, 4, 5) x shared (5, 6) and shared (4, 5) x (3, 5, 6).
  const VarD x = random_var({3, 4, 5}, 3), w = random_var({5, 6}, 4);
  const auto xv = x.data().to_vector(), wv = w.data().to_vector();
  const auto xw = matmul(x, w).data().to_vector();
  expect_close(xw, naive_matmul(xv, wv, 12, 6, 5, false, false), 1e-12);  // rows stacked
  const VarD m = random_var({4, 5}, 5), y = random_var({3, 5, 6}, 6);
  const auto my = matmul(m, y).data().to_vector(), mv = m.data().to_vector(),
             yv = y.data().to_vector();
  for (int p = 0; p < 3; ++p) {
    const std::vector<double> yp(yv.begin() + p * 30, yv.begin() + (p + 1) * 30);
    const std::vector<double> cp(my.begin() + p * 24, my.begin() + (p + 1) * 24);
    expect_close(cp, naive_matmul(mv, yp, 4, 6, 5, false, false), 1e-12);
  }
}

TEST(Matmul, GradcheckEveryLayout) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "trans_a " << ta << " trans_b " << tb);
      auto f = [ta, tb](const std::vector<VarD>& v) { return matmul(v[0], v[1], ta, tb); };
      // 2-D.
      expect_gradcheck(f, {random_var(ta ? Shape{4, 3} : Shape{3, 4}, 1),
                           random_var(tb ? Shape{5, 4} : Shape{4, 5}, 2)});
      // Batched 3-D and 4-D.
      expect_gradcheck(f, {random_var(ta ? Shape{2, 4, 3} : Shape{2, 3, 4}, 3),
                           random_var(tb ? Shape{2, 5, 4} : Shape{2, 4, 5}, 4)});
      expect_gradcheck(f, {random_var(ta ? Shape{2, 2, 4, 3} : Shape{2, 2, 3, 4}, 5),
                           random_var(tb ? Shape{2, 2, 5, 4} : Shape{2, 2, 4, 5}, 6)});
      // A shared weight on either side: its gradient sums over the batch.
      expect_gradcheck(f, {random_var(ta ? Shape{2, 3, 4, 3} : Shape{2, 3, 3, 4}, 7),
                           random_var(tb ? Shape{5, 4} : Shape{4, 5}, 8)});
      expect_gradcheck(f, {random_var(ta ? Shape{4, 3} : Shape{3, 4}, 9),
                           random_var(tb ? Shape{3, 5, 4} : Shape{3, 4, 5}, 10)});
    }
}

TEST(Matmul, OperandUsedTwiceAndGradientAccumulation) {
  // x x^T uses x on both sides.
  expect_gradcheck([](const std::vector<VarD>& v) { return matmul(v[0], v[0], false, true); },
                   {random_var({3, 4}, 12)});
  // Two backward passes add up: d/dW of sum(x W) is x^T 1, twice.
  VarD x(TensorD::from({{1, 2}, {3, 4}})), w(TensorD::from({{1, 0}, {0, 1}}), true);
  matmul(x, w).backward(TensorD::ones({2, 2}));
  matmul(x, w).backward(TensorD::ones({2, 2}));
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{8, 8, 12, 12}));
}

TEST(Matmul, LargeProductUsesTheParallelPathCorrectly) {
  // Big enough for Eigen's threaded GEMM and the batched threading.
  const ThreadCountGuard threads(2);
  Generator gen(21);
  VarD a(TensorD::normal({8, 64, 96}, gen)), b(TensorD::normal({8, 96, 80}, gen));
  const auto c = matmul(a, b).data().to_vector();
  const auto av = a.data().to_vector(), bv = b.data().to_vector();
  const std::vector<double> a7(av.begin() + 7 * 64 * 96, av.end());
  const std::vector<double> b7(bv.begin() + 7 * 96 * 80, bv.end());
  const std::vector<double> c7(c.begin() + 7 * 64 * 80, c.end());
  expect_close(c7, naive_matmul(a7, b7, 64, 80, 96, false, false), 1e-12);
}

TEST(Matmul, OneLargeProductSplitsItsRowsOverThreads) {
  // Above kGemmParallelWork multiply-adds: C's rows are split over the threads.
  const ThreadCountGuard threads(2);
  const int64_t M = 300, N = 260, K = 240;
  ASSERT_GE(M * N * K, cpu::kGemmParallelWork);
  for (bool ta : {false, true}) {
    const VarD a = random_var(ta ? Shape{K, M} : Shape{M, K}, 31);
    const VarD b = random_var({K, N}, 32);
    expect_close(matmul(a, b, ta, false).data().to_vector(),
                 naive_matmul(a.data().to_vector(), b.data().to_vector(), M, N, K, ta, false),
                 1e-12);
  }
}

TEST(Matmul, EmptyInnerDimensionGivesZeros) {
  VarD a(TensorD::zeros({2, 0}), true), b(TensorD::zeros({0, 3}), true);
  const VarD c = matmul(a, b);
  EXPECT_EQ(c.data().to_vector(), std::vector<double>(6, 0.0));
  c.backward(TensorD::ones({2, 3}));
  EXPECT_EQ(a.grad().numel(), 0);
}

TEST(Matmul, FloatAgreesWithDouble) {
  Generator gen(31);
  VarF a(TensorF::normal({4, 16, 32}, gen)), b(TensorF::normal({32, 24}, gen));
  const VarD ad(to_double(a.data())), bd(to_double(b.data()));
  expect_close(matmul(a, b, false, false).data().to_vector(), matmul(ad, bd).data().to_vector(),
               1e-5);
}

TEST(Matmul, ErrorsNameShapesAndFlags) {
  VarD a(TensorD::zeros({2, 3})), b(TensorD::zeros({4, 5})), v(TensorD::zeros({3}));
  expect_error([&] { (void)matmul(a, b); },
               {"matmul", "inner sizes differ (3 vs 4)", "(2, 3)", "(4, 5)"});
  expect_error([&] { (void)matmul(a, b, true, false); }, {"matmul", "(2 vs 4)", "(2, 3)^T"});
  expect_error([&] { (void)matmul(a, v); }, {"matmul", "at least 2 dims", "(3,)"});
  VarD x(TensorD::zeros({2, 2, 3})), y(TensorD::zeros({3, 3, 4}));
  expect_error([&] { (void)matmul(x, y); }, {"matmul", "batch dims", "(2, 2, 3)", "(3, 3, 4)"});
}

}  // namespace
}  // namespace normlab::testing
