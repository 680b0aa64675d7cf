// apps/normlab/cli/forward.cpp — `normlab forward`: one forward and backward pass of a GPT given by
// files, its logits, loss and gradients written for comparison with PyTorch.
#include "cli/common.hpp"
#include "forward/forward_pass.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {
namespace {

/// The model's description: a checkpoint (config in its metadata, parameters beside it), or a
/// config file and a weights file.
struct ForwardInputs {
  nl::ModelConfig config;
  std::string weights_path;
  nl::LoadOptions load{nl::DTypeMatch::convert, nl::KeyMatch::exact, {}};
};

template <nl::FloatingElement Scalar>
void run_forward(const ForwardInputs& in, const Flags& flags) {
  using Tokens = nl::Tensor<int64_t, nl::Cpu>;
  const auto weights = nl::io::SafetensorsReader::open(in.weights_path);
  const auto batch = nl::io::SafetensorsReader::open(flags.required("--tokens"));
  const Tokens tokens = batch.read<int64_t, nl::Cpu>("tokens");
  const Tokens targets = batch.read<int64_t, nl::Cpu>("targets");
  const auto report =
      nl::forward_and_gradients<Scalar, nl::Cpu>(in.config, weights, tokens, targets, in.load);
  if (!report.load.complete())
    std::fprintf(stderr, "normlab forward: %s: %s\n", in.weights_path.c_str(),
                 report.load.summary().c_str());
  const std::string out = flags.required("--out");
  nl::write_forward_report(out, report);
  std::printf("%s: logits %s, loss %.10g, %zu gradients (%s)\n", out.c_str(),
              report.logits.shape().to_string().c_str(), static_cast<double>(report.loss.item()),
              report.grads.size(), nl::dtype_name<Scalar>());
}

/// --checkpoint FILE, or --config and --weights; UsageError for any other mix.
ForwardInputs forward_inputs(const Flags& flags) {
  ForwardInputs in;
  if (flags.on("--non-strict")) in.load.keys = nl::KeyMatch::report;
  if (flags.given("--checkpoint")) {
    if (flags.given("--config") || flags.given("--weights"))
      throw UsageError(
          "normlab forward: --checkpoint holds the config and the weights; give it alone, or "
          "--config and --weights instead");
    in.weights_path = flags.required("--checkpoint");
    const auto file = nl::io::SafetensorsReader::open(in.weights_path);
    in.config = nl::checkpoint_config(file);
    in.load.ignored = nl::tensor_names_with_prefix(file, nl::kOptimizerStatePrefix);
    return in;
  }
  if (!flags.given("--config") || !flags.given("--weights"))
    throw UsageError(
        "normlab forward: expected --checkpoint FILE, or --config CONFIG.json with --weights "
        "WEIGHTS.safetensors; found " +
        std::string(flags.given("--config")    ? "--config without --weights"
                    : flags.given("--weights") ? "--weights without --config"
                                               : "neither"));
  in.config = nl::load_config(flags.required("--config"));
  in.weights_path = flags.required("--weights");
  return in;
}

}  // namespace

int forward_command(int argc, char** argv) {
  const Flags flags(
      "forward",
      {{"--checkpoint", "CHECKPOINT.safetensors a normlab checkpoint: config and weights"},
       {"--config", "CONFIG.json        model config (sizes, policy), with --weights"},
       {"--weights", "WEIGHTS.safetensors parameters under fairseq names, with --config"},
       {"--tokens", "TOKENS.safetensors  `tokens` and `targets`, int64 (B, T)"},
       {"--out", "OUT.safetensors     where logits, loss and grad.<name> go"},
       {"--dtype", "f32|f64             precision of the computation (default f32)"}},
      argc, argv, 2,
      {{"--non-strict",
        "              load the parameters the file has; list missing and "
        "unexpected ones on stderr"}});
  if (flags.print_help(
          "usage: normlab forward (--checkpoint CHECKPOINT.safetensors |\n"
          "                        --config CONFIG.json --weights WEIGHTS.safetensors)\n"
          "                       --tokens TOKENS.safetensors --out OUT.safetensors\n"
          "                       [--dtype f32|f64] [--non-strict]\n"
          "Runs the GPT the files describe and writes its logits (B, T, V), the mean next-token\n"
          "cross-entropy `loss` (targets of -100, or of the config's padding_idx, ignored) and\n"
          "`grad.<name>` for every parameter. A checkpoint's optimizer state (optim.*) is\n"
          "ignored. The weights must hold exactly the model's parameters unless --non-strict:\n"
          "then parameters they lack keep their initial values, and the missing and unexpected\n"
          "names are printed.\n"))
    return 0;
  const ForwardInputs in = forward_inputs(flags);
  const std::string dtype = flags.get("--dtype", "f32");
  if (dtype == "f32")
    run_forward<float>(in, flags);
  else if (dtype == "f64")
    run_forward<double>(in, flags);
  else
    throw UsageError("normlab forward: --dtype must be f32 or f64, got '" + dtype + "'");
  return 0;
}

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
