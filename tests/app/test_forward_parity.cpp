// `normlab forward`'s pass (apps/normlab/forward): parity with the PyTorch
// reference (tools/reference) — for every policy and extra, the logits, the
// loss and the gradient of every parameter match the committed fixtures —
// and its errors and report file.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <set>
#include <sstream>

#include "forward/forward_pass.hpp"

#include "parameter_files.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

const std::string kFixtures = std::string(NORMLAB_TEST_FIXTURES) + "/reference/";

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

/// max |a - b| / max |b| over a tensor: the error relative to the tensor's
/// own scale. A tensor that is zero in exact arithmetic (the gradient of
/// k_proj's bias: softmax ignores a shift shared by all keys) holds only
/// rounding noise in the reference; it is measured against `floor`, the
/// scale of all gradients, instead.
template <class T>
double relative_error(const std::vector<T>& a, const std::vector<double>& b, double floor) {
  double diff = 0;
  for (size_t i = 0; i < b.size(); ++i)
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
  const double scale = max_abs(b);
  return diff / (scale > 1e-12 * floor ? scale : floor);
}

template <class T>
void expect_parity(const std::string& name, double tolerance) {
  const std::string dir = kFixtures + name + "/";
  const ModelConfig cfg = load_config(dir + "config.json");
  const auto weights = io::SafetensorsReader::open(dir + "weights.safetensors");
  const auto tokens = io::SafetensorsReader::open(dir + "tokens.safetensors");
  const auto expected = io::SafetensorsReader::open(dir + "expected.safetensors");
  const auto report = forward_and_gradients<T, Cpu>(
      cfg, weights, tokens.read<int64_t, Cpu>("tokens"), tokens.read<int64_t, Cpu>("targets"));

  double gradient_scale = 0;  // the largest gradient entry of the reference
  for (const io::TensorInfo& t : expected.tensors())
    if (t.name.rfind("grad.", 0) == 0)
      gradient_scale =
          std::max(gradient_scale, max_abs(expected.read<double, Cpu>(t.name).to_vector()));
  ASSERT_GT(gradient_scale, 0);

  double worst = 0;  // the largest error of the case, recorded for --gtest_output=xml
  auto check = [&](const std::string& key, const Tensor<T, Cpu>& ours) {
    const TensorD theirs = expected.read<double, Cpu>(key);
    ASSERT_EQ(ours.shape(), theirs.shape()) << key;
    const double err = relative_error(ours.to_vector(), theirs.to_vector(), gradient_scale);
    EXPECT_LE(err, tolerance) << name << ": " << key << " differs from PyTorch by " << err;
    worst = std::max(worst, err);
  };
  check("logits", report.logits);
  check("loss", report.loss);
  std::set<std::string> compared;
  for (const auto& [param, grad] : report.grads) {
    check("grad." + param, grad);
    compared.insert("grad." + param);
  }
  std::ostringstream worst_text;
  worst_text << std::scientific << std::setprecision(2) << worst;
  ::testing::Test::RecordProperty("max_relative_error", worst_text.str());
  // Every gradient in the fixture has a parameter here (and the reverse, above).
  for (const io::TensorInfo& t : expected.tensors()) {
    const bool is_grad = t.name != "logits" && t.name != "loss";
    EXPECT_TRUE(!is_grad || compared.count(t.name)) << t.name;
  }
}

class ReferenceParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceParity, DoubleWithin1e10) {
  expect_parity<double>(GetParam(), 1e-10);
}
TEST_P(ReferenceParity, FloatWithin1e5) {
  expect_parity<float>(GetParam(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, ReferenceParity,
    ::testing::Values("post_ln", "pre_ln", "normformer", "normformer_after_out_proj",
                      "normformer_resid_scale", "pre_ln_head_scale_before",
                      "pre_ln_head_scale_after", "pre_ln_attn_ln", "pre_ln_ffn_ln",
                      "pre_ln_resid_scale", "sandwich", "deepnorm", "pre_ln_rms_norm",
                      "pre_ln_untied", "post_ln_relu", "pre_ln_gelu_tanh",
                      // fairseq's embeddings, positions and padding
                      "pre_ln_embed_scale", "pre_ln_embed_scale_untied", "post_ln_embed_scale",
                      "pre_ln_sinusoidal", "pre_ln_padding_idx", "post_ln_padding_idx",
                      "pre_ln_sinusoidal_padding_idx", "post_ln_sinusoidal_padding_idx",
                      "normformer_fairseq_lm", "pre_ln_right_padded", "pre_ln_left_padded",
                      "post_ln_right_padded", "post_ln_left_padded", "fairseq_transformer_lm"));

// ---- forward_and_gradients: errors and the report file ----------------------

TEST(ForwardAndGradients, TargetsOfAnotherShape) {
  GPT<NormFormer, float, Cpu> model(model_config("normformer"), 1);
  const io::SafetensorsReader weights = reader(parameters_of(model));
  const TensorI targets = TensorI::zeros({2, 4});
  expect_error(
      [&] {
        (void)forward_and_gradients<float, Cpu>(model_config("normformer"), weights, tokens(),
                                                targets);
      },
      {"targets of shape (2, 4)", "tokens of shape (2, 5)"});
}

TEST(ForwardAndGradients, WeightsMissingAParameter) {
  GPT<NormFormer, float, Cpu> model(model_config("normformer"), 1);
  io::SafetensorsWriter w;
  for (const auto& p : model.named_parameters())
    if (p.name != "layers.0.c_attn") w.add(p.name, p.value.data());
  const TensorI targets = TensorI::zeros({2, 5});
  expect_error(
      [&] {
        (void)forward_and_gradients<double, Cpu>(model_config("normformer"),
                                                 reader(w, "weights.st"), tokens(), targets);
      },
      {"weights.st", "missing parameter 'layers.0.c_attn'", "expected shape (2,)"});
}

TEST(ForwardAndGradients, ReportHoldsLogitsLossAndEveryGradient) {
  GPT<NormFormer, float, Cpu> model(model_config("normformer"), 1);
  model.eval();
  const io::SafetensorsReader weights = reader(parameters_of(model));
  const TensorI targets = TensorI::from_vector({2, 5}, {4, 7, 10, 0, 5, 3, 9, 2, 6, 1});
  const auto report =
      forward_and_gradients<float, Cpu>(model_config("normformer"), weights, tokens(), targets);
  expect_bitwise_equal(report.logits.to_vector(), logits_of(model));

  const std::string path = ::testing::TempDir() + "normlab_test_forward_report.safetensors";
  write_forward_report(path, report);
  const io::SafetensorsReader file = io::SafetensorsReader::open(path);
  const auto params = model.named_parameters();
  EXPECT_EQ(file.tensors().size(), params.size() + 2);
  EXPECT_EQ(file.info("logits").shape, Shape({2, 5, 11}));
  EXPECT_EQ(file.info("loss").shape, Shape{});
  expect_bitwise_equal(file.read<float, Cpu>("logits").to_vector(), report.logits.to_vector());
  expect_bitwise_equal(file.read<float, Cpu>("loss").to_vector(), report.loss.to_vector());
  EXPECT_GT(report.loss.item(), 0.f);
  ASSERT_EQ(report.grads.size(), params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    SCOPED_TRACE(params[i].name);
    const std::string key = "grad." + params[i].name;
    ASSERT_TRUE(file.contains(key));
    EXPECT_EQ(report.grads[i].first, params[i].name);
    EXPECT_EQ(file.info(key).shape, params[i].value.shape());
    expect_bitwise_equal(file.read<float, Cpu>(key).to_vector(),
                         report.grads[i].second.to_vector());
  }
}

}  // namespace
}  // namespace normlab::testing
