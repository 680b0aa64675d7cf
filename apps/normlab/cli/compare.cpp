// apps/normlab/cli/compare.cpp — `normlab compare`: the experiments of experiments/compare.hpp on
// several policies, a terminal table, CSV and JSON curves and report.html.
#include "experiments/compare.hpp"
#include "cli/common.hpp"
#include "report/compare_report.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {
namespace {

/// The curves as CSV files: one row per step (or layer) and policy.
void write_csvs(const std::filesystem::path& dir, const std::vector<nl::PolicyResult>& results,
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

}  // namespace

int compare_command(int argc, char** argv) {
  const nl::CompareOptions d;  // the defaults, shown in --help
  const Flags flags(
      "compare",
      {{"--policies", "LIST      comma-separated policies (default post_ln,pre_ln,normformer)"},
       {"--corpus", "PATH        text file or directory (default: Debian's fortunes)"},
       {"--out", "DIR           results folder (default normlab-results)"},
       {"--seeds", "LIST        comma-separated seeds (default 1)"},
       {"--steps", "N           training steps of experiments (b) and (c) (default " +
                       std::to_string(d.steps) + ")"},
       {"--warmup",
        "N          warm-up steps of experiment (b) (default " + std::to_string(d.warmup) + ")"},
       {"--lr",
        "X              peak learning rate of (b) and (c) (default " + csv_number(d.peak_lr) + ")"},
       {"--d-model", "C         model width (default " + std::to_string(d.model.d_model) + ")"},
       {"--layers",
        "N          number of layers (default " + std::to_string(d.model.n_layers) + ")"},
       {"--heads", "H           attention heads (default " + std::to_string(d.model.n_heads) + ")"},
       {"--d-ff", "N            feed-forward width (default 4 C)"},
       {"--seq-len", "T         tokens per window (default " + std::to_string(d.seq_len) + ")"},
       {"--batch-size", "B      windows per batch (default " + std::to_string(d.batch_size) + ")"},
       {"--eval-every",
        "N      steps between evaluations (default " + std::to_string(d.eval_every) + ")"},
       {"--stress-steps", "N    most steps of the LR-stress test (default " +
                              std::to_string(d.stress_max_steps) + ")"},
       {"--stress-factor", "X   LR multiplier per step in the LR-stress test (default " +
                               csv_number(d.stress_factor) + ")"},
       {"--init", "SCHEME       fairseq (Xavier, default), gpt2 or deepnorm"}},
      argc, argv, 2,
      {{"--quick", "            a smaller model and budget (about a minute; default off)"}});
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
  o.model.d_ff = default_d_ff("compare", o.model.d_model);  // 4 C, unless --d-ff says
  int_flag("--d-ff", o.model.d_ff);
  int_flag("--seq-len", o.seq_len);
  int_flag("--batch-size", o.batch_size);
  int_flag("--eval-every", o.eval_every);
  int_flag("--stress-steps", o.stress_max_steps);
  if (const std::string v = flags.get("--lr", ""); !v.empty())
    o.peak_lr = positive_number("--lr", v);
  if (const std::string v = flags.get("--stress-factor", ""); !v.empty())
    o.stress_factor = positive_number("--stress-factor", v);
  o.init = init_scheme("compare", flags.get("--init", "fairseq"));
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

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
