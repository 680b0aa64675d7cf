// apps/normlab/cli/train_run.hpp — the training loop of `normlab train` and
// what it writes (checkpoint settings, metrics files, old checkpoints),
// templated on the backend: train.cpp runs it on the CPU, cuda.cu on CUDA.
#pragma once

#include <chrono>
#include <optional>

#include "cli/common.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {

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

/// The complete lines of `in` whose step (step_of(line): nullopt when the
/// line is malformed) rises from one line to the next and is at most `step`,
/// up to the first line that breaks the rule: what a resumed run keeps of a
/// metrics file (it rewrites what came after its checkpoint). A line cut
/// short by a crash (no newline, or step_of refuses it) ends the kept part.
template <class StepOf>
std::string lines_up_to(std::istream& in, int64_t step, StepOf step_of) {
  std::string kept, line;
  int64_t previous = 0;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline: cut short
    const std::optional<int64_t> s = step_of(line);
    if (!s || *s <= previous || *s > step) break;
    kept += line + "\n";
    previous = *s;
  }
  return kept;
}

/// The header and the rows of an existing metrics CSV up to `step`, by the
/// rule of lines_up_to (a row with fewer fields is cut short); the header
/// alone when there is no file.
inline std::string metrics_up_to(const std::filesystem::path& path, int64_t step,
                                 const std::string& header) {
  std::ifstream in(path);
  if (!in) return header;
  std::string first;
  std::getline(in, first);
  if (first + "\n" != header)
    throw nl::Error("normlab train: " + path.string() + " is not a metrics file of normlab train " +
                    "(its first line is '" + first + "'); choose another --out");
  const auto fields = std::count(header.begin(), header.end(), ',');
  return header + lines_up_to(in, step, [&](const std::string& line) -> std::optional<int64_t> {
           if (std::count(line.begin(), line.end(), ',') != fields) return std::nullopt;
           int64_t s = -1;
           const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), s);
           if (ec != std::errc() || *end != ',') return std::nullopt;
           return s;
         });
}

/// The lines of an existing metrics.jsonl up to `step`, by the rule of
/// lines_up_to: each must parse as an object with a whole "step".
inline std::string jsonl_up_to(const std::filesystem::path& path, int64_t step) {
  std::ifstream in(path);
  return lines_up_to(in, step, [](const std::string& line) -> std::optional<int64_t> {
    try {
      const nl::json::Value v = nl::json::parse(line);
      const nl::json::Value* s = v.is_object() ? v.as_object().find("step") : nullptr;
      if (s == nullptr || !s->is_int()) return std::nullopt;
      return s->as_int();
    } catch (const nl::Error&) {
      return std::nullopt;
    }
  });
}

/// One line of metrics.jsonl: the step's metrics, the evaluation's when one
/// ran; a non-finite value (a diverged loss) is null, as JSON has no NaN.
inline std::string jsonl_line(const nl::StepMetrics& m, const std::optional<nl::EvalMetrics>& e) {
  const auto number = [](double x) {
    return std::isfinite(x) ? nl::json::Value(x) : nl::json::Value();
  };
  nl::json::Object o{{"step", m.step},
                     {"train_loss", number(m.loss)},
                     {"lr", number(m.lr)},
                     {"grad_norm", number(m.grad_norm)},
                     {"tokens_per_s", number(m.tokens_per_s)}};
  if (e) {
    o.set("val_loss", number(e->loss));
    o.set("val_perplexity", number(e->perplexity));
  }
  return nl::json::dump_compact(o) + "\n";
}

/// Removes what a killed run may have left in `out`: the temporary files of
/// io::write_file_atomically for the files train writes
/// (".checkpoint-<step>.safetensors.tmp-*", ".metrics.csv.tmp-*", ...). Two runs
/// must not share one --out folder, so none of these is in use.
inline void remove_stale_temporaries(const std::filesystem::path& out) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(out, ec)) {
    const std::string name = entry.path().filename().string();
    const bool ours = (name.starts_with(".checkpoint-") || name.starts_with(".metrics.")) &&
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

/// "1 process" or "4 ranks x 2 micro-batches of 2 windows": how a step's batch is split.
inline std::string ranks_text(int ranks, int64_t micro_batches, int64_t batch_size) {
  const int64_t rows = batch_size / (ranks * micro_batches);
  std::string s = ranks == 1 ? "1 process" : std::to_string(ranks) + " ranks";
  if (ranks > 1 || micro_batches > 1)
    s += " x " + std::to_string(micro_batches) + " micro-batch" + (micro_batches > 1 ? "es" : "") +
         " of " + std::to_string(rows) + " window" + (rows > 1 ? "s" : "");
  return s;
}

/// How one invocation of `normlab train` runs a TrainRun: none of it changes
/// the run's numbers beyond rounding, so a resumed run may choose again.
struct TrainSession {
  std::string resume;            ///< checkpoint to continue from; empty: a new run
  std::filesystem::path out;     ///< folder of checkpoints and metrics
  int64_t checkpoint_every = 0;  ///< steps between checkpoints (0: only the last)
  int64_t stop_at = 0;           ///< stop after this step (0: at the run's end)
  int64_t keep_checkpoints = 0;  ///< keep the N newest checkpoints (0: all)
  int64_t micro_batches = 1;     ///< TrainerOptions::micro_batches
  /// The ranks of a data-parallel run (launcher_communicator), or null. Rank 0
  /// alone writes checkpoints and metrics and prints progress.
  nl::dist::Communicator* communicator = nullptr;
};

/// Trains `run` on `Backend` with the library's Trainer (from session.resume
/// when not empty), writing checkpoints and metrics to session.out and
/// progress to stderr; the whole of `normlab train` after its checks.
template <class Backend>
void run_training(const TrainRun& run, const nl::TextCorpus& corpus, const nl::Schedule& schedule,
                  const TrainSession& session) {
  const std::string& resume = session.resume;
  const std::filesystem::path& out = session.out;
  const int64_t stop_at = session.stop_at;
  using Model = nl::GPT<nl::RuntimePolicy, float, Backend>;
  Model model(run.model, run.seed, run.init);
  nl::AdamW<float, Backend> opt(
      model, nl::AdamWOptions{schedule.peak_lr, run.beta1, run.beta2, run.eps, run.weight_decay});
  nl::TrainerOptions t;
  t.steps = run.steps;
  t.batch_size = run.batch_size;
  t.seq_len = run.seq_len;
  t.eval_every = run.eval_every;
  t.eval_windows = run.eval_windows;
  t.clip_norm = run.clip;
  t.data_seed = run.seed;
  t.micro_batches = session.micro_batches;
  t.communicator = session.communicator;
  const bool writer = !session.communicator || session.communicator->rank() == 0;
  const nl::TrainValSplit split = nl::split_train_val(corpus.size(), {});
  nl::Trainer trainer(model, opt, schedule, corpus, split, t);
  if (!resume.empty()) trainer.load_checkpoint(resume);

  const std::filesystem::path csv = out / "metrics.csv";
  const std::filesystem::path jsonl = out / "metrics.jsonl";  // the same, one object per line
  std::optional<nl::io::AppendFile> metrics, metrics_json;    // rank 0's
  if (writer) {
    make_folder("train", out);
    remove_stale_temporaries(out);
    const std::string header =
        "step,train_loss,lr,grad_norm,tokens_per_s,val_loss,val_perplexity\n";
    // Rewritten atomically: a crash now leaves the old file or the cut one.
    write_text("train", csv, metrics_up_to(csv, trainer.step_count(), header));
    metrics.emplace(csv, "normlab train");
    write_text("train", jsonl, jsonl_up_to(jsonl, trainer.step_count()));
    metrics_json.emplace(jsonl, "normlab train");
  }
  const std::map<std::string, std::string> meta = {
      {kTrainRunKey, nl::json::dump_compact(train_run_json(run))}};

  if (writer)
    std::fprintf(stderr,
                 "normlab train: %s, %lld parameters, %s (%lld tokens), %s, %s, results in %s\n",
                 run.model.policy_spec().describe().c_str(),
                 static_cast<long long>(model.parameter_count()), corpus.source().c_str(),
                 static_cast<long long>(corpus.size()), schedule.to_string().c_str(),
                 ranks_text(trainer.ranks(), session.micro_batches, run.batch_size).c_str(),
                 out.string().c_str());
  if (writer && trainer.step_count() > 0)
    std::fprintf(stderr, "resuming %s at step %lld of %lld\n", resume.c_str(),
                 static_cast<long long>(trainer.step_count()), static_cast<long long>(run.steps));
  const bool tty = isatty(fileno(stderr)) != 0;
  const auto start = std::chrono::steady_clock::now();
  const int64_t first = trainer.step_count();
  nl::StepMetrics m;
  std::optional<nl::EvalMetrics> last_eval;
  std::string last_checkpoint;
  const int64_t last_step = stop_at > 0 ? std::min(stop_at, run.steps) : run.steps;
  typename decltype(trainer)::RunHooks hooks;
  hooks.stop_at = last_step;
  hooks.checkpoint_every = session.checkpoint_every;
  hooks.on_step = [&](const nl::StepMetrics& step, const std::optional<nl::EvalMetrics>& e) {
    m = step;
    if (!std::isfinite(m.loss))
      throw nl::Error("normlab train: the training loss is " + csv_number(m.loss) + " at step " +
                      std::to_string(m.step) + " (expected a finite loss; try a lower --lr)");
    if (!writer) return;
    metrics->append(std::to_string(m.step) + "," + csv_number(m.loss) + "," + csv_number(m.lr) +
                    "," + csv_number(m.grad_norm) + "," + csv_number(m.tokens_per_s) + "," +
                    (e ? csv_number(e->loss) : "") + "," + (e ? csv_number(e->perplexity) : "") +
                    "\n");
    metrics_json->append(jsonl_line(m, e));
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
  };
  hooks.on_checkpoint = [&](int64_t step) {
    if (!writer) return;
    char name[64];
    std::snprintf(name, sizeof name, "checkpoint-%lld.safetensors", static_cast<long long>(step));
    last_checkpoint = (out / name).string();
    metrics->sync();  // the metrics of every step a checkpoint holds are on disk first
    metrics_json->sync();
    trainer.save_checkpoint(last_checkpoint, meta);
    if (session.keep_checkpoints > 0) remove_older_checkpoints(out, step, session.keep_checkpoints);
  };
  trainer.run(hooks);
  if (!writer) return;
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

#ifdef NORMLAB_APP_CUDA
/// run_training<Cuda> (defined in cli/cuda.cu).
void run_training_cuda(const TrainRun& run, const nl::TextCorpus& corpus,
                       const nl::Schedule& schedule, const TrainSession& session);
#endif

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
