// apps/normlab/cli/train.cpp — `normlab train`: one configuration trained with the library's
// Trainer; atomic checkpoints and metrics, exact --resume.
#include "cli/common.hpp"
#include "cli/ranks.hpp"

#include <optional>

#include "cli/device.hpp"
#include "cli/train_run.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {
namespace {

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
       {"--resume", "CHECKPOINT    continue the run a checkpoint of normlab train holds"},
       {"--micro-batches",
        "M      split each batch into M micro-batches run one after another (gradient "
        "accumulation; divides --batch-size; default 1)"},
       {"--device", kDeviceHelp}},
      argc, argv, 2);
  if (flags.print_help(
          "usage: normlab train [flags]\n"
          "       normlab train --resume CHECKPOINT [--out DIR] [--corpus PATH] "
          "[--checkpoint-every N] [--keep-checkpoints N] [--stop-at N]\n"
          "                             [--micro-batches M]\n"
          "Trains one GPT on a byte-level corpus with AdamW and the library's Trainer. Prints a\n"
          "progress line every 10 steps and a validation loss every --eval-every steps; writes\n"
          "DIR/checkpoint-<step>.safetensors (model, optimizer, schedule, batch and dropout\n"
          "position, run settings) every --checkpoint-every steps and at the end, and\n"
          "DIR/metrics.csv (one row per step) with DIR/metrics.jsonl beside it (the same, one\n"
          "JSON object per line). --resume continues a run exactly: its losses are\n"
          "those of the uninterrupted run; its settings come from the checkpoint. Files are\n"
          "replaced atomically: a run killed at any moment leaves whole checkpoints only, and\n"
          "the newest one resumes. A checkpoint holding a non-finite value is never written.\n"
          "--device cuda trains on the GPU (a build with the CUDA backend and a visible device;\n"
          "else an error before any work); either device resumes a checkpoint of the other.\n"
          "--micro-batches M runs each batch as M slices of rows whose gradients add up to the\n"
          "batch's (weighted by their counted targets): less memory for activations, the same\n"
          "run up to rounding without dropout; with dropout each slice draws its own stream, so\n"
          "the masks depend on M (a resumed run may choose another M).\n"))
    return 0;
  const Device device = parse_device("train", flags.get("--device", "cpu"));
  require_device("train", device);
  TrainSession session;
  session.resume = flags.get("--resume", "");
  const std::string& resume = session.resume;
  session.checkpoint_every =
      int_at_least("--checkpoint-every", flags.get("--checkpoint-every", "250"), 0);
  session.keep_checkpoints =
      int_at_least("--keep-checkpoints", flags.get("--keep-checkpoints", "0"), 0);
  session.stop_at =
      flags.given("--stop-at") ? positive_int("--stop-at", flags.get("--stop-at", "")) : 0;
  session.micro_batches = positive_int("--micro-batches", flags.get("--micro-batches", "1"));
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
  const int ranks = launcher_world_size();
  if (run.batch_size % (session.micro_batches * ranks) != 0)
    throw UsageError("normlab train: --micro-batches " + std::to_string(session.micro_batches) +
                     (ranks > 1 ? " x " + std::to_string(ranks) + " ranks" : std::string()) +
                     " must divide the batch size " + std::to_string(run.batch_size));
#ifndef NORMLAB_APP_NCCL
  if (ranks > 1 && device == Device::cuda)
    throw nl::Error("normlab train: --device cuda with " + std::to_string(ranks) +
                    " ranks needs NCCL, and this build has none (expected a build with CUDA, MPI "
                    "and the toolkit's nccl.h and libnccl found at configure time; or one "
                    "process with --device cuda, or ranks on the CPU)");
#endif
  (void)run.model.policy_spec();  // a bad policy fails here, before the corpus is read

  const nl::TextCorpus corpus =
      run.corpus.empty() ? nl::load_default_corpus() : nl::TextCorpus::from_path(run.corpus);
  if (!resume.empty()) check_same_corpus(run, trained_on, corpus, resume);
  run.corpus_tokens = corpus.size();
  run.corpus_fingerprint = corpus.fingerprint();
  check_windows_fit(run, corpus);
  check_batch_fits(run);
  session.out = out;
  const std::unique_ptr<nl::dist::Communicator> communicator = launcher_communicator("train");
  session.communicator = communicator.get();
#ifdef NORMLAB_APP_CUDA
  if (device == Device::cuda) {
    run_training_cuda(run, corpus, schedule, session);
    return 0;
  }
#endif
  run_training<nl::Cpu>(run, corpus, schedule, session);
  return 0;
}

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
