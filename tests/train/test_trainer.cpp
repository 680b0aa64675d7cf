// The trainer: loss falls on the synthetic corpus, evaluation is fixed,
// resuming from a checkpoint reproduces the uninterrupted run exactly.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>

#include "normlab/train/trainer.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

ModelConfig tiny(double dropout = 0) {
  return model_config(
      "normformer",
      {.vocab = 256, .d_model = 32, .heads = 4, .layers = 2, .d_ff = 64, .max_seq_len = 32},
      dropout);
}

struct SyntheticData {
  TextCorpus corpus = TextCorpus::from_string(synthetic_corpus(40000, 3), "synthetic");
  TrainValSplit split = split_train_val(corpus.size(), SplitOptions{0.1, 1024, 0});
  TrainerOptions options = [] {
    TrainerOptions o;
    o.batch_size = 8;
    o.seq_len = 32;
    o.eval_windows = 16;
    o.eval_every = 0;
    return o;
  }();
};

TEST(Trainer, LossFallsBelowABoundOnTheSyntheticCorpus) {
  SyntheticData s;
  s.options.steps = 150;
  GPT<NormFormer, float, Cpu> model(tiny(), 1);
  AdamW<float, Cpu> opt(model, AdamWOptions{3e-3, 0.9, 0.98, 1e-8, 0.01});
  Trainer trainer(model, opt, Schedule::cosine(3e-3, 20, 150, 3e-4), s.corpus, s.split, s.options);
  const double start = trainer.evaluate().loss;
  EXPECT_NEAR(start, std::log(256.0), 0.5);  // near uniform over bytes at init
  std::vector<StepMetrics> steps;
  std::vector<EvalMetrics> evals;
  trainer.run([&](const StepMetrics& m) { steps.push_back(m); },
              [&](const EvalMetrics& e) { evals.push_back(e); });
  ASSERT_EQ(steps.size(), 150u);
  ASSERT_EQ(evals.size(), 1u);  // after the last step
  EXPECT_EQ(steps.back().step, 150);
  EXPECT_DOUBLE_EQ(steps[0].lr, 3e-4);  // cosine warm-up starts at min_lr, as fairseq's does
  EXPECT_GT(steps[10].lr, 0.0);
  for (const StepMetrics& m : steps) EXPECT_TRUE(std::isfinite(m.loss) && m.grad_norm > 0);
  // The grammar's bytes: an order of magnitude below uniform, 150 small steps in.
  EXPECT_LT(evals[0].loss, 2.2) << "validation loss after 150 steps";
  std::printf("validation loss %.4f -> %.4f\n", start, evals[0].loss);
  EXPECT_NEAR(evals[0].perplexity, std::exp(evals[0].loss), 1e-9);
}

TEST(Trainer, EvaluationIsTheSameEveryCall) {
  SyntheticData s;
  GPT<PreLN, float, Cpu> model(
      [] {
        ModelConfig c = tiny(0.2);  // dropout must be off in evaluation
        c.policy = "pre_ln";
        return c;
      }(),
      2);
  AdamW<float, Cpu> opt(model);
  Trainer trainer(model, opt, Schedule::constant(1e-3), s.corpus, s.split, s.options);
  EXPECT_EQ(trainer.evaluate().loss, trainer.evaluate().loss);
}

TEST(Trainer, ResumeReproducesTheUninterruptedRunExactly) {
  SyntheticData s;
  s.options.steps = 12;
  const Schedule schedule = Schedule::linear(2e-3, 4, 12, 1e-4);
  auto losses_of = [](std::vector<StepMetrics>& v) {
    std::vector<double> l;
    for (const auto& m : v) l.push_back(m.loss);
    return l;
  };
  // Uninterrupted, with dropout so that its generator must be restored too.
  std::vector<StepMetrics> straight;
  {
    GPT<NormFormer, float, Cpu> model(tiny(0.1), 5);
    AdamW<float, Cpu> opt(model);
    Trainer trainer(model, opt, schedule, s.corpus, s.split, s.options);
    trainer.run([&](const StepMetrics& m) { straight.push_back(m); });
  }
  // Six steps, a checkpoint, and six more in fresh objects.
  const std::string path = ::testing::TempDir() + "normlab_test_trainer_resume.safetensors";
  std::vector<StepMetrics> resumed;
  {
    GPT<NormFormer, float, Cpu> model(tiny(0.1), 5);
    AdamW<float, Cpu> opt(model);
    Trainer trainer(model, opt, schedule, s.corpus, s.split, s.options);
    for (int i = 0; i < 6; ++i) resumed.push_back(trainer.step());
    trainer.save_checkpoint(path);
  }
  {
    const ModelConfig cfg = checkpoint_config(io::SafetensorsReader::open(path));
    GPT<NormFormer, float, Cpu> model(cfg, 99);  // another seed: everything must come from the file
    AdamW<float, Cpu> opt(model);
    Trainer trainer(model, opt, schedule, s.corpus, s.split, s.options);
    trainer.load_checkpoint(path);
    EXPECT_EQ(trainer.step_count(), 6);
    trainer.run([&](const StepMetrics& m) { resumed.push_back(m); });
  }
  std::filesystem::remove(path);
  ASSERT_EQ(resumed.size(), straight.size());
  EXPECT_EQ(losses_of(resumed), losses_of(straight));  // bit for bit
  for (size_t i = 0; i < straight.size(); ++i) EXPECT_EQ(resumed[i].lr, straight[i].lr);
}

// Gradient accumulation: M slices of rows, each weighted by its share of the targets, give the
// batch's gradient up to float rounding.
TEST(Trainer, MicroBatchesGiveTheBatchGradientUpToRounding) {
  SyntheticData s;
  s.options.clip_norm = 0;  // the gradients as computed
  auto first_step = [&](int64_t micro_batches) {
    GPT<NormFormer, float, Cpu> model(tiny(), 4);
    AdamW<float, Cpu> opt(model);
    TrainerOptions o = s.options;
    o.micro_batches = micro_batches;
    Trainer trainer(model, opt, Schedule::constant(1e-3), s.corpus, s.split, o);
    const StepMetrics m = trainer.step();
    std::vector<std::vector<float>> grads;
    for (const auto& p : model.named_parameters()) grads.push_back(p.value.grad().to_vector());
    return std::make_pair(m, grads);
  };
  const auto [whole, whole_grads] = first_step(1);
  for (const int64_t m : {2, 4, 8}) {
    SCOPED_TRACE(m);
    const auto [sliced, sliced_grads] = first_step(m);
    EXPECT_NEAR(sliced.loss, whole.loss, 1e-6 * whole.loss);
    EXPECT_NEAR(sliced.grad_norm, whole.grad_norm, 1e-5 * whole.grad_norm);
    ASSERT_EQ(sliced_grads.size(), whole_grads.size());
    double worst = 0, scale = 0;
    for (size_t i = 0; i < whole_grads.size(); ++i)
      for (size_t j = 0; j < whole_grads[i].size(); ++j) {
        worst =
            std::max(worst, static_cast<double>(std::abs(sliced_grads[i][j] - whole_grads[i][j])));
        scale = std::max(scale, static_cast<double>(std::abs(whole_grads[i][j])));
      }
    EXPECT_LT(worst, 1e-5 * scale) << "largest gradient difference, against the largest gradient";
    EXPECT_GT(worst, 0.0) << "the slices sum in another order: some bit should differ";
  }
}

TEST(Trainer, MicroBatchesWithDropoutResumeExactlyAndDrawMasksPerSlice) {
  SyntheticData s;
  s.options.steps = 6;
  s.options.micro_batches = 2;
  const Schedule schedule = Schedule::linear(2e-3, 2, 6, 1e-4);
  auto losses = [&](int64_t stop_after, const std::string& path, uint64_t seed) {
    std::vector<double> l;
    GPT<NormFormer, float, Cpu> model(tiny(0.2), seed);
    AdamW<float, Cpu> opt(model);
    Trainer trainer(model, opt, schedule, s.corpus, s.split, s.options);
    if (!path.empty() && stop_after == 0) trainer.load_checkpoint(path);
    while (trainer.step_count() < (stop_after > 0 ? stop_after : s.options.steps))
      l.push_back(trainer.step().loss);
    if (!path.empty() && stop_after > 0) trainer.save_checkpoint(path);
    return l;
  };
  const std::vector<double> straight = losses(0, "", 5);
  const std::string path = ::testing::TempDir() + "normlab_test_trainer_micro.safetensors";
  std::vector<double> resumed = losses(3, path, 5);
  const std::vector<double> rest = losses(0, path, 77);
  resumed.insert(resumed.end(), rest.begin(), rest.end());
  std::filesystem::remove(path);
  EXPECT_EQ(resumed, straight);  // bit for bit

  // The masks come from (step, slice): the same model and batch give the same loss whether
  // the step is the first of the run or not preceded by the same draws.
  GPT<NormFormer, float, Cpu> a(tiny(0.2), 5), b(tiny(0.2), 5);
  AdamW<float, Cpu> opt_a(a), opt_b(b);
  Trainer ta(a, opt_a, schedule, s.corpus, s.split, s.options);
  Trainer tb(b, opt_b, schedule, s.corpus, s.split, s.options);
  b.dropout_generator().set_state(b.dropout_generator().seed(), 12345);  // draws left elsewhere
  EXPECT_EQ(ta.step().loss, tb.step().loss);
}

TEST(Trainer, MicroBatchesMustDivideTheBatch) {
  SyntheticData s;
  GPT<NormFormer, float, Cpu> model(tiny(), 1);
  AdamW<float, Cpu> opt(model);
  for (const int64_t m : {0, 3, 16}) {
    TrainerOptions o = s.options;
    o.micro_batches = m;
    expect_error([&] { Trainer t(model, opt, Schedule::constant(1e-3), s.corpus, s.split, o); },
                 {"micro_batches must be a divisor of batch_size 8, got " + std::to_string(m)});
  }
}

TEST(Trainer, RunStopsEvaluatesAndCheckpointsAsItsHooksSay) {
  SyntheticData s;
  s.options.steps = 6;
  s.options.eval_every = 3;
  GPT<PreLN, float, Cpu> model(
      [] {
        ModelConfig c = tiny();
        c.policy = "pre_ln";
        return c;
      }(),
      1);
  AdamW<float, Cpu> opt(model);
  Trainer trainer(model, opt, Schedule::constant(1e-3), s.corpus, s.split, s.options);
  std::vector<int64_t> steps, evals, checkpoints;
  Trainer<GPT<PreLN, float, Cpu>, float, Cpu>::RunHooks hooks;
  hooks.stop_at = 4;
  hooks.checkpoint_every = 2;
  hooks.on_step = [&](const StepMetrics& m, const std::optional<EvalMetrics>& e) {
    steps.push_back(m.step);
    if (e) evals.push_back(e->step);
  };
  hooks.on_checkpoint = [&](int64_t step) { checkpoints.push_back(step); };
  EXPECT_EQ(trainer.run(hooks), 4);
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(evals, (std::vector<int64_t>{3}));
  EXPECT_EQ(checkpoints, (std::vector<int64_t>{2, 4}));
  // Again without stop_at: the rest of the run, evaluated and checkpointed at its end.
  hooks.stop_at = 0;
  hooks.checkpoint_every = 4;
  EXPECT_EQ(trainer.run(hooks), 2);
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(evals, (std::vector<int64_t>{3, 6}));
  EXPECT_EQ(checkpoints, (std::vector<int64_t>{2, 4, 6}));
  EXPECT_EQ(trainer.run(hooks), 0) << "a finished run takes no step";
  // A hook that throws ends the run at that step.
  Trainer other(model, opt, Schedule::constant(1e-3), s.corpus, s.split, s.options);
  hooks.on_step = [&](const StepMetrics& m, const std::optional<EvalMetrics>&) {
    if (m.step == 2) throw Error("stop at 2");
  };
  expect_error([&] { other.run(hooks); }, {"stop at 2"});
  EXPECT_EQ(other.step_count(), 2);
}

TEST(Trainer, CheckpointErrorsNameTheFile) {
  SyntheticData s;
  GPT<NormFormer, float, Cpu> model(tiny(), 1);
  AdamW<float, Cpu> opt(model);
  Trainer trainer(model, opt, Schedule::constant(1e-3), s.corpus, s.split, s.options);
  const std::string path = ::testing::TempDir() + "normlab_test_trainer_plain.safetensors";
  trainer.save_checkpoint(path, {{"my.program", "{\"lr\": 0.001}"}});
  EXPECT_EQ(io::SafetensorsReader::open(path).metadata().at("my.program"), "{\"lr\": 0.001}");
  expect_error(
      [&] {
        trainer.save_checkpoint(path, {{"normlab.trainer", "x"}});
      },
      {"metadata key \"normlab.trainer\" is reserved"});
  save_checkpoint(path, model, model.config());  // a model checkpoint, not a training one
  expect_error([&] { trainer.load_checkpoint(path); }, {path, "not a training checkpoint"});
  std::filesystem::remove(path);
  expect_error([&] { trainer.load_checkpoint(path); }, {path});
}

/// A copy of the checkpoint at `path` with its trainer metadata's `key` set
/// to `value` (a JSON literal), written back to `path`.
void edit_trainer_state(const std::string& path, const std::string& key, json::Value value) {
  const io::SafetensorsReader r = io::SafetensorsReader::open(path);
  io::SafetensorsWriter w;
  for (const io::TensorInfo& t : r.tensors()) {
    if (io::is_floating(t.dtype))
      w.add(t.name, r.read<float, Cpu>(t.name));
    else
      w.add(t.name, r.read<int64_t, Cpu>(t.name), t.dtype);
  }
  for (const auto& [k, v] : r.metadata()) {
    if (k != "normlab.trainer") {
      w.set_metadata(k, v);
      continue;
    }
    json::Value state = json::parse(v);
    state[key] = std::move(value);
    w.set_metadata(k, json::dump_compact(state));
  }
  w.write(path);
}

TEST(Trainer, ACheckpointWithAStateOutOfRangeIsRefusedNamingTheKey) {
  SyntheticData s;
  s.options.steps = 10;
  GPT<NormFormer, float, Cpu> model(tiny(), 1);
  AdamW<float, Cpu> opt(model);
  Trainer trainer(model, opt, Schedule::constant(1e-3), s.corpus, s.split, s.options);
  trainer.step();
  const std::string path = ::testing::TempDir() + "normlab_test_trainer_state.safetensors";
  const auto refused = [&](const std::string& key, json::Value value,
                           const std::vector<std::string>& fragments) {
    trainer.save_checkpoint(path);
    edit_trainer_state(path, key, std::move(value));
    GPT<NormFormer, float, Cpu> other(tiny(), 2);
    AdamW<float, Cpu> other_opt(other);
    Trainer resumed(other, other_opt, Schedule::constant(1e-3), s.corpus, s.split, s.options);
    expect_error([&] { resumed.load_checkpoint(path); }, fragments);
    EXPECT_EQ(resumed.step_count(), 0) << "nothing may change on a refused checkpoint";
  };
  refused("step", int64_t{1} << 62,
          {path, "key \"step\" must be a whole number in [0, 10]", "4611686018427387904"});
  refused("step", -1, {"key \"step\""});
  refused("step", 1.5, {"key \"step\""});
  refused("sampler_seed", "abc", {path, "key \"sampler_seed\" must be an unsigned 64-bit", "abc"});
  refused("sampler_offset", "-1", {"key \"sampler_offset\""});
  refused("dropout_seed", "18446744073709551616", {"key \"dropout_seed\""});  // 2^64
  refused("dropout_offset", 3, {"key \"dropout_offset\" must be a decimal string"});
  std::filesystem::remove(path);
}

TEST(Trainer, ACheckpointOfADivergedModelIsNotWritten) {
  SyntheticData s;
  GPT<NormFormer, float, Cpu> model(tiny(), 1);
  AdamW<float, Cpu> opt(model);
  Trainer trainer(model, opt, Schedule::constant(1e-3), s.corpus, s.split, s.options);
  trainer.step();
  const std::string path = ::testing::TempDir() + "normlab_test_trainer_diverged.safetensors";
  trainer.save_checkpoint(path);  // the good one
  const auto good = std::filesystem::file_size(path);
  // A weight that an update pushed to infinity after a finite loss.
  const auto params = model.named_parameters();
  const auto fc1 = std::find_if(params.begin(), params.end(),
                                [](const auto& p) { return p.name == "layers.1.fc1.weight"; });
  ASSERT_NE(fc1, params.end());
  Tensor<float, Cpu> w = fc1->value.data();
  std::vector<float> values = w.to_vector();
  values[5] = std::numeric_limits<float>::infinity();
  w.copy_from(Tensor<float, Cpu>::from_vector(w.shape(), values));
  expect_error([&] { trainer.save_checkpoint(path); },
               {"after step 1", "tensor 'layers.1.fc1.weight' holds inf at element 5",
                path + " is not written"});
  // The good checkpoint is still there, whole, and loads.
  EXPECT_EQ(std::filesystem::file_size(path), good);
  GPT<NormFormer, float, Cpu> other(tiny(), 2);
  AdamW<float, Cpu> other_opt(other);
  Trainer resumed(other, other_opt, Schedule::constant(1e-3), s.corpus, s.split, s.options);
  resumed.load_checkpoint(path);
  EXPECT_EQ(resumed.step_count(), 1);
  // A NaN in the optimizer's state is caught too.
  values[5] = 0.5f;
  w.copy_from(Tensor<float, Cpu>::from_vector(w.shape(), values));
  OptimizerState<float, Cpu> state = opt.state();
  Tensor<float, Cpu> m = state.tensors.begin()->second;
  std::vector<float> mv = m.to_vector();
  mv[0] = std::numeric_limits<float>::quiet_NaN();
  m.copy_from(Tensor<float, Cpu>::from_vector(m.shape(), mv));
  opt.load_state(state);
  expect_error([&] { trainer.save_checkpoint(path); },
               {"tensor 'optim." + state.tensors.begin()->first + "' holds nan at element 0"});
  EXPECT_EQ(std::filesystem::file_size(path), good);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace normlab::testing
