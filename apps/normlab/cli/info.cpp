// apps/normlab/cli/info.cpp — `normlab info`: a config and the parameter count of every
// selectable policy at its sizes.
#include "cli/common.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {
namespace {

/// What `info` counts: the presets, fairseq's NormFormer, both with residual
/// scaling, and each known extra alone on the placement it fits (registered
/// ones too).
std::vector<std::string> selectable_policies() {
  std::vector<std::string> specs;
  for (const auto& [word, spec] : nl::policy_presets()) specs.push_back(spec.describe());
  specs.push_back(nl::NormFormerFairseq::name());
  specs.push_back(nl::compose<nl::NormFormer, nl::ResidScale>::name());
  specs.push_back(nl::compose<nl::NormFormerFairseq, nl::ResidScale>::name());
  for (const nl::ExtraInfo& e : nl::ExtraRegistry::global().extras()) {
    const nl::Placement p = e.needs_placement ? e.placement : nl::Placement::pre;
    const std::string spec = std::string(nl::to_string(p)) + "+" + e.word;
    if (std::find(specs.begin(), specs.end(), nl::parse_policy_spec(spec).describe()) ==
        specs.end())
      specs.push_back(spec);
  }
  return specs;
}

}  // namespace

int info_command(int argc, char** argv) {
  const Flags flags("info", {{"--config", "CONFIG.json  model config"}}, argc, argv, 2);
  if (flags.print_help(
          "usage: normlab info --config CONFIG.json\n"
          "Prints the config and the parameter count of every selectable policy at its sizes,\n"
          "and the instruction set of the CPU kernels (NORMLAB_CPU_KERNELS lowers it).\n"))
    return 0;
  const nl::ModelConfig cfg = nl::load_config(flags.required("--config"));
  std::printf("CPU kernels: %s (NORMLAB_CPU_KERNELS=avx512|avx2|portable; this CPU's best: %s)\n\n",
              nl::cpu::to_string(nl::cpu::cpu_kernels()),
              nl::cpu::to_string(nl::cpu::best_cpu_kernels()));
  std::printf("%s\n\n", nl::json::dump(nl::config_to_json(cfg)).c_str());
  struct Row {
    std::string policy;
    int64_t params;
  };
  std::vector<Row> rows;
  for (const std::string& spec : selectable_policies()) {
    nl::ModelConfig c = cfg;
    c.set_policy_spec(spec);
    c.final_norm.reset();  // each policy's own default
    nl::GPT<nl::RuntimePolicy, float, nl::Cpu> model(c);
    rows.push_back({c.policy_spec().describe(), model.parameter_count()});
  }
  int64_t pre_ln = 0;
  for (const Row& r : rows)
    if (r.policy == "pre_ln") pre_ln = r.params;
  std::printf("%-62s %12s %10s %9s\n", "policy", "parameters", "vs pre_ln", "overhead");
  for (const Row& r : rows)
    std::printf("%-62s %12lld %+10lld %8.4f%%\n", r.policy.c_str(),
                static_cast<long long>(r.params), static_cast<long long>(r.params - pre_ln),
                100.0 * static_cast<double>(r.params - pre_ln) / static_cast<double>(pre_ln));
  return 0;
}

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
