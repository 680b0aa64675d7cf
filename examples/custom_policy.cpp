// custom_policy — normalization placements of your own, as static types.
//
// Two extras written by a user (examples/extras/), each one struct:
//   LayerScale (CaiT):  x <- x + diag(g_s) F_s(LN(x)),  g_s (C,) init 0.1
//   ReZero:             x <- x + alpha_s F_s(x),        alpha_s init 0, no norm
// composed onto the library's placements and trained next to plain Pre-LN
// for a few steps on a small repeating text, printing the loss curves.
// examples/user_normlab.cpp runs the same extras through `normlab compare`.
//
// Usage: custom_policy [--steps N] [--seed S]
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "extras/layer_scale.hpp"
#include "extras/rezero.hpp"
#include "normlab/normlab.hpp"

namespace nl = normlab;

/// The policies: a placement and the extras on it. Each is a type.
using PreLNLayerScale = nl::compose<nl::PreLN, LayerScale>;
using ReZeroNoLN = nl::compose<nl::NoLN, ReZero>;

namespace {

using Tokens = nl::Tensor<int64_t, nl::Cpu>;
using Var = nl::Variable<float, nl::Cpu>;

/// Byte tokens of a short repeating text; batch b starts at a different offset.
void make_batch(const std::string& text, int64_t B, int64_t T, int step, Tokens& x, Tokens& y) {
  std::vector<int64_t> xs, ys;
  for (int64_t b = 0; b < B; ++b) {
    const size_t start =
        static_cast<size_t>((step * 7 + b * 13) % static_cast<int>(text.size() - T - 1));
    for (int64_t t = 0; t < T; ++t) {
      xs.push_back(static_cast<unsigned char>(text[start + static_cast<size_t>(t)]));
      ys.push_back(static_cast<unsigned char>(text[start + static_cast<size_t>(t) + 1]));
    }
  }
  x = Tokens::from_vector({B, T}, xs);
  y = Tokens::from_vector({B, T}, ys);
}

template <class Policy>
void train(int steps, uint64_t seed) {
  nl::ModelConfig cfg;
  cfg.vocab_size = 256;
  cfg.d_model = 64;
  cfg.n_heads = 4;
  cfg.n_layers = 2;
  cfg.d_ff = 256;
  cfg.max_seq_len = 32;
  cfg.set_policy<Policy>();  // the config now describes Policy
  nl::GPT<Policy, float, nl::Cpu> model(cfg, seed);
  nl::AdamW<float, nl::Cpu> adam(model, nl::AdamWOptions{3e-3, 0.9, 0.98, 1e-8, 0.01});
  const std::string text =
      "the place of a layer norm decides how gradients flow through a deep network. ";
  std::printf("%s: %lld parameters\n", Policy::name().c_str(),
              static_cast<long long>(model.parameter_count()));
  Tokens x, y;
  for (int step = 1; step <= steps; ++step) {
    make_batch(text + text + text, 8, 32, step, x, y);
    const Var loss = model.loss(x, y);
    adam.zero_grad();
    loss.backward();
    adam.step();
    if (step == 1 || step % 10 == 0 || step == steps)
      std::printf("  step %4d  loss %.4f\n", step, static_cast<double>(loss.item()));
  }
}

}  // namespace

int main(int argc, char** argv) try {
  int steps = 60;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::printf("usage: custom_policy [--steps N] [--seed S]\n");
      return 0;
    }
    if (i + 1 >= argc) throw nl::Error("custom_policy: flag " + flag + " needs a value");
    const std::string value = argv[++i];
    char* end = nullptr;
    const unsigned long long n = std::strtoull(value.c_str(), &end, 10);
    if (end == value.c_str() || *end != '\0' || n == 0)
      throw nl::Error("custom_policy: bad value '" + value + "' for " + flag);
    if (flag == "--steps")
      steps = static_cast<int>(n);
    else if (flag == "--seed")
      seed = n;
    else
      throw nl::Error("custom_policy: unknown flag " + flag + " (see --help)");
  }
  train<nl::PreLN>(steps, seed);
  train<PreLNLayerScale>(steps, seed);
  train<ReZeroNoLN>(steps, seed);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
