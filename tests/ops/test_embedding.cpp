// embedding: rows picked, scatter-add gradient with repeated indices, errors.
#include "testing.hpp"

namespace normlab::testing {
namespace {

// weight[v, c] = 10 v + c: a row's values name it.
TensorD numbered_weight(int64_t v, int64_t c) {
  std::vector<double> w;
  for (int64_t i = 0; i < v; ++i)
    for (int64_t j = 0; j < c; ++j) w.push_back(static_cast<double>(10 * i + j));
  return TensorD::from_vector({v, c}, w);
}

TEST(Embedding, ForwardPicksRows) {
  VarD w(numbered_weight(4, 3));                                   // (4, 3)
  const TensorI idx = TensorI::from_vector({2, 2}, {3, 0, 3, 1});  // (2, 2)
  const VarD out = embedding(idx, w);
  EXPECT_EQ(out.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(out.data().to_vector(),
            (std::vector<double>{30, 31, 32, 0, 1, 2, 30, 31, 32, 10, 11, 12}));
  // A 0-d index gives one row of shape (C,); an empty index tensor gives (0, C).
  EXPECT_EQ(embedding(TensorI::scalar(2), w).data().to_vector(), (std::vector<double>{20, 21, 22}));
  EXPECT_EQ(embedding(TensorI::zeros({0}), w).shape(), (Shape{0, 3}));
}

TEST(Embedding, BackwardScatterAddsRepeatedIndices) {
  VarD w(TensorD::zeros({4, 2}), true);
  const VarD out = embedding(TensorI::from({3, 0, 3, 3}), w);  // (4, 2)
  out.backward(TensorD::from({{1, 2}, {3, 4}, {5, 6}, {7, 8}}));
  // Row 3 was used three times: the sum of rows 0, 2 and 3 of dout; rows 1 and 2 unused.
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{3, 4, 0, 0, 0, 0, 13, 16}));
}

TEST(Embedding, GradcheckWithRepeatedIndices) {
  const TensorI idx = TensorI::from_vector({2, 3}, {1, 4, 1, 0, 1, 4});
  expect_gradcheck([&](const std::vector<VarD>& v) { return embedding(idx, v[0]); },
                   {random_var({5, 4}, 41)});
  // Used twice in one graph: the two lookups' gradients add up.
  expect_gradcheck(
      [&](const std::vector<VarD>& v) {
        return embedding(idx, v[0]) *
               embedding(TensorI::from_vector({2, 3}, {4, 4, 2, 1, 0, 3}), v[0]);
      },
      {random_var({5, 4}, 42)});
}

TEST(Embedding, PaddingIdxLookupsAddNoGradientOtherUsesStill) {
  VarD w(TensorD::zeros({4, 2}), true);
  // Row 3 is the padding row: its two lookups add nothing; row 0 gets its lookup.
  const VarD looked_up = embedding(TensorI::from({3, 0, 3}), w, int64_t{3});  // (3, 2)
  // A second use of the weight (as a tied output projection would be) still reaches row 3.
  const VarD out = sum(looked_up * VarD(TensorD::from({{1, 2}, {3, 4}, {5, 6}}))) +
                   sum(w * VarD(TensorD::from({{0, 0}, {0, 0}, {0, 0}, {100, 200}})));
  out.backward();
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{3, 4, 0, 0, 0, 0, 100, 200}));
  // Without padding_idx the same lookups reach row 3: 1 + 5 and 2 + 6.
  VarD u(TensorD::zeros({4, 2}), true);
  embedding(TensorI::from({3, 0, 3}), u).backward(TensorD::from({{1, 2}, {3, 4}, {5, 6}}));
  EXPECT_EQ(u.grad().to_vector(), (std::vector<double>{3, 4, 0, 0, 0, 0, 6, 8}));
  // The forward pass is the plain lookup either way.
  VarD n(numbered_weight(4, 3));
  EXPECT_EQ(embedding(TensorI::from({3, 1}), n, int64_t{3}).data().to_vector(),
            embedding(TensorI::from({3, 1}), n).data().to_vector());
}

TEST(Embedding, PaddingIdxOutsideTheTableIsAnError) {
  VarD w(TensorD::zeros({4, 2}), true);
  expect_error([&] { (void)embedding(TensorI::from({0}), w, int64_t{4}); },
               {"embedding: padding_idx 4 is outside [0, 4)"});
  expect_error([&] { (void)embedding(TensorI::from({0}), w, int64_t{-1}); },
               {"embedding: padding_idx -1 is outside [0, 4)"});
}

TEST(EmbeddingModule, PaddingRowStartsAtZero) {
  Generator gen(5);
  const Embedding<double, Cpu> e(6, 3, gen, ParamKind::token_embedding, int64_t{2});
  const std::vector<double> w = e.weight.data().to_vector();
  for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(w[static_cast<size_t>(2 * 3 + j)], 0.0);
  for (int64_t j = 0; j < 3; ++j) EXPECT_NE(w[static_cast<size_t>(1 * 3 + j)], 0.0);
  expect_error([&] { Embedding<double, Cpu>(6, 3, gen, ParamKind::token_embedding, int64_t{6}); },
               {"Embedding: padding_idx 6 is outside [0, 6)"});
}

TEST(EmbeddingKernel, ParallelScatterAddMatchesSerialReference) {
  const ThreadCountGuard threads(2);
  // n * c above the parallel grain, c spanning several column blocks, many repeats.
  constexpr int64_t v = 7, c = 150, n = 300;
  Generator gen(43);
  const TensorD dout = TensorD::normal({n, c}, gen);
  std::vector<int64_t> iv;
  for (int64_t i = 0; i < n; ++i) iv.push_back((i * i + 3) % v);
  const TensorI idx = TensorI::from_vector({n}, iv);
  TensorD dw = TensorD::zeros({v, c});
  cpu::embedding_backward(Cpu{}, dw.data(), dout.data(), idx.data(), n, c);
  // Serial reference, summed in the same (row) order: bit-identical.
  const auto g = dout.to_vector();
  std::vector<double> ref(static_cast<size_t>(v * c), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) ref[static_cast<size_t>(iv[i] * c + j)] += g[i * c + j];
  EXPECT_EQ(dw.to_vector(), ref);

  TensorD out(Shape{n, c});
  const TensorD w = TensorD::normal({v, c}, gen);
  cpu::embedding_forward(Cpu{}, out.data(), w.data(), idx.data(), n, c);
  const auto wv = w.to_vector(), ov = out.to_vector();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) ASSERT_EQ(ov[i * c + j], wv[iv[i] * c + j]);
}

TEST(Embedding, FloatWeights) {
  VarF w(TensorF::from({{1.5f, -2.f}, {0.25f, 4.f}}), true);
  const VarF out = embedding(TensorI::from({1, 1, 0}), w);
  EXPECT_EQ(out.data().to_vector(), (std::vector<float>{0.25f, 4.f, 0.25f, 4.f, 1.5f, -2.f}));
  out.backward(TensorF::ones({3, 2}));
  EXPECT_EQ(w.grad().to_vector(), (std::vector<float>{1, 1, 2, 2}));
}

TEST(Embedding, ErrorsNameTheIndexItsPositionAndV) {
  VarD w(TensorD::zeros({10, 4}));
  expect_error(
      [&] {
        (void)embedding(TensorI::from({0, 1, 2, 12}), w);
      },
      {"embedding", "index 12 out of range [0, 10)", "at position 3"});
  expect_error(
      [&] {
        (void)embedding(TensorI::from_vector({2, 2}, {0, 1, -1, 2}), w);
      },
      {"embedding", "index -1 out of range [0, 10)", "at position (1, 0)", "indices shape (2, 2)"});
  expect_error([&] { (void)embedding(TensorI::from({0}), VarD(TensorD::zeros({6}))); },
               {"embedding", "weight must be 2-D", "(6,)"});
  expect_error(
      [&] {
        (void)embedding(TensorI::from({0}), VarD(TensorD::zeros({2, 3, 4})));
      },
      {"embedding", "weight must be 2-D", "(2, 3, 4)"});
  expect_error(
      [&] {
        (void)embedding(TensorI::zeros({1, 1, 1, 1, 1, 1, 1, 1}), w);
      },
      {"embedding", "(1, 1, 1, 1, 1, 1, 1, 1)", "more than 8 dims"});
}

}  // namespace
}  // namespace normlab::testing
