// normlab — the command-line front end.
//
//   normlab forward --config CONFIG.json --weights WEIGHTS.safetensors
//                   --tokens TOKENS.safetensors --out OUT.safetensors [--dtype f32|f64]
//   normlab info    --config CONFIG.json
//   normlab compare [--policies LIST] [--corpus PATH] [--out DIR] [--quick] ...
//
// `forward` runs a GPT described by files and writes its logits, mean
// next-token cross-entropy and the gradient of every parameter, so that our
// numbers can be diffed against anyone's PyTorch code. `info` prints a config
// and the parameter count of every selectable policy at its sizes.
// Errors are one line on stderr and a non-zero exit status.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "normlab/diag/report.hpp"
#include "normlab/normlab.hpp"

namespace nl = normlab;

namespace {

/// "--name value" flags of one subcommand, checked against what it accepts.
class Flags {
 public:
  /// Flags in `accepted` take a value; those in `switches` stand alone.
  Flags(std::string command, std::map<std::string, std::string> accepted, int argc, char** argv,
        int first, std::map<std::string, std::string> switches = {})
      : command_(std::move(command)),
        accepted_(std::move(accepted)),
        switches_(std::move(switches)) {
    for (int i = first; i < argc; ++i) {
      const std::string flag = argv[i];
      if (flag == "--help" || flag == "-h") {
        help_ = true;
        continue;
      }
      if (switches_.contains(flag)) {
        on_.insert(flag);
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
  bool on(const std::string& flag) const { return on_.contains(flag); }
  std::string usage() const {
    std::string s;
    for (const auto& [flag, what] : accepted_) s += "  " + flag + " " + what + "\n";
    for (const auto& [flag, what] : switches_) s += "  " + flag + " " + what + "\n";
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
  std::map<std::string, std::string> switches_;
  std::map<std::string, std::string> values_;
  std::set<std::string> on_;
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

/// A whole number > 0 from a flag's value; the error names the flag.
int64_t positive_int(const std::string& flag, const std::string& value) {
  size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || n <= 0)
    throw nl::Error("normlab: " + flag + " needs a positive whole number, got '" + value + "'");
  return n;
}
/// A number > 0 from a flag's value; the error names the flag.
double positive_number(const std::string& flag, const std::string& value) {
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || !(x > 0) || !std::isfinite(x))
    throw nl::Error("normlab: " + flag + " needs a positive number, got '" + value + "'");
  return x;
}
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t comma; (comma = s.find(',', at)) != std::string::npos; at = comma + 1)
    out.push_back(s.substr(at, comma - at));
  out.push_back(s.substr(at));
  return out;
}

/// Writes `text` to `path`; the error names the file.
void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) throw nl::Error("normlab compare: cannot write " + path.string());
}

std::string csv_number(double x) {
  if (!std::isfinite(x)) return "nan";
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", x);
  return b;
}

/// The curves as CSV files: one row per step (or layer) and policy.
void write_csvs(const std::filesystem::path& dir, const std::vector<nl::PolicyResult>& results,
                const std::vector<uint64_t>& seeds) {
  std::string train = "policy,seed,experiment,step,train_loss,lr\n";
  std::string val = "policy,seed,experiment,step,val_loss\n";
  std::string grads = "policy,group,layer,grad_norm\n";
  std::string stress = "policy,seed,step,lr,loss\n";
  for (const nl::PolicyResult& r : results) {
    for (const auto& [group, norms] : r.grad_norms_at_init)
      for (size_t l = 0; l < norms.size(); ++l)
        grads +=
            r.policy + "," + group + "," + std::to_string(l) + "," + csv_number(norms[l]) + "\n";
    for (size_t k = 0; k < seeds.size(); ++k) {
      const std::string seed = std::to_string(seeds[k]);
      for (const auto& [name, curves] :
           {std::pair<const char*, const std::vector<nl::Curve>*>{"warmup", &r.warmup},
            {"no_warmup", &r.no_warmup}}) {
        const nl::Curve& c = (*curves)[k];
        for (size_t i = 0; i < c.step.size(); ++i)
          train += r.policy + "," + seed + "," + name + "," + std::to_string(c.step[i]) + "," +
                   csv_number(c.train_loss[i]) + "," + csv_number(c.lr[i]) + "\n";
        for (size_t i = 0; i < c.val_step.size(); ++i)
          val += r.policy + "," + seed + "," + name + "," + std::to_string(c.val_step[i]) + "," +
                 csv_number(c.val_loss[i]) + "\n";
      }
      const nl::Curve& c = r.stress[k];
      for (size_t i = 0; i < c.step.size(); ++i)
        stress += r.policy + "," + seed + "," + std::to_string(c.step[i]) + "," +
                  csv_number(c.lr[i]) + "," + csv_number(c.train_loss[i]) + "\n";
    }
  }
  write_text(dir / "training.csv", train);
  write_text(dir / "validation.csv", val);
  write_text(dir / "grad_norms_at_init.csv", grads);
  write_text(dir / "lr_stress.csv", stress);
}

int compare(int argc, char** argv) {
  const Flags flags(
      "compare",
      {{"--policies", "LIST      comma-separated policies (default post_ln,pre_ln,normformer)"},
       {"--corpus", "PATH        text file or directory (default: Debian's fortunes)"},
       {"--out", "DIR           results folder (default normlab-results)"},
       {"--seeds", "LIST        comma-separated seeds (default 1)"},
       {"--steps", "N           training steps of experiments (b) and (c)"},
       {"--warmup", "N          warm-up steps of experiment (b)"},
       {"--lr", "X              peak learning rate of (b) and (c)"},
       {"--d-model", "C         model width"},
       {"--layers", "N          number of layers"},
       {"--heads", "H           attention heads"},
       {"--d-ff", "N            feed-forward width"},
       {"--seq-len", "T         tokens per window"},
       {"--batch-size", "B      windows per batch"},
       {"--eval-every", "N      steps between evaluations"},
       {"--stress-steps", "N    most steps of the LR-stress test"},
       {"--stress-factor", "X   LR multiplier per step in the LR-stress test"},
       {"--init", "SCHEME       fairseq (Xavier, default), gpt2 or deepnorm"}},
      argc, argv, 2, {{"--quick", "            a smaller model and budget (about a minute)"}});
  if (flags.help()) {
    std::printf(
        "usage: normlab compare [flags]\n"
        "Trains each policy with the same seed, data, model size and budget and runs four\n"
        "experiments: (a) gradient norm per layer at initialization, (b) training with warm-up,\n"
        "(c) the same peak learning rate without warm-up, (d) the LR-stress test. Prints a\n"
        "table and writes CSV/JSON curves and report.html to the results folder.\n%s",
        flags.usage().c_str());
    return 0;
  }
  nl::CompareOptions o;
  if (flags.on("--quick")) {
    o.model.d_model = 32;
    o.model.n_heads = 4;
    o.model.n_layers = 4;
    o.model.d_ff = 128;
    o.seq_len = 32;
    o.steps = 80;
    o.warmup = 15;
    o.eval_every = 20;
    o.eval_windows = 16;
    o.stress_max_steps = 150;  // as the default: 1e-4 * 1.1^100 need not explode yet
  }
  const auto int_flag = [&](const char* flag, int64_t& out) {
    const std::string v = flags.get(flag, "");
    if (!v.empty()) out = positive_int(flag, v);
  };
  if (const std::string p = flags.get("--policies", ""); !p.empty()) o.policies = split_list(p);
  if (const std::string s = flags.get("--seeds", ""); !s.empty()) {
    o.seeds.clear();
    for (const std::string& x : split_list(s))
      o.seeds.push_back(static_cast<uint64_t>(positive_int("--seeds", x)));
  }
  int_flag("--steps", o.steps);
  int_flag("--warmup", o.warmup);
  int_flag("--d-model", o.model.d_model);
  int_flag("--layers", o.model.n_layers);
  int_flag("--heads", o.model.n_heads);
  int_flag("--d-ff", o.model.d_ff);
  int_flag("--seq-len", o.seq_len);
  int_flag("--batch-size", o.batch_size);
  int_flag("--eval-every", o.eval_every);
  int_flag("--stress-steps", o.stress_max_steps);
  if (const std::string v = flags.get("--lr", ""); !v.empty())
    o.peak_lr = positive_number("--lr", v);
  if (const std::string v = flags.get("--stress-factor", ""); !v.empty())
    o.stress_factor = positive_number("--stress-factor", v);
  const std::string init = flags.get("--init", "fairseq");
  if (init == "fairseq")
    o.init = nl::InitScheme::fairseq;
  else if (init == "gpt2")
    o.init = nl::InitScheme::gpt2;
  else if (init == "deepnorm")
    o.init = nl::InitScheme::deepnorm;
  else
    throw nl::Error("normlab compare: --init must be fairseq, gpt2 or deepnorm, got '" + init +
                    "'");
  o.model.max_seq_len = o.seq_len;
  for (const std::string& p : o.policies) {  // fail on a bad policy before any training
    nl::ModelConfig c = o.model;
    c.set_policy_spec(p);
    c.validate();
    nl::with_policy(c.policy_traits(), []<class P>() {});
  }

  const std::string corpus_path = flags.get("--corpus", "");
  const nl::TextCorpus corpus =
      corpus_path.empty() ? nl::load_default_corpus() : nl::TextCorpus::from_path(corpus_path);
  const nl::TrainValSplit split = nl::split_train_val(corpus.size(), {});
  const std::filesystem::path out = flags.get("--out", "normlab-results");
  std::filesystem::create_directories(out);
  std::fprintf(stderr, "normlab compare: %zu policies on %s (%lld tokens), results in %s\n",
               o.policies.size(), corpus.source().c_str(), static_cast<long long>(corpus.size()),
               out.string().c_str());

  const bool tty = isatty(fileno(stderr)) != 0;
  const auto results = nl::run_compare(o, corpus, split, [&](const std::string& line) {
    if (tty)
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
    else
      std::fprintf(stderr, "%s\n", line.c_str());
  });
  if (tty) std::fprintf(stderr, "\r\033[K");

  const nl::json::Value json = nl::compare_results_json(o, corpus.source(), results);
  write_text(out / "results.json", nl::json::dump(json) + "\n");
  write_csvs(out, results, o.seeds);
  write_text(out / "report.html", nl::render_compare_report(json));

  const nl::json::Value& table = json.at("table");
  std::vector<std::vector<std::string>> cells = {{}};
  for (const auto& c : table.at("columns").as_array()) cells[0].push_back(c.as_string());
  for (const auto& row : table.at("rows").as_array()) {
    cells.emplace_back();
    for (const auto& cell : row.as_array()) cells.back().push_back(cell.as_string());
  }
  std::vector<size_t> width(cells[0].size(), 0);
  for (const auto& row : cells)
    for (size_t k = 0; k < row.size(); ++k) width[k] = std::max(width[k], row[k].size());
  for (const auto& row : cells) {
    for (size_t k = 0; k < row.size(); ++k)
      std::printf(k == 0 ? "%-*s" : "  %*s", static_cast<int>(width[k]), row[k].c_str());
    std::printf("\n");
  }
  std::printf("\n");
  for (const auto& f : json.at("findings").as_array()) {
    const nl::json::Value& shows = f.at("shows");
    std::printf("[%s] %s\n      %s\n",
                shows.is_null()   ? "inconclusive"
                : shows.as_bool() ? "shown"
                                  : "not shown",
                f.at("claim").as_string().c_str(), f.at("detail").as_string().c_str());
  }
  std::printf("\nresults: %s/results.json, *.csv, report.html\n", out.string().c_str());
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
  if (command == "compare") return compare(argc, argv);
  if (command.empty() || command == "--help" || command == "-h" || command == "help") {
    std::printf(
        "usage: normlab <command> [flags]\n"
        "  forward  run a GPT from config + weights + tokens; write logits, loss, gradients\n"
        "  info     print a config and parameter counts by policy\n"
        "  compare  train several policies alike; table, curves and report.html\n"
        "normlab <command> --help describes each.\n");
    return command.empty() ? 2 : 0;
  }
  throw nl::Error("normlab: unknown command '" + command + "' (see normlab --help)");
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
