// apps/normlab/experiments/compare.hpp — the experiments of `normlab compare`:
// each claim about normalization placement run in the regime where the
// theory says it lives, on the same data, sizes and seeds for every policy.
//
//   1. Depth sweep at initialization (Xiong et al. 2020, Theorem 1): the
//      last layer's FFN weight gradient is O(d sqrt(ln d)) for Post-LN,
//      independent of the depth L, and O(d sqrt(ln d / L)) for Pre-LN. For
//      each depth of a list, fc2's gradient norm in the first and the last
//      layer over seeds x batches; the log-log slope against L with its 95%
//      interval (theory: 0 and -1/2), and the per-layer profile (Fig. 3).
//   2. Learning-rate sweep with and without warm-up (Xiong et al. 2020,
//      section 3): each policy at each peak LR and warm-up length, linear
//      decay, the first seed. A run is classified trained, failed (its final
//      validation loss is not below the unigram loss by fail_margin: the
//      model learnt no more than byte frequencies) or diverged (a non-finite
//      loss); the gradient profile at the end of every run shows how a failed
//      one failed.
//   3. Tuned comparison (Shleifer, Weston & Ott 2021): each policy at its own
//      best (LR, warm-up) of the sweep, on every seed; beside it, the
//      mismatched pair of fixed LRs (pre_ln 1e-3, normformer 3e-3 by
//      default) that can manufacture a spurious win.
//   4. LR-stress test: the LR multiplied by stress_factor every step until
//      the loss explodes (non-finite, or above 3x its first value); a run that
//      reaches the cap is censored (it survived at least that many steps).
//
// Every run is a GPT<RuntimePolicy, float, Backend> trained by Trainer::run;
// a run that two experiments need (a sweep run on the first seed is also the
// tuned comparison's first seed) is trained once.
//
// The runs are independent of each other but for the tuned comparison, which
// needs the sweep's outcome; so they go in two rounds — (a) the depth
// sweep's points, the LR sweep's runs and the LR-stress seeds, (b) the tuned
// comparison's runs — and within a round they can run anywhere: given a
// communicator of N ranks, each round's runs are spread over the ranks
// (spread_over_ranks) and every rank receives what the others measured, so
// the results are those of one process bit for bit, whatever N.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "experiments/statistics.hpp"
#include "experiments/wire.hpp"
#include "normlab/diag/diagnostics.hpp"
#include "normlab/dist/communicator.hpp"
#include "normlab/models/checkpoint.hpp"
#include "normlab/models/gpt.hpp"
#include "normlab/optim/adam.hpp"
#include "normlab/policy/registry.hpp"
#include "normlab/train/trainer.hpp"
#include "report/duration.hpp"

namespace normlab {
inline namespace v0 {

/// The knobs of a compare run. Every policy gets the same model sizes, seeds,
/// data and budget. The defaults are the regime in which the small-scale
/// claims show on 2 cores in about 5 minutes (C 64, 6 layers: the sizes
/// where Post-LN needs warm-up at LR >= 3e-3; depths up to 32, where the
/// theorem's slopes separate).
struct CompareOptions {
  std::vector<std::string> policies = {"post_ln", "pre_ln", "normformer"};
  ModelConfig model = [] {
    ModelConfig c;
    c.vocab_size = 256;
    c.d_model = 64;
    c.n_heads = 4;
    c.n_layers = 6;
    c.d_ff = 256;
    c.max_seq_len = 64;
    return c;
  }();
  InitScheme init = InitScheme::fairseq;  ///< Xavier, as in Xiong et al.
  std::vector<uint64_t> seeds = {1, 2, 3};
  int64_t batch_size = 8;
  int64_t seq_len = 64;
  // 1. Depth sweep at initialization.
  std::vector<int64_t> depths = {2, 4, 8, 16, 32};
  int64_t grad_batches = 4;  ///< batches per seed of every gradient measurement
  // 2. LR sweep (first seed); 3. tuned comparison (every seed).
  std::vector<double> lrs = {1e-3, 2e-3, 3e-3, 5e-3, 1e-2};
  std::vector<int64_t> warmups = {0, 30, 60};
  int64_t steps = 120;
  int64_t eval_every = 20;
  int64_t eval_windows = 32;
  double clip_norm = 1.0;
  /// A run failed when its final validation loss is not below the unigram
  /// loss by this many nats.
  double fail_margin = 0.2;
  /// 3. The mismatched pair: policy -> its fixed LR, at the sweep's longest
  /// warm-up (the NormFormer paper's habit of a higher LR for NormFormer).
  std::map<std::string, double> mismatched_lrs = {{"pre_ln", 1e-3}, {"normformer", 3e-3}};
  // 4. LR stress (every seed).
  double stress_start_lr = 1e-4;
  double stress_factor = 1.05;  ///< 1e-4 * 1.05^189 = 1: every policy explodes in time
  int64_t stress_max_steps = 250;
  std::string scale = "small";  ///< the preset's name, for the report
  std::string device = "cpu";   ///< the backend's name, for the report (run_compare's Backend runs)
  /// Which experiments run (the tuned comparison needs the sweep).
  bool depth_sweep = true, lr_sweep = true, tuned = true, lr_stress = true;

  /// Every knob in one line (doubles to 17 digits), for ranks to check that
  /// they run the same comparison.
  std::string knobs_text() const {
    std::string t = json::dump_compact(config_to_json(model));
    auto list = [&t](const char* name, const auto& v) {
      t += detail::concat(" ", name);
      for (const auto& x : v) t += detail::concat(" ", x);
    };
    list("policies", policies);
    list("seeds", seeds);
    list("depths", depths);
    list("warmups", warmups);
    char number[32];
    t += " lrs";
    for (double lr : lrs) {
      std::snprintf(number, sizeof number, " %.17g", lr);
      t += number;
    }
    t += " mismatched";
    for (const auto& [policy, lr] : mismatched_lrs) {
      std::snprintf(number, sizeof number, "=%.17g", lr);
      t += " " + policy + number;
    }
    std::snprintf(number, sizeof number, " %.17g", clip_norm);
    t += " clip" + std::string(number);
    std::snprintf(number, sizeof number, " %.17g", fail_margin);
    t += " margin" + std::string(number);
    std::snprintf(number, sizeof number, " %.17g", stress_start_lr);
    t += " stress_lr" + std::string(number);
    std::snprintf(number, sizeof number, " %.17g", stress_factor);
    t += " stress_factor" + std::string(number);
    t += detail::concat(" init ", to_string(init), " batch ", batch_size, " seq ", seq_len,
                        " grad_batches ", grad_batches, " steps ", steps, " eval ", eval_every, "x",
                        eval_windows, " stress_steps ", stress_max_steps, " experiments ",
                        depth_sweep, lr_sweep, tuned, lr_stress, " device ", device);
    return t;
  }

  /// The longest warm-up of the sweep (the mismatched pair's).
  int64_t longest_warmup() const {
    return warmups.empty() ? 0 : *std::max_element(warmups.begin(), warmups.end());
  }

  /// Throws Error naming the first knob out of range.
  void validate() const {
    detail::check(!policies.empty() && !seeds.empty(),
                  "compare: needs at least one policy and one seed");
    detail::check(!depths.empty() && !lrs.empty() && !warmups.empty(),
                  "compare: needs at least one depth, one learning rate and one warm-up length");
    for (int64_t d : depths) detail::check(d >= 1, "compare: every depth must be >= 1, got ", d);
    for (double lr : lrs)
      detail::check(std::isfinite(lr) && lr > 0, "compare: every learning rate must be > 0, got ",
                    lr);
    for (int64_t w : warmups)
      detail::check(w >= 0 && w < steps, "compare: every warm-up must be in [0, steps = ", steps,
                    "), got ", w);
    detail::check(steps >= 1 && batch_size >= 1 && seq_len >= 1 && grad_batches >= 1 &&
                      eval_every >= 0 && eval_windows >= 0 && stress_max_steps >= 1,
                  "compare: steps, batch size, sequence length, gradient batches and stress steps "
                  "must be >= 1");
    detail::check(depth_sweep || lr_sweep || lr_stress,
                  "compare: no experiment selected (depth, sweep, tuned, stress)");
    detail::check(!tuned || lr_sweep,
                  "compare: the tuned comparison needs the LR sweep (its best settings)");
    for (const auto& [policy, lr] : mismatched_lrs)
      detail::check(std::isfinite(lr) && lr > 0, "compare: the mismatched LR of ", policy,
                    " must be > 0, got ", lr);
  }
};

/// A training curve.
struct Curve {
  std::vector<int64_t> step;
  std::vector<double> train_loss, lr;
  std::vector<int64_t> val_step;
  std::vector<double> val_loss;
  double final_val_loss() const {
    return val_loss.empty() ? std::numeric_limits<double>::quiet_NaN() : val_loss.back();
  }
};

/// Per-layer gradient norms by parameter group: group -> one value per layer.
using GradientProfile = std::map<std::string, std::vector<double>>;

/// The gradient-norm profile after `step` updates of a run.
struct TrainedGradientProfile {
  int64_t step = 0;
  std::string moment;     ///< "end of warm-up" or "end of training"
  GradientProfile norms;  ///< mean over batches (and seeds where said)
};

/// How a training run ended.
enum class RunOutcome {
  trained,   ///< final validation loss below the unigram loss by the margin
  failed,    ///< finite, but no better than byte frequencies
  diverged,  ///< a non-finite loss (the run stopped there)
};

inline const char* to_string(RunOutcome o) {
  switch (o) {
    case RunOutcome::trained:
      return "trained";
    case RunOutcome::failed:
      return "failed";
    case RunOutcome::diverged:
      return "diverged";
  }
  return "?";
}

/// The outcome of a run with `curve`, judged against the unigram loss of the
/// training split: diverged when any training loss or the final validation
/// loss is not finite (or there is none); failed when the final validation
/// loss is above unigram_loss - margin; trained otherwise.
inline RunOutcome classify_run(const Curve& curve, double unigram_loss, double margin) {
  for (double l : curve.train_loss)
    if (!std::isfinite(l)) return RunOutcome::diverged;
  const double v = curve.final_val_loss();
  if (!std::isfinite(v)) return RunOutcome::diverged;
  return v > unigram_loss - margin ? RunOutcome::failed : RunOutcome::trained;
}

/// One training run of experiments 2 and 3.
struct TrainingRun {
  std::string policy;
  double lr = 0;
  int64_t warmup = 0;
  uint64_t seed = 0;
  Curve curve;
  RunOutcome outcome = RunOutcome::diverged;
  /// At the end of warm-up (when there is one) and at the end of training;
  /// a diverged run has only those it reached.
  std::vector<TrainedGradientProfile> profiles;
  double final_val_loss() const { return curve.final_val_loss(); }
};

/// Experiment 1 for one policy.
struct DepthSweepResult {
  std::string policy;
  /// [depth][sample]: fc2's gradient norm in the last / first layer, one
  /// sample per (seed, batch).
  std::vector<std::vector<double>> last, first;
  std::vector<GradientProfile> profiles;  ///< [depth]: mean over seeds and batches
  LineFit last_fit, first_fit;            ///< ln(norm) against ln(L), over every sample
};

/// Experiment 3 for one policy: a setting run on every seed.
struct TunedEntry {
  std::string policy;
  double lr = 0;
  int64_t warmup = 0;
  std::vector<size_t> runs;  ///< indices into CompareResults::runs, one per seed
};

/// Experiment 4 for one policy.
struct StressResult {
  std::string policy;
  std::vector<Curve> curves;      ///< one per seed; train_loss and lr per step
  std::vector<int64_t> survived;  ///< steps survived, per seed
  /// Per seed: reached stress_max_steps without exploding, so `survived` is
  /// a lower bound, not the step of an explosion.
  std::vector<bool> censored;
};

/// A policy as the runs built it.
struct PolicyInfo {
  std::string policy;      ///< as given
  ModelConfig config;      ///< at the model's depth, its policy set
  int64_t parameters = 0;  ///< at the model's depth
};

/// Everything a compare run measured.
struct CompareResults {
  double unigram_loss = 0;  ///< nats per byte of the training split's byte frequencies
  std::vector<PolicyInfo> policies;
  std::vector<DepthSweepResult> depth;  ///< one per policy, in order
  std::vector<TrainingRun> runs;        ///< every training run, in the order run
  std::vector<size_t> sweep;            ///< the sweep's runs (first seed)
  std::vector<TunedEntry> tuned;        ///< one per policy that trained at some setting
  std::vector<TunedEntry> mismatched;   ///< one per policy of mismatched_lrs that ran
  std::vector<StressResult> stress;     ///< one per policy
  double elapsed_s = 0;
  int ranks = 1;  ///< the processes the runs were spread over

  template <class Entry>
  static const Entry* find_entry(const std::vector<Entry>& v, const std::string& policy) {
    for (const Entry& e : v)
      if (e.policy == policy) return &e;
    return nullptr;
  }
  /// Final validation losses of an entry's runs, one per seed.
  std::vector<double> final_losses(const TunedEntry& e) const {
    std::vector<double> v;
    for (size_t i : e.runs) v.push_back(runs.at(i).final_val_loss());
    return v;
  }
};

// ---- what a run measured, as bytes (WireWriter / WireReader) ----------------------

inline void write_wire(WireWriter& w, const Curve& c) {
  w.i64s(c.step);
  w.f64s(c.train_loss);
  w.f64s(c.lr);
  w.i64s(c.val_step);
  w.f64s(c.val_loss);
}
inline Curve read_curve(WireReader& r) {
  Curve c;
  c.step = r.i64s();
  c.train_loss = r.f64s();
  c.lr = r.f64s();
  c.val_step = r.i64s();
  c.val_loss = r.f64s();
  return c;
}
inline void write_wire(WireWriter& w, const GradientProfile& p) {
  w.u64(p.size());
  for (const auto& [group, norms] : p) {
    w.str(group);
    w.f64s(norms);
  }
}
inline GradientProfile read_gradient_profile(WireReader& r) {
  GradientProfile p;
  const uint64_t n = r.u64();
  for (uint64_t i = 0; i < n; ++i) {
    std::string group = r.str();  // before the norms: the order they were written in
    p[std::move(group)] = r.f64s();
  }
  return p;
}
inline void write_wire(WireWriter& w, const TrainingRun& t) {
  w.str(t.policy);
  w.f64(t.lr);
  w.i64(t.warmup);
  w.u64(t.seed);
  write_wire(w, t.curve);
  w.i64(static_cast<int64_t>(t.outcome));
  w.u64(t.profiles.size());
  for (const TrainedGradientProfile& p : t.profiles) {
    w.i64(p.step);
    w.str(p.moment);
    write_wire(w, p.norms);
  }
}
inline TrainingRun read_training_run(WireReader& r) {
  TrainingRun t;
  t.policy = r.str();
  t.lr = r.f64();
  t.warmup = r.i64();
  t.seed = r.u64();
  t.curve = read_curve(r);
  const int64_t outcome = r.i64();
  detail::check(outcome >= 0 && outcome <= static_cast<int64_t>(RunOutcome::diverged),
                "compare: a run's outcome must be 0-2, found ", outcome);
  t.outcome = static_cast<RunOutcome>(outcome);
  const uint64_t n = r.u64();
  for (uint64_t i = 0; i < n; ++i) {
    TrainedGradientProfile p;
    p.step = r.i64();
    p.moment = r.str();
    p.norms = read_gradient_profile(r);
    t.profiles.push_back(std::move(p));
  }
  return t;
}

/// The ranks that run each of a round's independent pieces of work, from
/// their planned costs: longest first, each to the rank with the least work
/// so far (the lowest such rank on a tie). The same on every rank (it depends
/// on the costs only), so no rank needs to be told. Requires ranks >= 1.
inline std::vector<int> spread_over_ranks(const std::vector<double>& costs, int ranks) {
  detail::check(ranks >= 1, "spread_over_ranks: needs at least one rank, got ", ranks);
  std::vector<size_t> order(costs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return costs[a] > costs[b]; });
  std::vector<double> load(static_cast<size_t>(ranks), 0.0);
  std::vector<int> owner(costs.size(), 0);
  for (size_t i : order) {
    const auto least = std::min_element(load.begin(), load.end()) - load.begin();
    owner[i] = static_cast<int>(least);
    load[static_cast<size_t>(least)] += costs[i];
  }
  return owner;
}

/// Called with one progress line while a run goes on.
using ProgressFn = std::function<void(const std::string& line)>;

/// The entropy, in nats, of the byte frequencies of `corpus` over `split`:
/// the loss of a model that learnt nothing but how often each byte occurs.
inline double unigram_loss(const TextCorpus& corpus, const Split& split) {
  std::vector<int64_t> counts(256, 0);
  int64_t n = 0;
  for (const Segment& s : split.segments())
    for (int64_t i = s.begin; i < s.end; ++i) {
      const int64_t t = corpus[i];
      if (t >= 0 && t < 256) ++counts[static_cast<size_t>(t)];
      ++n;
    }
  double h = 0;
  for (int64_t c : counts)
    if (c > 0) {
      const double p = static_cast<double>(c) / static_cast<double>(n);
      h -= p * std::log(p);
    }
  return h;
}

namespace detail {

inline double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? std::numeric_limits<double>::quiet_NaN() : s / static_cast<double>(v.size());
}

/// Progress of the whole run in work units (one unit: one layer of one
/// training step's forward and backward at the run's width), with an ETA
/// from the rate so far. The total is planned up front and corrected when a
/// run ends early (an explosion, a divergence).
class CompareProgress {
 public:
  CompareProgress(ProgressFn fn, double total)
      : fn_(std::move(fn)), total_(total), start_(std::chrono::steady_clock::now()) {}

  /// `units` of work done; reports `what` with the percentage and ETA when
  /// `report` is set.
  void done(double units, const std::string& what, bool report) {
    done_ += units;
    if (report) say(what);
  }
  /// Reports `what` as the end of the run: 100%, whatever the plan said.
  void finish(const std::string& what) {
    total_ = done_;
    say(what);
  }
  /// Planned work that will not be done after all.
  void drop(double units) { total_ = std::max(done_, total_ - units); }
  void say(const std::string& what) const {
    if (!fn_) return;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double fraction = total_ > 0 ? std::min(1.0, done_ / total_) : 1.0;
    std::string eta = "ETA --";
    if (done_ > 0 && elapsed > 1)
      eta = "ETA " + duration_text(elapsed / done_ * std::max(0.0, total_ - done_));
    char head[32];
    std::snprintf(head, sizeof head, "[%3.0f%%] ", 100 * fraction);
    fn_(head + what + " | " + duration_text(elapsed) + " elapsed, " + eta);
  }
  double elapsed_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  ProgressFn fn_;
  double total_ = 0, done_ = 0;
  std::chrono::steady_clock::time_point start_;
};

/// Adds to `sums` (group -> per layer) the gradient norms of o.grad_batches
/// training batches drawn with `seed` (the same batches at every moment and
/// for every policy). When `last`/`first` are set, appends fc2's norm in the
/// last / first layer of each batch. Leaves no gradient and the dropout
/// generator as it found them, so a training run around it is not changed.
template <class Model>
void add_gradient_profile(Model& model, const TextCorpus& corpus, const TrainValSplit& split,
                          const CompareOptions& o, uint64_t seed, GradientProfile& sums,
                          std::vector<double>* last = nullptr,
                          std::vector<double>* first = nullptr) {
  Generator& dropout = model.dropout_generator();
  const uint64_t dropout_seed = dropout.seed(), dropout_offset = dropout.offset();
  WindowSampler sampler(corpus, split.train, o.batch_size, o.seq_len, seed);
  for (int64_t b = 0; b < o.grad_batches; ++b) {
    using Backend = typename Model::Var::backend_type;
    const Batch<Backend> batch = sampler.template next<Backend>();  // tokens, targets (B, T)
    model.zero_grad();
    model.loss(batch.tokens, batch.targets).backward();
    const LayerGradientNorms g = layer_gradient_norms(model);
    for (size_t k = 0; k < g.groups.size(); ++k) {
      auto& acc = sums[g.groups[k]];
      acc.resize(g.norms.size(), 0.0);
      for (size_t l = 0; l < g.norms.size(); ++l) acc[l] += g.norms[l][k];
    }
    if (last) last->push_back(g.at(static_cast<int64_t>(g.norms.size()) - 1, "fc2"));
    if (first) first->push_back(g.at(0, "fc2"));
  }
  model.zero_grad();
  dropout.set_state(dropout_seed, dropout_offset);
}

inline GradientProfile mean_profile(GradientProfile sums, int64_t count) {
  for (auto& [group, acc] : sums)
    for (double& v : acc) v /= static_cast<double>(count);
  return sums;
}

/// The steps of a run after which the gradient profile is measured, with
/// their names: the end of warm-up (when there is one) and the end.
inline std::vector<std::pair<int64_t, std::string>> profile_moments(int64_t warmup, int64_t steps) {
  std::vector<std::pair<int64_t, std::string>> m;
  if (warmup > 0 && warmup < steps) m.emplace_back(warmup, "end of warm-up");
  if (steps > 0) m.emplace_back(steps, "end of training");
  return m;
}

/// The optimizer of every compare run at learning rate `lr`: AdamW with the
/// NormFormer release's betas (0.9, 0.98), eps 1e-8 and weight decay 0.01.
inline AdamWOptions compare_adamw(double lr) {
  return AdamWOptions{lr, 0.9, 0.98, 1e-8, 0.01};
}

/// Thrown from a step callback to end a run whose loss is not finite.
struct StopRun {};

/// Trains `model` with `schedule` for o.steps and returns its curve; stops
/// early at a non-finite training loss. `after_step`, when set, is called with
/// the step count after each update (before any evaluation); `on_step` with
/// each step's metrics.
template <class Model>
Curve train_curve(Model& model, const TextCorpus& corpus, const TrainValSplit& split,
                  const CompareOptions& o, double peak_lr, const Schedule& schedule, uint64_t seed,
                  const std::function<void(int64_t)>& after_step = {},
                  const std::function<void(const StepMetrics&)>& on_step = {}) {
  using Scalar = typename Model::Var::value_type;
  using Backend = typename Model::Var::backend_type;
  AdamW<Scalar, Backend> opt(model, compare_adamw(peak_lr));
  TrainerOptions t;
  t.steps = o.steps;
  t.batch_size = o.batch_size;
  t.seq_len = o.seq_len;
  t.eval_every = o.eval_every;
  t.eval_windows = o.eval_windows;
  t.clip_norm = o.clip_norm;
  t.data_seed = seed;
  Trainer trainer(model, opt, schedule, corpus, split, t);
  Curve c;
  try {
    trainer.run(
        [&](const StepMetrics& m) {
          c.step.push_back(m.step);
          c.train_loss.push_back(m.loss);
          c.lr.push_back(m.lr);
          if (on_step) on_step(m);
          if (!std::isfinite(m.loss)) throw StopRun{};
          if (after_step) after_step(m.step);
        },
        [&](const EvalMetrics& e) {
          c.val_step.push_back(e.step);
          c.val_loss.push_back(e.loss);
        });
  } catch (const StopRun&) {
  }
  return c;
}

/// The depth of `cfg` set to `layers`.
inline ModelConfig at_depth(ModelConfig cfg, int64_t layers) {
  cfg.n_layers = layers;
  return cfg;
}

/// Runs the four experiments; one instance per run_compare call.
template <class Backend>
class CompareSession {
 public:
  using Model = GPT<RuntimePolicy, float, Backend>;

  /// `comm` (null: one process) spreads the runs over its ranks.
  CompareSession(const CompareOptions& o, const TextCorpus& corpus, const TrainValSplit& split,
                 const ProgressFn& fn, dist::Communicator* comm)
      : o_(o),
        corpus_(corpus),
        split_(split),
        comm_(comm != nullptr && comm->size() > 1 ? comm : nullptr),
        ranks_(comm_ ? comm_->size() : 1),
        progress_(fn, planned_units() / ranks_) {}

  CompareResults run() {
    if (comm_)
      comm_->check_same("compare's options and corpus",
                        detail::concat(o_.knobs_text(), " corpus ", corpus_.size(), " bytes ",
                                       corpus_.fingerprint()));
    r_.unigram_loss = unigram_loss(corpus_, split_.train);
    r_.ranks = ranks_;
    for (const std::string& spec : o_.policies) {
      const ModelConfig cfg = config_of(spec);
      Model model(cfg, o_.seeds.front(), o_.init);
      r_.policies.push_back({spec, cfg, model.parameter_count()});
    }
    first_round();
    if (o_.tuned) tuned_round();
    r_.elapsed_s = progress_.elapsed_s();
    progress_.finish("done");
    return std::move(r_);
  }

 private:
  /// A piece of work of a round: its planned cost in progress units and what
  /// it measures, as bytes.
  struct Work {
    double cost;
    std::function<std::string()> run;
  };

  /// What a depth sweep measured at one depth (all seeds).
  struct DepthPoint {
    GradientProfile profile;          ///< mean over seeds and batches
    std::vector<double> last, first;  ///< fc2's norm per (seed, batch)
  };

  /// What one seed of the LR stress test measured.
  struct StressSeed {
    Curve curve;
    int64_t survived = 0;
    bool censored = false;
  };

  /// Round (a): the depth sweep's points, the LR sweep's runs and the LR
  /// stress's seeds, which need nothing measured before them.
  void first_round() {
    std::vector<Work> work;
    const double run_cost = static_cast<double>(o_.steps * o_.model.n_layers);
    if (o_.depth_sweep)
      for (const std::string& spec : o_.policies)
        for (int64_t layers : o_.depths)
          work.push_back(
              {static_cast<double>(layers * o_.grad_batches) * static_cast<double>(o_.seeds.size()),
               [this, spec, layers] { return depth_point(spec, layers); }});
    if (o_.lr_sweep)
      for (const std::string& spec : o_.policies)
        for (int64_t warmup : o_.warmups)
          for (double lr : o_.lrs)
            work.push_back({run_cost, [this, spec, lr, warmup] {
                              WireWriter w;
                              write_wire(
                                  w, train(spec, lr, warmup, o_.seeds.front(), "2/4 LR sweep: "));
                              return w.take();
                            }});
    if (o_.lr_stress)
      for (const std::string& spec : o_.policies)
        for (uint64_t seed : o_.seeds)
          work.push_back({static_cast<double>(o_.stress_max_steps * o_.model.n_layers),
                          [this, spec, seed] { return stress_seed(spec, seed); }});

    const std::vector<std::string> measured = run_spread(work);
    size_t next = 0;
    auto reader = [&] { return WireReader(measured.at(next++), "compare: a run's results"); };
    if (o_.depth_sweep)
      for (const std::string& spec : o_.policies) {
        DepthSweepResult d;
        d.policy = spec;
        std::vector<double> x_last, y_last, x_first, y_first;
        for (int64_t layers : o_.depths) {
          WireReader r = reader();
          GradientProfile profile = read_gradient_profile(r);
          std::vector<double> last = r.f64s(), first = r.f64s();
          r.expect_end();
          const double x = std::log(static_cast<double>(layers));
          for (double v : last) {
            x_last.push_back(x);
            y_last.push_back(std::log(v));
          }
          for (double v : first) {
            x_first.push_back(x);
            y_first.push_back(std::log(v));
          }
          d.profiles.push_back(std::move(profile));
          d.last.push_back(std::move(last));
          d.first.push_back(std::move(first));
        }
        d.last_fit = fit_line(x_last, y_last);
        d.first_fit = fit_line(x_first, y_first);
        r_.depth.push_back(std::move(d));
      }
    if (o_.lr_sweep)
      for (size_t k = 0; k < sweep_size(); ++k) {
        WireReader r = reader();
        r_.runs.push_back(read_training_run(r));
        r.expect_end();
        r_.sweep.push_back(r_.runs.size() - 1);
      }
    if (o_.lr_stress)
      for (const std::string& spec : o_.policies) {
        StressResult st;
        st.policy = spec;
        for (size_t k = 0; k < o_.seeds.size(); ++k) {
          WireReader r = reader();
          st.curves.push_back(read_curve(r));
          st.survived.push_back(r.i64());
          st.censored.push_back(r.boolean());
          r.expect_end();
        }
        r_.stress.push_back(std::move(st));
      }
  }

  /// Round (b): each policy at its best sweep setting on every seed, and the
  /// mismatched pair; a run the sweep already trained (or another entry
  /// needs) is trained once, new runs join r_.runs in the order listed.
  void tuned_round() {
    const double run_cost = static_cast<double>(o_.steps * o_.model.n_layers);
    const double seeds_run = static_cast<double>(o_.seeds.size()) * run_cost;
    std::vector<TrainingRun> planned;  // the new runs' settings, in r_.runs order
    std::vector<Work> work;
    auto entry = [&](const std::string& spec, std::pair<double, int64_t> setting) {
      TunedEntry e{spec, setting.first, setting.second, {}};
      for (uint64_t seed : o_.seeds) {
        size_t index = 0;
        if (find_run(spec, e.lr, e.warmup, seed, planned, index)) {
          progress_.drop(run_cost / ranks_);
        } else {
          TrainingRun t;
          t.policy = spec;
          t.lr = e.lr;
          t.warmup = e.warmup;
          t.seed = seed;
          planned.push_back(t);
          index = r_.runs.size() + planned.size() - 1;
          work.push_back({run_cost, [this, t] {
                            WireWriter w;
                            write_wire(w, train(t.policy, t.lr, t.warmup, t.seed, "3/4 tuned: "));
                            return w.take();
                          }});
        }
        e.runs.push_back(index);
      }
      return e;
    };
    for (const std::string& spec : o_.policies)
      if (const auto best = best_setting(spec))
        r_.tuned.push_back(entry(spec, *best));
      else
        progress_.drop(seeds_run / ranks_);  // no setting trained: nothing to tune
    for (const auto& [spec, lr] : o_.mismatched_lrs)
      if (std::find(o_.policies.begin(), o_.policies.end(), spec) != o_.policies.end())
        r_.mismatched.push_back(entry(spec, {lr, o_.longest_warmup()}));
      else
        progress_.drop(seeds_run / ranks_);
    for (const std::string& bytes : run_spread(work)) {
      WireReader r(bytes, "compare: a tuned run's results");
      r_.runs.push_back(read_training_run(r));
      r.expect_end();
    }
  }

  /// Whether the run of `spec` at (lr, warmup, seed) is in r_.runs or in
  /// `planned` (whose runs follow r_.runs'); sets `index` when it is.
  bool find_run(const std::string& spec, double lr, int64_t warmup, uint64_t seed,
                const std::vector<TrainingRun>& planned, size_t& index) const {
    auto same = [&](const TrainingRun& t) {
      return t.policy == spec && t.lr == lr && t.warmup == warmup && t.seed == seed;
    };
    for (size_t i = 0; i < r_.runs.size(); ++i)
      if (same(r_.runs[i])) return index = i, true;
    for (size_t i = 0; i < planned.size(); ++i)
      if (same(planned[i])) return index = r_.runs.size() + i, true;
    return false;
  }

  /// Runs this rank's share of `work` (spread_over_ranks) and returns what
  /// every piece measured, in the order of `work`, on every rank. The wait
  /// for the other ranks may last as long as their share of the round: it
  /// has no timeout (a rank that dies ends the job through the launcher).
  std::vector<std::string> run_spread(const std::vector<Work>& work) {
    std::vector<double> costs;
    for (const Work& w : work) costs.push_back(w.cost);
    const std::vector<int> owner = spread_over_ranks(costs, ranks_);
    const int me = comm_ ? comm_->rank() : 0;
    std::vector<std::string> measured(work.size());
    WireWriter mine;  // (index, bytes) of each piece this rank ran
    for (size_t i = 0; i < work.size(); ++i)
      if (owner[i] == me) {
        measured[i] = work[i].run();
        mine.u64(i);
        mine.str(measured[i]);
      }
    if (!comm_) return measured;
    progress_.say("waiting for the other ranks' runs");
    const std::chrono::milliseconds timeout = comm_->timeout();
    comm_->set_timeout(std::chrono::hours(24 * 365));
    const std::vector<std::string> all = comm_->all_gather_strings(mine.take());
    comm_->set_timeout(timeout);
    for (int rank = 0; rank < ranks_; ++rank) {
      if (rank == me) continue;
      WireReader r(all[static_cast<size_t>(rank)],
                   "compare: the runs of rank " + std::to_string(rank));
      while (!r.at_end()) {
        const uint64_t i = r.u64();
        detail::check(i < work.size() && owner[i] == rank, "compare: rank ", rank,
                      " sent the results of piece ", i, " of ", work.size(),
                      ", which is not one of its own");
        measured[i] = r.str();
      }
    }
    for (size_t i = 0; i < work.size(); ++i)
      detail::check(owner[i] == me || !measured[i].empty(), "compare: rank ", owner[i],
                    " sent no results for piece ", i, " of ", work.size());
    return measured;
  }

  ModelConfig config_of(const std::string& spec) const {
    ModelConfig cfg = o_.model;
    cfg.set_policy_spec(spec);
    cfg.final_norm.reset();
    cfg.max_seq_len = std::max(cfg.max_seq_len, o_.seq_len);
    return cfg;
  }

  /// The work of the whole run, planned before it starts: the tuned
  /// comparison's extra seeds and the mismatched pair counted as if none of
  /// their runs were shared with the sweep, the LR stress as if no run
  /// exploded; both are corrected as runs finish. Over N ranks each plans
  /// for a share of 1/N.
  double planned_units() const {
    const double p = static_cast<double>(o_.policies.size());
    const double seeds = static_cast<double>(o_.seeds.size());
    const double layers = static_cast<double>(o_.model.n_layers);
    double depth = 0;
    for (int64_t d : o_.depths) depth += static_cast<double>(d);
    const double run = static_cast<double>(o_.steps) * layers;
    const double sweep = static_cast<double>(o_.lrs.size() * o_.warmups.size()) * run;
    const double mismatched = static_cast<double>(o_.mismatched_lrs.size()) * seeds * run;
    double total = 0;
    if (o_.depth_sweep) total += p * depth * seeds * static_cast<double>(o_.grad_batches);
    if (o_.lr_sweep) total += p * sweep;
    if (o_.tuned) total += p * seeds * run + mismatched;
    if (o_.lr_stress) total += p * seeds * static_cast<double>(o_.stress_max_steps) * layers;
    return total;
  }

  /// Experiment 1 at one depth: a DepthPoint as bytes.
  std::string depth_point(const std::string& spec, int64_t layers) {
    const ModelConfig cfg = at_depth(config_of(spec), layers);
    GradientProfile sums;
    std::vector<double> last, first;
    for (uint64_t seed : o_.seeds) {
      Model model(cfg, seed, o_.init);
      add_gradient_profile(model, corpus_, split_, o_, seed, sums, &last, &first);
    }
    progress_.done(
        static_cast<double>(layers * o_.grad_batches) * static_cast<double>(o_.seeds.size()),
        "1/4 depth sweep: " + spec + " at " + std::to_string(layers) + " layers", true);
    WireWriter w;
    write_wire(
        w, mean_profile(std::move(sums), o_.grad_batches * static_cast<int64_t>(o_.seeds.size())));
    w.f64s(last);
    w.f64s(first);
    return w.take();
  }

  TrainingRun train(const std::string& spec, double lr, int64_t warmup, uint64_t seed,
                    const std::string& stage) {
    TrainingRun t;
    t.policy = spec;
    t.lr = lr;
    t.warmup = warmup;
    t.seed = seed;
    Model model(config_of(spec), seed, o_.init);
    const auto moments = profile_moments(warmup, o_.steps);
    char label[160];
    std::snprintf(label, sizeof label, "%s lr %g warm-up %lld seed %llu", spec.c_str(), lr,
                  static_cast<long long>(warmup), static_cast<unsigned long long>(seed));
    const double per_step = static_cast<double>(o_.model.n_layers);
    t.curve = train_curve(
        model, corpus_, split_, o_, lr, Schedule::linear(lr, warmup, o_.steps), seed,
        [&](int64_t step) {
          for (const auto& [at, moment] : moments)
            if (at == step) {
              GradientProfile sums;
              add_gradient_profile(model, corpus_, split_, o_, seed, sums);
              t.profiles.push_back({step, moment, mean_profile(std::move(sums), o_.grad_batches)});
            }
        },
        [&](const StepMetrics& m) {
          char line[96];
          std::snprintf(line, sizeof line, " step %lld/%lld loss %.3f",
                        static_cast<long long>(m.step), static_cast<long long>(o_.steps), m.loss);
          progress_.done(per_step, stage + label + line, m.step % 20 == 0 || m.step == o_.steps);
        });
    const auto done = static_cast<int64_t>(t.curve.step.size());
    progress_.drop(static_cast<double>(o_.steps - done) * per_step);
    t.outcome = classify_run(t.curve, r_.unigram_loss, o_.fail_margin);
    return t;
  }

  size_t sweep_size() const { return o_.policies.size() * o_.lrs.size() * o_.warmups.size(); }

  /// The (lr, warmup) of `spec`'s sweep run with the lowest final validation
  /// loss among those that trained; none when no run trained.
  std::optional<std::pair<double, int64_t>> best_setting(const std::string& spec) const {
    std::optional<std::pair<double, int64_t>> best;
    double best_loss = std::numeric_limits<double>::infinity();
    for (size_t i : r_.sweep) {
      const TrainingRun& t = r_.runs[i];
      if (t.policy != spec || t.outcome != RunOutcome::trained) continue;
      if (t.final_val_loss() < best_loss) {
        best_loss = t.final_val_loss();
        best = std::pair{t.lr, t.warmup};
      }
    }
    return best;
  }

  /// Experiment 4 for one seed: a StressSeed as bytes.
  std::string stress_seed(const std::string& spec, uint64_t seed) {
    const double per_step = static_cast<double>(o_.model.n_layers);
    Model model(config_of(spec), seed, o_.init);
    AdamW<float, Backend> opt(model, compare_adamw(o_.stress_start_lr));
    TrainerOptions t;
    t.steps = o_.stress_max_steps;
    t.batch_size = o_.batch_size;
    t.seq_len = o_.seq_len;
    t.eval_every = 0;
    t.clip_norm = 0;  // off, so that the LR alone decides
    t.data_seed = seed;
    Trainer trainer(model, opt, Schedule::exponential(o_.stress_start_lr, o_.stress_factor),
                    corpus_, split_, t);
    StressSeed s;
    bool exploded = false;
    double first = 0;
    const std::string label = "4/4 LR stress: " + spec + " seed " + std::to_string(seed);
    for (int64_t k = 0; k < o_.stress_max_steps; ++k) {
      const StepMetrics m = trainer.step();
      if (k == 0) first = m.loss;
      s.curve.step.push_back(m.step);
      s.curve.train_loss.push_back(m.loss);
      s.curve.lr.push_back(m.lr);
      progress_.done(per_step, label + " step " + std::to_string(m.step), m.step % 20 == 0);
      if (!std::isfinite(m.loss) || m.loss > 3 * first) {
        exploded = true;
        break;
      }
      s.survived = m.step;
    }
    progress_.drop(
        static_cast<double>(o_.stress_max_steps - static_cast<int64_t>(s.curve.step.size())) *
        per_step);
    progress_.say(label + ": survived " + (exploded ? "" : ">= ") + std::to_string(s.survived) +
                  " steps");
    s.censored = !exploded;
    WireWriter w;
    write_wire(w, s.curve);
    w.i64(s.survived);
    w.boolean(s.censored);
    return w.take();
  }

  const CompareOptions& o_;
  const TextCorpus& corpus_;
  const TrainValSplit& split_;
  dist::Communicator* comm_;  // null: one process
  int ranks_;
  CompareProgress progress_;
  CompareResults r_;
};

}  // namespace detail

/// Runs experiments 1-4 for every policy of `o` on `corpus` (split by
/// `split`), in float, on backend Backend. `progress` receives a line now and
/// then (the stage, the run, the percentage done and an ETA).
/// Every policy is built as GPT<RuntimePolicy, float, Backend> from its spec,
/// so any composition of known or registered extras can be compared.
/// Throws Error naming a policy spec that cannot be parsed or a knob out of
/// range (CompareOptions::validate), before anything is trained.
///
/// With `comm` (every rank calling run_compare with the same options and
/// corpus, checked: Error on every rank naming those that differ), the runs
/// are spread over its ranks (see the header) and every rank returns the
/// whole results, the same as one process would, bit for bit (elapsed_s and
/// ranks aside).
///
/// A template (Backend defaults to Cpu) so that a translation unit
/// instantiates the model only when it calls run_compare.
template <class Backend = Cpu>
CompareResults run_compare(const CompareOptions& o, const TextCorpus& corpus,
                           const TrainValSplit& split, const ProgressFn& progress = {},
                           dist::Communicator* comm = nullptr) {
  o.validate();
  for (const std::string& spec : o.policies) {  // every spec parses before any training
    ModelConfig cfg = o.model;
    cfg.set_policy_spec(spec);
    cfg.validate();
  }
  return detail::CompareSession<Backend>(o, corpus, split, progress, comm).run();
}

}  // namespace v0
}  // namespace normlab
