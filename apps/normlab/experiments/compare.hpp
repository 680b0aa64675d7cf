// apps/normlab/experiments/compare.hpp — the experiments of `normlab compare`: the same
// model, data and budget under several normalization policies.
//
//   (a) gradient norm of each layer's parameter groups at initialization,
//       averaged over a few batches (Xiong et al. 2020, Fig. 3), and the same
//       profile measured again during (b): at the end of warm-up and at the
//       end of training (the NormFormer paper plots fc2 early in training);
//   (b) training with linear warm-up and linear decay: train and validation
//       loss curves;
//   (c) the same peak learning rate without warm-up (Xiong et al. 2020, §3.2);
//   (d) the LR-stress test: the learning rate multiplied by a factor every
//       step until the loss explodes (NaN, or above 3x its first value); the
//       steps each policy survives (Shleifer, Weston & Ott 2021). A run that
//       reaches the step cap without exploding is censored: it survived at
//       least that many steps, and the findings treat it as a lower bound.
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

#include "normlab/diag/diagnostics.hpp"
#include "normlab/io/json.hpp"
#include "normlab/models/checkpoint.hpp"
#include "normlab/models/gpt.hpp"
#include "normlab/optim/adam.hpp"
#include "normlab/policy/registry.hpp"
#include "normlab/train/trainer.hpp"

namespace normlab {
inline namespace v0 {

/// The knobs of a compare run. Every policy gets the same model sizes, seeds,
/// data and budget.
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
  std::vector<uint64_t> seeds = {1};
  int64_t batch_size = 8;
  int64_t seq_len = 64;
  int64_t steps = 300;    ///< (b) and (c)
  int64_t warmup = 50;    ///< (b)
  double peak_lr = 1e-3;  ///< (b) and (c)
  int64_t eval_every = 25;
  int64_t eval_windows = 32;
  int64_t grad_batches = 4;  ///< (a)
  double stress_start_lr = 1e-4;
  double stress_factor = 1.1;  ///< 1e-4 * 1.1^100 = 1.4: every policy explodes in time
  int64_t stress_max_steps = 150;
  double clip_norm = 1.0;  ///< (b), (c); off in (d) so that the LR alone decides
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

/// The gradient-norm profile after `step` updates of experiment (b).
struct TrainedGradientProfile {
  int64_t step = 0;
  std::string moment;     ///< "end of warm-up" or "end of training"
  GradientProfile norms;  ///< mean over batches and seeds
};

/// One policy's results, over every seed.
struct PolicyResult {
  std::string policy;  ///< as given
  int64_t parameters = 0;
  GradientProfile grad_norms_at_init;                       ///< mean over batches and seeds
  std::vector<TrainedGradientProfile> grad_norms_training;  ///< in order of step
  std::vector<Curve> warmup, no_warmup;                     ///< one per seed
  std::vector<Curve> stress;      ///< one per seed; train_loss and lr per step
  std::vector<int64_t> survived;  ///< LR-stress steps survived, per seed
  /// Per seed: the LR-stress run reached stress_max_steps without exploding,
  /// so its `survived` is a lower bound, not the step of an explosion.
  std::vector<bool> censored;
};

/// Called with one progress line while a run goes on.
using ProgressFn = std::function<void(const std::string& line)>;

namespace detail {

inline double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? std::numeric_limits<double>::quiet_NaN() : s / static_cast<double>(v.size());
}

/// Adds to `sums` (group -> per layer) the gradient norms of o.grad_batches
/// training batches drawn with `seed` (the same batches at every moment), and
/// returns how many batches it added. Leaves no gradient and the dropout
/// generator as it found them, so a training run around it is not changed.
template <class Model>
int64_t add_gradient_profile(Model& model, const TextCorpus& corpus, const TrainValSplit& split,
                             const CompareOptions& o, uint64_t seed, GradientProfile& sums) {
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
  }
  model.zero_grad();
  dropout.set_state(dropout_seed, dropout_offset);
  return o.grad_batches;
}

inline GradientProfile mean_profile(GradientProfile sums, int64_t count) {
  for (auto& [group, acc] : sums)
    for (double& v : acc) v /= static_cast<double>(count);
  return sums;
}

/// The steps of experiment (b) after which the gradient profile is measured
/// again, with their names: the end of warm-up (when there is one) and the end.
inline std::vector<std::pair<int64_t, std::string>> profile_moments(const CompareOptions& o) {
  std::vector<std::pair<int64_t, std::string>> m;
  if (o.warmup > 0 && o.warmup < o.steps) m.emplace_back(o.warmup, "end of warm-up");
  if (o.steps > 0) m.emplace_back(o.steps, "end of training");
  return m;
}

/// Trains `model` with `schedule` for o.steps; `after_step`, when set, is
/// called with the step count after each update (before any evaluation).
template <class Model>
Curve train_curve(Model& model, const TextCorpus& corpus, const TrainValSplit& split,
                  const CompareOptions& o, const Schedule& schedule, uint64_t seed,
                  const std::string& label, const ProgressFn& progress,
                  const std::function<void(int64_t)>& after_step = {}) {
  using Scalar = typename Model::Var::value_type;
  using Backend = typename Model::Var::backend_type;
  AdamW<Scalar, Backend> opt(model, AdamWOptions{o.peak_lr, 0.9, 0.98, 1e-8, 0.01});
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
  const auto start = std::chrono::steady_clock::now();
  trainer.run(
      [&](const StepMetrics& m) {
        c.step.push_back(m.step);
        c.train_loss.push_back(m.loss);
        c.lr.push_back(m.lr);
        if (after_step) after_step(m.step);
        if (progress && (m.step % 10 == 0 || m.step == o.steps)) {
          const double elapsed =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          const double eta =
              elapsed / static_cast<double>(m.step) * static_cast<double>(o.steps - m.step);
          char line[200];
          std::snprintf(line, sizeof line, "%s step %lld/%lld loss %.4f %.0f tok/s ETA %.0fs",
                        label.c_str(), static_cast<long long>(m.step),
                        static_cast<long long>(o.steps), m.loss, m.tokens_per_s, eta);
          progress(line);
        }
      },
      [&](const EvalMetrics& e) {
        c.val_step.push_back(e.step);
        c.val_loss.push_back(e.loss);
      });
  return c;
}

template <class P, FloatingElement Scalar, class Backend>
PolicyResult run_policy(const std::string& spec, const ModelConfig& cfg, const TextCorpus& corpus,
                        const TrainValSplit& split, const CompareOptions& o,
                        const ProgressFn& progress) {
  using Model = GPT<P, Scalar, Backend>;
  PolicyResult r;
  r.policy = spec;
  // (a) Gradient norms at initialization, averaged over batches and seeds.
  GradientProfile sums;
  int64_t count = 0;
  for (uint64_t seed : o.seeds) {
    Model model(cfg, seed, o.init);
    r.parameters = model.parameter_count();
    count += add_gradient_profile(model, corpus, split, o, seed, sums);
    if (progress) progress(spec + " gradient norms at init, seed " + std::to_string(seed));
  }
  r.grad_norms_at_init = mean_profile(std::move(sums), count);
  // ... and again during (b), at the same moments for every seed.
  const auto moments = profile_moments(o);
  std::vector<GradientProfile> trained_sums(moments.size());  // o.grad_batches per seed, as (a)
  for (uint64_t seed : o.seeds) {
    const std::string tag = spec + " (seed " + std::to_string(seed) + ")";
    {  // (b) with warm-up
      Model model(cfg, seed, o.init);
      r.warmup.push_back(
          train_curve(model, corpus, split, o, Schedule::linear(o.peak_lr, o.warmup, o.steps), seed,
                      tag + " warm-up", progress, [&](int64_t step) {
                        for (size_t i = 0; i < moments.size(); ++i)
                          if (moments[i].first == step)
                            add_gradient_profile(model, corpus, split, o, seed, trained_sums[i]);
                      }));
    }
    {  // (c) without warm-up
      Model model(cfg, seed, o.init);
      r.no_warmup.push_back(train_curve(model, corpus, split, o,
                                        Schedule::linear(o.peak_lr, 0, o.steps), seed,
                                        tag + " no warm-up", progress));
    }
    {  // (d) LR stress
      Model model(cfg, seed, o.init);
      AdamW<Scalar, Backend> opt(model, AdamWOptions{o.stress_start_lr, 0.9, 0.98, 1e-8, 0.01});
      TrainerOptions t;
      t.steps = o.stress_max_steps;
      t.batch_size = o.batch_size;
      t.seq_len = o.seq_len;
      t.eval_every = 0;
      t.clip_norm = 0;
      t.data_seed = seed;
      Trainer trainer(model, opt, Schedule::exponential(o.stress_start_lr, o.stress_factor), corpus,
                      split, t);
      Curve c;
      int64_t survived = 0;
      bool exploded = false;
      double first = 0;
      for (int64_t s = 0; s < o.stress_max_steps; ++s) {
        const StepMetrics m = trainer.step();
        if (s == 0) first = m.loss;
        c.step.push_back(m.step);
        c.train_loss.push_back(m.loss);
        c.lr.push_back(m.lr);
        if (!std::isfinite(m.loss) || m.loss > 3 * first) {
          exploded = true;
          break;
        }
        survived = m.step;
      }
      r.stress.push_back(std::move(c));
      r.survived.push_back(survived);
      r.censored.push_back(!exploded);
      if (progress)
        progress(tag + " LR stress: survived " + (exploded ? "" : ">= ") +
                 std::to_string(survived) + " steps");
    }
  }
  for (size_t i = 0; i < moments.size(); ++i)
    r.grad_norms_training.push_back(
        {moments[i].first, moments[i].second, mean_profile(std::move(trained_sums[i]), count)});
  return r;
}

}  // namespace detail

/// Runs experiments (a)-(d) for every policy of `o` on `corpus` (split by
/// `split`), in float, on backend Backend. `progress` receives a line now and then.
/// Every policy is built as GPT<RuntimePolicy, float, B> from its spec, so any
/// composition of known or registered extras can be compared.
/// Throws Error naming a policy spec that cannot be parsed.
///
/// A template (Backend defaults to Cpu) so that a translation unit instantiates
/// the model only when it calls run_compare.
template <class Backend = Cpu>
std::vector<PolicyResult> run_compare(const CompareOptions& o, const TextCorpus& corpus,
                                      const TrainValSplit& split, const ProgressFn& progress = {}) {
  detail::check(!o.policies.empty() && !o.seeds.empty(),
                "compare: needs at least one policy and one seed");
  std::vector<PolicyResult> results;
  for (const std::string& spec : o.policies) {
    ModelConfig cfg = o.model;
    cfg.set_policy_spec(spec);
    cfg.final_norm.reset();
    cfg.max_seq_len = std::max(cfg.max_seq_len, o.seq_len);
    results.push_back(
        detail::run_policy<RuntimePolicy, float, Backend>(spec, cfg, corpus, split, o, progress));
  }
  return results;
}

/// The ratio of the last layer's to the first layer's gradient norm of
/// `group` in `profile` (NaN when absent).
inline double last_to_first(const GradientProfile& profile, const std::string& group = "fc2") {
  const auto it = profile.find(group);
  if (it == profile.end() || it->second.empty()) return std::numeric_limits<double>::quiet_NaN();
  return it->second.back() / it->second.front();
}

/// last_to_first of the profile at initialization.
inline double last_to_first(const PolicyResult& r, const std::string& group = "fc2") {
  return last_to_first(r.grad_norms_at_init, group);
}

/// The profile measured first during training (the end of warm-up when (b)
/// has one): "early in training"; null when none was measured.
inline const TrainedGradientProfile* early_profile(const PolicyResult& r) {
  return r.grad_norms_training.empty() ? nullptr : &r.grad_norms_training.front();
}

/// Mean over seeds of the final validation loss of the given curves.
inline double mean_final_val_loss(const std::vector<Curve>& curves) {
  std::vector<double> v;
  for (const Curve& c : curves) v.push_back(c.final_val_loss());
  return detail::mean_of(v);
}

/// Mean over seeds of the LR-stress steps survived. With a censored seed the
/// mean is a lower bound (see survived_bounds).
inline double mean_survived(const PolicyResult& r) {
  std::vector<double> v(r.survived.begin(), r.survived.end());
  return detail::mean_of(v);
}

/// Whether any seed's LR-stress run reached the step cap without exploding.
inline bool any_censored(const PolicyResult& r) {
  return std::find(r.censored.begin(), r.censored.end(), true) != r.censored.end();
}

/// The interval the mean of the steps survived lies in: [mean, mean] when
/// every seed exploded, [mean, +inf) when some seed was censored (it would
/// have survived at least its recorded steps).
inline std::pair<double, double> survived_bounds(const PolicyResult& r) {
  const double m = mean_survived(r);
  return {m, any_censored(r) ? std::numeric_limits<double>::infinity() : m};
}

/// The table's text for the steps survived: "96.0", or ">= 150.0" when censored.
inline std::string survived_text(const PolicyResult& r) {
  const double m = mean_survived(r);
  if (!std::isfinite(m)) return "nan";
  char b[32];
  std::snprintf(b, sizeof b, "%s%.1f", any_censored(r) ? ">= " : "", m);
  return b;
}

/// A claim from DESIGN.md §1 and whether this run shows it (unset: the run
/// cannot tell, e.g. a policy it needs was not run or the margin is tiny).
struct Finding {
  std::string claim;
  std::optional<bool> shows;
  std::string detail;
};

/// The claims, judged on `results` with the rules written in each detail.
inline std::vector<Finding> compare_findings(const std::vector<PolicyResult>& results) {
  auto find = [&](const char* name) -> const PolicyResult* {
    for (const PolicyResult& r : results)
      if (r.policy == name) return &r;
    return nullptr;
  };
  auto num = [](double x) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4g", x);
    return std::string(b);
  };
  const PolicyResult *post = find("post_ln"), *pre = find("pre_ln"), *nf = find("normformer");
  std::vector<Finding> f;
  if (post && pre) {
    const double rp = last_to_first(*post), rq = last_to_first(*pre);
    f.push_back(
        {"At initialization Post-LN's FFN (fc2) weight-gradient norms grow toward the last "
         "layer while Pre-LN's stay about flat (Xiong et al. 2020, Fig. 3)",
         rp > 1.5 && std::abs(std::log(rq)) < std::abs(std::log(rp)),
         "fc2 gradient norm, last layer / first layer: post_ln " + num(rp) + ", pre_ln " + num(rq) +
             " (shown when post_ln's ratio > 1.5 and pre_ln's is closer to 1)"});
    const double pw = mean_final_val_loss(post->no_warmup),
                 qw = mean_final_val_loss(pre->no_warmup);
    f.push_back(
        {"Without warm-up Post-LN fails or lags at a learning rate where Pre-LN trains "
         "(Xiong et al. 2020, section 3.2)",
         !std::isfinite(pw) || pw > qw + 0.05,
         "final validation loss without warm-up: post_ln " + num(pw) + ", pre_ln " + num(qw) +
             " (shown when post_ln's is NaN or above pre_ln's by > 0.05)"});
    const double pv = mean_final_val_loss(post->warmup);
    f.push_back({"With warm-up Post-LN recovers",
                 std::isfinite(pv) && (!std::isfinite(pw) || pv < pw - 0.05),
                 "post_ln final validation loss with warm-up " + num(pv) + ", without " + num(pw) +
                     " (shown when warm-up lowers it by > 0.05)"});
  }
  if (nf && pre) {
    const TrainedGradientProfile *ep = early_profile(*pre), *en = early_profile(*nf);
    if (ep && en) {
      const double rq = last_to_first(ep->norms), rn = last_to_first(en->norms);
      f.push_back(
          {"Early in training Pre-LN's early layers get larger fc2 gradients than its late "
           "ones, and NormFormer brings the layers closer together (Shleifer, Weston & Ott 2021)",
           rq < 1 / 1.5 && std::abs(std::log(rn)) < std::abs(std::log(rq)),
           "fc2 gradient norm, last layer / first layer, after " + std::to_string(ep->step) +
               " steps (" + ep->moment + ") of the warm-up run: pre_ln " + num(rq) +
               ", normformer " + num(rn) +
               " (shown when pre_ln's ratio < 0.667, i.e. its first layer's gradient is at least "
               "1.5x its last's, and normformer's is closer to 1)"});
    }
    const double a = mean_final_val_loss(nf->warmup), b = mean_final_val_loss(pre->warmup);
    std::optional<bool> shows;
    if (std::abs(a - b) >= 0.01) shows = a < b;
    f.push_back(
        {"NormFormer reaches a lower validation loss than Pre-LN in the same number of "
         "steps (Shleifer, Weston & Ott 2021)",
         shows,
         "final validation loss with warm-up: normformer " + num(a) + ", pre_ln " + num(b) +
             " (mean over seeds; differences below 0.01 count as inconclusive)"});
    // A censored mean is a lower bound: compare intervals, not numbers.
    const auto [nf_lo, nf_hi] = survived_bounds(*nf);
    const auto [pre_lo, pre_hi] = survived_bounds(*pre);
    std::optional<bool> survives;
    if (nf_lo - pre_hi > 2)
      survives = true;
    else if (pre_lo - nf_hi > 2)
      survives = false;
    std::string detail = "LR-stress steps survived (mean over seeds): normformer " +
                         survived_text(*nf) + ", pre_ln " + survived_text(*pre) +
                         " (differences of 2 steps or less count as inconclusive; \">= N\" marks "
                         "a run that reached the step cap without exploding, which survived at "
                         "least N steps";
    if (any_censored(*nf) && any_censored(*pre))
      detail += "; both reached the cap, so the cap decides nothing: raise --stress-steps";
    f.push_back(
        {"NormFormer survives more steps of a rising learning rate than Pre-LN "
         "(Shleifer, Weston & Ott 2021)",
         survives, detail + ")"});
  }
  return f;
}

/// The terminal table: one row per policy.
inline json::Value compare_table(const std::vector<PolicyResult>& results) {
  auto num = [](double x, const char* fmt) -> std::string {
    if (!std::isfinite(x)) return "nan";
    char b[32];
    std::snprintf(b, sizeof b, fmt, x);
    return b;
  };
  json::Array rows;
  std::string early_column = "fc2 grad last/first (trained)";
  for (const PolicyResult& r : results) {
    const TrainedGradientProfile* early = early_profile(r);
    if (early) early_column = "fc2 grad last/first (step " + std::to_string(early->step) + ")";
    rows.push_back(json::Array{
        r.policy, std::to_string(r.parameters), num(last_to_first(r), "%.3f"),
        num(early ? last_to_first(early->norms) : std::numeric_limits<double>::quiet_NaN(), "%.3f"),
        num(mean_final_val_loss(r.warmup), "%.4f"), num(mean_final_val_loss(r.no_warmup), "%.4f"),
        survived_text(r)});
  }
  return json::Object{{"columns", json::Array{"policy", "parameters", "fc2 grad last/first (init)",
                                              early_column, "val loss (warm-up)",
                                              "val loss (no warm-up)", "LR-stress steps survived"}},
                      {"rows", std::move(rows)}};
}

namespace detail {
inline json::Value finite_or_null(double x) {
  return std::isfinite(x) ? json::Value(x) : json::Value();
}
inline json::Array numbers(const std::vector<double>& v) {
  json::Array a;
  for (double x : v) a.push_back(finite_or_null(x));
  return a;
}
inline json::Array integers(const std::vector<int64_t>& v) {
  json::Array a;
  for (int64_t x : v) a.emplace_back(x);
  return a;
}
inline json::Array booleans(const std::vector<bool>& v) {
  json::Array a;
  for (bool x : v) a.emplace_back(x);
  return a;
}
inline json::Value profile_json(const GradientProfile& p) {
  json::Object g;
  for (const auto& [group, v] : p) g.set(group, numbers(v));
  return g;
}
inline json::Value curve_json(const Curve& c) {
  return json::Object{{"step", integers(c.step)},
                      {"train_loss", numbers(c.train_loss)},
                      {"lr", numbers(c.lr)},
                      {"val_step", integers(c.val_step)},
                      {"val_loss", numbers(c.val_loss)}};
}
}  // namespace detail

/// Everything a compare run measured, in the schema report.html is drawn from
/// (curves are those of the first seed; table and findings use every seed).
/// `grad_norms_training` is an array of {step, moment, norms: policy -> group
/// -> per layer}; each `lr_stress` entry holds the first seed's curve with its
/// `survived` and `censored` (true: the cap was reached without an explosion,
/// so `survived` is a lower bound), and both per seed.
inline json::Value compare_results_json(const CompareOptions& o, const std::string& corpus_name,
                                        const std::vector<PolicyResult>& results) {
  json::Array policies, seeds, trained;
  json::Object grads, warm, cold, stress;
  for (uint64_t s : o.seeds) seeds.emplace_back(static_cast<int64_t>(s));
  for (const auto& [step, moment] : detail::profile_moments(o)) {
    json::Object norms;
    for (const PolicyResult& r : results)
      for (const TrainedGradientProfile& p : r.grad_norms_training)
        if (p.step == step) norms.set(r.policy, detail::profile_json(p.norms));
    trained.push_back(
        json::Object{{"step", step}, {"moment", moment}, {"norms", std::move(norms)}});
  }
  for (const PolicyResult& r : results) {
    policies.emplace_back(r.policy);
    grads.set(r.policy, detail::profile_json(r.grad_norms_at_init));
    warm.set(r.policy, detail::curve_json(r.warmup.front()));
    cold.set(r.policy, detail::curve_json(r.no_warmup.front()));
    const Curve& c = r.stress.front();
    stress.set(r.policy, json::Object{{"step", detail::integers(c.step)},
                                      {"lr", detail::numbers(c.lr)},
                                      {"loss", detail::numbers(c.train_loss)},
                                      {"survived", r.survived.front()},
                                      {"censored", static_cast<bool>(r.censored.front())},
                                      {"survived_by_seed", detail::integers(r.survived)},
                                      {"censored_by_seed", detail::booleans(r.censored)}});
  }
  json::Array findings;
  for (const Finding& f : compare_findings(results))
    findings.push_back(json::Object{{"claim", f.claim},
                                    {"shows", f.shows ? json::Value(*f.shows) : json::Value()},
                                    {"detail", f.detail}});
  return json::Object{
      {"title", "normlab compare"},
      {"config", config_to_json(o.model)},
      {"run", json::Object{{"corpus", corpus_name},
                           {"init", to_string(o.init)},
                           {"seeds", std::move(seeds)},
                           {"batch_size", o.batch_size},
                           {"seq_len", o.seq_len},
                           {"steps", o.steps},
                           {"warmup", o.warmup},
                           {"peak_lr", o.peak_lr},
                           {"clip_norm", o.clip_norm},
                           {"grad_batches", o.grad_batches},
                           {"stress_start_lr", o.stress_start_lr},
                           {"stress_factor", o.stress_factor},
                           {"stress_max_steps", o.stress_max_steps}}},
      {"policies", std::move(policies)},
      {"grad_norms_at_init", std::move(grads)},
      {"grad_norms_training", std::move(trained)},
      {"training", std::move(warm)},
      {"no_warmup", std::move(cold)},
      {"lr_stress", std::move(stress)},
      {"table", compare_table(results)},
      {"findings", std::move(findings)},
  };
}

}  // namespace v0
}  // namespace normlab
