// normlab/cli/cli.hpp — the `normlab` command as a library entry point:
//
//   int main(int argc, char** argv) {
//     normlab::register_extra<MyExtra>();   // optional: the user's own extras
//     return normlab::cli::run(argc, argv);
//   }
//
// Not part of normlab.hpp: only programs that want the command include it.
//
//
//   normlab forward --config CONFIG.json --weights WEIGHTS.safetensors
//                   --tokens TOKENS.safetensors --out OUT.safetensors [--dtype f32|f64]
//   normlab info    --config CONFIG.json
//   normlab compare [--policies LIST] [--corpus PATH] [--out DIR] [--quick] ...
//   normlab train   [--policy SPEC | --config CONFIG.json] [--corpus PATH] [--out DIR] ...
//   normlab train   --resume CHECKPOINT [--out DIR] [--corpus PATH] [--stop-at N] ...
//   normlab generate --checkpoint CHECKPOINT [--prompt TEXT] [--tokens N] [--temperature X]
//                    [--top-k K] [--seed S]
//
// `forward` runs a GPT described by files and writes its logits, mean
// next-token cross-entropy and the gradient of every parameter, so that our
// numbers can be diffed against anyone's PyTorch code. `info` prints a config
// and the parameter count of the presets and each known extra at its sizes. `train`
// trains one configuration with the library's Trainer, writing checkpoints
// and a metrics CSV; `--resume` continues such a run exactly. `generate`
// samples text from a checkpoint.
// Errors are one line on stderr and a non-zero exit status.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "normlab/diag/report.hpp"
#include "normlab/normlab.hpp"

namespace normlab::inline v0::cli {
namespace detail {

namespace nl = normlab;

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
  /// When --help was given: prints `description` and the flags' usage, and returns true.
  bool print_help(const char* description) const {
    if (help_) std::printf("%s%s", description, usage().c_str());
    return help_;
  }
  /// Whether the value flag `flag` was given.
  bool given(const std::string& flag) const { return values_.contains(flag); }
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

inline int forward(int argc, char** argv) {
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
          "cross-entropy `loss` and `grad.<name>` for every parameter.\n"))
    return 0;
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

inline std::string csv_number(double x) {
  if (!std::isfinite(x)) return "nan";
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", x);
  return b;
}

/// A whole number > 0 from a flag's value; the error names the flag.
inline int64_t positive_int(const std::string& flag, const std::string& value) {
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
inline double positive_number(const std::string& flag, const std::string& value) {
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
/// A whole number >= `min` from a flag's value; the error names the flag.
inline int64_t int_at_least(const std::string& flag, const std::string& value, int64_t min) {
  size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty() || n < min)
    throw nl::Error("normlab: " + flag + " needs a whole number >= " + std::to_string(min) +
                    ", got '" + value + "'");
  return n;
}
/// A finite number in [lo, hi) (or [lo, hi] when `hi_inclusive`); the error names the flag.
inline double number_in(const std::string& flag, const std::string& value, double lo, double hi,
                        bool hi_inclusive = false) {
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const bool below_hi = hi_inclusive ? x <= hi : x < hi;
  if (used != value.size() || value.empty() || !std::isfinite(x) || x < lo || !below_hi) {
    char range[96];
    std::snprintf(range, sizeof range, "a number in [%g, %g%c", lo, hi, hi_inclusive ? ']' : ')');
    throw nl::Error("normlab: " + flag + " needs " +
                    (std::isinf(hi) ? "a finite number >= " + csv_number(lo) : std::string(range)) +
                    ", got '" + value + "'");
  }
  return x;
}
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t comma; (comma = s.find(',', at)) != std::string::npos; at = comma + 1)
    out.push_back(s.substr(at, comma - at));
  out.push_back(s.substr(at));
  return out;
}

/// Writes `text` to `path` atomically and durably (io::write_file_atomically);
/// the error names the command, the file and the OS reason.
inline void write_text(const std::string& command, const std::filesystem::path& path,
                       const std::string& text) {
  nl::io::write_file_atomically(path, text, "normlab " + command);
}

/// Creates the folder `dir` (and its parents); the error names the command,
/// the folder and the OS reason instead of a raw filesystem_error.
inline void make_folder(const std::string& command, const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw nl::Error("normlab " + command + ": cannot create the folder '" + dir.string() +
                    "': " + ec.message());
}

/// The curves as CSV files: one row per step (or layer) and policy.
inline void write_csvs(const std::filesystem::path& dir,
                       const std::vector<nl::PolicyResult>& results,
                       const std::vector<uint64_t>& seeds) {
  std::string train = "policy,seed,experiment,step,train_loss,lr\n";
  std::string val = "policy,seed,experiment,step,val_loss\n";
  std::string grads = "policy,group,layer,grad_norm\n";
  std::string stress = "policy,seed,step,lr,loss,exploded\n";
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
      for (size_t i = 0; i < c.step.size(); ++i) {
        // The step that ended the run, when it exploded; a censored run has none.
        const bool last = i + 1 == c.step.size() && !r.censored[k];
        stress += r.policy + "," + seed + "," + std::to_string(c.step[i]) + "," +
                  csv_number(c.lr[i]) + "," + csv_number(c.train_loss[i]) + "," +
                  (last ? "1" : "0") + "\n";
      }
    }
  }
  write_text("compare", dir / "training.csv", train);
  write_text("compare", dir / "validation.csv", val);
  std::string trained = "policy,step,moment,group,layer,grad_norm\n";
  for (const nl::PolicyResult& r : results)
    for (const nl::TrainedGradientProfile& p : r.grad_norms_training)
      for (const auto& [group, norms] : p.norms)
        for (size_t l = 0; l < norms.size(); ++l)
          trained += r.policy + "," + std::to_string(p.step) + "," + p.moment + "," + group + "," +
                     std::to_string(l) + "," + csv_number(norms[l]) + "\n";
  write_text("compare", dir / "grad_norms_at_init.csv", grads);
  write_text("compare", dir / "grad_norms_training.csv", trained);
  write_text("compare", dir / "lr_stress.csv", stress);
}

inline int compare(int argc, char** argv) {
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
  if (flags.print_help(
          "usage: normlab compare [flags]\n"
          "Trains each policy with the same seed, data, model size and budget and runs four\n"
          "experiments: (a) gradient norm per layer at initialization, (b) training with warm-up,\n"
          "(c) the same peak learning rate without warm-up, (d) the LR-stress test. Prints a\n"
          "table and writes CSV/JSON curves and report.html to the results folder.\n"))
    return 0;
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
  }

  const std::string corpus_path = flags.get("--corpus", "");
  const nl::TextCorpus corpus =
      corpus_path.empty() ? nl::load_default_corpus() : nl::TextCorpus::from_path(corpus_path);
  const nl::TrainValSplit split = nl::split_train_val(corpus.size(), {});
  const std::filesystem::path out = flags.get("--out", "normlab-results");
  make_folder("compare", out);
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
  write_text("compare", out / "results.json", nl::json::dump(json) + "\n");
  write_csvs(out, results, o.seeds);
  write_text("compare", out / "report.html", nl::render_compare_report(json));

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

// ---- normlab train -------------------------------------------------------

/// Metadata key of the settings a `normlab train` checkpoint was made with.
inline constexpr const char* kTrainRunKey = "normlab.train_run";

/// Everything that decides the numbers of a `normlab train` run; stored in
/// each checkpoint so that --resume rebuilds the same run.
struct TrainRun {
  nl::ModelConfig model;
  nl::InitScheme init = nl::InitScheme::fairseq;
  uint64_t seed = 1;  ///< model initialization and training batches
  int64_t steps = 1000;
  int64_t batch_size = 8;
  int64_t seq_len = 64;
  int64_t eval_every = 100;
  int64_t eval_windows = 32;
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-8, weight_decay = 0.01;
  double clip = 1.0;
  std::string schedule;  ///< Schedule::to_string()
  std::string corpus;    ///< absolute path; empty: the default corpus
  int64_t corpus_tokens = 0;
  std::optional<uint64_t> corpus_fingerprint;  ///< TextCorpus::fingerprint(); none in old runs
};

inline nl::json::Value train_run_json(const TrainRun& r) {
  return nl::json::Object{
      {"config", nl::config_to_json(r.model)},
      {"init", nl::to_string(r.init)},
      {"seed", std::to_string(r.seed)},
      {"steps", r.steps},
      {"batch_size", r.batch_size},
      {"seq_len", r.seq_len},
      {"eval_every", r.eval_every},
      {"eval_windows", r.eval_windows},
      {"betas", nl::json::Array{r.beta1, r.beta2}},
      {"eps", r.eps},
      {"weight_decay", r.weight_decay},
      {"clip", r.clip},
      {"schedule", r.schedule},
      {"corpus", r.corpus},
      {"corpus_tokens", r.corpus_tokens},
      {"corpus_fingerprint", r.corpus_fingerprint ? std::to_string(*r.corpus_fingerprint) : ""},
  };
}

inline nl::InitScheme init_scheme(const std::string& command, const std::string& name) {
  if (name == "fairseq") return nl::InitScheme::fairseq;
  if (name == "gpt2") return nl::InitScheme::gpt2;
  if (name == "deepnorm") return nl::InitScheme::deepnorm;
  throw nl::Error("normlab " + command + ": --init must be fairseq, gpt2 or deepnorm, got '" +
                  name + "'");
}

/// The run stored in a checkpoint of `normlab train`; errors name the file.
inline TrainRun stored_train_run(const nl::io::SafetensorsReader& file) {
  const auto it = file.metadata().find(kTrainRunKey);
  nl::detail::check(it != file.metadata().end(), file.source_name(),
                    ": not a checkpoint of normlab train (no \"", kTrainRunKey, "\" metadata)");
  const std::string where = file.source_name() + " run settings";
  const nl::json::Value v = nl::json::parse(it->second, where);
  try {
    TrainRun r;
    r.model = nl::config_from_json(v.at("config"), where);
    r.init = init_scheme("train", v.at("init").as_string());
    r.seed = nl::json::decimal_u64(v.at("seed"), where, "seed");
    r.steps = v.at("steps").as_int();
    r.batch_size = v.at("batch_size").as_int();
    r.seq_len = v.at("seq_len").as_int();
    r.eval_every = v.at("eval_every").as_int();
    r.eval_windows = v.at("eval_windows").as_int();
    r.beta1 = v.at("betas").at(0).as_double();
    r.beta2 = v.at("betas").at(1).as_double();
    r.eps = v.at("eps").as_double();
    r.weight_decay = v.at("weight_decay").as_double();
    r.clip = v.at("clip").as_double();
    r.schedule = v.at("schedule").as_string();
    r.corpus = v.at("corpus").as_string();
    r.corpus_tokens = v.at("corpus_tokens").as_int();
    // Runs saved before the fingerprint existed have no key (or an empty one).
    if (const nl::json::Value* f = v.as_object().find("corpus_fingerprint");
        f != nullptr && !(f->is_string() && f->as_string().empty()))
      r.corpus_fingerprint = nl::json::decimal_u64(*f, where, "corpus_fingerprint");
    return r;
  } catch (const std::exception& e) {
    throw nl::Error(where + ": " + e.what());
  }
}

/// The schedule named by --schedule: a kind built from --lr, --warmup and
/// the step count, or a full Schedule::parse spec ("kind:key=value,...").
inline nl::Schedule schedule_from_flags(const Flags& flags, int64_t steps) {
  const std::string kind = flags.get("--schedule", "polynomial");
  if (kind.find(':') != std::string::npos) {
    for (const char* f : {"--lr", "--warmup"})
      if (flags.given(f))
        throw nl::Error(std::string("normlab train: ") + f +
                        " cannot be combined with a full --schedule spec (put it in the spec)");
    return nl::Schedule::parse(kind);
  }
  const double lr = positive_number("--lr", flags.get("--lr", "1e-3"));
  // The default warm-up is 100 steps, or a tenth of a shorter run.
  const int64_t warmup = int_at_least(
      "--warmup", flags.get("--warmup", std::to_string(std::min<int64_t>(100, steps / 10))), 0);
  if (kind == "constant") return nl::Schedule::constant(lr, warmup);
  if (kind == "linear") return nl::Schedule::linear(lr, warmup, steps);
  if (kind == "polynomial") return nl::Schedule::polynomial(lr, warmup, steps);
  if (kind == "cosine") return nl::Schedule::cosine(lr, warmup, steps);
  if (kind == "inverse_sqrt") return nl::Schedule::inverse_sqrt(lr, warmup);
  throw nl::Error(
      "normlab train: --schedule must be constant, linear, polynomial, cosine, inverse_sqrt or a "
      "spec like 'cosine:lr=1e-3,warmup=100,total=1000', got '" +
      kind + "'");
}

/// The rows of an existing metrics CSV up to `step` (a resumed run rewrites
/// what came after its checkpoint); the header alone when there is none.
/// Only complete rows count: a row cut short by a crash (fewer fields, or
/// no newline) is dropped, as is any row at or below an earlier one.
inline std::string metrics_up_to(const std::filesystem::path& path, int64_t step,
                                 const std::string& header) {
  std::ifstream in(path);
  std::string kept = header, line;
  if (!in) return kept;
  std::getline(in, line);  // the header
  if (line + "\n" != header)
    throw nl::Error("normlab train: " + path.string() + " is not a metrics file of normlab train " +
                    "(its first line is '" + line + "'); choose another --out");
  const auto fields = std::count(header.begin(), header.end(), ',');
  int64_t previous = 0;
  while (std::getline(in, line)) {
    if (in.eof() || std::count(line.begin(), line.end(), ',') != fields) break;  // cut short
    int64_t s = -1;
    const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), s);
    if (ec != std::errc() || *end != ',' || s <= previous || s > step) break;
    kept += line + "\n";
    previous = s;
  }
  return kept;
}

/// `path` made absolute (so that --resume from another folder finds the
/// corpus); empty stays empty (the default corpus).
inline std::string absolute_corpus_path(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  const std::filesystem::path full = std::filesystem::absolute(path, ec);
  return ec ? path : full.lexically_normal().string();
}

/// Throws Error unless `corpus` is the text the run in `checkpoint` trained
/// on (`trained_on`, of run.corpus_tokens tokens and run.corpus_fingerprint),
/// naming both and the flag that fixes it.
inline void check_same_corpus(const TrainRun& run, const std::string& trained_on,
                              const nl::TextCorpus& corpus, const std::string& checkpoint) {
  const bool same_size = corpus.size() == run.corpus_tokens;
  const bool same_text = !run.corpus_fingerprint || *run.corpus_fingerprint == corpus.fingerprint();
  if (same_size && same_text) return;
  const std::string stored = trained_on.empty() ? "the default corpus" : "'" + trained_on + "'";
  throw nl::Error(
      "normlab train: the run in " + checkpoint + " trained on " + stored + " (" +
      std::to_string(run.corpus_tokens) + " tokens" +
      (run.corpus_fingerprint ? ", fingerprint " + std::to_string(*run.corpus_fingerprint) : "") +
      "), but '" + corpus.source() + "' has " + std::to_string(corpus.size()) + " tokens" +
      (same_size ? " and another text (fingerprint " + std::to_string(corpus.fingerprint()) + ")"
                 : "") +
      " (expected the same corpus: give it with --corpus PATH)");
}

/// Throws Error unless the training and validation splits of `corpus` each
/// hold a window of seq_len + 1 contiguous tokens: checked before the model
/// is built (a huge --seq-len would otherwise allocate its position table
/// first).
inline void check_windows_fit(const TrainRun& run, const nl::TextCorpus& corpus) {
  const nl::TrainValSplit split = nl::split_train_val(corpus.size(), {});
  nl::detail::check_windows("normlab train: --seq-len against the training split", corpus,
                            split.train, run.batch_size, run.seq_len);
  nl::detail::check_windows("normlab train: --seq-len against the validation split", corpus,
                            split.val, run.batch_size, run.seq_len);
}

/// Throws Error when one batch's activations could not fit this machine's
/// memory, naming --batch-size and --seq-len: a lower bound counts only the
/// logits and their gradient (2 B T V floats) and, per layer, the FFN hidden
/// and eight (B, T, C) tensors (B T (d_ff + 8 C) floats), without overflow.
inline void check_batch_fits(const TrainRun& run) {
  const nl::ModelConfig& m = run.model;
  bool fits = true;
  const auto mul = [&](int64_t a, int64_t b) {
    int64_t r = 0;
    fits = fits && !__builtin_mul_overflow(a, b, &r);
    return r;
  };
  const auto add = [&](int64_t a, int64_t b) {
    int64_t r = 0;
    fits = fits && !__builtin_add_overflow(a, b, &r);
    return r;
  };
  const int64_t per_token =
      add(mul(2, m.vocab_size), mul(m.n_layers, add(m.d_ff, mul(8, m.d_model))));
  const int64_t floats = mul(mul(run.batch_size, run.seq_len), per_token);
  const uint64_t memory = nl::detail::physical_memory_bytes();
  if (fits && (memory == 0 || static_cast<uint64_t>(floats) <= memory / 4)) return;
  throw nl::Error("normlab train: --batch-size " + std::to_string(run.batch_size) +
                  " and --seq-len " + std::to_string(run.seq_len) + " need at least " +
                  (fits ? std::to_string(floats) : std::string("2^63")) +
                  " floats of activations per step, more than this machine's " +
                  std::to_string(memory) +
                  " bytes of memory (use a smaller --batch-size or "
                  "--seq-len)");
}

/// Removes what a killed run may have left in `out`: the temporary files of
/// io::write_file_atomically for the files train writes
/// (".checkpoint-<step>.safetensors.tmp-*", ".metrics.csv.tmp-*"). Two runs
/// must not share one --out folder, so none of these is in use.
inline void remove_stale_temporaries(const std::filesystem::path& out) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(out, ec)) {
    const std::string name = entry.path().filename().string();
    const bool ours = (name.starts_with(".checkpoint-") || name.starts_with(".metrics.csv.")) &&
                      name.find(".tmp-") != std::string::npos;
    std::error_code ignored;
    if (ours && entry.is_regular_file(ignored)) std::filesystem::remove(entry.path(), ignored);
  }
}

/// Keeps the `keep` newest checkpoints of `out` up to step `newest` (by step:
/// "checkpoint-<step>.safetensors") and removes the older ones, after the
/// newest is on disk. Checkpoints of later steps (left by a run resumed from
/// an earlier one) are left alone.
inline void remove_older_checkpoints(const std::filesystem::path& out, int64_t newest,
                                     int64_t keep) {
  std::vector<std::pair<int64_t, std::filesystem::path>> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(out, ec)) {
    const std::string name = entry.path().filename().string();
    constexpr std::string_view prefix = "checkpoint-", suffix = ".safetensors";
    if (!name.starts_with(prefix) || !name.ends_with(suffix)) continue;
    int64_t step = -1;
    const char* first = name.data() + prefix.size();
    const char* last = name.data() + name.size() - suffix.size();
    const auto [end, err] = std::from_chars(first, last, step);
    if (err == std::errc() && end == last && step <= newest) found.emplace_back(step, entry.path());
  }
  std::sort(found.begin(), found.end(), std::greater<>());
  for (size_t i = static_cast<size_t>(keep); i < found.size(); ++i) {
    std::error_code ignored;
    std::filesystem::remove(found[i].second, ignored);
  }
}

inline void run_training(const TrainRun& run, const nl::TextCorpus& corpus,
                         const nl::Schedule& schedule, const std::string& resume,
                         const std::filesystem::path& out, int64_t checkpoint_every,
                         int64_t stop_at, int64_t keep_checkpoints) {
  using Model = nl::GPT<nl::RuntimePolicy, nl::Cpu, float>;
  Model model(run.model, run.seed, run.init);
  nl::AdamW<float, nl::Cpu> opt(
      model, nl::AdamWOptions{schedule.peak_lr, run.beta1, run.beta2, run.eps, run.weight_decay});
  nl::TrainerOptions t;
  t.steps = run.steps;
  t.batch_size = run.batch_size;
  t.seq_len = run.seq_len;
  t.eval_every = run.eval_every;
  t.eval_windows = run.eval_windows;
  t.clip_norm = run.clip;
  t.data_seed = run.seed;
  const nl::TrainValSplit split = nl::split_train_val(corpus.size(), {});
  nl::Trainer trainer(model, opt, schedule, corpus, split, t);
  if (!resume.empty()) trainer.load_checkpoint(resume);

  make_folder("train", out);
  remove_stale_temporaries(out);
  const std::filesystem::path csv = out / "metrics.csv";
  const std::string header = "step,train_loss,lr,grad_norm,tokens_per_s,val_loss,val_perplexity\n";
  // Rewritten atomically: a crash now leaves the old file or the cut one.
  write_text("train", csv, metrics_up_to(csv, trainer.step_count(), header));
  nl::io::AppendFile metrics(csv, "normlab train");
  const std::map<std::string, std::string> meta = {
      {kTrainRunKey, nl::json::dump_compact(train_run_json(run))}};

  std::fprintf(stderr, "normlab train: %s, %lld parameters, %s (%lld tokens), %s, results in %s\n",
               run.model.policy_spec().describe().c_str(),
               static_cast<long long>(model.parameter_count()), corpus.source().c_str(),
               static_cast<long long>(corpus.size()), schedule.to_string().c_str(),
               out.string().c_str());
  if (trainer.step_count() > 0)
    std::fprintf(stderr, "resuming %s at step %lld of %lld\n", resume.c_str(),
                 static_cast<long long>(trainer.step_count()), static_cast<long long>(run.steps));
  const bool tty = isatty(fileno(stderr)) != 0;
  const auto start = std::chrono::steady_clock::now();
  const int64_t first = trainer.step_count();
  nl::StepMetrics m;
  std::optional<nl::EvalMetrics> last_eval;
  std::string last_checkpoint;
  const int64_t last_step = stop_at > 0 ? std::min(stop_at, run.steps) : run.steps;
  while (trainer.step_count() < last_step) {
    m = trainer.step();
    std::optional<nl::EvalMetrics> e;
    if ((run.eval_every > 0 && m.step % run.eval_every == 0) || m.step == run.steps)
      e = trainer.evaluate();
    metrics.append(std::to_string(m.step) + "," + csv_number(m.loss) + "," + csv_number(m.lr) +
                   "," + csv_number(m.grad_norm) + "," + csv_number(m.tokens_per_s) + "," +
                   (e ? csv_number(e->loss) : "") + "," + (e ? csv_number(e->perplexity) : "") +
                   "\n");
    if (!std::isfinite(m.loss))
      throw nl::Error("normlab train: the training loss is " + csv_number(m.loss) + " at step " +
                      std::to_string(m.step) + " (expected a finite loss; try a lower --lr)");
    if (m.step % 10 == 0 || m.step == last_step || e) {
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double eta =
          elapsed / static_cast<double>(m.step - first) * static_cast<double>(last_step - m.step);
      char val[48] = "";
      if (e) std::snprintf(val, sizeof val, " | val loss %.4f", e->loss);
      char line[240];
      std::snprintf(line, sizeof line, "step %lld/%lld loss %.4f lr %.3g %.0f tok/s ETA %.0fs%s",
                    static_cast<long long>(m.step), static_cast<long long>(run.steps), m.loss, m.lr,
                    m.tokens_per_s, eta, val);
      if (tty && !e)
        std::fprintf(stderr, "\r\033[K%s", line);
      else
        std::fprintf(stderr, "%s%s\n", tty ? "\r\033[K" : "", line);
    }
    if (e) last_eval = e;
    if ((checkpoint_every > 0 && m.step % checkpoint_every == 0) || m.step == last_step) {
      char name[64];
      std::snprintf(name, sizeof name, "checkpoint-%lld.safetensors",
                    static_cast<long long>(m.step));
      last_checkpoint = (out / name).string();
      metrics.sync();  // the metrics of every step a checkpoint holds are on disk first
      trainer.save_checkpoint(last_checkpoint, meta);
      if (keep_checkpoints > 0) remove_older_checkpoints(out, m.step, keep_checkpoints);
    }
  }
  if (trainer.step_count() == first) {
    std::printf("step %lld/%lld: nothing to train before step %lld\n",
                static_cast<long long>(trainer.step_count()), static_cast<long long>(run.steps),
                static_cast<long long>(last_step));
    return;
  }
  std::printf("checkpoint %s, metrics %s\n", last_checkpoint.c_str(), csv.string().c_str());
  if (last_step < run.steps) {
    std::printf("stopped at step %lld of %lld: continue with normlab train --resume %s\n",
                static_cast<long long>(last_step), static_cast<long long>(run.steps),
                last_checkpoint.c_str());
    return;
  }
  std::printf("final step %lld: train loss %.8f, val loss %.8f (perplexity %.4f)\n",
              static_cast<long long>(m.step), m.loss, last_eval->loss, last_eval->perplexity);
}

inline int train(int argc, char** argv) {
  const Flags flags(
      "train",
      {{"--policy",
        "SPEC          policy or composition, e.g. normformer, pre_ln+attn_ln "
        "(default pre_ln)"},
       {"--config", "CONFIG.json   model config instead of the model flags"},
       {"--layers", "N             number of layers (default 6)"},
       {"--d-model", "C            model width (default 64)"},
       {"--heads", "H              attention heads (default 4)"},
       {"--d-ff", "N               feed-forward width (default 4 C)"},
       {"--dropout", "P            dropout on sublayer outputs, in [0, 1) (default 0)"},
       {"--init", "SCHEME          fairseq (Xavier, default), gpt2 or deepnorm"},
       {"--seq-len",
        "T            tokens per window (default 64; with --config its "
        "max_seq_len)"},
       {"--batch-size", "B         windows per batch (default 8)"},
       {"--steps", "N              optimizer steps (default 1000)"},
       {"--lr", "X                 peak learning rate (default 1e-3)"},
       {"--warmup", "N             linear warm-up steps (default 100, or --steps / 10 if less)"},
       {"--schedule",
        "KIND        constant, linear, polynomial (default), cosine, inverse_sqrt, "
        "or a spec 'kind:lr=..,warmup=..,total=..'"},
       {"--betas", "B1,B2          AdamW betas (default 0.9,0.98)"},
       {"--eps", "X                AdamW epsilon (default 1e-8)"},
       {"--weight-decay",
        "X       decoupled weight decay (default 0.01; never on norms, "
        "biases, positions, scales)"},
       {"--clip", "X               global gradient-norm clip, 0 = off (default 1.0)"},
       {"--eval-every",
        "N         steps between validation losses, 0 = only at the end "
        "(default 100)"},
       {"--eval-windows", "N       validation windows per evaluation (default 32)"},
       {"--seed", "S               seed of the initialization and the batches (default 1)"},
       {"--corpus", "PATH          text file or directory (default: Debian's fortunes)"},
       {"--out",
        "DIR              checkpoints and metrics.csv (default normlab-train; with "
        "--resume the checkpoint's folder)"},
       {"--checkpoint-every",
        "N   steps between checkpoints, 0 = only at the end (default "
        "250)"},
       {"--keep-checkpoints", "N  keep only the N newest checkpoints, 0 = all (default 0)"},
       {"--stop-at",
        "N            stop after step N with a checkpoint (the schedule still "
        "spans --steps); --resume continues"},
       {"--resume", "CHECKPOINT    continue the run a checkpoint of normlab train holds"}},
      argc, argv, 2);
  if (flags.print_help(
          "usage: normlab train [flags]\n"
          "       normlab train --resume CHECKPOINT [--out DIR] [--corpus PATH] "
          "[--checkpoint-every N] [--keep-checkpoints N] [--stop-at N]\n"
          "Trains one GPT on a byte-level corpus with AdamW and the library's Trainer. Prints a\n"
          "progress line every 10 steps and a validation loss every --eval-every steps; writes\n"
          "DIR/checkpoint-<step>.safetensors (model, optimizer, schedule, batch and dropout\n"
          "position, run settings) every --checkpoint-every steps and at the end, and\n"
          "DIR/metrics.csv (one row per step). --resume continues a run exactly: its losses are\n"
          "those of the uninterrupted run; its settings come from the checkpoint. Files are\n"
          "replaced atomically: a run killed at any moment leaves whole checkpoints only, and\n"
          "the newest one resumes. A checkpoint holding a non-finite value is never written.\n"))
    return 0;
  const std::string resume = flags.get("--resume", "");
  const int64_t checkpoint_every =
      int_at_least("--checkpoint-every", flags.get("--checkpoint-every", "250"), 0);
  const int64_t keep_checkpoints =
      int_at_least("--keep-checkpoints", flags.get("--keep-checkpoints", "0"), 0);
  const int64_t stop_at =
      flags.given("--stop-at") ? positive_int("--stop-at", flags.get("--stop-at", "")) : 0;
  TrainRun run;
  std::string trained_on;  // with --resume: the corpus the checkpoint names
  nl::Schedule schedule;
  std::filesystem::path out = flags.get("--out", "normlab-train");
  if (!resume.empty()) {
    for (const char* f :
         {"--policy",     "--config",       "--layers",  "--d-model",    "--heads",        "--d-ff",
          "--dropout",    "--init",         "--seq-len", "--batch-size", "--steps",        "--lr",
          "--warmup",     "--schedule",     "--betas",   "--eps",        "--weight-decay", "--clip",
          "--eval-every", "--eval-windows", "--seed"})
      if (flags.given(f))
        throw nl::Error(std::string("normlab train: ") + f +
                        " cannot be combined with --resume: a resumed run keeps the settings "
                        "stored in its checkpoint");
    const auto file = nl::io::SafetensorsReader::open(resume);
    run = stored_train_run(file);
    schedule = nl::Schedule::parse(run.schedule);
    if (!flags.given("--out")) out = std::filesystem::path(resume).parent_path();
    trained_on = run.corpus;
    if (flags.given("--corpus")) run.corpus = absolute_corpus_path(flags.get("--corpus", ""));
  } else {
    if (flags.given("--config")) {
      for (const char* f : {"--policy", "--layers", "--d-model", "--heads", "--d-ff", "--dropout"})
        if (flags.given(f))
          throw nl::Error(std::string("normlab train: ") + f +
                          " cannot be combined with --config: the config file sets the model");
      run.model = nl::load_config(flags.required("--config"));
      run.seq_len = run.model.max_seq_len;
    } else {
      run.model.vocab_size = nl::ByteTokenizer::vocab_size;
      run.model.d_model = 64;
      run.model.n_heads = 4;
      run.model.n_layers = 6;
      run.model.set_policy_spec(flags.get("--policy", "pre_ln"));
    }
    const auto int_flag = [&](const char* flag, int64_t& value) {
      if (flags.given(flag)) value = positive_int(flag, flags.get(flag, ""));
    };
    int_flag("--layers", run.model.n_layers);
    int_flag("--d-model", run.model.d_model);
    int_flag("--heads", run.model.n_heads);
    if (!flags.given("--config")) {
      nl::detail::check(run.model.d_model <= INT64_MAX / 4, "normlab train: --d-model ",
                        run.model.d_model, " is too large (its default d_ff, 4 C, overflows)");
      run.model.d_ff = 4 * run.model.d_model;
    }
    int_flag("--d-ff", run.model.d_ff);
    int_flag("--seq-len", run.seq_len);
    int_flag("--batch-size", run.batch_size);
    int_flag("--steps", run.steps);
    int_flag("--eval-windows", run.eval_windows);
    if (flags.given("--eval-every"))
      run.eval_every = int_at_least("--eval-every", flags.get("--eval-every", ""), 0);
    if (flags.given("--dropout"))
      run.model.dropout = number_in("--dropout", flags.get("--dropout", ""), 0, 1);
    if (!flags.given("--config")) run.model.max_seq_len = run.seq_len;
    run.init = init_scheme("train", flags.get("--init", "fairseq"));
    run.seed = static_cast<uint64_t>(int_at_least("--seed", flags.get("--seed", "1"), 0));
    if (flags.given("--betas")) {
      const std::vector<std::string> b = split_list(flags.get("--betas", ""));
      if (b.size() != 2)
        throw nl::Error("normlab: --betas needs two numbers B1,B2, got '" +
                        flags.get("--betas", "") + "'");
      run.beta1 = number_in("--betas", b[0], 0, 1);
      run.beta2 = number_in("--betas", b[1], 0, 1);
    }
    if (flags.given("--eps")) run.eps = positive_number("--eps", flags.get("--eps", ""));
    if (flags.given("--weight-decay"))
      run.weight_decay = number_in("--weight-decay", flags.get("--weight-decay", ""), 0, HUGE_VAL);
    if (flags.given("--clip")) run.clip = number_in("--clip", flags.get("--clip", ""), 0, HUGE_VAL);
    schedule = schedule_from_flags(flags, run.steps);
    run.schedule = schedule.to_string();
    run.corpus = absolute_corpus_path(flags.get("--corpus", ""));
    nl::detail::check(run.model.vocab_size >= nl::ByteTokenizer::vocab_size,
                      "normlab train: the corpus is bytes, so the model needs vocab_size >= 256, "
                      "got ",
                      run.model.vocab_size);
    nl::detail::check(run.seq_len <= run.model.max_seq_len, "normlab train: --seq-len ",
                      run.seq_len, " exceeds the model's max_seq_len ", run.model.max_seq_len);
    run.model.validate();
  }
  (void)run.model.policy_spec();  // a bad policy fails here, before the corpus is read

  const nl::TextCorpus corpus =
      run.corpus.empty() ? nl::load_default_corpus() : nl::TextCorpus::from_path(run.corpus);
  if (!resume.empty()) check_same_corpus(run, trained_on, corpus, resume);
  run.corpus_tokens = corpus.size();
  run.corpus_fingerprint = corpus.fingerprint();
  check_windows_fit(run, corpus);
  check_batch_fits(run);
  run_training(run, corpus, schedule, resume, out, checkpoint_every, stop_at, keep_checkpoints);
  return 0;
}

// ---- normlab generate ----------------------------------------------------

inline int generate(int argc, char** argv) {
  const Flags flags(
      "generate",
      {{"--checkpoint", "CHECKPOINT  a checkpoint of normlab train (or any normlab checkpoint)"},
       {"--prompt", "TEXT          text to continue (default: a newline)"},
       {"--tokens", "N             bytes to generate (default 200)"},
       {"--temperature", "X        > 0 divides the logits; 0 = greedy (default 1)"},
       {"--top-k", "K              sample among the K likeliest bytes, 0 = all (default 0)"},
       {"--seed", "S               seed of the sampling (default 1)"}},
      argc, argv, 2);
  if (flags.print_help(
          "usage: normlab generate --checkpoint CHECKPOINT [--prompt TEXT] [--tokens N]\n"
          "                        [--temperature X] [--top-k K] [--seed S]\n"
          "Loads the model of a checkpoint and continues the prompt one byte at a time, in eval\n"
          "mode, from the softmax of logits / temperature over the top-k bytes (temperature 0:\n"
          "always the likeliest). The model sees the last max_seq_len bytes. Prints the prompt\n"
          "and its continuation; the same checkpoint, prompt and flags give the same text.\n"))
    return 0;
  nl::SamplingOptions o;
  o.max_new_tokens = int_at_least("--tokens", flags.get("--tokens", "200"), 0);
  o.temperature = number_in("--temperature", flags.get("--temperature", "1"), 0, HUGE_VAL);
  o.top_k = int_at_least("--top-k", flags.get("--top-k", "0"), 0);
  o.seed = static_cast<uint64_t>(int_at_least("--seed", flags.get("--seed", "1"), 0));
  const uint64_t memory = nl::detail::physical_memory_bytes();
  // The text is kept as ids (8 bytes) and bytes (1) until it is printed.
  if (memory != 0 && static_cast<uint64_t>(o.max_new_tokens) > memory / 9)
    throw nl::Error("normlab generate: --tokens " + std::to_string(o.max_new_tokens) +
                    " would hold 9 bytes per token, more than this machine's " +
                    std::to_string(memory) + " bytes of memory (expected at most " +
                    std::to_string(memory / 9) + " tokens)");
  const std::string prompt = flags.get("--prompt", "\n");
  if (prompt.empty())
    throw nl::Error("normlab generate: --prompt needs at least one character, got ''");
  const auto file = nl::io::SafetensorsReader::open(flags.required("--checkpoint"));
  const nl::ModelConfig cfg = nl::checkpoint_config(file);
  std::set<std::string> optimizer_state;  // a training checkpoint also holds these
  for (const nl::io::TensorInfo& t : file.tensors())
    if (t.name.rfind("optim.", 0) == 0) optimizer_state.insert(t.name);
  nl::GPT<nl::RuntimePolicy, nl::Cpu, float> model(cfg);
  nl::load_parameters(model, file, nl::DTypeMatch::convert, optimizer_state);
  const std::vector<int64_t> ids = nl::ByteTokenizer::encode(prompt);
  const std::vector<int64_t> text = nl::generate(model, ids, o);
  const std::string all = prompt + nl::ByteTokenizer::decode(text) + "\n";
  std::fwrite(all.data(), 1, all.size(), stdout);  // bytes as they are, NUL included
  return 0;
}

/// What `info` counts: the presets, fairseq's NormFormer, both with residual
/// scaling, and each known extra alone on the placement it fits (registered
/// ones too).
inline std::vector<std::string> selectable_policies() {
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

inline int info(int argc, char** argv) {
  const Flags flags("info", {{"--config", "CONFIG.json  model config"}}, argc, argv, 2);
  if (flags.print_help(
          "usage: normlab info --config CONFIG.json\n"
          "Prints the config and the parameter count of every selectable policy at its sizes.\n"))
    return 0;
  const nl::ModelConfig cfg = nl::load_config(flags.required("--config"));
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
    nl::GPT<nl::RuntimePolicy, nl::Cpu, float> model(c);
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

}  // namespace detail

/// The `normlab` command: forward, info, compare, train, generate. Returns
/// the exit status; errors are one line on stderr and status 1. A program
/// that registers its own extras (register_extra) and then calls run() has
/// them in every command: `--policy pre_ln+my_extra`, compare, reports.
inline int run(int argc, char** argv) try {
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "forward") return detail::forward(argc, argv);
  if (command == "info") return detail::info(argc, argv);
  if (command == "compare") return detail::compare(argc, argv);
  if (command == "train") return detail::train(argc, argv);
  if (command == "generate") return detail::generate(argc, argv);
  if (command.empty() || command == "--help" || command == "-h" || command == "help") {
    std::printf(
        "usage: normlab <command> [flags]\n"
        "  forward  run a GPT from config + weights + tokens; write logits, loss, gradients\n"
        "  info     print a config and parameter counts by policy\n"
        "  compare  train several policies alike; table, curves and report.html\n"
        "  train    train one configuration; checkpoints, metrics.csv, exact --resume\n"
        "  generate sample text from a checkpoint (temperature, top-k, seed)\n"
        "normlab <command> --help describes each.\n");
    return command.empty() ? 2 : 0;
  }
  throw Error("normlab: unknown command '" + command + "' (see normlab --help)");
} catch (const Error& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
} catch (const std::bad_alloc&) {
  std::fprintf(stderr,
               "normlab %s: out of memory: the sizes asked for (the model's config, "
               "--batch-size, --seq-len, --tokens) need more memory than this machine can give\n",
               argc > 1 ? argv[1] : "");
  return 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "normlab %s: internal error (please report it): %s\n",
               argc > 1 ? argv[1] : "", e.what());
  return 1;
}

}  // namespace normlab::inline v0::cli
