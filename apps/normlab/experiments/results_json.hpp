// apps/normlab/experiments/results_json.hpp — results.json of `normlab
// compare`: everything a run measured, in the schema report.html is drawn
// from. Losses are in nats per byte (the report shows bits per byte); a
// number that is not finite is null.
//
// Schema (version 2):
//   title, schema: 2, command (the command line, for reproduction), scale,
//   elapsed_s, machine {device, cpu_kernels, threads, ranks},
//   run {corpus, init, seeds, batch_size, seq_len, steps, eval_every,
//        eval_windows, clip_norm, grad_batches, fail_margin, unigram_loss,
//        depths, lrs, warmups, mismatched_lrs {policy: lr}, mismatched_warmup,
//        stress_start_lr, stress_factor, stress_max_steps},
//   config: the shared model sizes (ModelConfig as in checkpoints),
//   policies: [{name, parameters, config}]  (config with the policy set),
//   depth_sweep {depths, group: "fc2", theory_slopes {post_ln: 0, pre_ln: -0.5},
//                policies {name: {last: {mean: [per depth], samples: [[per
//                depth]]}, first: {...}, last_fit: {slope, intercept, se, lo,
//                hi, n}, first_fit: {...}, profiles: [{group: [per layer]}
//                per depth]}}},
//   runs: [{policy, lr, warmup, seed, outcome ("trained", "failed",
//          "diverged"), final_val_loss, curve {step, train_loss, lr,
//          val_step, val_loss}, profiles [{step, moment, norms {group: [per
//          layer]}}]}],
//   lr_sweep {seed, runs: [indices into runs]},
//   tuned, mismatched: [{policy, lr, warmup, runs: [indices, one per seed],
//                        final_val_loss: [per seed], mean, se}],
//   lr_stress {name: {step, lr, loss (first seed), survived, censored,
//              survived_by_seed, censored_by_seed}},
//   table {columns, rows}, findings [{id, experiment, scale, claim, source,
//   rule, shows (true, false or null), detail}].
#pragma once

#include <string>
#include <vector>

#include "experiments/compare.hpp"
#include "experiments/findings.hpp"
#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/backend/cpu/kernel_path.hpp"
#include "normlab/io/json.hpp"
#include "normlab/models/checkpoint.hpp"

namespace normlab {
inline namespace v0 {
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
inline json::Value fit_json(const LineFit& f) {
  return json::Object{
      {"slope", finite_or_null(f.slope)}, {"intercept", finite_or_null(f.intercept)},
      {"se", finite_or_null(f.slope_se)}, {"lo", finite_or_null(f.lo)},
      {"hi", finite_or_null(f.hi)},       {"n", f.n}};
}
inline json::Value samples_json(const std::vector<std::vector<double>>& samples) {
  json::Array mean, all;
  for (const auto& s : samples) {
    mean.push_back(finite_or_null(mean_of(s)));
    all.push_back(numbers(s));
  }
  return json::Object{{"mean", std::move(mean)}, {"samples", std::move(all)}};
}
inline json::Value entry_json(const CompareResults& r, const TunedEntry& e) {
  json::Array runs;
  for (size_t i : e.runs) runs.emplace_back(static_cast<int64_t>(i));
  const std::vector<double> losses = r.final_losses(e);
  const MeanInterval m = mean_interval(losses);
  return json::Object{{"policy", e.policy},
                      {"lr", e.lr},
                      {"warmup", e.warmup},
                      {"runs", std::move(runs)},
                      {"final_val_loss", numbers(losses)},
                      {"mean", finite_or_null(m.mean)},
                      {"se", finite_or_null(m.se)}};
}

}  // namespace detail

/// Everything `r` holds, with `o`, the corpus' name and the command line that
/// produced it, per the schema at the top of this file.
inline json::Value compare_results_json(const CompareOptions& o, const std::string& corpus_name,
                                        const CompareResults& r, const std::string& command = "") {
  using detail::finite_or_null;
  json::Array seeds, lrs, warmups, policies, runs, sweep, tuned, mismatched, findings;
  for (uint64_t s : o.seeds) seeds.emplace_back(static_cast<int64_t>(s));
  for (double lr : o.lrs) lrs.emplace_back(lr);
  for (int64_t w : o.warmups) warmups.emplace_back(w);
  json::Object mismatched_lrs;
  for (const auto& [p, lr] : o.mismatched_lrs) mismatched_lrs.set(p, lr);
  for (const PolicyInfo& p : r.policies)
    policies.push_back(json::Object{
        {"name", p.policy}, {"parameters", p.parameters}, {"config", config_to_json(p.config)}});
  json::Object depth_policies;
  for (const DepthSweepResult& d : r.depth) {
    json::Array profiles;
    for (const GradientProfile& p : d.profiles) profiles.push_back(detail::profile_json(p));
    depth_policies.set(d.policy, json::Object{{"last", detail::samples_json(d.last)},
                                              {"first", detail::samples_json(d.first)},
                                              {"last_fit", detail::fit_json(d.last_fit)},
                                              {"first_fit", detail::fit_json(d.first_fit)},
                                              {"profiles", std::move(profiles)}});
  }
  for (const TrainingRun& t : r.runs) {
    json::Array profiles;
    for (const TrainedGradientProfile& p : t.profiles)
      profiles.push_back(json::Object{
          {"step", p.step}, {"moment", p.moment}, {"norms", detail::profile_json(p.norms)}});
    runs.push_back(json::Object{{"policy", t.policy},
                                {"lr", t.lr},
                                {"warmup", t.warmup},
                                {"seed", static_cast<int64_t>(t.seed)},
                                {"outcome", to_string(t.outcome)},
                                {"final_val_loss", finite_or_null(t.final_val_loss())},
                                {"curve", detail::curve_json(t.curve)},
                                {"profiles", std::move(profiles)}});
  }
  for (size_t i : r.sweep) sweep.emplace_back(static_cast<int64_t>(i));
  for (const TunedEntry& e : r.tuned) tuned.push_back(detail::entry_json(r, e));
  for (const TunedEntry& e : r.mismatched) mismatched.push_back(detail::entry_json(r, e));
  json::Object stress;
  for (const StressResult& s : r.stress) {
    const Curve& c = s.curves.front();
    stress.set(s.policy, json::Object{{"step", detail::integers(c.step)},
                                      {"lr", detail::numbers(c.lr)},
                                      {"loss", detail::numbers(c.train_loss)},
                                      {"survived", s.survived.front()},
                                      {"censored", static_cast<bool>(s.censored.front())},
                                      {"survived_by_seed", detail::integers(s.survived)},
                                      {"censored_by_seed", detail::booleans(s.censored)}});
  }
  for (const Finding& f : compare_findings(r))
    findings.push_back(json::Object{{"id", f.id},
                                    {"experiment", f.experiment},
                                    {"scale", f.scale},
                                    {"claim", f.claim},
                                    {"source", f.source},
                                    {"rule", f.rule},
                                    {"shows", f.shows ? json::Value(*f.shows) : json::Value()},
                                    {"detail", f.detail}});
  json::Array depths;
  for (int64_t d : o.depths) depths.emplace_back(d);
  return json::Object{
      {"title", "normlab compare"},
      {"schema", 2},
      {"command", command},
      {"scale", o.scale},
      {"elapsed_s", finite_or_null(r.elapsed_s)},
      {"machine", json::Object{{"device", o.device},
                               {"cpu_kernels", cpu::to_string(cpu::cpu_kernels())},
                               {"threads", static_cast<int64_t>(cpu::thread_count())},
                               {"ranks", static_cast<int64_t>(r.ranks)}}},
      {"run", json::Object{{"corpus", corpus_name},
                           {"init", to_string(o.init)},
                           {"seeds", std::move(seeds)},
                           {"batch_size", o.batch_size},
                           {"seq_len", o.seq_len},
                           {"steps", o.steps},
                           {"eval_every", o.eval_every},
                           {"eval_windows", o.eval_windows},
                           {"clip_norm", o.clip_norm},
                           {"grad_batches", o.grad_batches},
                           {"fail_margin", o.fail_margin},
                           {"unigram_loss", finite_or_null(r.unigram_loss)},
                           {"depths", depths},
                           {"lrs", std::move(lrs)},
                           {"warmups", std::move(warmups)},
                           {"mismatched_lrs", std::move(mismatched_lrs)},
                           {"mismatched_warmup", o.longest_warmup()},
                           {"stress_start_lr", o.stress_start_lr},
                           {"stress_factor", o.stress_factor},
                           {"stress_max_steps", o.stress_max_steps}}},
      {"config", config_to_json(o.model)},
      {"policies", std::move(policies)},
      {"depth_sweep",
       json::Object{{"depths", std::move(depths)},
                    {"group", "fc2"},
                    {"theory_slopes", json::Object{{"post_ln", 0.0}, {"pre_ln", -0.5}}},
                    {"policies", std::move(depth_policies)}}},
      {"runs", std::move(runs)},
      {"lr_sweep",
       json::Object{{"seed", static_cast<int64_t>(o.seeds.front())}, {"runs", std::move(sweep)}}},
      {"tuned", std::move(tuned)},
      {"mismatched", std::move(mismatched)},
      {"lr_stress", std::move(stress)},
      {"table", compare_table(r)},
      {"findings", std::move(findings)},
  };
}

}  // namespace v0
}  // namespace normlab
