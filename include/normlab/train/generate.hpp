// normlab/train/generate.hpp — sampling text from a causal language model:
// temperature, top-k, greedy, seeded.
//
// One step of generation, with z the logits (V) of the last position:
//
//   greedy (temperature 0):  next = argmax_i z_i            (lowest i among ties)
//   sampled (temperature t): K = the k largest z_i (all V when top_k is 0 or >= V)
//                            p_i = exp((z_i - max z) / t) / sum_{j in K} exp((z_j - max z) / t)
//                            next = the first i, in order of decreasing z, whose running sum
//                                   of p exceeds u ~ U[0, 1) from the seeded generator
//
// top_k = 1 therefore always picks the argmax, whatever the temperature.
// The context fed to the model is the last max_seq_len tokens (prompt and
// generated text together), as a model with learned positions cannot see
// further back.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "normlab/autograd/grad_mode.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/random.hpp"
#include "normlab/core/tensor.hpp"

namespace normlab {
inline namespace v0 {

/// How generate() picks each next token.
struct SamplingOptions {
  int64_t max_new_tokens = 200;  ///< tokens to append to the prompt
  double temperature = 1.0;      ///< divides the logits; 0 means greedy (argmax)
  int64_t top_k = 0;             ///< sample among the k most likely tokens; 0 (or >= V): all
  uint64_t seed = 0;             ///< the same seed, model and prompt give the same tokens

  /// Throws Error saying what was expected and what was found when
  /// temperature is negative or not finite, top_k is negative or
  /// max_new_tokens is negative.
  void validate() const {
    detail::check(std::isfinite(temperature) && temperature >= 0,
                  "sampling: temperature must be a finite number >= 0 (0 = greedy), got ",
                  temperature);
    detail::check(top_k >= 0, "sampling: top_k must be >= 0 (0 = every token), got ", top_k);
    detail::check(max_new_tokens >= 0, "sampling: max_new_tokens must be >= 0, got ",
                  max_new_tokens);
  }
};

/// The next token for one row of logits z (V), by the rule at the top of this
/// file; draws one uniform from `gen` unless the choice is greedy
/// (temperature 0 or top_k 1).
///
/// Requires: o validates; z is non-empty and finite (throws Error otherwise,
/// since a diverged model's NaN logits have no meaningful sample).
/// Ensures: the result is in [0, V).
template <FloatingElement Scalar>
int64_t sample_token(std::span<const Scalar> z, const SamplingOptions& o, Generator& gen) {
  o.validate();
  const int64_t V = static_cast<int64_t>(z.size());
  detail::check(V > 0, "sampling: needs at least one logit, got none");
  for (int64_t i = 0; i < V; ++i)
    detail::check(std::isfinite(static_cast<double>(z[static_cast<size_t>(i)])), "sampling: logit ",
                  i, " is ", static_cast<double>(z[static_cast<size_t>(i)]),
                  ", expected a finite number (has the model diverged?)");
  // Candidates in order of decreasing logit, ties by index: a deterministic order.
  std::vector<int64_t> order(static_cast<size_t>(V));  // (V)
  std::iota(order.begin(), order.end(), int64_t{0});
  const auto before = [&](int64_t a, int64_t b) {
    const Scalar za = z[static_cast<size_t>(a)], zb = z[static_cast<size_t>(b)];
    return za > zb || (za == zb && a < b);
  };
  const int64_t k = (o.top_k == 0 || o.top_k > V) ? V : o.top_k;
  if (o.temperature == 0 || k == 1) return *std::min_element(order.begin(), order.end(), before);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
  const double top = static_cast<double>(z[static_cast<size_t>(order[0])]);
  std::vector<double> weight(static_cast<size_t>(k));  // (k) unnormalized probabilities
  double total = 0;
  for (int64_t j = 0; j < k; ++j) {
    const double zj = static_cast<double>(z[static_cast<size_t>(order[static_cast<size_t>(j)])]);
    weight[static_cast<size_t>(j)] = std::exp((zj - top) / o.temperature);
    total += weight[static_cast<size_t>(j)];
  }
  const double u = philox_uniform<double>(gen.seed(), gen.reserve<double>(1), 0, 0.0, 1.0);
  const double target = u * total;
  double running = 0;
  for (int64_t j = 0; j < k; ++j) {
    running += weight[static_cast<size_t>(j)];
    if (running > target) return order[static_cast<size_t>(j)];
  }
  return order[static_cast<size_t>(k - 1)];  // rounding left target at the very top
}

/// Appends o.max_new_tokens tokens to `prompt` by sampling `model` one token
/// at a time; returns the new tokens only.
///
/// Model: GPT-like — `forward(tokens (1, T)) -> logits (1, T, V)`, `config()`,
/// `train(bool)`, `training()`.
/// Requires: o validates; the prompt is non-empty and its tokens are in
/// [0, vocab_size) (throws Error saying which token is not).
/// Ensures: runs in eval mode (no dropout) without recording a graph, and
/// restores the model's training mode; each step sees the last max_seq_len
/// tokens; the same model, prompt and options give the same tokens.
template <class Model>
std::vector<int64_t> generate(Model& model, std::span<const int64_t> prompt,
                              const SamplingOptions& o) {
  using Scalar = typename Model::Var::value_type;
  using Backend = typename Model::Var::backend_type;
  o.validate();
  const int64_t V = model.config().vocab_size;
  const int64_t max_T = model.config().max_seq_len;
  detail::check(!prompt.empty(), "generate: the prompt must hold at least one token, got none");
  for (size_t i = 0; i < prompt.size(); ++i)
    detail::check(prompt[i] >= 0 && prompt[i] < V, "generate: prompt token ", i, " is ", prompt[i],
                  ", expected a token in [0, vocab_size = ", V, ")");

  struct ModeGuard {  // eval mode for the duration, whatever happens
    Model& m;
    bool was_training;
    ~ModeGuard() { m.train(was_training); }
  } mode{model, model.training()};
  model.eval();
  NoGradGuard no_grad;
  Generator gen(o.seed);

  std::vector<int64_t> text(prompt.begin(), prompt.end());
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(o.max_new_tokens));
  for (int64_t n = 0; n < o.max_new_tokens; ++n) {
    const int64_t Tn = std::min<int64_t>(static_cast<int64_t>(text.size()), max_T);
    const std::vector<int64_t> context(text.end() - Tn, text.end());
    const Tensor<int64_t, Backend> tokens =
        Tensor<int64_t, Backend>::from_vector({1, Tn}, context);                  // (1, T)
    const std::vector<Scalar> logits = model.forward(tokens).data().to_vector();  // (1, T, V)
    const std::span<const Scalar> last(logits.data() + (Tn - 1) * V,
                                       static_cast<size_t>(V));  // (V)
    const int64_t next = sample_token(last, o, gen);
    text.push_back(next);
    out.push_back(next);
  }
  return out;
}

}  // namespace v0
}  // namespace normlab
