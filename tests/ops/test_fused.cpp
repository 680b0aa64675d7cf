// Fused ops against the composed ops they replace: linear, multi-head
// attention over heads in place, bias + GELU, bias + GELU + LayerNorm, the
// vectorized GELU kernels and the broadcast row loops.
// Each is checked for values and gradients (float and double), by gradcheck,
// and for results that do not depend on the thread count.
#include "testing.hpp"

namespace normlab::testing {
namespace {

/// The gradients of `inputs` after backward of sum(f(inputs) * r) for a fixed random r.
template <class T, class F>
std::vector<std::vector<T>> grads_of(F&& f, const std::vector<Variable<T, Cpu>>& inputs) {
  for (auto v : inputs) v.clear_grad();
  const Variable<T, Cpu> y = f(inputs);
  Generator gen(77);
  y.backward(Tensor<T, Cpu>::normal(y.shape(), gen));
  std::vector<std::vector<T>> g;
  for (const auto& v : inputs) g.push_back(v.grad().to_vector());
  return g;
}

/// Expects f and g to agree on values and on every input's gradient.
template <class T, class F, class G>
void expect_same_function(F&& f, G&& g, const std::vector<Variable<T, Cpu>>& inputs, double tol) {
  const std::vector<T> fv = f(inputs).data().to_vector(), gv = g(inputs).data().to_vector();
  expect_close(fv, std::vector<double>(gv.begin(), gv.end()), tol);
  const auto fg = grads_of<T>(f, inputs), gg = grads_of<T>(g, inputs);
  for (size_t i = 0; i < inputs.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "gradient of input " << i);
    expect_close(fg[i], std::vector<double>(gg[i].begin(), gg[i].end()), tol);
  }
}

/// The same leaves in float.
std::vector<VarF> as_float(const std::vector<VarD>& xs) {
  std::vector<VarF> out;
  for (const auto& x : xs) {
    const auto v = x.data().to_vector();
    out.emplace_back(TensorF::from_vector(x.shape(), std::vector<float>(v.begin(), v.end())), true);
  }
  return out;
}

// ---- linear -----------------------------------------------------------------

template <class T>
Variable<T, Cpu> composed_linear(const std::vector<Variable<T, Cpu>>& in) {  // x W^T + b
  return matmul(reshape(in[0], {-1, in[1].size(1)}), in[1], false, true) + in[2];
}

TEST(FusedLinear, MatchesMatmulPlusBiasInDoubleAndFloat) {
  const std::vector<VarD> in{random_var({2, 5, 7}, 1), random_var({3, 7}, 2), random_var({3}, 3)};
  auto fused = [](const auto& v) { return reshape(linear(v[0], v[1], v[2]), {-1, v[1].size(0)}); };
  auto composed = [](const auto& v) { return composed_linear(v); };
  expect_same_function<double>(fused, composed, in, 1e-12);
  expect_same_function<float>(fused, composed, as_float(in), 1e-5);
}

TEST(FusedLinear, GradcheckWithAndWithoutBias) {
  expect_gradcheck([](const std::vector<VarD>& v) { return linear(v[0], v[1], v[2]); },
                   {random_var({2, 3, 4}, 4), random_var({5, 4}, 5), random_var({5}, 6)});
  expect_gradcheck([](const std::vector<VarD>& v) { return linear(v[0], v[1], VarD()); },
                   {random_var({3, 4}, 7), random_var({2, 4}, 8)});
}

TEST(FusedLinear, ErrorsNameTheShapes) {
  expect_error(
      [] {
        linear(random_var({2, 3}, 1), random_var({4, 5}, 2), VarD());
      },
      {"linear", "(2, 3)", "in_features 5"});
  expect_error(
      [] {
        linear(random_var({2, 5}, 1), random_var({4, 5}, 2), random_var({3}, 3));
      },
      {"linear", "bias", "(3,)", "(4,)"});
}

// ---- multi-head attention -----------------------------------------------------

/// softmax(scale q k^T + mask) v per head, composed from permutes and matmuls.
template <class T>
Variable<T, Cpu> composed_attention(const std::vector<Variable<T, Cpu>>& in, int64_t H,
                                    double scale, bool causal) {
  auto split = [H](const Variable<T, Cpu>& x) {  // (B, T, C) -> (B, H, T, D)
    return transpose(reshape(x, {x.size(0), x.size(1), H, x.size(2) / H}), 1, 2);
  };
  const auto probs = softmax(matmul(split(in[0] * scale), split(in[1]), false, true), causal);
  const auto heads = matmul(probs, split(in[2]));  // (B, H, Tq, D)
  return reshape(transpose(heads, 1, 2), {in[0].size(0), in[0].size(1), in[0].size(2)});
}

TEST(FusedAttention, MatchesComposedOpsCausalAndNot) {
  for (bool causal : {false, true})
    for (int64_t Tk : {5, 7}) {  // square, and more keys than queries
      SCOPED_TRACE(::testing::Message() << "causal " << causal << ", Tk " << Tk);
      const std::vector<VarD> in{random_var({2, 5, 12}, 1), random_var({2, Tk, 12}, 2),
                                 random_var({2, Tk, 12}, 3)};
      const double scale = 0.37;
      auto fused = [&](const auto& v) {
        return multi_head_attention(v[0], v[1], v[2], 3, scale, causal);
      };
      auto composed = [&](const auto& v) { return composed_attention(v, 3, scale, causal); };
      expect_same_function<double>(fused, composed, in, 1e-12);
      expect_same_function<float>(fused, composed, as_float(in), 1e-5);
    }
}

TEST(FusedAttention, CausalRowBlocksMatchComposedOps) {
  // Lengths over several row blocks, not multiples of the block: as many
  // keys as queries, more keys, and fewer keys (the first queries see none).
  const int64_t Tq = 2 * detail::kAttentionRowBlock + 22;
  for (int64_t Tk : {Tq, Tq + 37, Tq - detail::kAttentionRowBlock - 5}) {
    SCOPED_TRACE(::testing::Message() << "Tq " << Tq << ", Tk " << Tk);
    const std::vector<VarD> in{random_var({2, Tq, 8}, 4), random_var({2, Tk, 8}, 5),
                               random_var({2, Tk, 8}, 6)};
    auto fused = [](const auto& v) { return multi_head_attention(v[0], v[1], v[2], 2, 0.3, true); };
    auto composed = [](const auto& v) { return composed_attention(v, 2, 0.3, true); };
    expect_same_function<double>(fused, composed, in, 1e-12);
  }
}

TEST(FusedAttention, Gradcheck) {
  for (bool causal : {false, true})
    expect_gradcheck(
        [causal](const std::vector<VarD>& v) {
          return multi_head_attention(v[0], v[1], v[2], 2, 0.5, causal);
        },
        {random_var({2, 4, 6}, 1), random_var({2, 4, 6}, 2), random_var({2, 4, 6}, 3)});
}

TEST(FusedAttention, ErrorsNameTheShapes) {
  expect_error(
      [] {
        multi_head_attention(random_var({2, 4, 6}, 1), random_var({2, 4, 6}, 2),
                             random_var({2, 4, 6}, 3), 4, 1.0, false);
      },
      {"multi_head_attention", "6 channels", "4 heads"});
  expect_error(
      [] {
        multi_head_attention(random_var({2, 4, 6}, 1), random_var({3, 4, 6}, 2),
                             random_var({2, 4, 6}, 3), 2, 1.0, false);
      },
      {"multi_head_attention", "(2, 4, 6)", "(3, 4, 6)"});
}

TEST(FusedAttention, ThreadCountDoesNotChangeTheBits) {
  const int64_t T = detail::kAttentionRowBlock + 33;  // two causal row blocks
  const std::vector<VarF> in =
      as_float({random_var({4, T, 16}, 1), random_var({4, T, 16}, 2), random_var({4, T, 16}, 3)});
  auto f = [](const auto& v) { return multi_head_attention(v[0], v[1], v[2], 4, 0.25, true); };
  std::vector<float> y1, y2;
  std::vector<std::vector<float>> g1, g2;
  {
    ThreadCountGuard one(1);
    y1 = f(in).data().to_vector();
    g1 = grads_of<float>(f, in);
  }
  {
    ThreadCountGuard two(2);
    y2 = f(in).data().to_vector();
    g2 = grads_of<float>(f, in);
  }
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(g1, g2);
}

// ---- GELU kernels and bias + GELU ------------------------------------------

TEST(VectorizedGelu, MatchesTheScalarFormulas) {
  std::vector<double> xs;
  for (int i = -800; i <= 800; ++i) xs.push_back(i * 0.01);  // [-8, 8]
  const int64_t n = static_cast<int64_t>(xs.size());
  for (const bool tanh_approx : {false, true}) {
    std::vector<double> y(xs.size()), dx(xs.size(), 0.0), ones(xs.size(), 1.0);
    std::vector<double> ey, edx;
    if (tanh_approx) {
      cpu::map_unary_forward(Cpu{}, y.data(), xs.data(), n, fn::GeluTanh{});
      cpu::map_unary_backward(Cpu{}, dx.data(), ones.data(), xs.data(), y.data(), n,
                              fn::GeluTanh{});
      for (double x : xs)
        ey.push_back(fn::GeluTanh{}(x)), edx.push_back(fn::GeluTanh{}.grad(x, 0.0));
    } else {
      cpu::map_unary_forward(Cpu{}, y.data(), xs.data(), n, fn::GeluErf{});
      cpu::map_unary_backward(Cpu{}, dx.data(), ones.data(), xs.data(), y.data(), n, fn::GeluErf{});
      for (double x : xs) ey.push_back(fn::GeluErf{}(x)), edx.push_back(fn::GeluErf{}.grad(x, 0.0));
    }
    expect_close(y, ey, 1e-14);
    expect_close(dx, edx, 1e-14);
    // float: the vectorized erf/tanh/exp against the double formulas.
    std::vector<float> xf(xs.begin(), xs.end()), yf(xs.size()), dxf(xs.size(), 0.f),
        onesf(xs.size(), 1.f);
    if (tanh_approx) {
      cpu::map_unary_forward(Cpu{}, yf.data(), xf.data(), n, fn::GeluTanh{});
      cpu::map_unary_backward(Cpu{}, dxf.data(), onesf.data(), xf.data(), yf.data(), n,
                              fn::GeluTanh{});
    } else {
      cpu::map_unary_forward(Cpu{}, yf.data(), xf.data(), n, fn::GeluErf{});
      cpu::map_unary_backward(Cpu{}, dxf.data(), onesf.data(), xf.data(), yf.data(), n,
                              fn::GeluErf{});
    }
    expect_close(yf, ey, 2e-6);  // a few float ulps
    expect_close(dxf, edx, 2e-6);
  }
}

TEST(FusedBiasGelu, CpuHasTheOptionalKernels) {
  static_assert(HasFusedBiasGelu<Cpu, float> && HasFusedBiasGelu<Cpu, double>);
}

TEST(FusedBiasGelu, MatchesGeluOfTheSumInDoubleAndFloat) {
  const std::vector<VarD> in{random_var({3, 4, 37}, 1), random_var({37}, 2)};
  for (const auto approx : {GeluApproximation::none, GeluApproximation::tanh}) {
    auto fused = [approx](const auto& v) { return bias_gelu(v[0], v[1], approx); };
    auto composed = [approx](const auto& v) { return gelu(v[0] + v[1], approx); };
    expect_same_function<double>(fused, composed, in, 1e-12);
    expect_same_function<float>(fused, composed, as_float(in), 1e-5);
  }
}

TEST(FusedBiasGelu, Gradcheck) {
  for (const auto approx : {GeluApproximation::none, GeluApproximation::tanh})
    expect_gradcheck([approx](const std::vector<VarD>& v) { return bias_gelu(v[0], v[1], approx); },
                     {random_var({2, 3, 5}, 1), random_var({5}, 2)});
}

TEST(FusedBiasGelu, ThreadCountDoesNotChangeTheBiasGradient) {
  // Enough rows for several reduction chunks.
  const std::vector<VarF> in = as_float({random_var({300, 96}, 1), random_var({96}, 2)});
  auto f = [](const auto& v) { return bias_gelu(v[0], v[1]); };
  std::vector<std::vector<float>> g1, g2;
  {
    ThreadCountGuard one(1);
    g1 = grads_of<float>(f, in);
  }
  {
    ThreadCountGuard two(2);
    g2 = grads_of<float>(f, in);
  }
  EXPECT_EQ(g1, g2);
}

TEST(FusedBiasGelu, ErrorsNameTheShapes) {
  expect_error(
      [] {
        bias_gelu(random_var({2, 3}, 1), random_var({4}, 2));
      },
      {"bias_gelu", "(4,)", "(2, 3)"});
}

// ---- bias + GELU + LayerNorm ------------------------------------------------

TEST(FusedBiasGeluLayerNorm, CpuHasTheOptionalKernels) {
  static_assert(HasFusedBiasGeluLayerNorm<Cpu, float> && HasFusedBiasGeluLayerNorm<Cpu, double>);
}

/// inputs: x (..., n), bias (n,), then weight (n,) when has_w and ln_bias
/// (n,) when has_lb; the norm's parameters left out are undefined.
template <class T>
Variable<T, Cpu> fused_bgln(const std::vector<Variable<T, Cpu>>& v, bool has_w, bool has_lb,
                            GeluApproximation approx) {
  return bias_gelu_layer_norm(v[0], v[1], has_w ? v[2] : Variable<T, Cpu>(),
                              has_lb ? v[has_w ? 3 : 2] : Variable<T, Cpu>(), 1e-5, approx);
}
template <class T>
Variable<T, Cpu> composed_bgln(const std::vector<Variable<T, Cpu>>& v, bool has_w, bool has_lb,
                               GeluApproximation approx) {
  return layer_norm(gelu(v[0] + v[1], approx), has_w ? v[2] : Variable<T, Cpu>(),
                    has_lb ? v[has_w ? 3 : 2] : Variable<T, Cpu>(), 1e-5);
}

TEST(FusedBiasGeluLayerNorm, MatchesTheComposedOpsInDoubleAndFloat) {
  // n = 4100 spans two GELU segments (kActivationBlock) of one row.
  for (const int64_t n : {int64_t{37}, int64_t{4100}}) {
    for (const auto approx : {GeluApproximation::none, GeluApproximation::tanh})
      for (const bool has_w : {true, false})
        for (const bool has_lb : {true, false}) {
          SCOPED_TRACE(::testing::Message()
                       << "n " << n << " tanh " << (approx == GeluApproximation::tanh) << " weight "
                       << has_w << " ln_bias " << has_lb);
          std::vector<VarD> in;  // x, bias, then weight and ln_bias when present
          in.reserve(4);         // (growing from an initializer list trips GCC 12's -Warray-bounds)
          in.push_back(random_var({3, 2, n}, 1));
          in.push_back(random_var({n}, 2));
          if (has_w) in.push_back(random_var({n}, 3, 1.0, 0.5));
          if (has_lb) in.push_back(random_var({n}, 4));
          auto fused = [&](const auto& v) { return fused_bgln(v, has_w, has_lb, approx); };
          auto composed = [&](const auto& v) { return composed_bgln(v, has_w, has_lb, approx); };
          expect_same_function<double>(fused, composed, in, 1e-12);
          expect_same_function<float>(fused, composed, as_float(in), 1e-5);
        }
  }
}

TEST(FusedBiasGeluLayerNorm, Gradcheck) {
  for (const auto approx : {GeluApproximation::none, GeluApproximation::tanh})
    expect_gradcheck(
        [approx](const std::vector<VarD>& v) { return fused_bgln(v, true, true, approx); },
        {random_var({2, 3, 6}, 1), random_var({6}, 2), random_var({6}, 3, 1.0, 0.5),
         random_var({6}, 4)});
}

TEST(FusedBiasGeluLayerNorm, ThreadCountDoesNotChangeTheBits) {
  // Enough rows for several reduction chunks and a parallel forward.
  const std::vector<VarF> in = as_float(
      {random_var({300, 96}, 1), random_var({96}, 2), random_var({96}, 3), random_var({96}, 4)});
  auto f = [](const auto& v) { return fused_bgln(v, true, true, GeluApproximation::none); };
  std::vector<std::vector<float>> g1, g2, y1, y2;
  {
    ThreadCountGuard one(1);
    g1 = grads_of<float>(f, in);
    y1 = {f(in).data().to_vector()};
  }
  {
    ThreadCountGuard two(2);
    g2 = grads_of<float>(f, in);
    y2 = {f(in).data().to_vector()};
  }
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(g1, g2);
}

TEST(FusedBiasGeluLayerNorm, FeedForwardNormalizedHiddenMatchesTheComposedPath) {
  // x reaches the fused node through fc1's GEMM: its gradient there is fresh
  // (written, not added to).
  Generator gen(3);
  const FeedForward<double, Cpu> ffn(5, 9, Activation::gelu, gen);
  LayerNorm<double, Cpu> norm(9);
  norm.weight = VarD(TensorD::normal({9}, gen, 1.0, 0.3), true);
  norm.bias = VarD(TensorD::normal({9}, gen), true);
  const std::vector<VarD> in{random_var({2, 4, 5}, 1), ffn.fc1.weight, ffn.fc1.bias, norm.weight,
                             norm.bias};
  auto fused = [&](const auto& v) { return ffn.normalized_hidden(v[0], norm); };
  auto composed = [&](const auto& v) { return norm.forward(ffn.hidden(v[0])); };
  expect_same_function<double>(fused, composed, in, 1e-12);
}

TEST(FusedBiasGeluLayerNorm, ErrorsNameTheShapes) {
  expect_error(
      [] {
        bias_gelu_layer_norm(random_var({2, 3}, 1), random_var({4}, 2), VarD(), VarD());
      },
      {"bias_gelu_layer_norm", "bias", "(4,)", "(2, 3)"});
  expect_error(
      [] {
        bias_gelu_layer_norm(random_var({2, 3}, 1), random_var({3}, 2), random_var({2}, 3), VarD());
      },
      {"bias_gelu_layer_norm", "weight", "(2,)", "(2, 3)"});
}

// ---- broadcast backward -----------------------------------------------------

TEST(BroadcastBackward, RowLoopsMatchTheComposedSumsAndIgnoreThreadCount) {
  // y (B, T, H, D) * gamma (H, 1): the head scale's pattern, and a bias (C,).
  const VarD x = random_var({3, 50, 4, 40}, 1), g = random_var({4, 1}, 2), b = random_var({40}, 3);
  auto f = [](const auto& v) { return v[0] * v[1] + v[2]; };
  std::vector<std::vector<double>> g1, g2;
  {
    ThreadCountGuard one(1);
    g1 = grads_of<double>(f, std::vector<VarD>{x, g, b});
  }
  {
    ThreadCountGuard two(2);
    g2 = grads_of<double>(f, std::vector<VarD>{x, g, b});
  }
  EXPECT_EQ(g1, g2);
  // gamma's gradient is the sum of upstream * x over the elements it scaled.
  Generator gen(77);
  const auto r = TensorD::normal({3, 50, 4, 40}, gen).to_vector();
  const auto xv = x.data().to_vector();
  std::vector<double> expect_g(4, 0.0), expect_b(40, 0.0);
  for (size_t i = 0; i < xv.size(); ++i) {
    expect_g[(i / 40) % 4] += r[i] * xv[i];
    expect_b[i % 40] += r[i];
  }
  expect_close(g1[1], expect_g, 1e-12);
  expect_close(g1[2], expect_b, 1e-12);
}

// ---- a whole layer -----------------------------------------------------------

TEST(FusedPaths, TransformerLayerBitsDoNotDependOnTheThreadCount) {
  // Large enough for the threaded GEMM (row blocks), the attention batches and
  // the parallel element-wise loops.
  ModelConfig cfg;
  cfg.d_model = 96;
  cfg.n_heads = 4;
  cfg.d_ff = 384;
  cfg.policy = "normformer";
  Generator gen(5);
  TransformerLayer<NormFormer, float, Cpu> layer(cfg, gen);
  VarF x(TensorF::normal({4, 200, 96}, gen), true);
  const TensorF up = TensorF::normal({4, 200, 96}, gen);
  auto run = [&] {
    for (auto& p : layer.named_parameters()) p.value.clear_grad();
    x.clear_grad();
    const VarF y = layer.forward(x, {});
    y.backward(up);
    std::vector<std::vector<float>> out{y.data().to_vector(), x.grad().to_vector()};
    for (auto& p : layer.named_parameters()) out.push_back(p.value.grad().to_vector());
    return out;
  };
  std::vector<std::vector<float>> one, two;
  {
    ThreadCountGuard g(1);
    one = run();
  }
  {
    ThreadCountGuard g(2);
    two = run();
  }
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) EXPECT_EQ(one[i], two[i]) << "tensor " << i;
}

}  // namespace
}  // namespace normlab::testing
