// layer_norm and rms_norm: values, gradients, parameter-gradient reduction, errors.
#include <omp.h>

#include <cmath>

#include "testing.hpp"

namespace normlab::testing {
namespace {

// The slow, obviously-correct references: row by row in double, two-pass variance.
std::vector<double> reference_layer_norm(const std::vector<double>& x, const std::vector<double>& w,
                                         const std::vector<double>& b, int64_t C, double eps) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / C; ++r) {
    const double* xr = x.data() + r * C;
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += xr[c] / C;
    for (int64_t c = 0; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean) / C;
    for (int64_t c = 0; c < C; ++c)
      y[r * C + c] = (xr[c] - mean) / std::sqrt(var + eps) * w[c] + b[c];
  }
  return y;
}

std::vector<double> reference_rms_norm(const std::vector<double>& x, const std::vector<double>& w,
                                       int64_t C, double eps) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / C; ++r) {
    const double* xr = x.data() + r * C;
    double ms = 0;
    for (int64_t c = 0; c < C; ++c) ms += xr[c] * xr[c] / C;
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = xr[c] / std::sqrt(ms + eps) * w[c];
  }
  return y;
}

TEST(LayerNorm, ForwardKnownValues) {
  // Row [1, 2, 3, 4]: mean 2.5, biased variance 1.25. Row [2, 2, 2, 2]: variance 0, so y = bias.
  VarD x(TensorD::from({{1, 2, 3, 4}, {2, 2, 2, 2}}));
  VarD x0(TensorD::from({1, 2, 3, 4}));
  const double s = 1 / std::sqrt(1.25);  // eps = 0
  expect_close(layer_norm(x0, {}, {}, 0.0).data().to_vector(),
               {-1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s}, 1e-15);
  expect_close(layer_norm(x0, {}, {}, 0.0).data().to_vector(),
               {-1.3416407864998738, -0.4472135954999579, 0.4472135954999579, 1.3416407864998738},
               1e-15);
  VarD w(TensorD::from({1, 2, -1, 0.5})), b(TensorD::from({0.5, 0, 1, -2}));
  const double t = 1 / std::sqrt(1.25 + 1e-5);  // the default eps
  expect_close(layer_norm(x, w, b).data().to_vector(),
               {-1.5 * t + 0.5, -1.0 * t, -0.5 * t + 1, 0.75 * t - 2, 0.5, 0, 1, -2}, 1e-15);
  expect_close(layer_norm(x, w, {}).data().to_vector(),
               {-1.5 * t, -1.0 * t, -0.5 * t, 0.75 * t, 0, 0, 0, 0}, 1e-15);
  expect_close(layer_norm(x, VarD(), b).data().to_vector(),
               {-1.5 * t + 0.5, -0.5 * t, 0.5 * t + 1, 1.5 * t - 2, 0.5, 0, 1, -2}, 1e-15);
}

TEST(LayerNorm, MatchesReferenceOnRandomInput) {
  const auto x = random_var({3, 4, 37}, 1, 2.0, 3.0);
  const auto w = random_var({37}, 2, 1.0, 0.5), b = random_var({37}, 3);
  expect_close(layer_norm(x, w, b, 1e-3).data().to_vector(),
               reference_layer_norm(x.data().to_vector(), w.data().to_vector(),
                                    b.data().to_vector(), 37, 1e-3),
               1e-13);
  EXPECT_EQ(layer_norm(x, w, b).shape(), (Shape{3, 4, 37}));
}

TEST(LayerNorm, TwoPassVarianceSurvivesALargeMean) {
  // A one-pass E[x^2] - E[x]^2 in float loses every digit here (1e4^2 ~ 1e8 vs a variance of
  // ~1; its error is ~1e3). The two-pass error is the float spacing of the mean near 1e4 (~1e-3).
  Generator gen(4);
  VarF xf(TensorF::normal({6, 64}, gen, 1e4f, 1.0f));
  const auto y = layer_norm(xf, {}, {}).data().to_vector();
  const auto ref =
      reference_layer_norm(to_double(xf.data()).to_vector(), std::vector<double>(64, 1.0),
                           std::vector<double>(64, 0.0), 64, 1e-5);
  expect_close(y, ref, 1e-3);
}

TEST(LayerNorm, Gradcheck) {
  const auto x = random_var({3, 4, 7}, 5);
  const auto w = random_var({7}, 6, 0.5, 1.0), b = random_var({7}, 7, -0.3, 1.0);
  expect_gradcheck([](const std::vector<VarD>& v) { return layer_norm(v[0], v[1], v[2]); },
                   {x, w, b});
  expect_gradcheck([](const std::vector<VarD>& v) { return layer_norm(v[0], {}, {}); }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return layer_norm(v[0], v[1], {}); }, {x, w});
  expect_gradcheck([](const std::vector<VarD>& v) { return layer_norm(v[0], {}, v[1], 0.1); },
                   {x, b});
  // Parameters only (x needs no gradient), and x only (frozen parameters).
  expect_gradcheck([](const std::vector<VarD>& v) { return layer_norm(v[0], v[1], v[2]); },
                   {x.detach(), w, b});
  expect_gradcheck([](const std::vector<VarD>& v) { return layer_norm(v[0], v[1], v[2]); },
                   {x, w.detach(), b.detach()});
  // x used twice: the two nodes' gradients add.
  expect_gradcheck(
      [](const std::vector<VarD>& v) {
        return layer_norm(v[0], v[1], v[2]) * layer_norm(v[0], v[1], {}) + v[0];
      },
      {x, w, b});
}

TEST(LayerNorm, ParameterGradientsOverManyChunksAreExactAndThreadCountIndependent) {
  // 5000 rows of C = 8: the dweight/dbias reduction runs over several chunks of rows.
  const int64_t rows = 5000, C = 8;
  auto x = random_var({rows, C}, 8, 1.0, 2.0);
  auto w = random_var({C}, 9, 1.0, 0.5), b = random_var({C}, 10);
  Generator gen(11);
  const TensorD up = TensorD::normal({rows, C}, gen);

  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    x.clear_grad();
    w.clear_grad();
    b.clear_grad();
    layer_norm(x, w, b).backward(up);
    omp_set_num_threads(saved);
    return std::vector<std::vector<double>>{x.grad().to_vector(), w.grad().to_vector(),
                                            b.grad().to_vector()};
  };
  const auto one = run(1), two = run(2), three = run(3);
  EXPECT_EQ(one, two);
  EXPECT_EQ(one, three);

  // dweight = sum_rows dy * xhat, dbias = sum_rows dy, summed naively in long double.
  const auto xv = x.data().to_vector(), dy = up.to_vector();
  std::vector<double> dw(C), db(C);
  for (int64_t c = 0; c < C; ++c) {
    long double sw = 0, sb = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      for (int64_t k = 0; k < C; ++k) mean += xv[r * C + k] / C;
      for (int64_t k = 0; k < C; ++k) var += (xv[r * C + k] - mean) * (xv[r * C + k] - mean) / C;
      sw += dy[r * C + c] * (xv[r * C + c] - mean) / std::sqrt(var + 1e-5);
      sb += dy[r * C + c];
    }
    dw[c] = static_cast<double>(sw);
    db[c] = static_cast<double>(sb);
  }
  expect_close(one[1], dw, 1e-12);
  expect_close(one[2], db, 1e-12);
}

TEST(LayerNorm, FloatAgreesWithDouble) {
  Generator gen(12);
  VarF xf(TensorF::normal({5, 3, 33}, gen, 0.5f, 2.0f), true);
  VarF wf(TensorF::normal({33}, gen, 1.0f, 0.5f), true), bf(TensorF::normal({33}, gen), true);
  VarD xd(to_double(xf.data()), true), wd(to_double(wf.data()), true),
      bd(to_double(bf.data()), true);
  const TensorF upf = TensorF::normal({5, 3, 33}, gen);
  const TensorD upd = to_double(upf);
  VarF yf = layer_norm(xf, wf, bf);
  VarD yd = layer_norm(xd, wd, bd);
  expect_close(yf.data().to_vector(), yd.data().to_vector(), 1e-5);
  yf.backward(upf);
  yd.backward(upd);
  expect_close(xf.grad().to_vector(), xd.grad().to_vector(), 1e-5);
  expect_close(wf.grad().to_vector(), wd.grad().to_vector(), 1e-5);
  expect_close(bf.grad().to_vector(), bd.grad().to_vector(), 1e-5);
}

TEST(LayerNorm, EmptyRowsAreFine) {
  VarD x(TensorD::zeros({0, 4}), true), w(TensorD::ones({4}), true), b(TensorD::zeros({4}), true);
  VarD y = layer_norm(x, w, b);
  EXPECT_EQ(y.shape(), (Shape{0, 4}));
  y.backward(TensorD::zeros({0, 4}));
  EXPECT_EQ(x.grad().numel(), 0);
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{0, 0, 0, 0}));
  EXPECT_EQ(b.grad().to_vector(), (std::vector<double>{0, 0, 0, 0}));
}

TEST(LayerNorm, ErrorsNameOpAndShapes) {
  VarD x(TensorD::zeros({2, 8}));
  expect_error([&] { (void)layer_norm(x, VarD(TensorD::ones({7})), {}); },
               {"layer_norm", "weight", "(7,)", "8", "(2, 8)"});
  expect_error(
      [&] {
        (void)layer_norm(x, {}, VarD(TensorD::ones({2, 8})));
      },
      {"layer_norm", "bias", "(2, 8)", "(8,)"});
  expect_error([&] { (void)layer_norm(VarD(TensorD::scalar(1)), {}, {}); },
               {"layer_norm", "0 dims", "()"});
  expect_error(
      [&] {
        (void)layer_norm(VarD(TensorD::zeros({3, 0})), {}, {});
      },
      {"layer_norm", "(3, 0)", "empty last axis"});
  expect_error([&] { (void)layer_norm(x, {}, {}, -1.0); }, {"layer_norm", "eps", "-1"});
  expect_error([&] { (void)layer_norm(VarD(), {}, {}); }, {"layer_norm", "undefined"});
}

TEST(RmsNorm, ForwardKnownValues) {
  // Row [1, 2, 3, 4]: mean of squares 7.5.
  VarD x(TensorD::from({{1, 2, 3, 4}, {0, 0, 0, 0}}));
  const double s = 1 / std::sqrt(7.5);
  expect_close(rms_norm(VarD(TensorD::from({1, 2, 3, 4})), {}, 0.0).data().to_vector(),
               {s, 2 * s, 3 * s, 4 * s}, 1e-15);
  VarD w(TensorD::from({2, -1, 0.5, 1}));
  const double t = 1 / std::sqrt(7.5 + 1e-6);  // the default eps
  // A zero row stays zero (rstd = 1/sqrt(eps) is finite).
  expect_close(rms_norm(x, w).data().to_vector(), {2 * t, -2 * t, 1.5 * t, 4 * t, 0, 0, 0, 0},
               1e-15);
}

TEST(RmsNorm, MatchesReferenceOnRandomInput) {
  const auto x = random_var({4, 3, 29}, 13, 1.0, 2.0);
  const auto w = random_var({29}, 14, 1.0, 0.5);
  expect_close(rms_norm(x, w, 1e-4).data().to_vector(),
               reference_rms_norm(x.data().to_vector(), w.data().to_vector(), 29, 1e-4), 1e-13);
}

TEST(RmsNorm, Gradcheck) {
  const auto x = random_var({3, 4, 7}, 15);
  const auto w = random_var({7}, 16, 0.5, 1.0);
  expect_gradcheck([](const std::vector<VarD>& v) { return rms_norm(v[0], v[1]); }, {x, w});
  expect_gradcheck([](const std::vector<VarD>& v) { return rms_norm(v[0], {}, 0.1); }, {x});
  expect_gradcheck([](const std::vector<VarD>& v) { return rms_norm(v[0], v[1]); },
                   {x.detach(), w});
  expect_gradcheck(
      [](const std::vector<VarD>& v) { return rms_norm(v[0], v[1]) * rms_norm(v[0], {}); }, {x, w});
}

TEST(RmsNorm, ParameterGradientIsThreadCountIndependent) {
  const auto x = random_var({3000, 16}, 17);
  auto w = random_var({16}, 18, 1.0, 0.5);
  Generator gen(19);
  const TensorD up = TensorD::normal({3000, 16}, gen);
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    w.clear_grad();
    rms_norm(x.detach(), w).backward(up);
    omp_set_num_threads(saved);
    return w.grad().to_vector();
  };
  const auto one = run(1);
  EXPECT_EQ(one, run(2));
  EXPECT_EQ(one, run(3));
  const auto xv = x.data().to_vector(), dy = up.to_vector();
  std::vector<double> dw(16);
  for (int64_t c = 0; c < 16; ++c) {
    long double s = 0;
    for (int64_t r = 0; r < 3000; ++r) {
      double ms = 0;
      for (int64_t k = 0; k < 16; ++k) ms += xv[r * 16 + k] * xv[r * 16 + k] / 16;
      s += dy[r * 16 + c] * xv[r * 16 + c] / std::sqrt(ms + 1e-6);
    }
    dw[c] = static_cast<double>(s);
  }
  expect_close(one, dw, 1e-12);
}

TEST(RmsNorm, FloatAgreesWithDouble) {
  Generator gen(20);
  VarF xf(TensorF::normal({6, 41}, gen, 0.5f, 2.0f), true), wf(TensorF::normal({41}, gen), true);
  VarD xd(to_double(xf.data()), true), wd(to_double(wf.data()), true);
  const TensorF upf = TensorF::normal({6, 41}, gen);
  VarF yf = rms_norm(xf, wf);
  VarD yd = rms_norm(xd, wd);
  expect_close(yf.data().to_vector(), yd.data().to_vector(), 1e-5);
  yf.backward(upf);
  yd.backward(to_double(upf));
  expect_close(xf.grad().to_vector(), xd.grad().to_vector(), 1e-5);
  expect_close(wf.grad().to_vector(), wd.grad().to_vector(), 1e-5);
}

TEST(RmsNorm, ErrorsNameOpAndShapes) {
  VarD x(TensorD::zeros({2, 8}));
  expect_error([&] { (void)rms_norm(x, VarD(TensorD::ones({7}))); },
               {"rms_norm", "weight", "(7,)", "8", "(2, 8)"});
  expect_error([&] { (void)rms_norm(VarD(TensorD::scalar(1)), {}); }, {"rms_norm", "0 dims"});
  expect_error([&] { (void)rms_norm(VarD(TensorD::zeros({0})), {}); },
               {"rms_norm", "(0,)", "empty last axis"});
  expect_error([&] { (void)rms_norm(x, {}, -1e-3); }, {"rms_norm", "eps"});
}

}  // namespace
}  // namespace normlab::testing
