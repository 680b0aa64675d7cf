// The compare experiments on a tiny model: every experiment produces its
// curves, the table and the findings, and the results serialize.
#include <cmath>
#include <optional>

#include "experiments/compare.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

CompareOptions tiny() {
  CompareOptions o;
  o.model.d_model = 16;
  o.model.n_heads = 2;
  o.model.n_layers = 3;
  o.model.d_ff = 32;
  o.model.max_seq_len = 16;
  o.batch_size = 4;
  o.seq_len = 16;
  o.steps = 12;
  o.warmup = 4;
  o.eval_every = 6;
  o.eval_windows = 8;
  o.grad_batches = 2;
  o.stress_max_steps = 15;
  o.stress_start_lr = 1e-3;
  o.stress_factor = 2.0;  // explodes within the budget
  return o;
}

TEST(Compare, EveryExperimentProducesItsMeasurements) {
  const TextCorpus corpus = TextCorpus::from_string(synthetic_corpus(20000, 1), "synthetic");
  const TrainValSplit split = split_train_val(corpus.size(), SplitOptions{0.1, 1024, 0});
  const CompareOptions o = tiny();
  std::vector<std::string> lines;
  const auto results =
      run_compare(o, corpus, split, [&](const std::string& l) { lines.push_back(l); });
  ASSERT_EQ(results.size(), 3u);
  EXPECT_FALSE(lines.empty());
  for (const PolicyResult& r : results) {
    SCOPED_TRACE(r.policy);
    ASSERT_TRUE(r.grad_norms_at_init.count("fc2"));
    EXPECT_EQ(r.grad_norms_at_init.at("fc2").size(), 3u);  // one per layer
    for (double g : r.grad_norms_at_init.at("fc2")) EXPECT_GT(g, 0);
    ASSERT_EQ(r.warmup.size(), 1u);
    EXPECT_EQ(r.warmup[0].step.size(), 12u);
    EXPECT_EQ(r.warmup[0].val_step, (std::vector<int64_t>{6, 12}));
    EXPECT_EQ(r.warmup[0].lr[0], 0.0);           // warm-up starts at 0
    EXPECT_EQ(r.no_warmup[0].lr[0], o.peak_lr);  // no warm-up starts at the peak
    EXPECT_TRUE(std::isfinite(r.warmup[0].final_val_loss()));
    // LR stress: the LR doubles each step from 1e-3; the run stops when the
    // loss explodes or the budget ends.
    ASSERT_EQ(r.survived.size(), 1u);
    ASSERT_EQ(r.censored.size(), 1u);
    EXPECT_LE(r.survived[0], 15);
    EXPECT_EQ(r.censored[0], r.survived[0] == 15 && r.stress[0].step.size() == 15u);
    EXPECT_EQ(r.stress[0].lr[1], 2 * r.stress[0].lr[0]);
    // The profile again at the end of warm-up (step 4) and of training (step 12).
    ASSERT_EQ(r.grad_norms_training.size(), 2u);
    EXPECT_EQ(r.grad_norms_training[0].step, 4);
    EXPECT_EQ(r.grad_norms_training[0].moment, "end of warm-up");
    EXPECT_EQ(r.grad_norms_training[1].step, 12);
    EXPECT_EQ(r.grad_norms_training[1].moment, "end of training");
    for (const TrainedGradientProfile& p : r.grad_norms_training) {
      ASSERT_EQ(p.norms.at("fc2").size(), 3u);
      for (double g : p.norms.at("fc2")) EXPECT_GT(g, 0);
      EXPECT_EQ(p.norms.size(), r.grad_norms_at_init.size());        // the same groups
      EXPECT_NE(p.norms.at("fc2"), r.grad_norms_at_init.at("fc2"));  // trained weights
    }
  }
  EXPECT_GT(results[2].parameters, results[1].parameters);  // normformer over pre_ln
  EXPECT_EQ(results[2].parameters - results[1].parameters, 3 * (2 * 16 + 2 * 32 + 2));
  const std::vector<Finding> findings = compare_findings(results);
  EXPECT_EQ(findings.size(), 6u);
  const json::Value j = compare_results_json(o, "synthetic", results);
  EXPECT_EQ(j.at("table").at("rows").size(), 3u);
  EXPECT_EQ(j.at("table").at("columns").at(3).as_string(), "fc2 grad last/first (step 4)");
  EXPECT_EQ(j.at("findings").size(), 6u);
  EXPECT_TRUE(j.at("lr_stress").at("normformer").at("survived").is_int());
  EXPECT_TRUE(j.at("lr_stress").at("normformer").at("censored").is_bool());
  EXPECT_EQ(j.at("lr_stress").at("normformer").at("survived_by_seed").size(), 1u);
  ASSERT_EQ(j.at("grad_norms_training").size(), 2u);
  EXPECT_EQ(j.at("grad_norms_training").at(0).at("step").as_int(), 4);
  EXPECT_EQ(j.at("grad_norms_training").at(1).at("norms").at("pre_ln").at("fc2").size(), 3u);
  const std::string text = json::dump(j);  // NaN losses became null: the dump succeeds
  EXPECT_EQ(json::parse(text), j);
}

TEST(Compare, MeasuringTheProfileDuringTrainingLeavesTheRunUnchanged) {
  const TextCorpus corpus = TextCorpus::from_string(synthetic_corpus(20000, 2), "synthetic");
  const TrainValSplit split = split_train_val(corpus.size(), SplitOptions{0.1, 1024, 0});
  CompareOptions o = tiny();
  o.policies = {"pre_ln"};
  o.model.dropout = 0.1;  // the measurement must hand the dropout stream back untouched
  o.stress_max_steps = 2;
  const auto results = run_compare(o, corpus, split);
  ModelConfig cfg = o.model;
  cfg.set_policy_spec("pre_ln");
  GPT<PreLN, float, Cpu> model(cfg, o.seeds[0], o.init);
  const Curve plain =
      detail::train_curve(model, corpus, split, o, Schedule::linear(o.peak_lr, o.warmup, o.steps),
                          o.seeds[0], "plain", {});
  EXPECT_EQ(results[0].warmup[0].train_loss, plain.train_loss);  // bit for bit
  EXPECT_EQ(results[0].warmup[0].val_loss, plain.val_loss);
}

TEST(Compare, AStressRunThatReachesTheCapIsCensored) {
  const TextCorpus corpus = TextCorpus::from_string(synthetic_corpus(20000, 1), "synthetic");
  const TrainValSplit split = split_train_val(corpus.size(), SplitOptions{0.1, 1024, 0});
  CompareOptions o = tiny();
  o.policies = {"pre_ln"};
  o.stress_factor = 1.0;  // a constant, small rate: nothing explodes
  o.stress_max_steps = 5;
  const auto results = run_compare(o, corpus, split);
  EXPECT_EQ(results[0].survived, std::vector<int64_t>{5});
  EXPECT_EQ(results[0].censored, std::vector<bool>{true});
  EXPECT_EQ(survived_text(results[0]), ">= 5.0");
  const json::Value j = compare_results_json(o, "synthetic", results);
  EXPECT_TRUE(j.at("lr_stress").at("pre_ln").at("censored").as_bool());
  EXPECT_EQ(j.at("table").at("rows").at(0).at(6).as_string(), ">= 5.0");
}

/// A result with only what the LR-stress and gradient findings read.
PolicyResult stress_result(const char* policy, std::vector<int64_t> survived,
                           std::vector<bool> censored, double early_ratio = 1) {
  PolicyResult r;
  r.policy = policy;
  r.survived = std::move(survived);
  r.censored = std::move(censored);
  r.grad_norms_training.push_back({50, "end of warm-up", {{"fc2", {1.0, 0.7, early_ratio}}}});
  return r;
}

/// The finding whose claim contains `words`; fails the test when absent.
Finding finding(const std::vector<PolicyResult>& results, const std::string& words) {
  for (const Finding& f : compare_findings(results))
    if (f.claim.find(words) != std::string::npos) return f;
  ADD_FAILURE() << "no finding about " << words;
  return {};
}

TEST(Compare, StressFindingTreatsCensoredRunsAsLowerBounds) {
  const std::string claim = "rising learning rate";
  auto judge = [&](PolicyResult nf, PolicyResult pre) {
    return finding({std::move(pre), std::move(nf)}, claim).shows;
  };
  using R = std::optional<bool>;
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
  const Finding both = finding(
      {stress_result("pre_ln", {150}, {true}), stress_result("normformer", {150}, {true})}, claim);
  EXPECT_EQ(both.shows, R());
  EXPECT_NE(both.detail.find("normformer >= 150.0, pre_ln >= 150.0"), std::string::npos)
      << both.detail;
  EXPECT_NE(both.detail.find("raise --stress-steps"), std::string::npos);
  // Seeds: one censored seed makes the mean a lower bound (125 here).
  EXPECT_EQ(judge(stress_result("normformer", {150, 100}, {true, false}),
                  stress_result("pre_ln", {96, 96}, {false, false})),
            R(true));
  EXPECT_EQ(judge(stress_result("normformer", {150, 100}, {true, false}),
                  stress_result("pre_ln", {140, 140}, {false, false})),
            R());
}

TEST(Compare, EarlyTrainingGradientFinding) {
  const std::string claim = "Early in training";
  // Pre-LN's last layer gets half of its first's gradient; NormFormer is flatter.
  EXPECT_EQ(finding({stress_result("pre_ln", {1}, {false}, 0.5),
                     stress_result("normformer", {1}, {false}, 0.9)},
                    claim)
                .shows,
            std::optional<bool>(true));
  // Pre-LN flat: not shown.
  const Finding flat = finding(
      {stress_result("pre_ln", {1}, {false}, 0.9), stress_result("normformer", {1}, {false}, 0.95)},
      claim);
  EXPECT_EQ(flat.shows, std::optional<bool>(false));
  EXPECT_NE(flat.detail.find("after 50 steps (end of warm-up)"), std::string::npos);
  // NormFormer further from flat than Pre-LN: not shown.
  EXPECT_EQ(finding({stress_result("pre_ln", {1}, {false}, 0.5),
                     stress_result("normformer", {1}, {false}, 0.3)},
                    claim)
                .shows,
            std::optional<bool>(false));
}

TEST(Compare, PolicySpecsAndErrors) {
  ModelConfig c;
  c.set_policy_spec("pre_ln+head_scale(after_out_proj)+resid_scale+rms_norm");
  EXPECT_EQ(c.policy_spec(),
            (spec_of<compose<PreLN, HeadScale<after_out_proj>, ResidScale, UseRMSNorm>>()));
  c.set_policy_spec(NormFormer::name());  // describe()'s spelling round-trips
  EXPECT_EQ(c.policy_spec(), spec_of<NormFormer>());
  expect_error([&] { c.set_policy_spec("pre_ln+magic"); }, {"policy \"pre_ln+magic\"", "magic"});
  const TextCorpus corpus = TextCorpus::from_string(synthetic_corpus(5000, 1), "synthetic");
  const TrainValSplit split = split_train_val(corpus.size(), SplitOptions{0.2, 512, 0});
  CompareOptions o = tiny();
  o.policies = {"post_ln+magic"};
  expect_error([&] { (void)run_compare(o, corpus, split); }, {"unknown extra \"magic\"", "ffn_ln"});
}

}  // namespace
}  // namespace normlab::testing
