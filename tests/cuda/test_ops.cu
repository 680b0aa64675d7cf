// Every op on the CUDA backend against the CPU backend (float, forward and
// backward, relative error 1e-4), every custom kernel against its reference
// kernel (reference.cuh) and against the CPU kernel, GEMM in all transpose and
// batching forms, and the fused optimizer steps.
#include <cstring>
#include <functional>

#include <normlab/backend/cuda/reference.cuh>

#include "cuda_testing.cuh"

namespace normlab::testing {
namespace {

using VarG = Variable<float, Cuda>;
using TensorG = Tensor<float, Cuda>;

constexpr double kRel = 1e-4;  // CUDA vs CPU, float

// ---- index plans (host code: no GPU needed) ------------------------------------

TEST(CudaBroadcastSplit, EveryOutputElementOnceWithItsOperandElement) {
  struct Case {
    Shape a, b;
  };
  for (const Case& k : {Case{{5, 1, 7}, {1, 6, 1}}, Case{{4, 3, 7}, {7}}, Case{{3, 1}, {1, 3}},
                        Case{{2, 3, 4, 5}, {3, 1, 5}}, Case{{2, 3}, {2, 3}}, Case{{1}, {4, 1}}}) {
    const Shape out = broadcast_shapes("test", k.a, k.b);
    const BroadcastPlan p = make_broadcast_plan(out, k.a, k.b);
    for (bool for_a : {true, false}) {
      SCOPED_TRACE(::testing::Message()
                   << k.a << " and " << k.b << ", operand " << (for_a ? "a" : "b"));
      const cuda::detail::OperandSplit s = cuda::detail::split_for(p, for_a);
      EXPECT_EQ(s.kept_count, (for_a ? k.a : k.b).numel());
      ASSERT_EQ(s.kept_count * s.red_count, out.numel());
      std::vector<int> seen(static_cast<size_t>(out.numel()), 0);
      for (int64_t kk = 0; kk < s.kept_count; ++kk) {
        int64_t base, x;
        s.kept_offsets(kk, base, x);
        for (int64_t r = 0; r < s.red_count; ++r) {
          const int64_t o = base + s.reduced_offset(r);
          ASSERT_GE(o, 0);
          ASSERT_LT(o, out.numel());
          ++seen[static_cast<size_t>(o)];
          int64_t oa, ob;
          p.offsets(o, oa, ob);
          EXPECT_EQ(for_a ? oa : ob, x) << "output element " << o;
        }
      }
      for (int64_t o = 0; o < out.numel(); ++o)
        EXPECT_EQ(seen[static_cast<size_t>(o)], 1) << "output element " << o;
    }
  }
}

TEST(CudaCausalMask, RowLengthsAreTheCpus) {
  for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{9}})
    for (int64_t tq : {int64_t{0}, int64_t{1}, int64_t{5}, int64_t{12}})
      for (int64_t r = 0; r < 3 * std::max<int64_t>(tq, 1); ++r)
        EXPECT_EQ(cuda::detail::causal_length(r, n, tq), cpu::causal_row_length(r, n, tq))
            << "row " << r << ", n " << n << ", causal_tq " << tq;
}

// ---- every op, CPU vs CUDA ----------------------------------------------------

enum class Draw { normal, positive };

struct OpCase {
  std::string name;
  std::vector<Shape> shapes;
  Draw draw = Draw::normal;
  std::function<VarF(const std::vector<VarF>&)> cpu;
  std::function<VarG(const std::vector<VarG>&)> gpu;
};

void PrintTo(const OpCase& c, std::ostream* os) {
  *os << c.name;
}

template <class F>
OpCase row(std::string name, std::vector<Shape> shapes, F f, Draw draw = Draw::normal) {
  return {std::move(name), std::move(shapes), draw, f, f};
}

template <class V>
using BackendOf = typename std::decay_t<V>::value_type::backend_type;

/// (4, 60) targets in [0, 300) with every 7th ignored (-100).
template <class B>
Tensor<int64_t, B> targets() {
  std::vector<int64_t> t(240);
  for (size_t i = 0; i < t.size(); ++i)
    t[i] = i % 7 == 3 ? -100 : static_cast<int64_t>(i * 37 % 300);
  return Tensor<int64_t, B>::from_vector(Shape{4, 60}, t);
}
/// (4, 60) indices in [0, 50) with many repeats.
template <class B>
Tensor<int64_t, B> indices() {
  std::vector<int64_t> t(240);
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<int64_t>((i * i + 3) % 50);
  return Tensor<int64_t, B>::from_vector(Shape{4, 60}, t);
}

std::vector<OpCase> all_ops() {
  return {
      row("add broadcast", {{2, 1, 40}, {30, 1}}, [](const auto& v) { return v[0] + v[1]; }),
      row("sub bias", {{4, 33, 70}, {70}}, [](const auto& v) { return v[0] - v[1]; }),
      row("mul column", {{3, 37, 5}, {37, 1}}, [](const auto& v) { return v[0] * v[1]; }),
      row("mul same shape", {{3, 37, 5}, {3, 37, 5}}, [](const auto& v) { return v[0] * v[1]; }),
      row("mul self", {{3, 37, 5}}, [](const auto& v) { return v[0] * v[0]; }),
      row(
          "div", {{5, 40, 6}, {40, 6}}, [](const auto& v) { return v[0] / v[1]; }, Draw::positive),
      row(
          "scalar ops", {{30, 41}}, [](const auto& v) { return 2.0 - v[0] * 3.0 + 1.5 / v[0]; },
          Draw::positive),
      row(
          "pow", {{30, 41}}, [](const auto& v) { return pow(v[0], 1.7); }, Draw::positive),
      row("neg", {{30, 41}}, [](const auto& v) { return -v[0]; }),
      row("exp", {{30, 41}}, [](const auto& v) { return exp(v[0]); }),
      row(
          "log", {{30, 41}}, [](const auto& v) { return log(v[0]); }, Draw::positive),
      row(
          "sqrt", {{30, 41}}, [](const auto& v) { return sqrt(v[0]); }, Draw::positive),
      row("tanh", {{30, 41}}, [](const auto& v) { return tanh(v[0]); }),
      row("relu", {{30, 41}}, [](const auto& v) { return relu(v[0]); }),
      row("gelu", {{30, 41}}, [](const auto& v) { return gelu(v[0]); }),
      row("gelu_tanh", {{30, 41}},
          [](const auto& v) { return gelu(v[0], GeluApproximation::tanh); }),
      row("matmul", {{33, 70}, {70, 45}}, [](const auto& v) { return matmul(v[0], v[1]); }),
      row("matmul A^T", {{70, 33}, {70, 45}},
          [](const auto& v) { return matmul(v[0], v[1], true, false); }),
      row("matmul batched B^T", {{2, 3, 17, 40}, {2, 3, 21, 40}},
          [](const auto& v) { return matmul(v[0], v[1], false, true); }),
      row("matmul batched A^T B^T", {{2, 3, 40, 17}, {2, 3, 21, 40}},
          [](const auto& v) { return matmul(v[0], v[1], true, true); }),
      row("matmul shared weight", {{4, 19, 40}, {40, 23}},
          [](const auto& v) { return matmul(v[0], v[1]); }),
      row("matmul shared weight^T", {{4, 19, 40}, {23, 40}},
          [](const auto& v) { return matmul(v[0], v[1], false, true); }),
      row("sum", {{30, 40, 50}}, [](const auto& v) { return sum(v[0]); }),
      row("sum axis", {{7, 300, 5}}, [](const auto& v) { return sum(v[0], 1); }),
      row("sum axis 0", {{300, 70}}, [](const auto& v) { return sum(v[0], 0); }),
      row("mean", {{3, 4, 5}}, [](const auto& v) { return mean(v[0]); }),
      row("mean last keepdim", {{7, 9, 300}}, [](const auto& v) { return mean(v[0], -1, true); }),
      row("reshape", {{30, 40}},
          [](const auto& v) {
            return reshape(v[0], {20, 60}) * 2.0;
          }),
      row("transpose", {{20, 30, 40}}, [](const auto& v) { return transpose(v[0], 0, 2); }),
      row("permute", {{2, 30, 4, 20}},
          [](const auto& v) {
            return permute(v[0], {0, 2, 1, 3});
          }),
      row("slice", {{20, 50, 3}}, [](const auto& v) { return slice(v[0], 1, 10, 44); }),
      row("concat", {{2, 20, 30}, {2, 33, 30}}, [](const auto& v) { return concat(v, 1); }),
      row("layer_norm", {{3, 50, 300}, {300}, {300}},
          [](const auto& v) { return layer_norm(v[0], v[1], v[2]); }),
      row("layer_norm wide", {{6, 3000}, {3000}, {3000}},
          [](const auto& v) { return layer_norm(v[0], v[1], v[2]); }),
      row("layer_norm narrow", {{70, 5}, {5}, {5}},
          [](const auto& v) { return layer_norm(v[0], v[1], v[2]); }),
      row("rms_norm", {{3, 50, 300}, {300}}, [](const auto& v) { return rms_norm(v[0], v[1]); }),
      row("softmax", {{6, 40, 300}}, [](const auto& v) { return softmax(v[0]); }),
      row("softmax causal", {{2, 3, 70, 70}}, [](const auto& v) { return softmax(v[0], true); }),
      row("log_softmax", {{20, 1000}}, [](const auto& v) { return log_softmax(v[0]); }),
      row("cross_entropy", {{4, 60, 300}},
          [](const auto& v) { return cross_entropy(v[0], targets<BackendOf<decltype(v)>>()); }),
      row("embedding", {{50, 64}},
          [](const auto& v) { return embedding(indices<BackendOf<decltype(v)>>(), v[0]); }),
      row("dropout", {{40, 60}},
          [](const auto& v) {
            Generator gen(77);
            return dropout(v[0], 0.3, gen);
          }),
  };
}

class EveryOpOnCuda : public ::testing::TestWithParam<OpCase> {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  }
};

TEST_P(EveryOpOnCuda, ForwardAndBackwardMatchTheCpu) {
  const OpCase& c = GetParam();
  std::vector<VarF> xc;
  std::vector<VarG> xg;
  Generator gen(4321);
  for (const Shape& s : c.shapes) {
    const TensorF t =
        c.draw == Draw::normal ? TensorF::normal(s, gen) : TensorF::uniform(s, gen, 0.5f, 2.f);
    xc.emplace_back(t, true);
    xg.emplace_back(to_backend<Cuda>(t), true);
  }
  const VarF yc = c.cpu(xc);
  const VarG yg = c.gpu(xg);
  expect_tensor_close(yg.data(), yc.data(), kRel, c.name + " forward");
  const TensorF up = TensorF::uniform(yc.shape(), gen, -1.f, 1.f);
  yc.backward(up);
  yg.backward(to_backend<Cuda>(up));
  for (size_t i = 0; i < xc.size(); ++i)
    expect_tensor_close(xg[i].grad(), xc[i].grad(), kRel,
                        c.name + " gradient of input " + std::to_string(i));
}

std::string case_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string s;
  for (char ch : info.param.name) s += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Cuda, EveryOpOnCuda, ::testing::ValuesIn(all_ops()), case_name);

// ---- kernels against their references -------------------------------------------

class CudaKernels : public CudaTest {
 protected:
  /// normal(0, 1) values (scaled) on both backends.
  static std::pair<TensorF, TensorG> both(const Shape& s, uint64_t seed, float scale = 1.f) {
    Generator gen(seed);
    const TensorF c = TensorF::normal(s, gen, 0.f, scale);
    return {c, to_backend<Cuda>(c)};
  }
  template <class T, class B>
  static std::vector<T> bits(const Tensor<T, B>& t) {
    return t.to_vector();
  }
};

TEST_F(CudaKernels, LayerNormMatchesReferenceCpuAndItself) {
  for (int64_t C : {int64_t{5}, int64_t{256}, int64_t{1000}}) {
    SCOPED_TRACE(::testing::Message() << "C = " << C);
    const int64_t rows = 37;
    auto [xc, x] = both({rows, C}, 1, 3.f);
    auto [wc, w] = both({C}, 2);
    auto [bc, b] = both({C}, 3);
    auto [dyc, dy] = both({rows, C}, 4);
    TensorG y({rows, C}), m({rows}), s({rows}), yr({rows, C}), mr({rows}), sr({rows});
    TensorF xo = xc.clone();
    map_unary_forward(Cpu{}, xo.data(), xc.data(), xc.numel(), fn::AddScalar{100.0});
    x = to_backend<Cuda>(xo);  // mean 100: the corrected two-pass matters
    layer_norm_forward(Cuda{}, y.data(), m.data(), s.data(), x.data(), w.data(), b.data(), rows, C,
                       1e-5f);
    cuda::reference::layer_norm_forward(yr.data(), mr.data(), sr.data(), x.data(), w.data(),
                                        b.data(), rows, C, 1e-5f);
    expect_tensor_close(y, yr, 1e-4, "out vs reference");
    expect_tensor_close(m, mr, kRel, "mean vs reference");
    expect_tensor_close(s, sr, 1e-4, "rstd vs reference");
    TensorF yc({rows, C}), mc({rows}), sc({rows});
    layer_norm_forward(Cpu{}, yc.data(), mc.data(), sc.data(), xo.data(), wc.data(), bc.data(),
                       rows, C, 1e-5f);
    expect_tensor_close(y, yc, kRel, "out vs cpu");
    expect_tensor_close(s, sc, kRel, "rstd vs cpu");

    // Backward: gradients accumulate into non-zero buffers.
    auto grads = [&](auto backend, const auto& dyv, const auto& xv, const auto& wv, const auto& mv,
                     const auto& sv) {
      using Tn = std::decay_t<decltype(xv)>;
      Tn dx = Tn::full({rows, C}, 0.5f), dw = Tn::full({C}, 0.25f), db = Tn::full({C}, -1.f);
      layer_norm_backward(backend, dx.data(), dw.data(), db.data(), dyv.data(), xv.data(),
                          wv.data(), mv.data(), sv.data(), rows, C);
      return std::tuple{dx, dw, db};
    };
    const auto [dx, dw, db] = grads(Cuda{}, dy, x, w, m, s);
    const auto [dx2, dw2, db2] = grads(Cuda{}, dy, x, w, m, s);
    EXPECT_EQ(bits(dx), bits(dx2)) << "dx differs between two runs";
    EXPECT_EQ(bits(dw), bits(dw2)) << "dweight differs between two runs";
    const auto [dxc, dwc, dbc] = grads(Cpu{}, dyc, xo, wc, mc, sc);
    expect_tensor_close(dx, dxc, kRel, "dx vs cpu");
    expect_tensor_close(dw, dwc, kRel, "dweight vs cpu");
    expect_tensor_close(db, dbc, kRel, "dbias vs cpu");
    TensorG dxr = TensorG::full({rows, C}, 0.5f), dwr = TensorG::full({C}, 0.25f),
            dbr = TensorG::full({C}, -1.f);
    cuda::reference::layer_norm_backward(dxr.data(), dwr.data(), dbr.data(), dy.data(), x.data(),
                                         w.data(), m.data(), s.data(), rows, C);
    expect_tensor_close(dx, dxr, 1e-4, "dx vs reference");
    expect_tensor_close(dw, dwr, 1e-4, "dweight vs reference");
    expect_tensor_close(db, dbr, 1e-5, "dbias vs reference");
  }
}

TEST_F(CudaKernels, LayerNormWithoutAffineAndSkippedGradients) {
  const int64_t rows = 9, C = 300;
  auto [xc, x] = both({rows, C}, 5);
  auto [dyc, dy] = both({rows, C}, 6);
  const float* none = nullptr;  // no weight, no bias
  float* skip = nullptr;        // gradients not wanted
  TensorG y({rows, C}), m({rows}), s({rows});
  TensorF yc({rows, C}), mc({rows}), sc({rows});
  layer_norm_forward(Cuda{}, y.data(), m.data(), s.data(), x.data(), none, none, rows, C, 1e-5f);
  layer_norm_forward(Cpu{}, yc.data(), mc.data(), sc.data(), xc.data(), none, none, rows, C, 1e-5f);
  expect_tensor_close(y, yc, kRel, "out");
  TensorG dx = TensorG::zeros({rows, C});
  TensorF dxc = TensorF::zeros({rows, C});
  layer_norm_backward(Cuda{}, dx.data(), skip, skip, dy.data(), x.data(), none, m.data(), s.data(),
                      rows, C);
  layer_norm_backward(Cpu{}, dxc.data(), skip, skip, dyc.data(), xc.data(), none, mc.data(),
                      sc.data(), rows, C);
  expect_tensor_close(dx, dxc, kRel, "dx");
}

TEST_F(CudaKernels, RmsNormMatchesReferenceAndCpu) {
  const int64_t rows = 41, C = 700;
  auto [xc, x] = both({rows, C}, 7);
  auto [wc, w] = both({C}, 8);
  auto [dyc, dy] = both({rows, C}, 9);
  TensorG y({rows, C}), s({rows}), yr({rows, C}), sr({rows});
  rms_norm_forward(Cuda{}, y.data(), s.data(), x.data(), w.data(), rows, C, 1e-5f);
  cuda::reference::rms_norm_forward(yr.data(), sr.data(), x.data(), w.data(), rows, C, 1e-5f);
  expect_tensor_close(y, yr, 1e-4, "out vs reference");
  TensorF yc({rows, C}), sc({rows});
  rms_norm_forward(Cpu{}, yc.data(), sc.data(), xc.data(), wc.data(), rows, C, 1e-5f);
  expect_tensor_close(y, yc, kRel, "out vs cpu");
  TensorG dx = TensorG::full({rows, C}, 1.f), dw = TensorG::full({C}, 2.f);
  TensorG dxr = dx.clone(), dwr = dw.clone();
  TensorF dxc = TensorF::full({rows, C}, 1.f), dwc = TensorF::full({C}, 2.f);
  rms_norm_backward(Cuda{}, dx.data(), dw.data(), dy.data(), x.data(), w.data(), s.data(), rows, C);
  cuda::reference::rms_norm_backward(dxr.data(), dwr.data(), dy.data(), x.data(), w.data(),
                                     s.data(), rows, C);
  rms_norm_backward(Cpu{}, dxc.data(), dwc.data(), dyc.data(), xc.data(), wc.data(), sc.data(),
                    rows, C);
  expect_tensor_close(dx, dxr, 1e-4, "dx vs reference");
  expect_tensor_close(dw, dwr, 1e-4, "dweight vs reference");
  expect_tensor_close(dx, dxc, kRel, "dx vs cpu");
  expect_tensor_close(dw, dwc, kRel, "dweight vs cpu");
}

TEST_F(CudaKernels, SoftmaxCausalRectangularMatchesReferenceAndCpu) {
  // 3 matrices of 7 queries over 300 keys (bottom-right aligned mask), and an
  // unmasked case with rows longer than a block.
  for (int64_t tq : {int64_t{7}, int64_t{0}}) {
    SCOPED_TRACE(::testing::Message() << "causal_tq = " << tq);
    const int64_t rows = 21, n = tq ? 300 : 1500;
    auto [xc, x] = both({rows, n}, 10, 4.f);
    auto [dyc, dy] = both({rows, n}, 11);
    TensorG y = TensorG::full({rows, n}, 7.f), yr = TensorG::full({rows, n}, 7.f);
    softmax_forward(Cuda{}, y.data(), x.data(), rows, n, tq);
    cuda::reference::softmax_forward(yr.data(), x.data(), rows, n, tq);
    TensorF yc({rows, n});
    softmax_forward(Cpu{}, yc.data(), xc.data(), rows, n, tq);
    expect_tensor_close(y, yr, 1e-5, "forward vs reference");
    expect_tensor_close(y, yc, kRel, "forward vs cpu");
    const auto yv = y.to_vector();
    for (int64_t r = 0; r < rows && tq; ++r)
      for (int64_t j = r % tq + n - tq + 1; j < n; ++j)
        ASSERT_EQ(yv[static_cast<size_t>(r * n + j)], 0.f) << "masked entry " << r << ", " << j;
    TensorG dx = TensorG::full({rows, n}, 0.5f), dxr = TensorG::full({rows, n}, 0.5f);
    TensorF dxc = TensorF::full({rows, n}, 0.5f);
    softmax_backward(Cuda{}, dx.data(), dy.data(), y.data(), rows, n, tq);
    cuda::reference::softmax_backward(dxr.data(), dy.data(), y.data(), rows, n, tq);
    softmax_backward(Cpu{}, dxc.data(), dyc.data(), yc.data(), rows, n, tq);
    expect_tensor_close(dx, dxr, 1e-5, "backward vs reference");
    expect_tensor_close(dx, dxc, kRel, "backward vs cpu");
  }
}

TEST_F(CudaKernels, LogSoftmaxMatchesReference) {
  const int64_t rows = 13, n = 5000;
  auto [xc, x] = both({rows, n}, 12, 5.f);
  auto [dyc, dy] = both({rows, n}, 13);
  TensorG y({rows, n}), yr({rows, n});
  log_softmax_forward(Cuda{}, y.data(), x.data(), rows, n);
  cuda::reference::log_softmax_forward(yr.data(), x.data(), rows, n);
  expect_tensor_close(y, yr, 1e-5, "forward");
  TensorG dx = TensorG::zeros({rows, n}), dxr = TensorG::zeros({rows, n});
  log_softmax_backward(Cuda{}, dx.data(), dy.data(), y.data(), rows, n);
  cuda::reference::log_softmax_backward(dxr.data(), dy.data(), y.data(), rows, n);
  expect_tensor_close(dx, dxr, 1e-5, "backward");
}

TEST_F(CudaKernels, CrossEntropyMatchesReferenceAndCpu) {
  const int64_t n = 240, v = 300;
  auto [lc, l] = both({n, v}, 14, 3.f);
  const auto tc = targets<Cpu>();
  const auto t = targets<Cuda>();
  const float scale = 1.f / 200.f;
  TensorG total({}), losses({n}), lse({n}), totalr({}), lossesr({n}), lser({n});
  cross_entropy_forward(Cuda{}, total.data(), losses.data(), lse.data(), l.data(), t.data(), n, v,
                        -100, scale);
  cuda::reference::cross_entropy_forward(totalr.data(), lossesr.data(), lser.data(), l.data(),
                                         t.data(), n, v, -100, scale);
  expect_tensor_close(losses, lossesr, 1e-5, "losses");
  expect_tensor_close(lse, lser, 1e-5, "lse");
  expect_tensor_close(total, totalr, 1e-6, "total");
  TensorF totalc({}), lossesc({n}), lsec({n});
  cross_entropy_forward(Cpu{}, totalc.data(), lossesc.data(), lsec.data(), lc.data(), tc.data(), n,
                        v, -100, scale);
  expect_tensor_close(total, totalc, kRel, "total vs cpu");
  const TensorG dtotal = TensorG::scalar(1.5f);
  TensorG d = TensorG::full({n, v}, 0.1f), dr = TensorG::full({n, v}, 0.1f);
  cross_entropy_backward(Cuda{}, d.data(), dtotal.data(), l.data(), lse.data(), t.data(), n, v,
                         -100, scale);
  cuda::reference::cross_entropy_backward(dr.data(), dtotal.data(), l.data(), lse.data(), t.data(),
                                          n, v, -100, scale);
  expect_tensor_close(d, dr, 1e-5, "dlogits vs reference");
  const TensorF dtotalc = TensorF::scalar(1.5f);
  TensorF dc = TensorF::full({n, v}, 0.1f);
  cross_entropy_backward(Cpu{}, dc.data(), dtotalc.data(), lc.data(), lsec.data(), tc.data(), n, v,
                         -100, scale);
  expect_tensor_close(d, dc, kRel, "dlogits vs cpu");
}

TEST_F(CudaKernels, EmbeddingScatterAddIsTheCpuSumBitForBit) {
  const int64_t V = 50, C = 300, n = 240;
  auto [doutc, dout] = both({n, C}, 15);
  const auto ic = indices<Cpu>();
  const auto ig = indices<Cuda>();
  auto [w0c, w0] = both({V, C}, 16);
  TensorG dw = w0.clone(), dwr = w0.clone();
  TensorF dwc = w0c.clone();
  embedding_backward(Cuda{}, dw.data(), dout.data(), ig.data(), n, C);
  cuda::reference::embedding_backward(dwr.data(), dout.data(), ig.data(), n, C);
  embedding_backward(Cpu{}, dwc.data(), doutc.data(), ic.data(), n, C);
  EXPECT_EQ(bits(dw), bits(dwc)) << "scatter-add differs from the CPU's";
  EXPECT_EQ(bits(dw), bits(dwr)) << "scatter-add differs from the reference";
  TensorG out({n, C});
  TensorF outc({n, C});
  embedding_forward(Cuda{}, out.data(), w0.data(), ig.data(), n, C);
  embedding_forward(Cpu{}, outc.data(), w0c.data(), ic.data(), n, C);
  EXPECT_EQ(bits(out), bits(outc));
}

// Index range checks run on the device (no host synchronization inside a
// training step): a bad index or target is raised, with the CPU's message, at
// the next read to the host, once; the work queued with it does not fault.
TEST_F(CudaKernels, BadIndexIsRaisedAtTheNextReadWithTheCpusMessage) {
  const VarG w(TensorG::full({10, 4}, 1.f), true);                                    // (V, C)
  const auto idx = Tensor<int64_t, Cuda>::from_vector({2, 3}, {1, 2, 3, 4, 12, 11});  // (2, 3)
  const std::string message =
      "embedding: index 12 out of range [0, 10) at position (1, 1) of indices shape (2, 3)";
  VarG out;
  ASSERT_NO_THROW(out = embedding(idx, w));     // queued: checked on the device
  out.backward(TensorG::full({2, 3, 4}, 1.f));  // skips the bad rows
  expect_error([&] { (void)out.data().to_vector(); }, {message});
  EXPECT_NO_THROW(cuda::check_index_errors()) << "an error is raised once";
  EXPECT_EQ(w.grad().to_vector()[4 * 4], 1.f) << "row 4 still received its gradient";
  const auto idxc = Tensor<int64_t, Cpu>::from_vector({2, 3}, {1, 2, 3, 4, 12, 11});
  expect_error([&] { (void)embedding(idxc, VarF(TensorF::full({10, 4}, 1.f))); }, {message});

  const VarG logits(TensorG::full({3, 5}, 0.5f), true);                  // (N, V)
  const auto t = Tensor<int64_t, Cuda>::from_vector({3}, {0, -100, 7});  // (N)
  const VarG loss = cross_entropy(logits, t);
  loss.backward();
  expect_error([&] { (void)loss.item(); },
               {"cross_entropy: target 7 out of range [0, 5) at position 2 of targets shape (3) "
                "(ignore_index is -100)"});
  // The first bad check in stream order is the one raised.
  (void)embedding(idx, w);
  (void)cross_entropy(logits, t);
  expect_error([] { cuda::synchronize(); }, {message});
  // Good indices afterwards: nothing pending, the counted mean matches the host's.
  const auto good = Tensor<int64_t, Cuda>::from_vector({3}, {0, -100, 4});
  EXPECT_NEAR(cross_entropy(logits, good).item(), std::log(5.0), 1e-6);
}

TEST_F(CudaKernels, BroadcastBackwardMatchesReferenceAndCpu) {
  struct Case {
    Shape a, b;
  };
  for (const Case& k : {Case{{5, 1, 70}, {1, 6, 1}}, Case{{4, 33, 70}, {70}},
                        Case{{300, 1}, {1, 300}}, Case{{2, 3, 4, 5}, {3, 1, 5}}}) {
    const Shape out = broadcast_shapes("test", k.a, k.b);
    SCOPED_TRACE(::testing::Message() << k.a << " * " << k.b);
    const BroadcastPlan p = make_broadcast_plan(out, k.a, k.b);
    auto [ac, a] = both(k.a, 17);
    auto [bc, b] = both(k.b, 18);
    auto [dc, d] = both(out, 19);
    TensorG da = TensorG::full(k.a, 1.f), db = TensorG::full(k.b, -1.f);
    TensorG dar = da.clone(), dbr = db.clone();
    TensorF dac = TensorF::full(k.a, 1.f), dbc = TensorF::full(k.b, -1.f);
    map_binary_backward(Cuda{}, da.data(), db.data(), d.data(), a.data(), b.data(), p, out.numel(),
                        fn::Mul{});
    cuda::reference::map_binary_backward(dar.data(), dbr.data(), d.data(), a.data(), b.data(), p,
                                         out.numel(), fn::Mul{});
    map_binary_backward(Cpu{}, dac.data(), dbc.data(), dc.data(), ac.data(), bc.data(), p,
                        out.numel(), fn::Mul{});
    expect_tensor_close(da, dar, 1e-5, "da vs reference");
    expect_tensor_close(db, dbr, 1e-5, "db vs reference");
    expect_tensor_close(da, dac, kRel, "da vs cpu");
    expect_tensor_close(db, dbc, kRel, "db vs cpu");
    TensorG again = TensorG::full(k.b, -1.f);
    map_binary_backward(Cuda{}, static_cast<float*>(nullptr), again.data(), d.data(), a.data(),
                        b.data(), p, out.numel(), fn::Mul{});
    EXPECT_EQ(bits(again), bits(db)) << "db differs between two runs";
  }
}

TEST_F(CudaKernels, AxisSumsMatchReference) {
  struct Case {
    int64_t outer, n, inner;
  };
  for (const Case& k : {Case{1, 100000, 1}, Case{7, 300, 5}, Case{3, 9, 700}, Case{40, 2000, 1}}) {
    SCOPED_TRACE(::testing::Message() << k.outer << " x " << k.n << " x " << k.inner);
    auto [xc, x] = both({k.outer, k.n, k.inner}, 20);
    TensorG y({k.outer, k.inner}), yr({k.outer, k.inner});
    sum_axis_forward(Cuda{}, y.data(), x.data(), k.outer, k.n, k.inner, 0.5f);
    cuda::reference::sum_axis_forward(yr.data(), x.data(), k.outer, k.n, k.inner, 0.5f);
    expect_tensor_close(y, yr, 1e-6, "sum vs reference");
    TensorF yc({k.outer, k.inner});
    sum_axis_forward(Cpu{}, yc.data(), xc.data(), k.outer, k.n, k.inner, 0.5f);
    expect_tensor_close(y, yc, 1e-6, "sum vs cpu");
  }
}

TEST_F(CudaKernels, SumOfSquaresMatchesReferenceAndCpu) {
  for (int64_t n : {int64_t{1}, int64_t{4096}, int64_t{4097}, int64_t{1000003}}) {
    auto [xc, x] = both({n}, 21);
    const double g = sum_of_squares(Cuda{}, x.data(), n);
    EXPECT_NEAR(g, cuda::reference::sum_of_squares(x.data(), n), 1e-12 * g) << n;
    EXPECT_NEAR(g, sum_of_squares(Cpu{}, xc.data(), n), 1e-12 * g) << n;
  }
  EXPECT_EQ(sum_of_squares(Cuda{}, static_cast<const float*>(nullptr), 0), 0.0);
}

// ---- GEMM ----------------------------------------------------------------------

TEST_F(CudaKernels, GemmEveryTransposeWithPaddedRowsMatchesCpu) {
  const int64_t M = 37, N = 45, K = 70, pad = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "trans_a " << ta << " trans_b " << tb);
      const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
      auto [ac, a] = both({ta ? K : M, lda}, 22);
      auto [bc, b] = both({tb ? N : K, ldb}, 23);
      auto [cc, c] = both({M, ldc}, 24);
      gemm(Cuda{}, ta, tb, M, N, K, 0.75f, a.data(), lda, b.data(), ldb, 0.5f, c.data(), ldc);
      gemm(Cpu{}, ta, tb, M, N, K, 0.75f, ac.data(), lda, bc.data(), ldb, 0.5f, cc.data(), ldc);
      expect_tensor_close(c, cc, kRel, "C");
    }
}

TEST_F(CudaKernels, GemmBetaZeroOverwritesNaNAndEmptyProductScales) {
  const int64_t M = 4, N = 3, K = 5;
  auto [ac, a] = both({M, K}, 25);
  auto [bc, b] = both({K, N}, 26);
  TensorG c = TensorG::full({M, N}, std::nanf(""));
  TensorF cc = TensorF::zeros({M, N});
  gemm(Cuda{}, false, false, M, N, K, 1.f, a.data(), K, b.data(), N, 0.f, c.data(), N);
  gemm(Cpu{}, false, false, M, N, K, 1.f, ac.data(), K, bc.data(), N, 0.f, cc.data(), N);
  expect_tensor_close(c, cc, kRel, "beta 0");
  TensorG e = TensorG::full({M, N}, 2.f);
  gemm(Cuda{}, false, false, M, N, 0, 1.f, a.data(), 1, b.data(), N, 3.f, e.data(), N);
  EXPECT_EQ(e.to_vector(), (std::vector<float>(12, 6.f)));
}

TEST_F(CudaKernels, StridedBatchedGemmEveryFormMatchesCpu) {
  const int64_t M = 17, N = 21, K = 40, batch = 6;
  struct Form {
    const char* name;
    bool ta, tb;
    int64_t sa, sb, sc;
  };
  const Form forms[] = {
      {"plain", false, false, M * K, K * N, M * N},
      {"shared B (stacked along M)", false, true, M * K, 0, M * N},
      {"shared A", true, false, 0, K * N, M * N},
      {"shared C (stacked along K)", true, false, K * M, K * N, 0},
      {"shared C, B^T", false, true, M * K, N * K, 0},
  };
  for (const Form& f : forms) {
    SCOPED_TRACE(f.name);
    const int64_t lda = f.ta ? M : K, ldb = f.tb ? K : N;
    auto [ac, a] = both({batch * M * K}, 27);
    auto [bc, b] = both({batch * K * N}, 28);
    auto [cc, c] = both({batch * M * N}, 29);
    gemm_strided_batched(Cuda{}, f.ta, f.tb, M, N, K, 1.25f, a.data(), lda, f.sa, b.data(), ldb,
                         f.sb, 0.5f, c.data(), N, f.sc, batch);
    gemm_strided_batched(Cpu{}, f.ta, f.tb, M, N, K, 1.25f, ac.data(), lda, f.sa, bc.data(), ldb,
                         f.sb, 0.5f, cc.data(), N, f.sc, batch);
    expect_tensor_close(c, cc, kRel, "C");
  }
}

// ---- optimizer steps ---------------------------------------------------------------

TEST_F(CudaKernels, AdamWAndAdamStepsMatchCpu) {
  const int64_t n = 100003;
  for (bool coupled : {false, true}) {
    auto [pc, p] = both({n}, 30);
    TensorG m = TensorG::zeros({n}), v = TensorG::zeros({n});
    TensorF mc = TensorF::zeros({n}), vc = TensorF::zeros({n});
    for (int t = 1; t <= 3; ++t) {
      auto [gc, g] = both({n}, 31 + static_cast<uint64_t>(t));
      AdamWStepArgs a;
      a.lr = 1e-2;
      a.beta2 = 0.98;
      (coupled ? a.l2 : a.weight_decay) = 0.1;
      a.bias_correction1 = 1 - std::pow(a.beta1, t);
      a.bias_correction2 = 1 - std::pow(a.beta2, t);
      adamw_step(Cuda{}, p.data(), g.data(), m.data(), v.data(), n, a);
      adamw_step(Cpu{}, pc.data(), gc.data(), mc.data(), vc.data(), n, a);
    }
    expect_tensor_close(p, pc, 1e-5, coupled ? "Adam param" : "AdamW param");
    expect_tensor_close(m, mc, 1e-5, "first moment");
    expect_tensor_close(v, vc, 1e-5, "second moment");
  }
}

TEST_F(CudaKernels, SgdStepsMatchCpu) {
  const int64_t n = 5003;
  for (bool nesterov : {false, true}) {
    auto [pc, p] = both({n}, 40);
    TensorG buf = TensorG::zeros({n});
    TensorF bufc = TensorF::zeros({n});
    for (int t = 0; t < 3; ++t) {
      auto [gc, g] = both({n}, 41 + static_cast<uint64_t>(t));
      SgdStepArgs a;
      a.lr = 0.1;
      a.momentum = 0.9;
      a.weight_decay = 0.01;
      a.nesterov = nesterov;
      a.first_step = t == 0;
      sgd_step(Cuda{}, p.data(), g.data(), buf.data(), n, a);
      sgd_step(Cpu{}, pc.data(), gc.data(), bufc.data(), n, a);
    }
    expect_tensor_close(p, pc, 1e-5, "param");
    expect_tensor_close(buf, bufc, 1e-5, "momentum buffer");
  }
  auto [pc, p] = both({n}, 50);
  auto [gc, g] = both({n}, 51);
  scale_in_place(Cuda{}, p.data(), n, 0.25f);
  scale_in_place(Cpu{}, pc.data(), n, 0.25f);
  EXPECT_EQ(bits(p), bits(pc));
}

}  // namespace
}  // namespace normlab::testing
