// bench/data_parallel.cpp — where the time of a data-parallel training step
// goes: the GPT step of the benchmarks (bench/common.hpp kGpt, Post-LN, no
// dropout, AdamW, clip 1) trained by Trainer over an MpiCommunicator, in three
// phases on every rank:
//
//   step      the data-parallel step: B windows split over the N ranks, the
//             gradients summed across them in ~25 MiB buckets during backward
//             (GradientSum); StepMetrics::exchange_s is the exchange time this
//             rank spent outside compute (hooks, the final wait, the loss)
//   compute   the same step with no exchange: each rank trains its B/N windows
//             alone (no communicator), all ranks at once and each step started
//             together (a barrier), so they share the machine as in `step`
//   exchange  the exchange alone: every gradient's bytes all-reduced in the
//             same buckets, started together and waited for, no compute
//
// and prints, on rank 0, one JSON line of medians (after --skip steps):
// tokens/s of `step`, the three times, exposed = step - compute (what the
// exchange added to the step) and overlap = 1 - exposed / exchange (the share
// of the exchange hidden behind backward; 0 when it added all of its time).
// One process (no launcher) measures `step` alone (N = 1: no exchange).
//
//   mpirun -np 2 -x OMP_NUM_THREADS=1 build/bench/bench/normlab_data_parallel_bench
//   OMP_NUM_THREADS=2 build/bench/bench/normlab_data_parallel_bench
//
// bench/data_parallel.sh runs it beside bench/ddp_peer.py (PyTorch DDP, gloo,
// the same phases) and prints the table. --tiny: a small model, for tests.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common.hpp"
#include "normlab/dist/mpi.hpp"
#include "normlab/normlab.hpp"

namespace nl = normlab;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Args {
  int64_t steps = 10, skip = 2;
  bool tiny = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto number = [&](int64_t& out) {
      nl::detail::check(i + 1 < argc, arg, " needs a number");
      const std::string v = argv[++i];
      const auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), out);
      nl::detail::check(err == std::errc() && end == v.data() + v.size() && out >= 0, arg,
                        " needs a whole number >= 0, got '", v, "'");
    };
    if (arg == "--steps")
      number(a.steps);
    else if (arg == "--skip")
      number(a.skip);
    else if (arg == "--tiny")
      a.tiny = true;
    else
      throw nl::Error("normlab_data_parallel_bench: unknown argument '" + arg +
                      "' (expected --steps N, --skip N, --tiny)");
  }
  nl::detail::check(a.steps > a.skip, "--steps (", a.steps, ") must exceed --skip (", a.skip, ")");
  return a;
}

struct Phase {
  std::vector<double> step_s, exchange_s;  // per measured step
  int64_t parameters = 0;                  // the model's parameter count
};

/// Trains `steps` steps of a fresh model (seed 1) on `batch` windows with
/// `comm` (null: alone) and returns the times of those after `skip`; every
/// step starts after a barrier of `align` (null: none).
Phase train(const nl::ModelConfig& cfg, const nl::TextCorpus& corpus,
            const nl::TrainValSplit& split, int64_t batch, nl::dist::Communicator* comm,
            nl::dist::Communicator* align, const Args& a) {
  nl::GPT<nl::PostLN, float, nl::Cpu> model(cfg, /*seed=*/1, nl::InitScheme::gpt2);
  nl::AdamW<float, nl::Cpu> opt(model, nl::AdamWOptions{1e-3, 0.9, 0.98, 1e-8, 0.01});
  nl::TrainerOptions o;
  o.steps = a.steps;
  o.batch_size = batch;
  o.seq_len = cfg.max_seq_len;
  o.eval_every = 0;
  o.clip_norm = 1.0;
  o.communicator = comm;
  nl::Trainer trainer(model, opt, nl::Schedule::constant(1e-3), corpus, split, o);
  Phase p;
  p.parameters = model.parameter_count();
  for (int64_t k = 0; k < a.steps; ++k) {
    if (align) align->barrier();  // every rank starts the step together
    const auto start = Clock::now();
    const nl::StepMetrics m = trainer.step();
    const double s = seconds_since(start);
    if (k < a.skip) continue;
    p.step_s.push_back(s);
    p.exchange_s.push_back(m.exchange_s);
  }
  return p;
}

/// The exchange alone: `numel` floats all-reduced in buckets of GradientSum's
/// size, all started, then waited for in order; the times after `skip`.
std::vector<double> exchange_alone(nl::dist::Communicator& comm, int64_t numel, const Args& a) {
  const int64_t per_bucket =
      nl::GradientSum<float, nl::Cpu>::kDefaultBucketBytes / int64_t{sizeof(float)};
  std::vector<float> data(static_cast<size_t>(numel), 1.0f);  // (numel)
  std::vector<double> times;
  for (int64_t k = 0; k < a.steps; ++k) {
    comm.barrier();
    const auto start = Clock::now();
    std::vector<nl::dist::CommHandle> handles;
    for (int64_t first = 0; first < numel; first += per_bucket)
      handles.push_back(
          comm.start_all_reduce_sum(data.data() + first, std::min(per_bucket, numel - first)));
    for (nl::dist::CommHandle& h : handles) h.wait();
    const double s = seconds_since(start);
    if (k >= a.skip) times.push_back(s);
  }
  return times;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    nl::dist::MpiCommunicator comm;  // one rank without a launcher
    const int ranks = comm.size();
    normlab_bench::GptShape g = normlab_bench::kGpt;
    if (a.tiny) {
      g.layers = 2;
      g.C = 32;
      g.H = 2;
      g.T = 32;
      g.B = 4;
    }
    nl::detail::check(g.B % ranks == 0, "the batch of ", g.B, " windows must split over ", ranks,
                      " ranks");
    nl::ModelConfig cfg;
    cfg.vocab_size = g.vocab;
    cfg.d_model = g.C;
    cfg.n_heads = g.H;
    cfg.n_layers = g.layers;
    cfg.d_ff = g.d_ff();
    cfg.max_seq_len = g.T;
    cfg.policy = "post_ln";
    cfg.dropout = 0;
    const nl::TextCorpus corpus =
        nl::TextCorpus::from_string(nl::synthetic_corpus(int64_t{1} << 21, 7), "synthetic");
    const nl::TrainValSplit split = nl::split_train_val(corpus.size(), {});

    nl::dist::Communicator* all = ranks > 1 ? &comm : nullptr;
    const Phase step = train(cfg, corpus, split, g.B, all, all, a);
    Phase compute;
    std::vector<double> exchange;
    const int64_t numel = step.parameters;
    if (ranks > 1) {
      compute = train(cfg, corpus, split, g.B / ranks, nullptr, all, a);
      exchange = exchange_alone(comm, numel, a);
    }
    if (comm.rank() == 0) {
      const double step_s = median(step.step_s), compute_s = median(compute.step_s),
                   exchange_s = median(exchange), exposed_s = step_s - compute_s;
      std::printf(
          "{\"library\": \"normlab\", \"ranks\": %d, \"threads\": %d, \"steps\": %zu, "
          "\"gradient_mb\": %.1f, \"tokens_per_s\": %.1f, \"step_ms\": %.2f, "
          "\"exchange_in_step_ms\": %.2f",
          ranks, nl::cpu::thread_count(), step.step_s.size(),
          static_cast<double>(numel) * 4.0 / 1e6, static_cast<double>(g.B * g.T) / step_s,
          1e3 * step_s, 1e3 * median(step.exchange_s));
      if (ranks > 1)
        std::printf(
            ", \"compute_ms\": %.2f, \"exchange_ms\": %.2f, \"exposed_ms\": %.2f, "
            "\"overlap\": %.3f",
            1e3 * compute_s, 1e3 * exchange_s, 1e3 * exposed_s,
            exchange_s > 0 ? 1.0 - exposed_s / exchange_s : 0.0);
      std::printf("}\n");
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "normlab_data_parallel_bench: %s\n", e.what());
    return 1;
  }
}
