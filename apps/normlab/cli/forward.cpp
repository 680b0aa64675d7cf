// apps/normlab/cli/forward.cpp — `normlab forward`: one forward and backward pass of a GPT given by
// files, its logits, loss and gradients written for comparison with PyTorch.
#include "cli/common.hpp"
#include "forward/forward_pass.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {
namespace {

template <nl::FloatingElement Scalar>
void run_forward(const nl::ModelConfig& cfg, const Flags& flags) {
  using Tokens = nl::Tensor<int64_t, nl::Cpu>;
  const auto weights = nl::io::SafetensorsReader::open(flags.required("--weights"));
  const auto batch = nl::io::SafetensorsReader::open(flags.required("--tokens"));
  const Tokens tokens = batch.read<int64_t, nl::Cpu>("tokens");
  const Tokens targets = batch.read<int64_t, nl::Cpu>("targets");
  const auto report = nl::forward_and_gradients<Scalar, nl::Cpu>(cfg, weights, tokens, targets);
  const std::string out = flags.required("--out");
  nl::write_forward_report(out, report);
  std::printf("%s: logits %s, loss %.10g, %zu gradients (%s)\n", out.c_str(),
              report.logits.shape().to_string().c_str(), static_cast<double>(report.loss.item()),
              report.grads.size(), nl::dtype_name<Scalar>());
}

}  // namespace

int forward_command(int argc, char** argv) {
  const Flags flags("forward",
                    {{"--config", "CONFIG.json        model config (sizes, policy)"},
                     {"--weights", "WEIGHTS.safetensors parameters under fairseq names"},
                     {"--tokens", "TOKENS.safetensors  `tokens` and `targets`, int64 (B, T)"},
                     {"--out", "OUT.safetensors     where logits, loss and grad.<name> go"},
                     {"--dtype", "f32|f64             precision of the computation (default f32)"}},
                    argc, argv, 2);
  if (flags.print_help(
          "usage: normlab forward --config CONFIG.json --weights WEIGHTS.safetensors\n"
          "                       --tokens TOKENS.safetensors --out OUT.safetensors [--dtype "
          "f32|f64]\n"
          "Runs the GPT the files describe and writes its logits (B, T, V), the mean next-token\n"
          "cross-entropy `loss` (targets of -100, or of the config's padding_idx, ignored) and\n"
          "`grad.<name>` for every parameter.\n"))
    return 0;
  const std::string config_path = flags.required("--config");
  const nl::ModelConfig cfg = nl::load_config(config_path);
  const std::string dtype = flags.get("--dtype", "f32");
  if (dtype == "f32")
    run_forward<float>(cfg, flags);
  else if (dtype == "f64")
    run_forward<double>(cfg, flags);
  else
    throw UsageError("normlab forward: --dtype must be f32 or f64, got '" + dtype + "'");
  return 0;
}

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
