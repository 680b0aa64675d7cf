// normlab/train/trainer.hpp — the training loop: batches, steps, evaluation,
// metrics, callbacks, checkpoints and exact resume.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "normlab/data/sampler.hpp"
#include "normlab/models/checkpoint.hpp"
#include "normlab/optim/clip.hpp"
#include "normlab/optim/optimizer.hpp"
#include "normlab/optim/schedule.hpp"
#include "normlab/train/gradient_sum.hpp"
#include "normlab/train/optimizer_state.hpp"

namespace normlab {
inline namespace v0 {

/// How a Trainer runs.
struct TrainerOptions {
  int64_t steps = 1000;       ///< optimizer steps in run()
  int64_t batch_size = 8;     ///< B
  int64_t seq_len = 64;       ///< T
  int64_t eval_every = 100;   ///< evaluate after every this many steps (0: never during run())
  int64_t eval_windows = 64;  ///< validation windows per evaluation (0: the whole split)
  double clip_norm = 1.0;     ///< global gradient-norm clip (0: off)
  uint64_t data_seed = 1;     ///< seed of the training batches
  /// Micro-batches per step and rank (gradient accumulation): the batch's
  /// rows are split into micro_batches x ranks equal slices; this rank runs
  /// its micro_batches one after another. micro_batches x ranks must divide
  /// batch_size.
  int64_t micro_batches = 1;
  /// The ranks a step is split over (data parallelism), or null: this process
  /// alone. Every rank draws the same global batch (batch_size rows) and runs
  /// slices rank x micro_batches .. + micro_batches - 1; gradients and the
  /// loss are summed over the ranks in rank order (GradientSum). Must outlive
  /// the trainer and reduce the backend's tensors (MpiCommunicator: Cpu,
  /// NcclCommunicator: Cuda).
  dist::Communicator* communicator = nullptr;
};

/// What one step measured.
struct StepMetrics {
  int64_t step = 0;         ///< steps done, this one included
  double loss = 0;          ///< training loss of the batch (before the update)
  double lr = 0;            ///< learning rate the update used
  double grad_norm = 0;     ///< global gradient norm before clipping
  double tokens_per_s = 0;  ///< B * T over the step's wall time
  /// Seconds of the step's wall time this rank spent exchanging gradients and
  /// the loss with the other ranks outside compute (GradientSum::
  /// exchange_seconds plus the loss's all-reduce): the communication that did
  /// not hide behind backward. 0 in one process.
  double exchange_s = 0;
};

/// What one evaluation measured.
struct EvalMetrics {
  int64_t step = 0;
  double loss = 0;        ///< mean next-token cross-entropy over the validation windows
  double perplexity = 0;  ///< exp(loss)
};

/// Trains a model on windows of a corpus: each step draws a batch, computes
/// the loss and its gradient, clips the global gradient norm, sets the
/// schedule's learning rate and updates the parameters. Gradients are
/// dropped before each step (Optimizer::zero_grad with set_to_none, PyTorch
/// 2's default), so a parameter the loss does not reach is not updated.
///
/// Model: GPT-like — `loss(tokens, targets)`, `parameters()`, `train()`,
/// `eval()`, `config()` and `dropout_generator()`.
/// Contract: the model, optimizer, corpus and split outlive the trainer. On
/// the CPU a run resumed from save_checkpoint() reproduces the losses of the
/// uninterrupted run bit for bit.
template <class Model, FloatingElement Scalar, class Backend>
class Trainer {
 public:
  using StepCallback = std::function<void(const StepMetrics&)>;
  using EvalCallback = std::function<void(const EvalMetrics&)>;

  Trainer(Model& model, Optimizer<Scalar, Backend>& optimizer, Schedule schedule,
          const TextCorpus& corpus, const TrainValSplit& split, TrainerOptions options)
      : model_(model),
        optimizer_(optimizer),
        schedule_(std::move(schedule)),
        options_(options),
        sampler_(corpus, split.train, options.batch_size, options.seq_len, options.data_seed),
        eval_(corpus, split.val, options.batch_size, options.seq_len, options.eval_windows),
        params_(model.parameters()),
        gradients_(params_, options.communicator) {
    schedule_.validate();
    detail::check(options.steps >= 0 && options.eval_every >= 0 && options.clip_norm >= 0,
                  "Trainer: steps, eval_every and clip_norm must be >= 0, got ", options.steps,
                  ", ", options.eval_every, ", ", options.clip_norm);
    // First micro_batches alone: the message names it, and a divisor of
    // batch_size is at most batch_size, so the product below cannot overflow.
    detail::check(options.micro_batches >= 1 && options.batch_size % options.micro_batches == 0,
                  "Trainer: micro_batches must be a divisor of batch_size ", options.batch_size,
                  ", got ", options.micro_batches);
    const int64_t slices = options.micro_batches * ranks();
    detail::check(options.batch_size % slices == 0, "Trainer: batch_size ", options.batch_size,
                  " must split into micro_batches ", options.micro_batches, " x ", ranks(),
                  " ranks = ", slices, " equal slices");
    detail::check(slices <= kMaxSlices, "Trainer: micro_batches x ranks = ", slices,
                  " exceeds the ", kMaxSlices, " dropout streams a step has");
    detail::check(static_cast<uint64_t>(options.steps) < kMaxSteps, "Trainer: steps ",
                  options.steps, " exceeds the ", kMaxSteps, " steps the dropout streams cover");
    if (ranks() > 1) {
      const dist::Communicator& comm = *options.communicator;
      detail::check(comm.accepts_backend(Backend::name), "Trainer: data parallelism on ",
                    Backend::name, " tensors needs a communicator that reduces them; the ",
                    comm.name(), " communicator does not (MpiCommunicator reduces cpu tensors, ",
                    "NcclCommunicator cuda tensors)");
      join_ranks();
    }
  }

  int64_t step_count() const { return step_; }
  /// This process's rank and the number of ranks (0 and 1 without a communicator).
  int rank() const { return options_.communicator ? options_.communicator->rank() : 0; }
  int ranks() const { return options_.communicator ? options_.communicator->size() : 1; }
  const TrainerOptions& options() const { return options_; }

  /// One optimizer step on the next training batch, as micro_batches slices
  /// of rows s = 0..M-1, each weighted by its share of the batch's counted
  /// targets (those not equal to the model's ignore index):
  ///
  ///   grad = sum_s (n_s / n) grad(loss_s),   loss = sum_s (n_s / n) loss_s
  ///
  /// where loss_s is the mean loss of slice s over its n_s counted targets
  /// and n = sum_s n_s: the gradient of the batch's mean loss, up to
  /// rounding (M = 1 is exactly the batch's). Slice s of step k draws its
  /// dropout masks from the stream that starts at Philox block
  /// k 2^40 + s 2^32 of the model's dropout generator: they depend on the
  /// step and the slice only (not on the steps before, nor on where the slice
  /// runs), so a resumed run draws the same masks, and so does a process
  /// that runs slice s of a batch split over processes. With dropout on, M
  /// is part of the run: another M slices the batch's masks differently.
  StepMetrics step() {
    const auto start = std::chrono::steady_clock::now();
    const Batch<Backend> batch = sampler_.template next<Backend>();
    model_.train();
    optimizer_.zero_grad(/*set_to_none=*/true);  // backward writes them fresh
    const int64_t local = options_.micro_batches, slices = local * ranks();
    const int64_t rows = options_.batch_size / slices;
    const std::vector<int64_t> counted = counted_targets(batch.targets, slices);  // (slices)
    int64_t total = 0;
    for (int64_t n : counted) total += n;
    double loss_value = 0, exchange_s = 0;
    if (slices == 1) {  // the whole batch at once
      begin_dropout_stream(0);
      const Variable<Scalar, Backend> loss = model_.loss(batch.tokens, batch.targets);
      loss.backward();
      loss_value = static_cast<double>(loss.item());
      end_dropout_stream(0);
    } else {
      gradients_.begin_step();
      for (int64_t j = 0; j < local; ++j) {
        const int64_t s = rank() * local + j;  // the global slice
        // A slice whose targets are all ignored has a NaN mean (0 / 0) and no gradient to add.
        if (counted[static_cast<size_t>(s)] == 0) continue;
        begin_dropout_stream(s);
        const Variable<Scalar, Backend> loss =
            model_.loss(batch.tokens.rows(s * rows, rows), batch.targets.rows(s * rows, rows));
        const double share =
            static_cast<double>(counted[static_cast<size_t>(s)]) / static_cast<double>(total);
        gradients_.before_backward(j == local - 1);
        loss.backward(Tensor<Scalar, Backend>::full(loss.shape(), static_cast<Scalar>(share)));
        gradients_.after_backward();
        loss_value += static_cast<double>(loss.item()) * share;
        end_dropout_stream(s);
      }
      gradients_.finish();
      exchange_s = gradients_.exchange_seconds();
      if (ranks() > 1) {
        const auto loss_start = std::chrono::steady_clock::now();
        // In the backend's memory, where the communicator reduces (rank order, in double).
        Tensor<double, Backend> loss_sum =
            Tensor<double, Backend>::from_vector(Shape{1}, {loss_value});
        options_.communicator->all_reduce_sum(loss_sum);
        loss_value = loss_sum.to_vector()[0];
        exchange_s +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - loss_start).count();
      }
    }
    StepMetrics m;
    m.exchange_s = exchange_s;
    m.loss = loss_value;
    m.grad_norm =
        options_.clip_norm > 0 ? clip_grad_norm(params_, options_.clip_norm) : grad_norm(params_);
    m.lr = schedule_.lr(step_);
    optimizer_.set_lr(m.lr);
    optimizer_.step();
    m.step = ++step_;
    // The generator rests at the next step's first stream, however the batch was sliced: a
    // checkpoint's state does not depend on the micro-batches or the rank that wrote it.
    Generator& g = model_.dropout_generator();
    g.set_state(g.seed(), dropout_stream_start(step_, 0));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    m.tokens_per_s = static_cast<double>(options_.batch_size * options_.seq_len) / seconds;
    return m;
  }

  /// Mean loss over the fixed validation windows, in eval mode, without a graph.
  EvalMetrics evaluate() {
    NoGradGuard no_grad;
    model_.eval();
    double total = 0;
    int64_t windows = 0;
    for (int64_t i = 0; i < eval_.num_batches(); ++i) {
      const Batch<Backend> batch = eval_.template batch<Backend>(i);
      const int64_t rows = batch.tokens.size(0);
      total += static_cast<double>(model_.loss(batch.tokens, batch.targets).item()) *
               static_cast<double>(rows);
      windows += rows;
    }
    model_.train();
    EvalMetrics e;
    e.step = step_;
    e.loss = total / static_cast<double>(windows);
    e.perplexity = std::exp(e.loss);
    return e;
  }

  /// What run() does around the steps: where it stops, what it reports, when
  /// it checkpoints. Every member is optional.
  struct RunHooks {
    /// Stop after this step (0: after options().steps); the schedule still
    /// spans options().steps, so a later run() continues the same run.
    int64_t stop_at = 0;
    /// Called after each step with its metrics and the evaluation that
    /// followed it, if one did (every eval_every steps, and after step
    /// options().steps). May throw to end the run (e.g. on a non-finite loss).
    std::function<void(const StepMetrics&, const std::optional<EvalMetrics>&)> on_step;
    /// Steps between checkpoints (0: only after the last step run()
    /// takes); at each, after on_step, on_checkpoint(step) is called, e.g.
    /// to call save_checkpoint with the caller's metadata and file name.
    int64_t checkpoint_every = 0;
    std::function<void(int64_t step)> on_checkpoint;
  };

  /// The training loop: steps until hooks.stop_at (or options().steps),
  /// evaluating every eval_every steps and after the last of the run's
  /// steps, reporting each step and checkpointing as `hooks` ask. The one
  /// loop every program uses (normlab train, the compare experiments).
  /// Returns the number of steps taken (0 when the run is already there).
  int64_t run(const RunHooks& hooks) {
    const int64_t last =
        hooks.stop_at > 0 ? std::min(hooks.stop_at, options_.steps) : options_.steps;
    const int64_t first = step_;
    while (step_ < last) {
      const StepMetrics m = step();
      std::optional<EvalMetrics> e;
      const bool due = options_.eval_every > 0 && step_ % options_.eval_every == 0;
      if (due || step_ == options_.steps) e = evaluate();
      if (hooks.on_step) hooks.on_step(m, e);
      const bool checkpoint =
          (hooks.checkpoint_every > 0 && step_ % hooks.checkpoint_every == 0) || step_ == last;
      if (checkpoint && hooks.on_checkpoint) hooks.on_checkpoint(step_);
    }
    return step_ - first;
  }

  /// run() to options().steps with a callback per step and per evaluation.
  void run(const StepCallback& on_step = {}, const EvalCallback& on_eval = {}) {
    RunHooks hooks;
    hooks.on_step = [&](const StepMetrics& m, const std::optional<EvalMetrics>& e) {
      if (on_step) on_step(m);
      if (e && on_eval) on_eval(*e);
    };
    run(hooks);
  }

  /// Writes the model (parameters and config), the optimizer state under
  /// `optim.`, and the step, batch-sampler and dropout positions as metadata;
  /// `extra_metadata` (e.g. how a program built this run) is stored beside
  /// them. The file is written atomically (SafetensorsWriter::write): a crash
  /// leaves the previous file at `path` or the complete new one.
  ///
  /// Requires: no extra key is the config's or the trainer's own; every
  /// parameter and optimizer-state value finite. A non-finite value (the
  /// loss of a step is computed before its update, so an update can diverge
  /// after a finite loss) throws Error naming the step, the tensor, the
  /// element and its value, and nothing is written: no checkpoint of a
  /// diverged run can replace a good one.
  void save_checkpoint(const std::string& path,
                       const std::map<std::string, std::string>& extra_metadata = {}) const {
    io::SafetensorsWriter w;
    for (const auto& [key, value] : extra_metadata) {
      detail::check(key != kTrainerKey && key != kCheckpointConfigKey,
                    "Trainer::save_checkpoint: metadata key \"", key,
                    "\" is reserved for the checkpoint itself");
      w.set_metadata(key, value);
    }
    for (const auto& p : model_.named_parameters()) check_finite(path, p.name, p.value.data());
    const OptimizerState<Scalar, Backend> state = optimizer_.state();
    for (const auto& [key, t] : state.tensors) check_finite(path, kOptimPrefix + key, t);
    add_model(w, model_, model_.config());
    write_state(w, state, kOptimPrefix);
    const SamplerState s = sampler_.state();
    const Generator& d = model_.dropout_generator();
    w.set_metadata(kTrainerKey, json::dump_compact(json::Object{
                                    {"step", step_},
                                    {"schedule", schedule_.to_string()},
                                    {"sampler_seed", std::to_string(s.seed)},
                                    {"sampler_offset", std::to_string(s.offset)},
                                    {"dropout_seed", std::to_string(d.seed())},
                                    {"dropout_offset", std::to_string(d.offset())},
                                }));
    w.write(path);
  }

  /// Restores everything save_checkpoint wrote into this trainer's model
  /// (built from the checkpoint's config) and optimizer. Throws Error naming
  /// the file and the key when it is not a trainer checkpoint, does not fit,
  /// or its state is out of range (a step outside [0, options().steps], a
  /// position that is not an unsigned 64-bit number).
  void load_checkpoint(const std::string& path) {
    const io::SafetensorsReader r = io::SafetensorsReader::open(path);
    const auto meta = r.metadata().find(kTrainerKey);
    detail::check(meta != r.metadata().end(), path, ": not a training checkpoint (no \"",
                  kTrainerKey, "\" metadata)");
    const std::string where = path + " trainer state";
    const json::Value v = json::parse(meta->second, where);
    detail::check(v.is_object(), where, ": expected a JSON object, found ", v.describe());
    const auto field = [&](const char* key) -> const json::Value& {
      const json::Value* x = v.as_object().find(key);
      detail::check(x != nullptr, where, ": missing key \"", key, "\"");
      return *x;
    };
    const auto u64 = [&](const char* key) { return json::decimal_u64(field(key), where, key); };
    const json::Value& step = field("step");
    detail::check(step.is_int() && step.as_int() >= 0 && step.as_int() <= options_.steps, where,
                  ": key \"step\" must be a whole number in [0, ", options_.steps,
                  "] (the run's steps), found ", step.describe());
    const SamplerState sampler{u64("sampler_seed"), u64("sampler_offset")};
    const uint64_t dropout_seed = u64("dropout_seed"), dropout_offset = u64("dropout_offset");
    load_parameters(model_, r, DTypeMatch::exact, tensor_names_with_prefix(r, kOptimPrefix));
    optimizer_.load_state(read_state<Scalar, Backend>(r, kOptimPrefix));
    step_ = step.as_int();
    sampler_.set_state(sampler);
    model_.dropout_generator().set_state(dropout_seed, dropout_offset);
  }

  static constexpr const char* kTrainerKey = "normlab.trainer";
  /// The dropout streams: slice s of step k starts at Philox block
  /// k kStepBlocks + s kSliceBlocks and may take up to kSliceBlocks blocks.
  static constexpr uint64_t kSliceBlocks = uint64_t{1} << 32;
  static constexpr uint64_t kStepBlocks = uint64_t{1} << 40;
  static constexpr int64_t kMaxSlices = int64_t{1} << 8;    // kStepBlocks / kSliceBlocks
  static constexpr uint64_t kMaxSteps = uint64_t{1} << 24;  // 2^64 / kStepBlocks
  static constexpr const char* kOptimPrefix = kOptimizerStatePrefix;

 private:
  /// With more than one rank: checks that every rank runs the same model and
  /// options (Error on every rank naming the ranks that differ) and gives
  /// every rank rank 0's parameters.
  void join_ranks() {
    dist::Communicator& comm = *options_.communicator;
    std::string shapes;
    for (const auto& p : model_.named_parameters())
      shapes += p.name + p.value.shape().to_string() + ";";
    const TrainerOptions& o = options_;
    comm.check_same("the trainer's model and options",
                    detail::concat(json::dump_compact(config_to_json(model_.config())), " steps ",
                                   o.steps, " batch ", o.batch_size, " seq ", o.seq_len, " micro ",
                                   o.micro_batches, " clip ", o.clip_norm, " seed ", o.data_seed,
                                   " schedule ", schedule_.to_string(), " parameters ", shapes));
    for (Variable<Scalar, Backend>& p : params_) {
      Tensor<Scalar, Backend> value = p.data();  // a handle: broadcasting into it sets p
      comm.broadcast(value, 0);
    }
  }

  /// How many targets of each of `slices` equal row ranges of `targets` (B, T)
  /// the loss counts: all, unless the model ignores some (its ignore_index()).
  /// Reads the targets on the host only when there is more than one slice.
  std::vector<int64_t> counted_targets(const Tensor<int64_t, Backend>& targets,
                                       int64_t slices) const {
    const int64_t per_slice = targets.numel() / slices;
    std::vector<int64_t> counted(static_cast<size_t>(slices), per_slice);
    if (slices == 1) return counted;
    int64_t ignored = -100;
    if constexpr (requires { model_.ignore_index(); }) ignored = model_.ignore_index();
    const std::vector<int64_t> t = targets.to_vector();
    for (size_t i = 0; i < t.size(); ++i)
      if (t[i] == ignored) --counted[i / static_cast<size_t>(per_slice)];
    return counted;
  }

  /// The first Philox block of slice s's dropout stream in step k (0-based).
  static uint64_t dropout_stream_start(int64_t k, int64_t s) {
    return static_cast<uint64_t>(k) * kStepBlocks + static_cast<uint64_t>(s) * kSliceBlocks;
  }
  /// Points the model's dropout generator at slice s's stream of this step.
  void begin_dropout_stream(int64_t s) {
    Generator& g = model_.dropout_generator();
    slice_start_ = dropout_stream_start(step_, s);
    g.set_state(g.seed(), slice_start_);
  }
  /// Checks that slice s stayed within its stream.
  void end_dropout_stream(int64_t s) const {
    const uint64_t used = model_.dropout_generator().offset() - slice_start_;
    detail::check(used <= kSliceBlocks, "Trainer: micro-batch ", s, " of step ", step_ + 1,
                  " drew ", used, " Philox blocks of dropout masks, more than its stream's ",
                  kSliceBlocks, "; use more micro_batches");
  }

  /// Throws Error unless every element of `t` is finite (see save_checkpoint).
  /// The sum of squares on the backend decides without copying `t` (the
  /// writer copies it once); only when it is not finite — a non-finite
  /// element, or finite doubles above 1e154 — are the elements read to name
  /// the first non-finite one.
  void check_finite(const std::string& path, const std::string& name,
                    const Tensor<Scalar, Backend>& t) const {
    if (t.numel() == 0 || std::isfinite(sum_of_squares(Backend{}, t.data(), t.numel()))) return;
    const std::vector<Scalar> values = t.to_vector();
    for (size_t i = 0; i < values.size(); ++i)
      detail::check(std::isfinite(values[i]), "Trainer::save_checkpoint: after step ", step_,
                    " tensor '", name, "' holds ", values[i], " at element ", i, " of shape ",
                    t.shape(), "; the run has diverged (try a lower learning rate) and ", path,
                    " is not written");
  }

  Model& model_;
  Optimizer<Scalar, Backend>& optimizer_;
  Schedule schedule_;
  TrainerOptions options_;
  WindowSampler sampler_;
  EvalBatches eval_;
  std::vector<Variable<Scalar, Backend>> params_;
  GradientSum<Scalar, Backend> gradients_;  // over the micro-batches and the ranks
  int64_t step_ = 0;
  uint64_t slice_start_ = 0;  // first Philox block of the running slice's dropout stream
};

}  // namespace v0
}  // namespace normlab
