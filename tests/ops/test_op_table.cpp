// One table of every differentiable op, in the manner of ggml's
// test-backend-ops: each row is checked by finite differences in double and
// by running the same function in float against double. The per-op files
// hold the hand-computed values and error cases; this table is the one place
// that must list every op, and the place a new backend is compared against
// the CPU.
#include <functional>

#include "testing.hpp"

namespace normlab::testing {
namespace {

/// How a row's inputs are drawn: normal(0, 1), or uniform in [0.5, 2] for ops
/// defined only on positive numbers (log, sqrt, division by the input).
enum class Draw { normal, positive };

struct OpCase {
  std::string name;
  std::vector<Shape> shapes;
  Draw draw = Draw::normal;
  std::function<VarD(const std::vector<VarD>&)> f64;
  std::function<VarF(const std::vector<VarF>&)> f32;
};

/// Failure messages name the row rather than dumping its bytes.
void PrintTo(const OpCase& c, std::ostream* os) {
  *os << c.name;
}

/// A row from one generic function, instantiated for double and float.
template <class F>
OpCase row(std::string name, std::vector<Shape> shapes, F f, Draw draw = Draw::normal) {
  return {std::move(name), std::move(shapes), draw, f, f};
}

template <class T>
std::vector<Variable<T, Cpu>> draw_inputs(const OpCase& c) {
  std::vector<Variable<T, Cpu>> v;
  Generator gen(1234);
  for (const Shape& s : c.shapes)
    v.emplace_back(c.draw == Draw::normal ? Tensor<T, Cpu>::normal(s, gen)
                                          : Tensor<T, Cpu>::uniform(s, gen, T(0.5), T(2)),
                   true);
  return v;
}

const TensorI kTargets =
    TensorI::from_vector({2, 3}, {4, -100, 0, 6, 2, 6});                    // (B, T), one ignored
const TensorI kIndices = TensorI::from_vector({2, 3}, {1, 4, 1, 0, 4, 4});  // repeats

std::vector<OpCase> all_ops() {
  return {
      row("add", {{2, 1, 4}, {3, 1}}, [](const auto& v) { return v[0] + v[1]; }),
      row("sub", {{2, 3, 4}, {4}}, [](const auto& v) { return v[0] - v[1]; }),
      row("mul", {{2, 3, 4}, {3, 1}}, [](const auto& v) { return v[0] * v[1]; }),
      row(
          "div", {{2, 3, 4}, {3, 4}}, [](const auto& v) { return v[0] / v[1]; }, Draw::positive),
      row(
          "scalar ops", {{3, 4}}, [](const auto& v) { return 2.0 - v[0] * 3.0 + 1.5 / v[0]; },
          Draw::positive),
      row(
          "pow", {{3, 4}}, [](const auto& v) { return pow(v[0], 1.7); }, Draw::positive),
      row("neg", {{3, 4}}, [](const auto& v) { return -v[0]; }),
      row("exp", {{3, 4}}, [](const auto& v) { return exp(v[0]); }),
      row(
          "log", {{3, 4}}, [](const auto& v) { return log(v[0]); }, Draw::positive),
      row(
          "sqrt", {{3, 4}}, [](const auto& v) { return sqrt(v[0]); }, Draw::positive),
      row("tanh", {{3, 4}}, [](const auto& v) { return tanh(v[0]); }),
      row("relu", {{3, 4}}, [](const auto& v) { return relu(v[0]); }),
      row("gelu", {{3, 4}}, [](const auto& v) { return gelu(v[0]); }),
      row("gelu_tanh", {{3, 4}}, [](const auto& v) { return gelu(v[0], GeluApproximation::tanh); }),
      row("matmul", {{3, 4}, {4, 5}}, [](const auto& v) { return matmul(v[0], v[1]); }),
      row("matmul batched^T", {{2, 3, 3, 4}, {2, 3, 5, 4}},
          [](const auto& v) { return matmul(v[0], v[1], false, true); }),
      row("matmul shared weight", {{2, 3, 4}, {4, 5}},
          [](const auto& v) { return matmul(v[0], v[1]); }),
      row("sum", {{3, 4, 5}}, [](const auto& v) { return sum(v[0]); }),
      row("sum axis", {{3, 4, 5}}, [](const auto& v) { return sum(v[0], 1); }),
      row("mean", {{3, 4, 5}}, [](const auto& v) { return mean(v[0]); }),
      row("mean axis keepdim", {{3, 4, 5}}, [](const auto& v) { return mean(v[0], -1, true); }),
      row("reshape", {{3, 4}},
          [](const auto& v) {
            return reshape(v[0], {2, 6}) * 2.0;
          }),
      row("transpose", {{2, 3, 4}}, [](const auto& v) { return transpose(v[0], 0, 2); }),
      row("permute", {{2, 3, 4, 2}},
          [](const auto& v) {
            return permute(v[0], {0, 2, 1, 3});
          }),
      row("slice", {{2, 5, 3}}, [](const auto& v) { return slice(v[0], 1, 1, 4); }),
      row("concat", {{2, 2, 3}, {2, 3, 3}}, [](const auto& v) { return concat(v, 1); }),
      row("layer_norm", {{2, 3, 6}, {6}, {6}},
          [](const auto& v) { return layer_norm(v[0], v[1], v[2]); }),
      row("rms_norm", {{2, 3, 6}, {6}}, [](const auto& v) { return rms_norm(v[0], v[1]); }),
      row("softmax", {{2, 3, 5}}, [](const auto& v) { return softmax(v[0]); }),
      row("softmax causal", {{2, 2, 4, 4}}, [](const auto& v) { return softmax(v[0], true); }),
      row("log_softmax", {{2, 3, 5}}, [](const auto& v) { return log_softmax(v[0]); }),
      row("cross_entropy", {{2, 3, 7}},
          [](const auto& v) { return cross_entropy(v[0], kTargets); }),
      row("embedding", {{5, 4}}, [](const auto& v) { return embedding(kIndices, v[0]); }),
      row("dropout", {{4, 6}},
          [](const auto& v) {
            Generator gen(77);  // a fixed mask: every evaluation draws the same one
            return dropout(v[0], 0.3, gen);
          }),
  };
}

class EveryOp : public ::testing::TestWithParam<OpCase> {};

TEST_P(EveryOp, GradcheckInDouble) {
  const OpCase& c = GetParam();
  expect_gradcheck(c.f64, draw_inputs<double>(c));
}

TEST_P(EveryOp, FloatForwardAndBackwardAgreeWithDouble) {
  const OpCase& c = GetParam();
  const auto xf = draw_inputs<float>(c);
  std::vector<VarD> xd;
  for (const VarF& x : xf) xd.emplace_back(to_double(x.data()), true);
  const VarF yf = c.f32(xf);
  const VarD yd = c.f64(xd);
  ASSERT_EQ(yf.shape(), yd.shape());
  expect_close(yf.data().to_vector(), yd.data().to_vector(), 1e-5);
  Generator gen(5);
  const TensorD up = TensorD::uniform(yd.shape(), gen, -1, 1);
  yd.backward(up);
  const std::vector<double> upv = up.to_vector();
  yf.backward(TensorF::from_vector(up.shape(), std::vector<float>(upv.begin(), upv.end())));
  for (size_t i = 0; i < xf.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "gradient of input " << i);
    expect_close(xf[i].grad().to_vector(), xd[i].grad().to_vector(), 1e-4);
  }
}

std::string case_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string s;
  for (char ch : info.param.name) s += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Cpu, EveryOp, ::testing::ValuesIn(all_ops()), case_name);

}  // namespace
}  // namespace normlab::testing
