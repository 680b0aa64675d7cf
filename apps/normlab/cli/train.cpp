// apps/normlab/cli/train.cpp — `normlab train`: one configuration trained with the library's
// Trainer; atomic checkpoints and metrics, exact --resume.
#include "cli/common.hpp"

#include <chrono>
#include <optional>

namespace normlab {
inline namespace v0 {
namespace cli::detail {
namespace {

/// Metadata key of the settings a `normlab train` checkpoint was made with.
constexpr const char* kTrainRunKey = "normlab.train_run";

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

nl::json::Value train_run_json(const TrainRun& r) {
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

/// The run stored in a checkpoint of `normlab train`; errors name the file.
TrainRun stored_train_run(const nl::io::SafetensorsReader& file) {
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
nl::Schedule schedule_from_flags(const Flags& flags, int64_t steps) {
  const std::string kind = flags.get("--schedule", "polynomial");
  if (kind.find(':') != std::string::npos) {
    for (const char* f : {"--lr", "--warmup"})
      if (flags.given(f))
        throw UsageError(std::string("normlab train: ") + f +
                         " cannot be combined with a full --schedule spec (put it in the spec)");
    return nl::Schedule::parse(kind);
  }
  const double lr = positive_number("--lr", flags.get("--lr", "1e-3"));
  // The default warm-up is 100 steps, or a tenth of a shorter run.
  const int64_t warmup = int_at_least(
      "--warmup", flags.get("--warmup", std::to_string(std::min<int64_t>(100, steps / 10))), 0);
  if (warmup > steps && kind != "constant" && kind != "inverse_sqrt")
    throw UsageError("--warmup " + std::to_string(warmup) + " is longer than the run (--steps " +
                     std::to_string(steps) + "); expected at most " + std::to_string(steps));
  if (kind == "constant") return nl::Schedule::constant(lr, warmup);
  if (kind == "linear") return nl::Schedule::linear(lr, warmup, steps);
  if (kind == "polynomial") return nl::Schedule::polynomial(lr, warmup, steps);
  if (kind == "cosine") return nl::Schedule::cosine(lr, warmup, steps);
  if (kind == "inverse_sqrt") return nl::Schedule::inverse_sqrt(lr, warmup);
  throw UsageError(
      "normlab train: --schedule must be constant, linear, polynomial, cosine, inverse_sqrt or a "
      "spec like 'cosine:lr=1e-3,warmup=100,total=1000', got '" +
      kind + "'");
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
std::string metrics_up_to(const std::filesystem::path& path, int64_t step,
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
std::string jsonl_up_to(const std::filesystem::path& path, int64_t step) {
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
std::string jsonl_line(const nl::StepMetrics& m, const std::optional<nl::EvalMetrics>& e) {
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

/// `path` made absolute (so that --resume from another folder finds the
/// corpus); empty stays empty (the default corpus).
std::string absolute_corpus_path(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  const std::filesystem::path full = std::filesystem::absolute(path, ec);
  return ec ? path : full.lexically_normal().string();
}

/// Throws Error unless `corpus` is the text the run in `checkpoint` trained
/// on (`trained_on`, of run.corpus_tokens tokens and run.corpus_fingerprint),
/// naming both and the flag that fixes it.
void check_same_corpus(const TrainRun& run, const std::string& trained_on,
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
void check_windows_fit(const TrainRun& run, const nl::TextCorpus& corpus) {
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
void check_batch_fits(const TrainRun& run) {
  const nl::ModelConfig& m = run.model;
  nl::detail::CheckedCount n;
  const int64_t per_token =
      n.add(n.mul(2, m.vocab_size), n.mul(m.n_layers, n.add(m.d_ff, n.mul(8, m.d_model))));
  const int64_t floats = n.mul(n.mul(run.batch_size, run.seq_len), per_token);
  const bool fits = n.fits;
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
/// (".checkpoint-<step>.safetensors.tmp-*", ".metrics.csv.tmp-*", ...). Two runs
/// must not share one --out folder, so none of these is in use.
void remove_stale_temporaries(const std::filesystem::path& out) {
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
void remove_older_checkpoints(const std::filesystem::path& out, int64_t newest, int64_t keep) {
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

void run_training(const TrainRun& run, const nl::TextCorpus& corpus, const nl::Schedule& schedule,
                  const std::string& resume, const std::filesystem::path& out,
                  int64_t checkpoint_every, int64_t stop_at, int64_t keep_checkpoints) {
  using Model = nl::GPT<nl::RuntimePolicy, float, nl::Cpu>;
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
  const std::filesystem::path jsonl = out / "metrics.jsonl";  // the same, one object per line
  write_text("train", jsonl, jsonl_up_to(jsonl, trainer.step_count()));
  nl::io::AppendFile metrics_json(jsonl, "normlab train");
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
  decltype(trainer)::RunHooks hooks;
  hooks.stop_at = last_step;
  hooks.checkpoint_every = checkpoint_every;
  hooks.on_step = [&](const nl::StepMetrics& step, const std::optional<nl::EvalMetrics>& e) {
    m = step;
    metrics.append(std::to_string(m.step) + "," + csv_number(m.loss) + "," + csv_number(m.lr) +
                   "," + csv_number(m.grad_norm) + "," + csv_number(m.tokens_per_s) + "," +
                   (e ? csv_number(e->loss) : "") + "," + (e ? csv_number(e->perplexity) : "") +
                   "\n");
    metrics_json.append(jsonl_line(m, e));
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
  };
  hooks.on_checkpoint = [&](int64_t step) {
    char name[64];
    std::snprintf(name, sizeof name, "checkpoint-%lld.safetensors", static_cast<long long>(step));
    last_checkpoint = (out / name).string();
    metrics.sync();  // the metrics of every step a checkpoint holds are on disk first
    metrics_json.sync();
    trainer.save_checkpoint(last_checkpoint, meta);
    if (keep_checkpoints > 0) remove_older_checkpoints(out, step, keep_checkpoints);
  };
  trainer.run(hooks);
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

}  // namespace

int train_command(int argc, char** argv) {
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
          "DIR/metrics.csv (one row per step) with DIR/metrics.jsonl beside it (the same, one\n"
          "JSON object per line). --resume continues a run exactly: its losses are\n"
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
        throw UsageError(std::string("normlab train: ") + f +
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
          throw UsageError(std::string("normlab train: ") + f +
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
    if (!flags.given("--config")) run.model.d_ff = default_d_ff("train", run.model.d_model);
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
        throw UsageError("--betas needs two numbers B1,B2, got '" + flags.get("--betas", "") + "'");
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

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
