// apps/normlab/cli/compare.cpp — `normlab compare`: the experiments of experiments/compare.hpp on
// several policies, a terminal table, CSV and JSON curves and report.html.
#include "cli/common.hpp"
#include "cli/device.hpp"
#include "cli/ranks.hpp"
#include "experiments/results_json.hpp"
#include "report/compare_report.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {

#ifdef NORMLAB_APP_CUDA
/// run_compare on the CUDA backend (defined in cli/cuda.cu).
nl::CompareResults run_compare_cuda(const nl::CompareOptions& o, const nl::TextCorpus& corpus,
                                    const nl::TrainValSplit& split, const nl::ProgressFn& progress,
                                    nl::dist::Communicator* comm);
#endif

namespace {

/// The curves as CSV files, one row per step (or layer, or run).
void write_csvs(const std::filesystem::path& dir, const nl::CompareResults& r) {
  std::string runs = "run,policy,lr,warmup,seed,outcome,final_val_loss\n";
  std::string train = "run,step,train_loss,lr\n";
  std::string val = "run,step,val_loss\n";
  std::string profiles = "run,step,moment,group,layer,grad_norm\n";
  for (size_t i = 0; i < r.runs.size(); ++i) {
    const nl::TrainingRun& t = r.runs[i];
    const std::string id = std::to_string(i);
    runs += id + "," + t.policy + "," + csv_number(t.lr) + "," + std::to_string(t.warmup) + "," +
            std::to_string(t.seed) + "," + nl::to_string(t.outcome) + "," +
            csv_number(t.final_val_loss()) + "\n";
    for (size_t k = 0; k < t.curve.step.size(); ++k)
      train += id + "," + std::to_string(t.curve.step[k]) + "," +
               csv_number(t.curve.train_loss[k]) + "," + csv_number(t.curve.lr[k]) + "\n";
    for (size_t k = 0; k < t.curve.val_step.size(); ++k)
      val += id + "," + std::to_string(t.curve.val_step[k]) + "," +
             csv_number(t.curve.val_loss[k]) + "\n";
    for (const nl::TrainedGradientProfile& p : t.profiles)
      for (const auto& [group, norms] : p.norms)
        for (size_t l = 0; l < norms.size(); ++l)
          profiles += id + "," + std::to_string(p.step) + "," + p.moment + "," + group + "," +
                      std::to_string(l) + "," + csv_number(norms[l]) + "\n";
  }
  std::string depth = "policy,layers,sample,last_fc2_grad_norm,first_fc2_grad_norm\n";
  std::string depth_profiles = "policy,layers,group,layer,grad_norm\n";
  for (const nl::DepthSweepResult& d : r.depth)
    for (size_t k = 0; k < d.last.size(); ++k) {
      const std::string layers = std::to_string(d.profiles[k].begin()->second.size());
      for (size_t s = 0; s < d.last[k].size(); ++s)
        depth += d.policy + "," + layers + "," + std::to_string(s) + "," +
                 csv_number(d.last[k][s]) + "," + csv_number(d.first[k][s]) + "\n";
      for (const auto& [group, norms] : d.profiles[k])
        for (size_t l = 0; l < norms.size(); ++l)
          depth_profiles += d.policy + "," + layers + "," + group + "," + std::to_string(l) + "," +
                            csv_number(norms[l]) + "\n";
    }
  std::string stress = "policy,seed,step,lr,loss,exploded\n";
  for (const nl::StressResult& s : r.stress)
    for (size_t k = 0; k < s.curves.size(); ++k) {
      const nl::Curve& c = s.curves[k];
      for (size_t i = 0; i < c.step.size(); ++i) {
        // The step that ended the run, when it exploded; a censored run has none.
        const bool last = i + 1 == c.step.size() && !s.censored[k];
        stress += s.policy + "," + std::to_string(k) + "," + std::to_string(c.step[i]) + "," +
                  csv_number(c.lr[i]) + "," + csv_number(c.train_loss[i]) + "," +
                  (last ? "1" : "0") + "\n";
      }
    }
  write_text("compare", dir / "runs.csv", runs);
  write_text("compare", dir / "training.csv", train);
  write_text("compare", dir / "validation.csv", val);
  write_text("compare", dir / "grad_norms_training.csv", profiles);
  write_text("compare", dir / "depth_sweep.csv", depth);
  write_text("compare", dir / "depth_sweep_profiles.csv", depth_profiles);
  write_text("compare", dir / "lr_stress.csv", stress);
}

/// The knobs of a --scale preset. "small" is CompareOptions' defaults.
nl::CompareOptions scale_preset(const std::string& scale) {
  nl::CompareOptions o;
  o.scale = scale;
  if (scale == "small") return o;
  if (scale == "quick") {  // about a minute on 2 cores: the same model, fewer runs
    // The same width and depth, so that warm-up matters as in the default;
    // half the window (T 32), one seed (the tuned comparison reuses the
    // sweep's runs; its findings need seeds and stay inconclusive), no depth
    // 32, three LRs and one warm-up length, and 10% LR-stress steps. The runs
    // still last 120 steps, which a model needs to get clear of the unigram
    // loss at all.
    o.seq_len = 32;
    o.seeds = {1};
    o.depths = {2, 4, 8, 16};
    o.lrs = {1e-3, 3e-3, 1e-2};
    o.warmups = {0, 60};
    o.eval_every = 40;
    o.eval_windows = 16;
    o.stress_factor = 1.1;
    o.stress_max_steps = 150;
    return o;
  }
  if (scale == "medium") {  // C 256, 12 layers: hours on 2 cores
    o.model.d_model = 256;
    o.model.n_heads = 8;
    o.model.n_layers = 12;
    o.model.d_ff = 1024;
    o.seq_len = 128;
    o.batch_size = 16;
    o.depths = {2, 4, 8, 16, 32, 64};
    o.lrs = {3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2};
    o.warmups = {0, 100, 200};
    o.steps = 600;
    o.eval_every = 50;
    o.eval_windows = 64;
    o.stress_max_steps = 300;
    return o;
  }
  throw UsageError("normlab compare: --scale must be quick, small or medium, got '" + scale + "'");
}

/// The command line as a shell would take it back: words with other than
/// [A-Za-z0-9_./,=+:-] single-quoted.
std::string shell_words(int argc, char** argv) {
  std::string out = "normlab";
  for (int i = 1; i < argc; ++i) {
    const std::string w = argv[i];
    const bool plain = !w.empty() &&
                       w.find_first_not_of(
                           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789_./,=+:-()") == std::string::npos &&
                       w.find_first_of("()") == std::string::npos;
    std::string q = w;
    if (!plain) {
      q = "'";
      for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
      q += "'";
    }
    out += " " + q;
  }
  return out;
}

}  // namespace

int compare_command(int argc, char** argv) {
  const nl::CompareOptions d;  // the defaults, shown in --help
  const auto list_text = [](const auto& v) {
    std::string s;
    for (const auto& x : v) {
      if (!s.empty()) s += ",";
      if constexpr (std::is_floating_point_v<std::decay_t<decltype(x)>>)
        s += csv_number(x);
      else
        s += std::to_string(x);
    }
    return s;
  };
  const Flags flags(
      "compare",
      {{"--policies", "LIST      comma-separated policies (default post_ln,pre_ln,normformer)"},
       {"--corpus", "PATH        text file or directory (default: Debian's fortunes)"},
       {"--out", "DIR           results folder (default normlab-results)"},
       {"--scale",
        "NAME        preset: quick (about a minute), small (default, about 5\n"
        "                     minutes on 2 cores) or medium (C 256, 12 layers: hours)"},
       {"--experiments",
        "LIST  which to run: depth,sweep,tuned,stress (default all; tuned\n"
        "                     needs sweep; depth alone is the init-only run)"},
       {"--seeds", "LIST        comma-separated seeds (default " + list_text(d.seeds) + ")"},
       {"--depths",
        "LIST       layer counts of the depth sweep (default " + list_text(d.depths) + ")"},
       {"--lrs",
        "LIST          peak learning rates of the sweep (default " + list_text(d.lrs) + ")"},
       {"--warmups", "LIST      warm-up lengths of the sweep, 0 for none (default " +
                         list_text(d.warmups) + ")"},
       {"--steps", "N           training steps of every sweep and tuned run (default " +
                       std::to_string(d.steps) + ")"},
       {"--d-model", "C         model width (default " + std::to_string(d.model.d_model) + ")"},
       {"--layers", "N          layers of the trained models (default " +
                        std::to_string(d.model.n_layers) + ")"},
       {"--heads", "H           attention heads (default " + std::to_string(d.model.n_heads) + ")"},
       {"--d-ff", "N            feed-forward width (default 4 C)"},
       {"--seq-len", "T         tokens per window (default " + std::to_string(d.seq_len) + ")"},
       {"--batch-size", "B      windows per batch (default " + std::to_string(d.batch_size) + ")"},
       {"--eval-every",
        "N      steps between evaluations (default " + std::to_string(d.eval_every) + ")"},
       {"--grad-batches", "N    batches per seed of each gradient measurement (default " +
                              std::to_string(d.grad_batches) + ")"},
       {"--stress-steps", "N    most steps of the LR-stress test (default " +
                              std::to_string(d.stress_max_steps) + ")"},
       {"--stress-factor", "X   LR multiplier per step in the LR-stress test (default " +
                               csv_number(d.stress_factor) + ")"},
       {"--init", "SCHEME       fairseq (Xavier, default), gpt2 or deepnorm"},
       {"--device", kDeviceHelp}},
      argc, argv, 2, {{"--quick", "            the same as --scale quick"}});
  if (flags.print_help(
          "usage: normlab compare [flags]\n"
          "Runs four experiments on each policy with the same data, sizes and seeds:\n"
          "  1. depth sweep at initialization: the last layer's FFN gradient against depth\n"
          "     (Xiong et al. 2020, Theorem 1: flat for Post-LN, L^-1/2 for Pre-LN);\n"
          "  2. learning-rate sweep with and without warm-up (which runs fail, and where\n"
          "     warm-up rescues Post-LN);\n"
          "  3. each policy at its own best learning rate on every seed, beside a mismatched\n"
          "     pair (how a spurious win appears);\n"
          "  4. the LR-stress test (the learning rate raised every step until the loss explodes).\n"
          "Prints a table and the findings (each with its rule and the scale where it is\n"
          "expected to show) and writes results.json, CSV files and report.html.\n"
          "Under an MPI launcher (mpirun -np N normlab compare ...) the runs are spread over\n"
          "the N ranks; the results are those of one process, bit for bit.\n"))
    return 0;
  if (flags.on("--quick") && flags.given("--scale") && flags.get("--scale", "") != "quick")
    throw UsageError("normlab compare: --quick is --scale quick, but --scale says '" +
                     flags.get("--scale", "") + "'");
  nl::CompareOptions o =
      scale_preset(flags.on("--quick") ? "quick" : flags.get("--scale", "small"));
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
  if (const std::string s = flags.get("--depths", ""); !s.empty()) {
    o.depths.clear();
    for (const std::string& x : split_list(s)) o.depths.push_back(positive_int("--depths", x));
  }
  if (const std::string s = flags.get("--lrs", ""); !s.empty()) {
    o.lrs.clear();
    for (const std::string& x : split_list(s)) o.lrs.push_back(positive_number("--lrs", x));
  }
  if (const std::string s = flags.get("--warmups", ""); !s.empty()) {
    o.warmups.clear();
    for (const std::string& x : split_list(s)) o.warmups.push_back(int_at_least("--warmups", x, 0));
  }
  if (const std::string s = flags.get("--experiments", ""); !s.empty()) {
    o.depth_sweep = o.lr_sweep = o.tuned = o.lr_stress = false;
    for (const std::string& x : split_list(s)) {
      if (x == "depth")
        o.depth_sweep = true;
      else if (x == "sweep")
        o.lr_sweep = true;
      else if (x == "tuned")
        o.tuned = true;
      else if (x == "stress")
        o.lr_stress = true;
      else
        throw UsageError(
            "normlab compare: --experiments takes depth, sweep, tuned and stress, "
            "got '" +
            x + "'");
    }
    if (o.tuned && !o.lr_sweep)
      throw UsageError(
          "normlab compare: --experiments tuned needs sweep too (the tuned runs use "
          "each policy's best setting of the sweep)");
  }
  int_flag("--steps", o.steps);
  const bool d_model_given = flags.given("--d-model");
  int_flag("--d-model", o.model.d_model);
  int_flag("--layers", o.model.n_layers);
  int_flag("--heads", o.model.n_heads);
  if (d_model_given) o.model.d_ff = default_d_ff("compare", o.model.d_model);  // 4 C
  int_flag("--d-ff", o.model.d_ff);
  int_flag("--seq-len", o.seq_len);
  int_flag("--batch-size", o.batch_size);
  int_flag("--eval-every", o.eval_every);
  int_flag("--grad-batches", o.grad_batches);
  int_flag("--stress-steps", o.stress_max_steps);
  if (const std::string v = flags.get("--stress-factor", ""); !v.empty())
    o.stress_factor = positive_number("--stress-factor", v);
  o.init = init_scheme("compare", flags.get("--init", "fairseq"));
  const Device device = parse_device("compare", flags.get("--device", "cpu"));
  o.device = device == Device::cuda ? "cuda" : "cpu";
  o.model.max_seq_len = o.seq_len;
  for (int64_t w : o.warmups)
    if (w >= o.steps)
      throw UsageError("normlab compare: every --warmups length must be below --steps (" +
                       std::to_string(o.steps) + "), got " + std::to_string(w));
  o.validate();
  for (const std::string& p : o.policies) {  // fail on a bad policy before any training
    nl::ModelConfig c = o.model;
    c.set_policy_spec(p);
    c.validate();
  }

  require_device("compare", device);  // before the corpus, the folder and any training

  const std::string corpus_path = flags.get("--corpus", "");
  const nl::TextCorpus corpus =
      corpus_path.empty() ? nl::load_default_corpus() : nl::TextCorpus::from_path(corpus_path);
  const nl::TrainValSplit split = nl::split_train_val(corpus.size(), {});
  const std::filesystem::path out = flags.get("--out", "normlab-results");
  // Under an MPI launcher the runs are spread over its ranks; rank 0 alone
  // writes the results and prints progress (its own share of the runs).
  const std::unique_ptr<nl::dist::Communicator> communicator = launcher_communicator("compare");
  const bool writer = !communicator || communicator->rank() == 0;
  if (writer) {
    make_folder("compare", out);
    const std::string over =
        communicator ? " over " + std::to_string(communicator->size()) + " ranks" : "";
    std::fprintf(stderr,
                 "normlab compare (--scale %s): %zu policies on %s (%lld tokens)%s, results in "
                 "%s\n",
                 o.scale.c_str(), o.policies.size(), corpus.source().c_str(),
                 static_cast<long long>(corpus.size()), over.c_str(), out.string().c_str());
  }

  const bool tty = isatty(fileno(stderr)) != 0;
  nl::ProgressFn progress;
  if (writer)
    progress = [&](const std::string& line) {
      if (tty)
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
      else
        std::fprintf(stderr, "%s\n", line.c_str());
    };
#ifdef NORMLAB_APP_CUDA
  const nl::CompareResults results =
      device == Device::cuda ? run_compare_cuda(o, corpus, split, progress, communicator.get())
                             : nl::run_compare(o, corpus, split, progress, communicator.get());
#else
  const nl::CompareResults results =
      nl::run_compare(o, corpus, split, progress, communicator.get());
#endif
  if (!writer) return 0;
  if (tty) std::fprintf(stderr, "\r\033[K");

  const nl::json::Value json =
      nl::compare_results_json(o, corpus.source(), results, shell_words(argc, argv));
  write_text("compare", out / "results.json", nl::json::dump(json) + "\n");
  write_csvs(out, results);
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
    std::printf("[%s] (%s scale) %s\n      %s\n",
                shows.is_null()   ? "inconclusive"
                : shows.as_bool() ? "shown"
                                  : "not shown",
                f.at("scale").as_string().c_str(), f.at("claim").as_string().c_str(),
                f.at("detail").as_string().c_str());
  }
  std::printf("\n%.0f s; results: %s/results.json, *.csv, report.html\n", results.elapsed_s,
              out.string().c_str());
  return 0;
}

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
