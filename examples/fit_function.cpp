// fit_function — the smallest real training run: a two-layer network with a
// LayerNorm learns y = sin(3x) + 0.5 x^2 on [-2, 2] by full-batch Adam.
//
//   h   = GELU(LN(x W1 + b1))     // (N, H)
//   y^  = h W2 + b2               // (N, 1)
//   L   = mean((y^ - y)^2)
//
// Usage: fit_function [--steps N] [--hidden H] [--lr LR] [--seed S]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "normlab/normlab.hpp"

namespace nl = normlab;
using Tensor = nl::Tensor<float, nl::Cpu>;
using Var = nl::Variable<float, nl::Cpu>;

namespace {

struct Options {
  int steps = 1500;
  int hidden = 64;
  float lr = 1e-2f;
  uint64_t seed = 1;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::printf("usage: fit_function [--steps N] [--hidden H] [--lr LR] [--seed S]\n");
      std::exit(0);
    }
    if (i + 1 >= argc) throw nl::Error("fit_function: flag " + flag + " needs a value");
    const std::string value = argv[++i];
    std::size_t used = 0;
    try {
      if (flag == "--steps") o.steps = std::stoi(value, &used);
      else if (flag == "--hidden") o.hidden = std::stoi(value, &used);
      else if (flag == "--lr") o.lr = std::stof(value, &used);
      else if (flag == "--seed") o.seed = std::stoull(value, &used);
      else throw nl::Error("fit_function: unknown flag " + flag + " (see --help)");
    } catch (const std::logic_error&) {
      used = 0;
    }
    if (used != value.size() || o.steps <= 0 || o.hidden <= 0 || !(o.lr > 0))
      throw nl::Error("fit_function: bad value '" + value + "' for " + flag);
  }
  return o;
}

float target(float x) { return std::sin(3 * x) + 0.5f * x * x; }

/// Adam (Kingma & Ba 2015) on one parameter, written with ops under NoGradGuard.
struct AdamState {
  Var m, v;
};
void adam_step(Var& p, AdamState& s, int t, float lr) {
  constexpr double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  nl::NoGradGuard no_grad;
  const Var g(p.grad());
  s.m = s.m * b1 + g * (1 - b1);
  s.v = s.v * b2 + g * g * (1 - b2);
  const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
  const Var update = (s.m / c1) / (nl::sqrt(s.v / c2) + eps) * lr;
  Tensor value = p.data();  // a handle: writing through it updates p in place
  value.copy_from((p.detach() - update).data());
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  nl::Generator gen(opt.seed);
  const int64_t N = 256, H = opt.hidden;

  // Data: N points evenly spread over [-2, 2].
  std::vector<float> xs(N), ys(N);
  for (int64_t i = 0; i < N; ++i) {
    xs[i] = -2.f + 4.f * static_cast<float>(i) / static_cast<float>(N - 1);
    ys[i] = target(xs[i]);
  }
  const Var x(Tensor::from_vector({N, 1}, xs));  // (N, 1)
  const Var y(Tensor::from_vector({N, 1}, ys));  // (N, 1)

  // Parameters (Xavier-uniform weights, zero biases, identity LayerNorm).
  const float a1 = std::sqrt(6.f / (1 + H)), a2 = std::sqrt(6.f / (H + 1));
  std::vector<Var> params = {
      Var(Tensor::uniform({1, H}, gen, -a1, a1), true),  // W1 (1, H)
      Var(Tensor::zeros({H}), true),                     // b1 (H)
      Var(Tensor::ones({H}), true),                      // LN gamma (H)
      Var(Tensor::zeros({H}), true),                     // LN beta (H)
      Var(Tensor::uniform({H, 1}, gen, -a2, a2), true),  // W2 (H, 1)
      Var(Tensor::zeros({1}), true),                     // b2 (1)
  };
  std::vector<AdamState> state;
  for (const Var& p : params)
    state.push_back({Var(Tensor::zeros(p.shape())), Var(Tensor::zeros(p.shape()))});

  auto forward = [&](const Var& in) {
    const Var& w1 = params[0];
    const Var h = nl::gelu(nl::layer_norm(nl::matmul(in, w1) + params[1], params[2], params[3]));
    return nl::matmul(h, params[4]) + params[5];  // (N, 1)
  };

  std::printf("fitting y = sin(3x) + 0.5 x^2 on [-2, 2]: %lld points, hidden %lld, Adam lr %g\n",
              static_cast<long long>(N), static_cast<long long>(H), static_cast<double>(opt.lr));
  std::printf("%6s  %12s\n", "step", "mse");
  float first = 0, last = 0;
  for (int step = 1; step <= opt.steps; ++step) {
    const Var diff = forward(x) - y;
    const Var loss = nl::mean(diff * diff);  // ()
    for (Var& p : params) p.zero_grad();
    loss.backward();
    for (size_t i = 0; i < params.size(); ++i) adam_step(params[i], state[i], step, opt.lr);
    last = loss.item();
    if (step == 1) first = last;
    if (step == 1 || step % 100 == 0 || step == opt.steps) std::printf("%6d  %12.6f\n", step, last);
  }

  std::printf("\n%8s  %10s  %10s\n", "x", "target", "network");
  nl::NoGradGuard no_grad;
  const std::vector<float> probe = {-1.75f, -1.0f, -0.25f, 0.5f, 1.25f, 2.0f};
  const std::vector<float> pred =
      forward(Var(Tensor::from_vector({6, 1}, probe))).data().to_vector();
  for (size_t i = 0; i < probe.size(); ++i)
    std::printf("%8.2f  %10.4f  %10.4f\n", static_cast<double>(probe[i]),
                static_cast<double>(target(probe[i])), static_cast<double>(pred[i]));
  std::printf("\nmse fell from %.4f to %.6f (%.0fx)\n", static_cast<double>(first),
              static_cast<double>(last), static_cast<double>(first / last));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
