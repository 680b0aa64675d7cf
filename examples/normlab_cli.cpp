// normlab — the command-line front end.
//
//   normlab forward --config CONFIG.json --weights WEIGHTS.safetensors
//                   --tokens TOKENS.safetensors --out OUT.safetensors [--dtype f32|f64]
//   normlab info    --config CONFIG.json
//
// `forward` runs a GPT described by files and writes its logits, mean
// next-token cross-entropy and the gradient of every parameter, so that our
// numbers can be diffed against anyone's PyTorch code. `info` prints a config
// and the parameter count of every selectable policy at its sizes.
// Errors are one line on stderr and a non-zero exit status.
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "normlab/normlab.hpp"

namespace nl = normlab;

namespace {

/// "--name value" flags of one subcommand, checked against what it accepts.
class Flags {
 public:
  Flags(std::string command, std::map<std::string, std::string> accepted, int argc, char** argv,
        int first)
      : command_(std::move(command)), accepted_(std::move(accepted)) {
    for (int i = first; i < argc; ++i) {
      const std::string flag = argv[i];
      if (flag == "--help" || flag == "-h") {
        help_ = true;
        continue;
      }
      if (!accepted_.contains(flag))
        throw nl::Error("normlab " + command_ + ": unknown flag '" + flag + "' (see normlab " +
                        command_ + " --help)");
      if (i + 1 >= argc)
        throw nl::Error("normlab " + command_ + ": flag " + flag + " needs a value");
      values_[flag] = argv[++i];
    }
  }
  bool help() const { return help_; }
  std::string usage() const {
    std::string s;
    for (const auto& [flag, what] : accepted_) s += "  " + flag + " " + what + "\n";
    return s;
  }
  /// The value of a required flag.
  const std::string& required(const std::string& flag) const {
    const auto it = values_.find(flag);
    if (it == values_.end())
      throw nl::Error("normlab " + command_ + ": missing " + flag + " (see normlab " + command_ +
                      " --help)");
    return it->second;
  }
  std::string get(const std::string& flag, const std::string& fallback) const {
    const auto it = values_.find(flag);
    return it == values_.end() ? fallback : it->second;
  }

 private:
  std::string command_;
  std::map<std::string, std::string> accepted_;
  std::map<std::string, std::string> values_;
  bool help_ = false;
};

template <nl::FloatingElement T>
void run_forward(const nl::ModelConfig& cfg, const Flags& flags) {
  using Tokens = nl::Tensor<int64_t, nl::Cpu>;
  const auto weights = nl::io::SafetensorsReader::open(flags.required("--weights"));
  const auto batch = nl::io::SafetensorsReader::open(flags.required("--tokens"));
  const Tokens tokens = batch.read<int64_t, nl::Cpu>("tokens");
  const Tokens targets = batch.read<int64_t, nl::Cpu>("targets");
  const auto report = nl::forward_and_gradients<T, nl::Cpu>(cfg, weights, tokens, targets);
  const std::string out = flags.required("--out");
  nl::write_forward_report(out, report);
  std::printf("%s: logits %s, loss %.10g, %zu gradients (%s)\n", out.c_str(),
              report.logits.shape().to_string().c_str(), static_cast<double>(report.loss.item()),
              report.grads.size(), nl::dtype_name<T>());
}

int forward(int argc, char** argv) {
  const Flags flags("forward",
                    {{"--config", "CONFIG.json        model config (sizes, policy)"},
                     {"--weights", "WEIGHTS.safetensors parameters under fairseq names"},
                     {"--tokens", "TOKENS.safetensors  `tokens` and `targets`, int64 (B, T)"},
                     {"--out", "OUT.safetensors     where logits, loss and grad.<name> go"},
                     {"--dtype", "f32|f64             precision of the computation (default f32)"}},
                    argc, argv, 2);
  if (flags.help()) {
    std::printf(
        "usage: normlab forward --config CONFIG.json --weights WEIGHTS.safetensors\n"
        "                       --tokens TOKENS.safetensors --out OUT.safetensors [--dtype "
        "f32|f64]\n"
        "Runs the GPT the files describe and writes its logits (B, T, V), the mean next-token\n"
        "cross-entropy `loss` and `grad.<name>` for every parameter.\n%s",
        flags.usage().c_str());
    return 0;
  }
  const std::string config_path = flags.required("--config");
  const nl::ModelConfig cfg = nl::load_config(config_path);
  const std::string dtype = flags.get("--dtype", "f32");
  if (dtype == "f32")
    run_forward<float>(cfg, flags);
  else if (dtype == "f64")
    run_forward<double>(cfg, flags);
  else
    throw nl::Error("normlab forward: --dtype must be f32 or f64, got '" + dtype + "'");
  return 0;
}

int info(int argc, char** argv) {
  const Flags flags("info", {{"--config", "CONFIG.json  model config"}}, argc, argv, 2);
  if (flags.help()) {
    std::printf(
        "usage: normlab info --config CONFIG.json\n"
        "Prints the config and the parameter count of every selectable policy at its sizes.\n%s",
        flags.usage().c_str());
    return 0;
  }
  const nl::ModelConfig cfg = nl::load_config(flags.required("--config"));
  std::printf("%s\n\n", nl::json::dump(nl::config_to_json(cfg)).c_str());
  struct Row {
    std::string policy;
    int64_t params;
  };
  std::vector<Row> rows;
  nl::for_each_known_policy([&]<class P>() {
    nl::ModelConfig c = cfg;
    c.set_policy<P>();
    c.final_norm.reset();  // each policy's own default
    nl::GPT<P, nl::Cpu, float> model(c);
    rows.push_back({nl::traits_of<P>().describe(), model.parameter_count()});
  });
  const int64_t pre_ln = rows[1].params;  // KnownPolicies lists PostLN, then PreLN
  std::printf("%-62s %12s %10s %9s\n", "policy", "parameters", "vs pre_ln", "overhead");
  for (const Row& r : rows)
    std::printf("%-62s %12lld %+10lld %8.4f%%\n", r.policy.c_str(),
                static_cast<long long>(r.params), static_cast<long long>(r.params - pre_ln),
                100.0 * static_cast<double>(r.params - pre_ln) / static_cast<double>(pre_ln));
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "forward") return forward(argc, argv);
  if (command == "info") return info(argc, argv);
  if (command.empty() || command == "--help" || command == "-h" || command == "help") {
    std::printf(
        "usage: normlab <command> [flags]\n"
        "  forward  run a GPT from config + weights + tokens; write logits, loss, gradients\n"
        "  info     print a config and parameter counts by policy\n"
        "normlab <command> --help describes each.\n");
    return command.empty() ? 2 : 0;
  }
  throw nl::Error("normlab: unknown command '" + command + "' (see normlab --help)");
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
