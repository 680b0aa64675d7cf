// The compare experiments: the statistics they judge by recover known
// answers, the runs on a tiny model produce every measurement with the
// sweep's bookkeeping right, and each finding's rule classifies synthetic
// results as its text says.
#include <bit>
#include <cmath>
#include <limits>
#include <optional>

#include "experiments/results_json.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

using R = std::optional<bool>;

// ---- statistics ------------------------------------------------------------

TEST(CompareStatistics, AnExactLineIsRecoveredWithAZeroWidthInterval) {
  // ln g = 1.5 - 0.5 ln L: the Pre-LN law of Theorem 1.
  std::vector<double> x, y;
  for (double L : {2.0, 4.0, 8.0, 16.0, 32.0}) {
    x.push_back(std::log(L));
    y.push_back(1.5 - 0.5 * std::log(L));
  }
  const LineFit f = fit_line(x, y);
  EXPECT_EQ(f.n, 5);
  EXPECT_NEAR(f.slope, -0.5, 1e-12);
  EXPECT_NEAR(f.intercept, 1.5, 1e-12);
  EXPECT_NEAR(f.slope_se, 0, 1e-9);
  EXPECT_NEAR(f.lo, -0.5, 1e-8);
  EXPECT_NEAR(f.hi, -0.5, 1e-8);
}

TEST(CompareStatistics, TheSlopeIntervalMatchesTheTextbookFormula) {
  // Five points with residuals +-0.1 about y = 2x: the slope's standard error
  // is sqrt(SSE / (n - 2) / Sxx) and the interval t(3) = 3.182 of them wide.
  const std::vector<double> x = {0, 1, 2, 3, 4};
  const std::vector<double> y = {0.1, 1.9, 4.1, 5.9, 8.0};
  const LineFit f = fit_line(x, y);
  double mx = 2, my = (0.1 + 1.9 + 4.1 + 5.9 + 8.0) / 5, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
  }
  const double slope = sxy / sxx, intercept = my - slope * mx;
  double sse = 0;
  for (size_t i = 0; i < x.size(); ++i)
    sse += (y[i] - intercept - slope * x[i]) * (y[i] - intercept - slope * x[i]);
  const double se = std::sqrt(sse / 3 / sxx);
  EXPECT_NEAR(f.slope, slope, 1e-12);
  EXPECT_NEAR(f.slope_se, se, 1e-12);
  EXPECT_NEAR(f.hi - f.slope, 3.182 * se, 1e-12);
  EXPECT_LT(f.lo, 2.0);
  EXPECT_GT(f.hi, 1.9);
}

TEST(CompareStatistics, NoisySamplesOfAKnownSlopeAreCoveredByTheInterval) {
  // Four noisy samples per depth (as four batches would give) around slope
  // -0.5: the estimate is close and the interval contains the truth.
  std::vector<double> x, y;
  const double noise[4] = {0.08, -0.05, 0.03, -0.06};
  for (double L : {2.0, 4.0, 8.0, 16.0, 32.0})
    for (double e : noise) {
      x.push_back(std::log(L));
      y.push_back(0.7 - 0.5 * std::log(L) + e);
    }
  const LineFit f = fit_line(x, y);
  EXPECT_EQ(f.n, 20);
  EXPECT_NEAR(f.slope, -0.5, 0.02);
  EXPECT_LT(f.lo, -0.5);
  EXPECT_GT(f.hi, -0.5);
  EXPECT_LT(f.hi - f.lo, 0.1);
}

TEST(CompareStatistics, NonFiniteAndDegenerateInputs) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const LineFit two = fit_line({0, 1, 2}, {1, 3, nan});  // the NaN point is left out
  EXPECT_EQ(two.n, 2);
  EXPECT_DOUBLE_EQ(two.slope, 2);
  EXPECT_TRUE(std::isnan(two.lo));                                // two points: no interval
  EXPECT_TRUE(std::isnan(fit_line({3, 3, 3}, {1, 2, 3}).slope));  // x does not vary
  expect_error([] { (void)fit_line({1, 2}, {1}); }, {"as many x as y", "2 and 1"});
  const MeanInterval d = paired_difference({2.0, 2.1, nan}, {2.5, 2.4, 1.0});
  EXPECT_EQ(d.n, 2);
  EXPECT_NEAR(d.mean, -0.4, 1e-12);
  EXPECT_NEAR(d.se, 0.1, 1e-12);  // differences -0.5, -0.3
  EXPECT_NEAR(d.hi, -0.4 + 12.706 * 0.1, 1e-9);
  EXPECT_DOUBLE_EQ(t_quantile_975(30), 2.042);
  EXPECT_NEAR(t_quantile_975(120), 1.98, 0.002);
}

// ---- runs ------------------------------------------------------------------

CompareOptions tiny() {
  CompareOptions o;
  o.model.d_model = 16;
  o.model.n_heads = 2;
  o.model.n_layers = 3;
  o.model.d_ff = 32;
  o.model.max_seq_len = 16;
  o.batch_size = 4;
  o.seq_len = 16;
  o.seeds = {1, 2};
  o.depths = {1, 2, 4};
  o.grad_batches = 2;
  o.lrs = {1e-3, 3e-3};
  o.warmups = {0, 4};
  o.steps = 12;
  o.eval_every = 6;
  o.eval_windows = 8;
  o.mismatched_lrs = {{"pre_ln", 1e-3}, {"normformer", 3e-3}};
  o.stress_max_steps = 15;
  o.stress_start_lr = 1e-3;
  o.stress_factor = 2.0;  // explodes within the budget
  // Twelve steps of a tiny model end near 4.8 nats, above the unigram loss
  // (2.8): count every run below unigram + 3 as trained, so that the tuned
  // comparison has settings to use.
  o.fail_margin = -3.0;
  return o;
}

struct TinyData {
  TextCorpus corpus = TextCorpus::from_string(synthetic_corpus(20000, 1), "synthetic");
  TrainValSplit split = split_train_val(corpus.size(), SplitOptions{0.1, 1024, 0});
};

TEST(Compare, EveryExperimentProducesItsMeasurements) {
  const TinyData data;
  const CompareOptions o = tiny();
  std::vector<std::string> lines;
  const CompareResults r =
      run_compare(o, data.corpus, data.split, [&](const std::string& l) { lines.push_back(l); });
  ASSERT_EQ(r.policies.size(), 3u);
  EXPECT_GT(r.policies[2].parameters, r.policies[1].parameters);  // normformer over pre_ln
  EXPECT_EQ(r.policies[2].parameters - r.policies[1].parameters, 3 * (2 * 16 + 2 * 32 + 2));
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("[100%] done"), std::string::npos) << lines.back();
  // The plan matched the work: the line before the end says 100% too.
  EXPECT_NE(lines[lines.size() - 2].find("[100%]"), std::string::npos) << lines[lines.size() - 2];
  EXPECT_NE(lines.front().find("1/4 depth sweep"), std::string::npos) << lines.front();
  EXPECT_GT(r.unigram_loss, 1.0);
  EXPECT_LT(r.unigram_loss, std::log(256.0));

  // 1. Depth sweep: seeds x batches samples per depth, a profile per depth
  // with one value per layer, a fit over every sample.
  ASSERT_EQ(r.depth.size(), 3u);
  for (const DepthSweepResult& d : r.depth) {
    SCOPED_TRACE(d.policy);
    ASSERT_EQ(d.last.size(), 3u);
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(d.last[k].size(), 4u);  // 2 seeds x 2 batches
      EXPECT_EQ(d.first[k].size(), 4u);
      EXPECT_EQ(d.profiles[k].at("fc2").size(), static_cast<size_t>(o.depths[k]));
      for (double g : d.last[k]) EXPECT_GT(g, 0);
    }
    EXPECT_EQ(d.first[0], d.last[0]);  // one layer: first is last
    EXPECT_EQ(d.last_fit.n, 12);
    EXPECT_TRUE(std::isfinite(d.last_fit.slope));
    EXPECT_LE(d.last_fit.lo, d.last_fit.slope);
  }

  // 2. The sweep: every (policy, warm-up, lr) once, on the first seed.
  ASSERT_EQ(r.sweep.size(), 3u * 2 * 2);
  for (size_t i : r.sweep) {
    const TrainingRun& t = r.runs.at(i);
    EXPECT_EQ(t.seed, 1u);
    EXPECT_EQ(t.curve.step.size(), 12u);
    EXPECT_EQ(t.curve.val_step, (std::vector<int64_t>{6, 12}));
    EXPECT_EQ(t.curve.lr[0], t.warmup > 0 ? 0.0 : t.lr);  // warm-up starts at 0
    EXPECT_EQ(t.outcome, classify_run(t.curve, r.unigram_loss, o.fail_margin));
    ASSERT_EQ(t.profiles.size(), t.warmup > 0 ? 2u : 1u);
    EXPECT_EQ(t.profiles.back().step, 12);
    EXPECT_EQ(t.profiles.back().moment, "end of training");
    if (t.warmup > 0) {
      EXPECT_EQ(t.profiles.front().moment, "end of warm-up");
    }
  }

  // 3. Tuned: one entry per policy that trained, on every seed, the first
  // seed's run being the sweep's (trained once); the mismatched pair too.
  ASSERT_EQ(r.tuned.size(), 3u);
  for (const TunedEntry& e : r.tuned) {
    SCOPED_TRACE(e.policy);
    ASSERT_EQ(e.runs.size(), 2u);
    EXPECT_NE(std::find(r.sweep.begin(), r.sweep.end(), e.runs[0]), r.sweep.end());
    EXPECT_EQ(r.runs[e.runs[1]].seed, 2u);
    // The best setting: no trained sweep run of the policy has a lower loss.
    for (size_t i : r.sweep) {
      const TrainingRun& t = r.runs[i];
      if (t.policy == e.policy && t.outcome == RunOutcome::trained) {
        EXPECT_GE(t.final_val_loss(), r.runs[e.runs[0]].final_val_loss());
      }
    }
  }
  ASSERT_EQ(r.mismatched.size(), 2u);
  for (const TunedEntry& e : r.mismatched) EXPECT_EQ(e.warmup, 4);  // the longest warm-up
  // No run was trained twice.
  for (size_t i = 0; i < r.runs.size(); ++i)
    for (size_t j = i + 1; j < r.runs.size(); ++j)
      EXPECT_FALSE(r.runs[i].policy == r.runs[j].policy && r.runs[i].lr == r.runs[j].lr &&
                   r.runs[i].warmup == r.runs[j].warmup && r.runs[i].seed == r.runs[j].seed)
          << i << " and " << j;

  // 4. LR stress: the LR doubles each step; the run stops when the loss
  // explodes or the budget ends.
  ASSERT_EQ(r.stress.size(), 3u);
  for (const StressResult& s : r.stress) {
    ASSERT_EQ(s.survived.size(), 2u);
    EXPECT_LE(s.survived[0], 15);
    EXPECT_EQ(s.censored[0], s.survived[0] == 15 && s.curves[0].step.size() == 15u);
    EXPECT_EQ(s.curves[0].lr[1], 2 * s.curves[0].lr[0]);
  }

  const json::Value j = compare_results_json(o, "synthetic", r, "normlab compare --quick");
  EXPECT_EQ(j.at("schema").as_int(), 2);
  EXPECT_EQ(j.at("command").as_string(), "normlab compare --quick");
  EXPECT_EQ(j.at("table").at("rows").size(), 3u);
  // Each policy's own configuration: post_ln has no final norm, pre_ln and
  // normformer do; normformer's extras are its own.
  EXPECT_EQ(j.at("policies").at(0).at("name").as_string(), "post_ln");
  EXPECT_FALSE(j.at("policies").at(0).at("config").at("final_norm").as_bool());
  EXPECT_TRUE(j.at("policies").at(1).at("config").at("final_norm").as_bool());
  EXPECT_NE(j.at("policies").at(2).at("config").at("extras"),
            j.at("policies").at(1).at("config").at("extras"));
  EXPECT_EQ(j.at("depth_sweep").at("policies").at("pre_ln").at("last").at("samples").size(), 3u);
  EXPECT_EQ(j.at("runs").size(), r.runs.size());
  EXPECT_EQ(j.at("lr_sweep").at("runs").size(), 12u);
  EXPECT_EQ(j.at("lr_stress").at("normformer").at("survived_by_seed").size(), 2u);
  EXPECT_EQ(j.at("findings").size(), compare_findings(r).size());
  const std::string text = json::dump(j);  // NaN losses became null: the dump succeeds
  EXPECT_EQ(json::parse(text), j);
}

TEST(Compare, MeasuringTheProfileDuringTrainingLeavesTheRunUnchanged) {
  const TinyData data;
  CompareOptions o = tiny();
  o.policies = {"pre_ln"};
  o.model.dropout = 0.1;  // the measurement must hand the dropout stream back untouched
  o.depth_sweep = o.tuned = o.lr_stress = false;
  o.lrs = {1e-3};
  o.warmups = {4};
  const CompareResults r = run_compare(o, data.corpus, data.split);
  ModelConfig cfg = o.model;
  cfg.set_policy_spec("pre_ln");
  GPT<PreLN, float, Cpu> model(cfg, o.seeds[0], o.init);
  const Curve plain = detail::train_curve(model, data.corpus, data.split, o, 1e-3,
                                          Schedule::linear(1e-3, 4, o.steps), o.seeds[0]);
  ASSERT_EQ(r.runs.size(), 1u);
  EXPECT_EQ(r.runs[0].curve.train_loss, plain.train_loss);  // bit for bit
  EXPECT_EQ(r.runs[0].curve.val_loss, plain.val_loss);
}

TEST(Compare, ADivergingRunStopsAndIsClassifiedDiverged) {
  const TinyData data;
  CompareOptions o = tiny();
  o.policies = {"post_ln"};
  o.depth_sweep = o.tuned = o.lr_stress = false;
  o.clip_norm = 0;
  o.lrs = {1e6};  // no model survives this
  o.warmups = {0};
  const CompareResults r = run_compare(o, data.corpus, data.split);
  ASSERT_EQ(r.runs.size(), 1u);
  EXPECT_EQ(r.runs[0].outcome, RunOutcome::diverged);
  EXPECT_LT(r.runs[0].curve.step.size(), 12u);  // stopped at the first non-finite loss
  EXPECT_FALSE(std::isfinite(r.runs[0].curve.train_loss.back()));
}

TEST(Compare, AStressRunThatReachesTheCapIsCensored) {
  const TinyData data;
  CompareOptions o = tiny();
  o.policies = {"pre_ln"};
  o.depth_sweep = o.lr_sweep = o.tuned = false;
  o.stress_factor = 1.0;  // a constant, small rate: nothing explodes
  o.stress_max_steps = 5;
  o.seeds = {1};
  const CompareResults r = run_compare(o, data.corpus, data.split);
  EXPECT_EQ(r.stress[0].survived, std::vector<int64_t>{5});
  EXPECT_EQ(r.stress[0].censored, std::vector<bool>{true});
  EXPECT_EQ(survived_text(r.stress[0]), ">= 5.0");
  const json::Value j = compare_results_json(o, "synthetic", r);
  EXPECT_TRUE(j.at("lr_stress").at("pre_ln").at("censored").as_bool());
  EXPECT_EQ(j.at("table").at("rows").at(0).at(7).as_string(), ">= 5.0");
}

TEST(Compare, OptionsAndPolicySpecsAreCheckedBeforeAnyRun) {
  ModelConfig c;
  c.set_policy_spec("pre_ln+head_scale(after_out_proj)+resid_scale+rms_norm");
  EXPECT_EQ(c.policy_spec(),
            (spec_of<compose<PreLN, HeadScale<after_out_proj>, ResidScale, UseRMSNorm>>()));
  const TextCorpus corpus = TextCorpus::from_string(synthetic_corpus(5000, 1), "synthetic");
  const TrainValSplit split = split_train_val(corpus.size(), SplitOptions{0.2, 512, 0});
  CompareOptions o = tiny();
  o.policies = {"post_ln+magic"};
  expect_error([&] { (void)run_compare(o, corpus, split); }, {"unknown extra \"magic\"", "ffn_ln"});
  o = tiny();
  o.warmups = {0, 12};
  expect_error([&] { (void)run_compare(o, corpus, split); },
               {"every warm-up must be in [0, steps = 12)", "got 12"});
  o = tiny();
  o.lr_sweep = false;
  expect_error([&] { (void)run_compare(o, corpus, split); },
               {"tuned comparison needs the LR sweep"});
  o = tiny();
  o.depths = {0};
  expect_error([&] { (void)run_compare(o, corpus, split); }, {"every depth must be >= 1, got 0"});
}

// ---- spreading the runs over ranks -------------------------------------------

TEST(CompareSpread, LongestFirstToTheLeastLoadedRank) {
  // 9, 7, 5, 4, 3, 2 over 2 ranks: 9 -> 0, 7 -> 1, 5 -> 1 (7 < 9), 4 -> 0, 3 -> 1, 2 -> 0:
  // loads 15 and 15.
  const std::vector<double> costs = {4, 9, 2, 7, 5, 3};
  EXPECT_EQ(spread_over_ranks(costs, 2), (std::vector<int>{0, 0, 0, 1, 1, 1}));
  // Ties go to the lowest rank, and equal costs keep their order.
  EXPECT_EQ(spread_over_ranks({1, 1, 1, 1, 1}, 3), (std::vector<int>{0, 1, 2, 0, 1}));
  EXPECT_EQ(spread_over_ranks(costs, 1), std::vector<int>(6, 0));
  EXPECT_EQ(spread_over_ranks({2, 1}, 4), (std::vector<int>{0, 1}));  // ranks left idle
  EXPECT_TRUE(spread_over_ranks({}, 2).empty());
  EXPECT_THROW((void)spread_over_ranks(costs, 0), Error);
}

TEST(CompareSpread, WhatARunMeasuredCrossesAsBytesExactly) {
  TrainingRun t;
  t.policy = "pre_ln+head_scale(after_out_proj)";
  t.lr = 3e-3;
  t.warmup = 60;
  t.seed = ~uint64_t{0};
  t.curve.step = {1, 2, 3};
  t.curve.train_loss = {5.5, std::nextafter(5.0, 6.0), std::numeric_limits<double>::quiet_NaN()};
  t.curve.lr = {1e-4, -0.0, std::numeric_limits<double>::infinity()};
  t.curve.val_step = {2};
  t.curve.val_loss = {std::numeric_limits<double>::denorm_min()};
  t.outcome = RunOutcome::diverged;
  t.profiles.push_back({60, "end of warm-up", {{"fc2", {0.5, 0.25}}, {"q_proj", {}}}});
  t.profiles.push_back({120, "", {}});
  WireWriter w;
  write_wire(w, t);
  w.str(std::string("\0x", 2));
  const std::string bytes = w.take();
  WireReader r(bytes, "test");
  const TrainingRun back = read_training_run(r);
  EXPECT_EQ(r.str(), std::string("\0x", 2));
  r.expect_end();
  auto bits = [](const std::vector<double>& v) {
    std::vector<uint64_t> b;
    for (double x : v) b.push_back(std::bit_cast<uint64_t>(x));
    return b;
  };
  EXPECT_EQ(back.policy, t.policy);
  EXPECT_EQ(back.lr, t.lr);
  EXPECT_EQ(back.warmup, t.warmup);
  EXPECT_EQ(back.seed, t.seed);
  EXPECT_EQ(back.curve.step, t.curve.step);
  EXPECT_EQ(bits(back.curve.train_loss), bits(t.curve.train_loss));
  EXPECT_EQ(bits(back.curve.lr), bits(t.curve.lr));
  EXPECT_EQ(back.curve.val_step, t.curve.val_step);
  EXPECT_EQ(bits(back.curve.val_loss), bits(t.curve.val_loss));
  EXPECT_EQ(back.outcome, t.outcome);
  ASSERT_EQ(back.profiles.size(), 2u);
  EXPECT_EQ(back.profiles[0].step, 60);
  EXPECT_EQ(back.profiles[0].moment, "end of warm-up");
  EXPECT_EQ(back.profiles[0].norms, t.profiles[0].norms);
  EXPECT_TRUE(back.profiles[1].norms.empty());
}

TEST(CompareSpread, DamagedBytesAreErrorsBeforeAnyAllocation) {
  WireWriter w;
  w.f64s({1, 2, 3});
  const std::string bytes = w.take();
  // Cut short: the count promises more numbers than the bytes hold.
  WireReader cut(std::string_view(bytes).substr(0, bytes.size() - 1), "rank 1's runs");
  expect_error([&] { (void)cut.f64s(); },
               {"rank 1's runs: a list of numbers of 3 items of 8 bytes at byte 8, but only 23 "
                "bytes are left"});
  // A count near 2^64 is refused, not allocated.
  WireWriter huge;
  huge.u64(~uint64_t{0} / 2);
  const std::string h = huge.take();
  WireReader hr(h, "runs");
  expect_error([&] { (void)hr.str(); }, {"runs: a string of", "but only 0 bytes are left"});
  WireReader empty("", "runs");
  expect_error([&] { (void)empty.i64(); }, {"expected an integer (8 bytes) at byte 0"});
  WireWriter flag;
  flag.i64(7);
  const std::string f = flag.take();
  WireReader fr(f, "runs");
  expect_error([&] { (void)fr.boolean(); }, {"expected a flag (0 or 1) at byte 0, found 7"});
  WireReader extra(bytes, "runs");
  (void)extra.u64();
  expect_error([&] { extra.expect_end(); }, {"expected the end after byte 8, found 24 more bytes"});
}

// ---- rules on synthetic results -------------------------------------------

TEST(CompareRules, RunOutcomes) {
  Curve c;
  c.train_loss = {5.5, 3.0, 2.5};
  c.val_loss = {3.0, 2.6};
  EXPECT_EQ(classify_run(c, 3.3, 0.2), RunOutcome::trained);  // 2.6 < 3.1
  EXPECT_EQ(classify_run(c, 2.75, 0.2), RunOutcome::failed);  // 2.6 > 2.55
  c.val_loss.back() = std::numeric_limits<double>::infinity();
  EXPECT_EQ(classify_run(c, 3.3, 0.2), RunOutcome::diverged);
  c.val_loss.back() = 2.6;
  c.train_loss.push_back(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(classify_run(c, 3.3, 0.2), RunOutcome::diverged);
  EXPECT_EQ(classify_run(Curve{}, 3.3, 0.2), RunOutcome::diverged);  // never evaluated
}

/// A depth sweep result whose last-layer norms follow `slope` exactly
/// (times a small alternating wiggle so that the interval has a width).
DepthSweepResult depth_result(const std::string& policy, double scale, double slope) {
  DepthSweepResult d;
  d.policy = policy;
  std::vector<double> x, y;
  for (double L : {2.0, 4.0, 8.0, 16.0, 32.0}) {
    d.last.emplace_back();
    for (double w : {1.02, 0.98, 1.01, 0.99}) {
      const double g = scale * std::pow(L, slope) * w;
      d.last.back().push_back(g);
      x.push_back(std::log(L));
      y.push_back(std::log(g));
    }
    d.first.push_back(d.last.back());
  }
  d.last_fit = d.first_fit = fit_line(x, y);
  return d;
}

Finding finding(const CompareResults& r, const std::string& id) {
  for (const Finding& f : compare_findings(r))
    if (f.id == id) return f;
  ADD_FAILURE() << "no finding " << id;
  return {};
}

TEST(CompareRules, DepthSlopesAreJudgedByTheTheorem) {
  CompareResults r;
  r.depth = {depth_result("post_ln", 1.0, 0.05), depth_result("pre_ln", 2.0, -0.5)};
  Finding f = finding(r, "depth_slopes");
  EXPECT_EQ(f.shows, R(true)) << f.detail;
  EXPECT_EQ(f.scale, "small");
  EXPECT_NE(f.detail.find("pre_ln -0.50 ["), std::string::npos) << f.detail;
  EXPECT_EQ(finding(r, "post_ln_depth_independent").shows, R(true));
  // Both fall like L^-1/2: the ratio does not grow, Post-LN's slope is not above.
  r.depth = {depth_result("post_ln", 1.0, -0.5), depth_result("pre_ln", 2.0, -0.5)};
  EXPECT_EQ(finding(r, "depth_slopes").shows, R(false));
  EXPECT_EQ(finding(r, "post_ln_depth_independent").shows, R(false));
  // Pre-LN flat: not shown.
  r.depth = {depth_result("post_ln", 1.0, 0.2), depth_result("pre_ln", 2.0, 0.0)};
  EXPECT_EQ(finding(r, "depth_slopes").shows, R(false));
  // Two depths give no interval: inconclusive.
  for (DepthSweepResult& d : r.depth) {
    d.last.resize(2);
    std::vector<double> x = {std::log(2.0), std::log(4.0)},
                        y = {std::log(d.last[0][0]), std::log(d.last[1][0])};
    d.last_fit = fit_line(x, y);
  }
  EXPECT_EQ(finding(r, "depth_slopes").shows, R());
}

/// Adds a sweep run with the given outcome (and final loss).
void add_run(CompareResults& r, const std::string& policy, double lr, int64_t warmup,
             RunOutcome outcome, double loss = 2.8, uint64_t seed = 1, bool sweep = true) {
  TrainingRun t;
  t.policy = policy;
  t.lr = lr;
  t.warmup = warmup;
  t.seed = seed;
  t.outcome = outcome;
  t.curve.val_loss = {outcome == RunOutcome::diverged ? std::nan("") : loss};
  r.runs.push_back(t);
  if (sweep) r.sweep.push_back(r.runs.size() - 1);
}

TEST(CompareRules, WarmUpFindingsReadTheSweep) {
  using O = RunOutcome;
  CompareResults r;
  // pre_ln trains everywhere; post_ln without warm-up fails from 3e-3 on,
  // warm-up rescues it at 3e-3 but not at 1e-2.
  for (double lr : {1e-3, 3e-3, 1e-2})
    for (int64_t w : {0, 30}) add_run(r, "pre_ln", lr, w, O::trained);
  add_run(r, "post_ln", 1e-3, 0, O::trained);
  add_run(r, "post_ln", 3e-3, 0, O::failed, 3.3);
  add_run(r, "post_ln", 1e-2, 0, O::diverged);
  add_run(r, "post_ln", 1e-3, 30, O::trained);
  add_run(r, "post_ln", 3e-3, 30, O::trained);
  add_run(r, "post_ln", 1e-2, 30, O::failed, 3.3);
  Finding needed = finding(r, "warmup_needed");
  EXPECT_EQ(needed.shows, R(true));
  EXPECT_NE(needed.detail.find("post_ln trains up to LR 0.001, pre_ln up to 0.01"),
            std::string::npos)
      << needed.detail;
  EXPECT_NE(needed.detail.find("lowest LR where pre_ln trains and post_ln does not: 0.003"),
            std::string::npos);
  Finding rescues = finding(r, "warmup_rescues");
  EXPECT_EQ(rescues.shows, R(true));
  EXPECT_NE(rescues.detail.find("warm-up rescues it at LR 0.003"), std::string::npos);
  EXPECT_NE(rescues.detail.find("no warm-up of the sweep rescues it at LR 0.01"), std::string::npos)
      << rescues.detail;
  EXPECT_EQ(largest_trained_lr(r, "post_ln", true), 3e-3);

  // post_ln trains wherever pre_ln does: neither claim shows.
  CompareResults same;
  for (const char* p : {"pre_ln", "post_ln"})
    for (double lr : {1e-3, 3e-3}) add_run(same, p, lr, 0, O::trained);
  EXPECT_EQ(finding(same, "warmup_needed").shows, R(false));
  EXPECT_EQ(finding(same, "warmup_rescues").shows, R());  // nothing to rescue
  // Pre-LN never trains without warm-up: the sweep cannot tell.
  CompareResults none;
  for (const char* p : {"pre_ln", "post_ln"}) add_run(none, p, 1e-2, 0, O::diverged);
  EXPECT_EQ(finding(none, "warmup_needed").shows, R());
  EXPECT_EQ(finding(none, "warmup_rescues").shows, R(false));  // fails, nothing rescues it
}

TEST(CompareRules, TunedComparisonIsPairedOverSeeds) {
  using O = RunOutcome;
  auto entry = [](CompareResults& r, const std::string& p, double lr,
                  const std::vector<double>& losses) {
    TunedEntry e{p, lr, 30, {}};
    uint64_t seed = 1;
    for (double l : losses) {
      add_run(r, p, lr, 30, O::trained, l, seed++, false);
      e.runs.push_back(r.runs.size() - 1);
    }
    return e;
  };
  CompareResults r;
  // NormFormer worse by 0.05-0.07 nats on every seed (the small-scale finding).
  r.tuned = {entry(r, "pre_ln", 3e-3, {2.70, 2.75, 2.72}),
             entry(r, "normformer", 3e-3, {2.76, 2.82, 2.77})};
  // The mismatched pair: Pre-LN at a too-low LR looks 0.1 worse.
  r.mismatched = {entry(r, "pre_ln", 1e-3, {2.90, 2.93, 2.91}),
                  entry(r, "normformer", 3e-3, {2.79, 2.83, 2.80})};
  const Finding tuned = finding(r, "normformer_tuned");
  EXPECT_EQ(tuned.shows, R(false)) << tuned.detail;
  EXPECT_EQ(tuned.scale, "paper");
  EXPECT_NE(tuned.detail.find("bits per byte over 3 seeds"), std::string::npos);
  const Finding lesson = finding(r, "mismatched_lr");
  EXPECT_EQ(lesson.shows, R(true)) << lesson.detail;
  EXPECT_EQ(lesson.scale, "lesson");
  // Seeds that disagree: the interval straddles 0.
  CompareResults mixed;
  mixed.tuned = {entry(mixed, "pre_ln", 3e-3, {2.70, 2.80, 2.75}),
                 entry(mixed, "normformer", 3e-3, {2.75, 2.74, 2.76})};
  EXPECT_EQ(finding(mixed, "normformer_tuned").shows, R());
  // One seed: no interval, inconclusive.
  CompareResults one;
  one.tuned = {entry(one, "pre_ln", 3e-3, {2.9}), entry(one, "normformer", 3e-3, {2.7})};
  EXPECT_EQ(finding(one, "normformer_tuned").shows, R());
}

TEST(CompareRules, EarlyTrainingProfileFinding) {
  auto entry = [](CompareResults& r, const std::string& p, double last_over_first) {
    TrainingRun t;
    t.policy = p;
    t.outcome = RunOutcome::trained;
    t.profiles.push_back({30, "end of warm-up", {{"fc2", {1.0, 0.7, last_over_first}}}});
    r.runs.push_back(t);
    return TunedEntry{p, 1e-3, 30, {r.runs.size() - 1}};
  };
  CompareResults r;
  r.tuned = {entry(r, "pre_ln", 0.5), entry(r, "normformer", 0.9)};
  const Finding f = finding(r, "normformer_flatter_early");
  EXPECT_EQ(f.shows, R(true));
  EXPECT_NE(f.detail.find("pre_ln 0.5 after 30 steps (end of warm-up)"), std::string::npos)
      << f.detail;
  CompareResults flat;
  flat.tuned = {entry(flat, "pre_ln", 0.9), entry(flat, "normformer", 0.95)};
  EXPECT_EQ(finding(flat, "normformer_flatter_early").shows, R(false));
  CompareResults worse;
  worse.tuned = {entry(worse, "pre_ln", 0.5), entry(worse, "normformer", 0.3)};
  EXPECT_EQ(finding(worse, "normformer_flatter_early").shows, R(false));
}

StressResult stress_result(const char* policy, std::vector<int64_t> survived,
                           std::vector<bool> censored) {
  StressResult s;
  s.policy = policy;
  s.survived = std::move(survived);
  s.censored = std::move(censored);
  s.curves.resize(s.survived.size());
  return s;
}

TEST(CompareRules, StressFindingTreatsCensoredRunsAsLowerBounds) {
  auto judge = [&](StressResult nf, StressResult pre) {
    CompareResults r;
    r.stress = {std::move(pre), std::move(nf)};
    return finding(r, "normformer_stress").shows;
  };
  // Both exploded: more than 2 steps apart decides, 2 or less is inconclusive.
  EXPECT_EQ(
      judge(stress_result("normformer", {100}, {false}), stress_result("pre_ln", {96}, {false})),
      R(true));
  EXPECT_EQ(
      judge(stress_result("normformer", {93}, {false}), stress_result("pre_ln", {96}, {false})),
      R(false));
  EXPECT_EQ(
      judge(stress_result("normformer", {98}, {false}), stress_result("pre_ln", {96}, {false})),
      R());
  // NormFormer never exploded within the cap: it survived at least 150.
  EXPECT_EQ(
      judge(stress_result("normformer", {150}, {true}), stress_result("pre_ln", {96}, {false})),
      R(true));
  // Pre-LN never exploded, NormFormer did well before the cap.
  EXPECT_EQ(
      judge(stress_result("normformer", {96}, {false}), stress_result("pre_ln", {150}, {true})),
      R(false));
  // Pre-LN reached the cap, NormFormer exploded a step before it: too close.
  EXPECT_EQ(
      judge(stress_result("normformer", {149}, {false}), stress_result("pre_ln", {150}, {true})),
      R());
  // Both reached the cap: the cap decides nothing.
  CompareResults both;
  both.stress = {stress_result("pre_ln", {150}, {true}),
                 stress_result("normformer", {150}, {true})};
  const Finding f = finding(both, "normformer_stress");
  EXPECT_EQ(f.shows, R());
  EXPECT_NE(f.detail.find("normformer >= 150.0, pre_ln >= 150.0"), std::string::npos) << f.detail;
  EXPECT_NE(f.detail.find("raise --stress-steps"), std::string::npos);
  // Seeds: one censored seed makes the mean a lower bound (125 here).
  EXPECT_EQ(judge(stress_result("normformer", {150, 100}, {true, false}),
                  stress_result("pre_ln", {96, 96}, {false, false})),
            R(true));
  EXPECT_EQ(judge(stress_result("normformer", {150, 100}, {true, false}),
                  stress_result("pre_ln", {140, 140}, {false, false})),
            R());
}

TEST(CompareRules, MissingExperimentsGiveNoFinding) {
  CompareResults r;  // nothing ran
  EXPECT_TRUE(compare_findings(r).empty());
  r.depth = {depth_result("pre_ln", 1.0, -0.5)};  // no post_ln
  EXPECT_TRUE(compare_findings(r).empty());
}

}  // namespace
}  // namespace normlab::testing
