// Sampling text from a model: seeded, greedy, top-k, temperature, context
// longer than the model's positions, eval mode, errors.
#include "normlab/train/generate.hpp"

#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "testing.hpp"

namespace normlab::testing {
namespace {

ModelConfig tiny(double dropout = 0) {
  return model_config(
      "pre_ln",
      {.vocab = 256, .d_model = 16, .heads = 2, .layers = 2, .d_ff = 32, .max_seq_len = 8},
      dropout);
}

std::vector<int64_t> prompt_of(const std::string& text) {
  return ByteTokenizer::encode(text);
}

/// The argmax of the last position's logits of `model` in eval mode.
int64_t argmax_next(GPT<PreLN, float, Cpu>& model, const std::vector<int64_t>& context) {
  NoGradGuard no_grad;
  model.eval();
  const auto n = static_cast<int64_t>(context.size());
  const std::vector<float> logits =
      model.forward(TensorI::from_vector({1, n}, context)).data().to_vector();  // (1, T, V)
  const auto last = logits.begin() + (n - 1) * 256;
  model.train();
  return std::max_element(last, last + 256) - last;
}

TEST(Generate, SameSeedSameTextOtherSeedOtherText) {
  GPT<PreLN, float, Cpu> model(tiny(), 3);
  const auto prompt = prompt_of("Hello");
  SamplingOptions o;
  o.max_new_tokens = 40;
  o.seed = 7;
  const std::vector<int64_t> a = generate(model, prompt, o);
  EXPECT_EQ(a.size(), 40u);
  EXPECT_EQ(generate(model, prompt, o), a);
  o.seed = 8;
  EXPECT_NE(generate(model, prompt, o), a);  // an untrained model is close to uniform
  for (int64_t t : a) EXPECT_TRUE(t >= 0 && t < 256);
}

TEST(Generate, TopKOneIsGreedyIsArgmax) {
  GPT<PreLN, float, Cpu> model(tiny(0.5), 4);  // dropout: generation must run in eval mode
  const auto prompt = prompt_of("abc");
  SamplingOptions greedy;
  greedy.max_new_tokens = 12;
  greedy.temperature = 0;
  const std::vector<int64_t> g = generate(model, prompt, greedy);
  SamplingOptions top1;
  top1.max_new_tokens = 12;
  top1.top_k = 1;
  top1.temperature = 2.5;
  top1.seed = 99;
  EXPECT_EQ(generate(model, prompt, top1), g);
  // Token by token, greedy picks the argmax of the eval-mode logits.
  std::vector<int64_t> text = prompt;
  for (int64_t t : g) {
    const std::vector<int64_t> context(text.end() - std::min<int64_t>(std::ssize(text), 8),
                                       text.end());
    EXPECT_EQ(t, argmax_next(model, context));
    text.push_back(t);
  }
  EXPECT_TRUE(model.training());  // the mode it had before
}

TEST(Generate, ContextLongerThanTheModelKeepsTheLastTokens) {
  GPT<PreLN, float, Cpu> model(tiny(), 5);                     // max_seq_len 8
  const auto long_prompt = prompt_of("a prompt of twenty..");  // 20 tokens
  ASSERT_EQ(long_prompt.size(), 20u);
  const std::vector<int64_t> last8(long_prompt.end() - 8, long_prompt.end());
  SamplingOptions o;
  o.max_new_tokens = 16;  // the text grows past 8 again while generating
  o.seed = 1;
  EXPECT_EQ(generate(model, long_prompt, o), generate(model, last8, o));
}

TEST(Generate, SampleTokenFollowsTheDistribution) {
  // logits log(p): temperature 1 samples p itself.
  const std::vector<double> p = {0.2, 0.5, 0.3};
  std::vector<double> z;
  for (double x : p) z.push_back(std::log(x));
  SamplingOptions o;
  Generator gen(11);
  std::vector<int> hits(3, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++hits[static_cast<size_t>(sample_token<double>(z, o, gen))];
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(hits[i] / double(n), p[i], 0.015) << i;
  // top_k 2 never picks the least likely token; temperature 0.25 sharpens
  // p to p^4 / sum p^4 (0.5^4 / (0.2^4 + 0.5^4 + 0.3^4) = 0.874).
  o.top_k = 2;
  std::vector<int> top2(3, 0);
  for (int i = 0; i < n; ++i) ++top2[static_cast<size_t>(sample_token<double>(z, o, gen))];
  EXPECT_EQ(top2[0], 0);
  EXPECT_NEAR(top2[1] / double(n), 0.5 / 0.8, 0.015);
  o.top_k = 0;
  o.temperature = 0.25;
  std::vector<int> sharp(3, 0);
  for (int i = 0; i < n; ++i) ++sharp[static_cast<size_t>(sample_token<double>(z, o, gen))];
  EXPECT_NEAR(sharp[1] / double(n), 0.0625 / (0.0016 + 0.0625 + 0.0081), 0.015);
  // Greedy picks the lowest index among equal maxima and draws nothing.
  o.temperature = 0;
  const uint64_t offset = gen.offset();
  EXPECT_EQ(sample_token<double>(std::vector<double>{1, 3, 3}, o, gen), 1);
  EXPECT_EQ(gen.offset(), offset);
  o.temperature = 1;
  o.top_k = 10;  // more than V: every token
  EXPECT_NO_THROW((void)sample_token<double>(z, o, gen));
}

TEST(Generate, ErrorsSayWhatWasExpected) {
  GPT<PreLN, float, Cpu> model(tiny(), 6);
  const auto prompt = prompt_of("x");
  SamplingOptions o;
  o.temperature = -1;
  expect_error([&] { (void)generate(model, prompt, o); },
               {"temperature must be a finite number >= 0", "got -1"});
  o.temperature = std::numeric_limits<double>::infinity();
  expect_error([&] { (void)generate(model, prompt, o); }, {"temperature", "inf"});
  o.temperature = std::nan("");
  expect_error([&] { (void)generate(model, prompt, o); }, {"temperature", "nan"});
  o.temperature = 1;
  o.top_k = -3;
  expect_error([&] { (void)generate(model, prompt, o); }, {"top_k must be >= 0", "got -3"});
  o.top_k = 0;
  o.max_new_tokens = -1;
  expect_error([&] { (void)generate(model, prompt, o); }, {"max_new_tokens", "-1"});
  o.max_new_tokens = 3;
  expect_error([&] { (void)generate(model, std::vector<int64_t>{}, o); },
               {"prompt must hold at least one token"});
  expect_error(
      [&] {
        (void)generate(model, std::vector<int64_t>{65, 300}, o);
      },
      {"prompt token 1 is 300", "[0, vocab_size = 256)"});
  Generator gen(1);
  expect_error(
      [&] {
        (void)sample_token<float>(std::vector<float>{1, NAN}, o, gen);
      },
      {"logit 1 is nan", "expected a finite number"});
  expect_error([&] { (void)sample_token<float>(std::vector<float>{}, o, gen); },
               {"at least one logit"});
  EXPECT_TRUE(model.training());
}

}  // namespace
}  // namespace normlab::testing
