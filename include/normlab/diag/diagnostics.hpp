// normlab/diag/diagnostics.hpp — per-layer gradient norms and residual-stream
// activation norms: what the normalization papers plot.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "normlab/autograd/grad_mode.hpp"
#include "normlab/modules/module.hpp"

namespace normlab {
inline namespace v0 {

/// Gradient norms of a model's layers, one row per layer and one column per
/// parameter group: the module a parameter belongs to inside its layer
/// (`self_attn.q_proj`, `fc2`, `self_attn_layer_norm`, `attn_ln`, ...), or the
/// parameter itself when the layer owns it directly (`c_attn`, `w_resid`).
struct LayerGradientNorms {
  std::vector<std::string> groups;         ///< columns, in the order the model lists them
  std::vector<std::vector<double>> norms;  ///< [layer][group]; NaN where a layer lacks the group

  /// The norm of `group` in `layer`; throws Error naming a group that does not exist.
  double at(int64_t layer, const std::string& group) const {
    for (size_t g = 0; g < groups.size(); ++g)
      if (groups[g] == group) {
        detail::check(layer >= 0 && layer < static_cast<int64_t>(norms.size()),
                      "LayerGradientNorms: layer ", layer, " is outside [0, ", norms.size(), ")");
        return norms[static_cast<size_t>(layer)][g];
      }
    throw Error(detail::concat("LayerGradientNorms: no parameter group \"", group, "\""));
  }
};

/// Which parameters a group's norm covers.
enum class GradientNormScope {
  weights,  ///< matrices, norm gains and scales (what the papers plot)
  all,      ///< biases and norm shifts too
};

/// For every parameter named `layers.<i>.<group>[.weight|.bias]` that holds a
/// gradient: the Frobenius norm sqrt(sum g^2) of the group's gradients in each
/// layer. Parameters outside `layers.` (embeddings, the final norm) are not
/// counted; parameters without a gradient count as absent.
template <FloatingElement Scalar, class Backend>
LayerGradientNorms layer_gradient_norms(Module<Scalar, Backend>& model,
                                        GradientNormScope scope = GradientNormScope::weights) {
  LayerGradientNorms out;
  std::map<std::string, size_t> column;
  std::vector<std::map<size_t, double>> squares;  // [layer] group -> sum of squares
  model.for_each_parameter(
      [&](const std::string& name, Variable<Scalar, Backend>& p, ParamKind kind) {
        if (name.rfind("layers.", 0) != 0 || !p.has_grad()) return;
        if (scope == GradientNormScope::weights &&
            (kind == ParamKind::bias || kind == ParamKind::norm_bias))
          return;
        const size_t dot = name.find('.', 7);
        const size_t layer = static_cast<size_t>(std::stoll(name.substr(7, dot - 7)));
        std::string group = name.substr(dot + 1);
        for (const char* suffix : {".weight", ".bias"}) {
          const std::string s(suffix);
          if (group.size() > s.size() && group.compare(group.size() - s.size(), s.size(), s) == 0) {
            group.resize(group.size() - s.size());
            break;
          }
        }
        const auto [it, fresh] = column.emplace(group, out.groups.size());
        if (fresh) out.groups.push_back(group);
        if (squares.size() <= layer) squares.resize(layer + 1);
        double sum = 0;
        for (Scalar g : p.grad().to_vector())
          sum += static_cast<double>(g) * static_cast<double>(g);
        squares[layer][it->second] += sum;
      });
  for (const auto& layer : squares) {
    std::vector<double> row(out.groups.size(), std::numeric_limits<double>::quiet_NaN());
    for (const auto& [g, sum] : layer) row[g] = std::sqrt(sum);
    out.norms.push_back(std::move(row));
  }
  return out;
}

/// The mean over tokens of the L2 norm of the residual stream, entering the
/// first layer (index 0) and leaving each layer (1..N), for one batch: a
/// forward pass without a graph.
/// Requires: `model.forward(tokens, observer)` as GPT provides.
template <class Model, class Tokens>
std::vector<double> residual_stream_norms(const Model& model, const Tokens& tokens) {
  NoGradGuard no_grad;
  std::vector<double> norms;
  (void)model.forward(tokens, [&](int64_t index, const auto& h) {  // h: (B, T, C)
    const auto v = h.data().to_vector();
    const int64_t C = h.size(-1), rows = h.numel() / C;
    double total = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double sq = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double x = static_cast<double>(v[static_cast<size_t>(r * C + c)]);
        sq += x * x;
      }
      total += std::sqrt(sq);
    }
    if (norms.size() <= static_cast<size_t>(index)) norms.resize(static_cast<size_t>(index) + 1);
    norms[static_cast<size_t>(index)] = rows ? total / static_cast<double>(rows) : 0.0;
  });
  return norms;
}

}  // namespace v0
}  // namespace normlab
