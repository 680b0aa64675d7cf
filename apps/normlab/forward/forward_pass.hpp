// apps/normlab/forward/forward_pass.hpp — one forward and backward pass of a GPT described
// by files: what `normlab forward` computes, shared with the parity tests.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "normlab/models/checkpoint.hpp"
#include "normlab/models/gpt.hpp"
#include "normlab/policy/registry.hpp"

namespace normlab {
inline namespace v0 {

/// The outputs of forward_and_gradients.
template <FloatingElement Scalar, class Backend>
struct ForwardReport {
  Tensor<Scalar, Backend> logits;  ///< (B, T, V)
  Tensor<Scalar, Backend> loss;    ///< () mean next-token cross-entropy
  std::vector<std::pair<std::string, Tensor<Scalar, Backend>>>
      grads;        ///< d loss / d parameter, by name
  LoadReport load;  ///< which parameters came from the weights (all, under KeyMatch::exact)
};

/// Builds the GPT `cfg` describes (its policy composed at run time from the
/// extras registry), loads `weights` by name as `load` says (default: F32/F64
/// converted to T, exactly the model's parameters), and computes
///   logits = model(tokens), loss = cross_entropy(logits, targets, model.ignore_index())
/// (targets of -100, or of padding_idx when the config sets one, do not count)
/// and the gradient of the loss for every parameter, in eval mode.
///
/// Requires: tokens and targets (B, T) int64 of one shape; weights that fit
/// the model under `load` (load_parameters). Throws Error naming what did not fit.
template <FloatingElement Scalar, class Backend>
ForwardReport<Scalar, Backend> forward_and_gradients(
    const ModelConfig& cfg, const io::SafetensorsReader& weights,
    const Tensor<int64_t, Backend>& tokens, const Tensor<int64_t, Backend>& targets,
    const LoadOptions& load = {DTypeMatch::convert, KeyMatch::exact, {}}) {
  detail::check(targets.shape() == tokens.shape(), "forward: targets of shape ", targets.shape(),
                " do not match tokens of shape ", tokens.shape());
  ForwardReport<Scalar, Backend> report;
  GPT<RuntimePolicy, Scalar, Backend> model(cfg);
  model.eval();
  report.load = load_parameters(model, weights, load);
  const Variable<Scalar, Backend> logits = model.forward(tokens);  // (B, T, V)
  const Variable<Scalar, Backend> loss = cross_entropy(logits, targets, model.ignore_index());
  loss.backward();
  report.logits = logits.data();
  report.loss = loss.data();
  for (const auto& p : model.named_parameters()) report.grads.emplace_back(p.name, p.value.grad());
  return report;
}

/// Writes `logits`, `loss` and `grad.<name>` for every parameter to `path`.
template <FloatingElement Scalar, class Backend>
void write_forward_report(const std::string& path, const ForwardReport<Scalar, Backend>& report) {
  io::SafetensorsWriter w;
  w.add("logits", report.logits);
  w.add("loss", report.loss);
  for (const auto& [name, grad] : report.grads) w.add("grad." + name, grad);
  w.write(path);
}

}  // namespace v0
}  // namespace normlab
