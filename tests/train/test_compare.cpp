// The compare experiments on a tiny model: every experiment produces its
// curves, the table and the findings, and the results serialize.
#include <cmath>

#include "normlab/train/compare.hpp"
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
    EXPECT_LE(r.survived[0], 15);
    EXPECT_EQ(r.stress[0].lr[1], 2 * r.stress[0].lr[0]);
  }
  EXPECT_GT(results[2].parameters, results[1].parameters);  // normformer over pre_ln
  EXPECT_EQ(results[2].parameters - results[1].parameters, 3 * (2 * 16 + 2 * 32 + 2));
  const std::vector<Finding> findings = compare_findings(results);
  EXPECT_EQ(findings.size(), 5u);
  const json::Value j = compare_results_json(o, "synthetic", results);
  EXPECT_EQ(j.at("table").at("rows").size(), 3u);
  EXPECT_EQ(j.at("findings").size(), 5u);
  EXPECT_TRUE(j.at("lr_stress").at("normformer").at("survived").is_int());
  const std::string text = json::dump(j);  // NaN losses became null: the dump succeeds
  EXPECT_EQ(json::parse(text), j);
}

TEST(Compare, PolicySpecsAndErrors) {
  ModelConfig c;
  c.set_policy_spec("pre_ln+head_scale(after_out_proj)+resid_scale+rms_norm");
  EXPECT_EQ(c.policy_traits(),
            (traits_of<compose<PreLN, HeadScale<after_out_proj>, ResidScale, UseRMSNorm>>()));
  c.set_policy_spec(NormFormer::name());  // describe()'s spelling round-trips
  EXPECT_EQ(c.policy_traits(), traits_of<NormFormer>());
  expect_error([&] { c.set_policy_spec("pre_ln+magic"); }, {"policy \"pre_ln+magic\"", "magic"});
  const TextCorpus corpus = TextCorpus::from_string(synthetic_corpus(5000, 1), "synthetic");
  const TrainValSplit split = split_train_val(corpus.size(), SplitOptions{0.2, 512, 0});
  CompareOptions o = tiny();
  o.policies = {"post_ln+ffn_out_ln"};
  expect_error([&] { (void)run_compare(o, corpus, split); }, {"not among the policies"});
}

}  // namespace
}  // namespace normlab::testing
