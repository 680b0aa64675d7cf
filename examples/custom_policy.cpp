// custom_policy — a normalization placement of your own in a few lines.
//
// Pre-LN plus only NormFormer's post-attention LayerNorm:
//   x = x + attn_ln(Attn(LN_1(x)))
//   x = x + FFN(LN_2(x))
// trained next to plain Pre-LN for a few steps on a small repeating text,
// printing both loss curves.
//
// Usage: custom_policy [--steps N] [--seed S]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "normlab/normlab.hpp"

namespace nl = normlab;

/// The whole policy: inherit a base, switch on the traits you want.
struct PreLNWithAttnLN : nl::PreLN {
  static constexpr bool attn_out_norm = true;
  static std::string name() { return "pre_ln+attn_ln (custom)"; }
};
static_assert(nl::NormPolicy<PreLNWithAttnLN>);

namespace {

using Tokens = nl::Tensor<int64_t, nl::Cpu>;
using Var = nl::Variable<float, nl::Cpu>;
using Tens = nl::Tensor<float, nl::Cpu>;

/// Adam (Kingma & Ba 2015), written with ops under NoGradGuard; the library's
/// optimizers replace this once they exist.
class Adam {
 public:
  Adam(std::vector<Var> params, double lr) : params_(std::move(params)), lr_(lr) {
    for (const Var& p : params_) {
      m_.emplace_back(Tens::zeros(p.shape()));
      v_.emplace_back(Tens::zeros(p.shape()));
    }
  }
  void step() {
    constexpr double b1 = 0.9, b2 = 0.98, eps = 1e-8;
    nl::NoGradGuard no_grad;
    ++t_;
    const double c1 = 1 - std::pow(b1, t_), c2 = 1 - std::pow(b2, t_);
    for (size_t i = 0; i < params_.size(); ++i) {
      const Var g(params_[i].grad());
      m_[i] = m_[i] * b1 + g * (1 - b1);
      v_[i] = v_[i] * b2 + g * g * (1 - b2);
      Tens value = params_[i].data();  // a handle: writing through it updates the parameter
      value.copy_from(
          (params_[i].detach() - (m_[i] / c1) / (nl::sqrt(v_[i] / c2) + eps) * lr_).data());
    }
  }

 private:
  std::vector<Var> params_, m_, v_;
  double lr_;
  int t_ = 0;
};

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
void train(const char* label, int steps, uint64_t seed) {
  nl::ModelConfig cfg;
  cfg.vocab_size = 256;
  cfg.d_model = 64;
  cfg.n_heads = 4;
  cfg.n_layers = 2;
  cfg.d_ff = 256;
  cfg.max_seq_len = 32;
  cfg.set_policy<Policy>();  // the config now describes Policy
  nl::GPT<Policy, nl::Cpu, float> model(cfg, seed);
  Adam adam(model.parameters(), 3e-3);
  const std::string text =
      "the place of a layer norm decides how gradients flow through a deep network. ";
  std::printf("%s: %lld parameters\n", label, static_cast<long long>(model.parameter_count()));
  Tokens x, y;
  for (int step = 1; step <= steps; ++step) {
    make_batch(text + text + text, 8, 32, step, x, y);
    const Var loss = model.loss(x, y);
    model.zero_grad();
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
  train<nl::PreLN>("pre_ln", steps, seed);
  train<PreLNWithAttnLN>(PreLNWithAttnLN::name().c_str(), steps, seed);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
