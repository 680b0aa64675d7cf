// normlab/modules/init.hpp — seeded initialization schemes over a whole model.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "normlab/modules/module.hpp"

namespace normlab {
inline namespace v0 {

/// How a model's parameters start. Every scheme sets norm gains and learned
/// scales (c_attn, w_resid) to 1 and biases and norm shifts to 0, and keeps
/// the value of a parameter of kind own_init (an extra's own init); they
/// differ in the matrices:
///
///   fairseq  (the default of the models, the command line and the
///            experiments) fairseq's transformer_lm: Linear weights
///            Xavier-uniform, gain 1/sqrt(2) on q/k/v_proj; token and position
///            embeddings and an untied output projection N(0, C^-1/2).
///   gpt2     (Radford et al. 2019) every matrix and embedding N(0, 0.02),
///            except the output projection of each residual branch
///            (out_proj, fc2): N(0, 0.02 / sqrt(2N)) for N layers.
///   deepnorm DeepNet (Wang et al. 2022): as fairseq, but Linear weights
///            Xavier-normal with gain beta = (8N)^(-1/4) on v_proj, out_proj,
///            fc1, fc2 and gain 1 on q_proj, k_proj.
enum class InitScheme { gpt2, fairseq, deepnorm };

inline const char* to_string(InitScheme s) {
  return s == InitScheme::gpt2 ? "gpt2" : s == InitScheme::fairseq ? "fairseq" : "deepnorm";
}

/// Re-initializes every parameter of `model` by `scheme`, drawing in
/// parameter order from Generator(seed): the same seed gives the same model on
/// every backend and thread count.
/// Contract: n_layers > 0 (the N of the depth-scaled schemes).
template <FloatingElement Scalar, class Backend>
void initialize(Module<Scalar, Backend>& model, InitScheme scheme, int64_t n_layers,
                uint64_t seed) {
  detail::check(n_layers > 0, "initialize: n_layers must be positive, got ", n_layers);
  using Tens = Tensor<Scalar, Backend>;
  Generator gen(seed);
  const double depth = static_cast<double>(n_layers);
  auto ends_with = [](const std::string& s, const char* suffix) {
    const std::string x(suffix);
    return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  model.for_each_parameter([&](const std::string& name, Variable<Scalar, Backend>& p,
                               ParamKind kind) {
    Tens value = p.data();  // a handle: filling it sets the parameter
    auto normal = [&](double std) {
      value.copy_from(Tens::normal(p.shape(), gen, Scalar(0), Scalar(std)));
    };
    auto uniform = [&](double bound) {
      value.copy_from(Tens::uniform(p.shape(), gen, Scalar(-bound), Scalar(bound)));
    };
    switch (kind) {
      case ParamKind::norm_weight:
      case ParamKind::scale:
        value.fill_(Scalar(1));
        return;
      case ParamKind::norm_bias:
      case ParamKind::bias:
        value.fill_(Scalar(0));
        return;
      case ParamKind::own_init:
        return;
      case ParamKind::token_embedding:
      case ParamKind::position_embedding:
        if (scheme == InitScheme::gpt2)
          normal(0.02);
        else
          normal(1.0 / std::sqrt(static_cast<double>(p.size(1))));
        return;
      case ParamKind::weight:
        break;
    }
    const bool residual_out = ends_with(name, "out_proj.weight") || ends_with(name, "fc2.weight");
    const bool is_output_projection = name == "output_projection.weight";
    const double fan_out = static_cast<double>(p.size(0)), fan_in = static_cast<double>(p.size(1));
    switch (scheme) {
      case InitScheme::gpt2:
        normal(residual_out ? 0.02 / std::sqrt(2 * depth) : 0.02);
        return;
      case InitScheme::fairseq:
      case InitScheme::deepnorm:
        if (is_output_projection) {
          normal(1.0 / std::sqrt(fan_in));
          return;
        }
        if (scheme == InitScheme::fairseq) {
          const bool qkv = ends_with(name, "q_proj.weight") || ends_with(name, "k_proj.weight") ||
                           ends_with(name, "v_proj.weight");
          const double gain = qkv ? 1.0 / std::sqrt(2.0) : 1.0;
          uniform(gain * std::sqrt(6.0 / (fan_in + fan_out)));
        } else {
          const bool scaled = ends_with(name, "v_proj.weight") ||
                              ends_with(name, "out_proj.weight") || ends_with(name, "fc1.weight") ||
                              ends_with(name, "fc2.weight");
          const double gain = scaled ? std::pow(8 * depth, -0.25) : 1.0;
          normal(gain * std::sqrt(2.0 / (fan_in + fan_out)));
        }
        return;
    }
  });
}

}  // namespace v0
}  // namespace normlab
