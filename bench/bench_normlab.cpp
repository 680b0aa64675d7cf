// bench/bench_normlab.cpp — normlab's side of normlab_bench: the reference
// sgemm, ops at layer shapes, one TransformerLayer forward + backward per
// policy, and a GPT training step. Every function body is the work one
// benchmark iteration times; setup and one warm-up run stay outside the loop.
#include <normlab/normlab.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "common.hpp"

namespace normlab_bench {

namespace nl = normlab;
using Tens = nl::Tensor<float, nl::Cpu>;
using Var = nl::Variable<float, nl::Cpu>;
using Tokens = nl::Tensor<int64_t, nl::Cpu>;

std::vector<int64_t> token_ids(int64_t count, int64_t vocab, uint64_t seed) {
  std::vector<int64_t> ids(static_cast<size_t>(count));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t& id : ids) {  // splitmix64: the same ids on every platform
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    id = static_cast<int64_t>((z ^ (z >> 31)) % static_cast<uint64_t>(vocab));
  }
  return ids;
}

double& gemm_peak_gflops() {
  static double peak = 0;
  return peak;
}

void add_gemm_counters(benchmark::State& state, double flops_per_iteration, double loop_seconds) {
  if (loop_seconds <= 0 || state.iterations() == 0) return;
  const double gflops =
      flops_per_iteration * static_cast<double>(state.iterations()) / loop_seconds * 1e-9;
  state.counters["GFLOP/s"] = gflops;
  if (gemm_peak_gflops() > 0) state.counters["peak_frac"] = gflops / gemm_peak_gflops();
}

/// The (query, key) pairs whose score one head of normlab's causal attention
/// computes over T tokens: its row blocks (ops/attention.hpp) each see only
/// the keys up to their last row, so the masked blocks are skipped; T^2 at
/// most (62.5% of it at T = 256).
double attention_pairs_run(int64_t T) {
  double pairs = 0;
  for (int64_t r0 = 0; r0 < T; r0 += nl::detail::kAttentionRowBlock) {
    const int64_t r1 = std::min(T, r0 + nl::detail::kAttentionRowBlock);
    pairs += static_cast<double>((r1 - r0) * nl::detail::causal_key_end(r1, T, T));
  }
  return pairs;
}

/// The GEMM work normlab's kernels run per iteration, the masked attention
/// blocks left out, as the counter GFLOP/iter (bench_table.py sets it
/// against the machine's FMA peak: the least time any GEMM could take).
void add_gemm_work_run(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/iter"] = flops_per_iteration * 1e-9;
}

/// A layer's counters: its credited GEMM rate and the GEMM work it runs.
void add_layer_counters(benchmark::State& state, const LayerShape& s, double loop_seconds) {
  add_gemm_counters(state, layer_gemm_flops_fwd_bwd(s), loop_seconds);
  add_gemm_work_run(state,
                    layer_gemm_flops_fwd_bwd(s.B, s.T, s.C, s.d_ff(), attention_pairs_run(s.T)));
}

namespace ours {
namespace {

/// Counts heap allocations over the timed loop: call before the loop, then
/// finish(state) after it.
struct AllocationCounter {
  uint64_t start = heap_allocations();
  void finish(benchmark::State& state) const {
    const double n = static_cast<double>(heap_allocations() - start);
    state.counters["allocs/iter"] =
        benchmark::Counter(n / static_cast<double>(std::max<int64_t>(state.iterations(), 1)));
  }
};

/// A leaf of `shape` drawn from N(0, 1), requiring grad when `grad`.
Var leaf(const nl::Shape& shape, nl::Generator& gen, bool grad) {
  return Var(Tens::normal(shape, gen), grad);
}

/// Runs `body` once untimed, then once per iteration, with the allocation
/// counter around the loop. Returns the loop's seconds.
template <class F>
double timed(benchmark::State& state, F&& body) {
  body();
  AllocationCounter allocs;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) body();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  allocs.finish(state);
  return seconds;
}

nl::ModelConfig layer_config(PolicyId p, int64_t C, int64_t H, int64_t d_ff, int64_t T,
                             int64_t layers) {
  nl::ModelConfig cfg;
  cfg.d_model = C;
  cfg.n_heads = H;
  cfg.d_ff = d_ff;
  cfg.max_seq_len = T;
  cfg.n_layers = layers;
  cfg.policy = name(p);
  return cfg;
}

/// The config of the benchmark GPT `g` (tied embeddings, learned positions).
nl::ModelConfig gpt_config(PolicyId p, const GptShape& g) {
  nl::ModelConfig cfg = layer_config(p, g.C, g.H, g.d_ff(), g.T, g.layers);
  cfg.vocab_size = g.vocab;
  return cfg;
}

template <class Policy>
double layer_fwd_bwd_of(benchmark::State& state, PolicyId p, const LayerShape& s) {
  nl::Generator gen(1);
  const nl::TransformerLayer<Policy, float, nl::Cpu> layer(
      layer_config(p, s.C, s.H, s.d_ff(), s.T, 1), gen);
  const Var x = leaf({s.B, s.T, s.C}, gen, true);      // (B, T, C), its gradient computed too
  const Tens dy = Tens::normal({s.B, s.T, s.C}, gen);  // (B, T, C) upstream gradient
  typename nl::TransformerLayer<Policy, float, nl::Cpu>::Options opt;
  opt.causal = true;
  return timed(state, [&] {
    const Var y = layer.forward(x, opt);  // (B, T, C)
    y.backward(dy);
  });
}

/// A GPT with its AdamW optimizer and fixed training data: step() is one
/// training step (zero_grad with set_to_none, forward, loss, backward,
/// update); the libtorch peer drops its gradients the same way.
template <class Policy>
struct GptTraining {
  GptTraining(PolicyId p, const GptShape& g)
      : model(gpt_config(p, g), /*seed=*/1, nl::InitScheme::gpt2),  // as the libtorch peer
        opt(model, {6e-4, 0.9, 0.98, 1e-8, 0.01}),
        tokens(Tokens::from_vector({g.B, g.T}, token_ids(g.tokens(), g.vocab, 1))),
        targets(Tokens::from_vector({g.B, g.T}, token_ids(g.tokens(), g.vocab, 2))) {}
  void step() {
    opt.zero_grad(/*set_to_none=*/true);
    const Var loss = model.loss(tokens, targets);  // ()
    loss.backward();
    opt.step();
  }
  nl::GPT<Policy, float, nl::Cpu> model;
  nl::AdamW<float, nl::Cpu> opt;
  Tokens tokens, targets;  // (B, T) each
};

template <class F>
void with_policy(PolicyId p, F&& f) {
  switch (p) {
    case PolicyId::post_ln:
      return f(nl::PostLN{});
    case PolicyId::pre_ln:
      return f(nl::PreLN{});
    case PolicyId::normformer:
      return f(nl::NormFormer{});
  }
}

void sgemm_peak(benchmark::State& state, int64_t M) {
  // This machine's GEMM throughput: the product the layers run, cpu::gemm in
  // float (normlab's AVX-512 kernel where the CPU has it, Eigen elsewhere),
  // on all threads.
  using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Matrix a = Matrix::Random(M, M), b = Matrix::Random(M, M);  // (M, M)
  Matrix c(M, M);                                                   // (M, M)
  auto product = [&] {
    nl::cpu::gemm(nl::Cpu{}, false, false, M, M, M, 1.0f, a.data(), M, b.data(), M, 0.0f, c.data(),
                  M);
  };
  const double seconds = timed(state, [&] {
    product();
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  });
  const double flops =
      2.0 * static_cast<double>(M) * static_cast<double>(M) * static_cast<double>(M);
  add_gemm_counters(state, flops, seconds);  // before the peak moves: this run's own fraction
  if (seconds > 0)
    gemm_peak_gflops() = std::max(gemm_peak_gflops(),
                                  flops * static_cast<double>(state.iterations()) / seconds * 1e-9);
}

void matmul(benchmark::State& state, const LayerShape& s, const char* which) {
  // y = x W^T with x (N, K) and W (M, K): one linear layer's GEMM, no bias.
  const std::string w(which);
  const int64_t N = s.tokens();
  const int64_t K = w == "fc2" ? s.d_ff() : s.C, M = w == "fc1" ? s.d_ff() : s.C;
  nl::Generator gen(1);
  const Var x = leaf({N, K}, gen, true);       // (N, K)
  const Var weight = leaf({M, K}, gen, true);  // (M, K)
  const Tens dy = Tens::normal({N, M}, gen);   // (N, M)
  const double seconds = timed(state, [&] { nl::matmul(x, weight, false, true).backward(dy); });
  add_gemm_counters(state, 3.0 * 2.0 * static_cast<double>(N * M * K), seconds);
}

void attention(benchmark::State& state, const LayerShape& s) {
  // h = softmax_causal(q k^T) v per head, forward + backward, with the op the
  // layers run: heads read in place from (B, T, C), the masked blocks skipped.
  nl::Generator gen(1);
  const Var q = leaf({s.B, s.T, s.C}, gen, true);  // (B, T, C)
  const Var k = leaf({s.B, s.T, s.C}, gen, true);  // (B, T, C)
  const Var v = leaf({s.B, s.T, s.C}, gen, true);  // (B, T, C)
  const Tens dh = Tens::normal({s.B, s.T, s.C}, gen);
  const double seconds = timed(state, [&] {
    nl::multi_head_attention(q, k, v, s.H, 1.0, true).backward(dh);  // (B, T, C)
  });
  // The full products' work, as for the peer (the masked half is not done).
  add_gemm_counters(state, 3.0 * 4.0 * static_cast<double>(s.B * s.T * s.T * s.C), seconds);
}

void softmax_causal(benchmark::State& state, const LayerShape& s) {
  nl::Generator gen(1);
  const Var x = leaf({s.B, s.H, s.T, s.T}, gen, true);  // (B, H, T, T) scores
  const Tens dy = Tens::normal({s.B, s.H, s.T, s.T}, gen);
  timed(state, [&] { nl::softmax(x, true).backward(dy); });
}

void layer_norm(benchmark::State& state, const LayerShape& s) {
  nl::Generator gen(1);
  const Var x = leaf({s.tokens(), s.C}, gen, true);  // (N, C)
  const Var gamma(Tens::ones({s.C}), true), beta(Tens::zeros({s.C}), true);
  const Tens dy = Tens::normal({s.tokens(), s.C}, gen);
  timed(state, [&] { nl::layer_norm(x, gamma, beta, 1e-5).backward(dy); });
}

void gelu(benchmark::State& state, const LayerShape& s) {
  nl::Generator gen(1);
  const Var x = leaf({s.tokens(), s.d_ff()}, gen, true);  // (N, d_ff)
  const Tens dy = Tens::normal({s.tokens(), s.d_ff()}, gen);
  timed(state, [&] { nl::gelu(x).backward(dy); });
}

void cross_entropy(benchmark::State& state, const GptShape& g) {
  nl::Generator gen(1);
  const Var logits = leaf({g.B, g.T, g.vocab}, gen, true);  // (B, T, V)
  const Tokens targets = Tokens::from_vector({g.B, g.T}, token_ids(g.tokens(), g.vocab, 2));
  timed(state, [&] { nl::cross_entropy(logits, targets).backward(); });
}

void adamw_step(benchmark::State& state, const GptShape& g) {
  // One AdamW update of every parameter of the GPT (gradients from one backward).
  const nl::ModelConfig cfg = gpt_config(PolicyId::normformer, g);
  nl::GPT<nl::NormFormer, float, nl::Cpu> model(cfg, 1);
  nl::AdamW<float, nl::Cpu> opt(model, {6e-4, 0.9, 0.98, 1e-8, 0.01});
  const Tokens tokens = Tokens::from_vector({g.B, g.T}, token_ids(g.tokens(), g.vocab, 1));
  model.loss(tokens, tokens).backward();
  timed(state, [&] { opt.step(); });
  state.counters["params"] = static_cast<double>(model.parameter_count());
}

void layer_fwd_bwd(benchmark::State& state, PolicyId p, const LayerShape& s) {
  double seconds = 0;
  with_policy(p, [&](auto policy) { seconds = layer_fwd_bwd_of<decltype(policy)>(state, p, s); });
  add_layer_counters(state, s, seconds);
}

void layer_fwd_bwd_runtime(benchmark::State& state, PolicyId p, const LayerShape& s) {
  const double seconds = layer_fwd_bwd_of<nl::RuntimePolicy>(state, p, s);
  add_layer_counters(state, s, seconds);
}

void gpt_step(benchmark::State& state, PolicyId p, const GptShape& g) {
  double seconds = 0;
  with_policy(p, [&](auto policy) {
    GptTraining<decltype(policy)> run(p, g);
    seconds = timed(state, [&] { run.step(); });
  });
  add_gemm_counters(state, gpt_gemm_flops_step(g), seconds);
  add_gemm_work_run(state, gpt_gemm_flops_step(g, attention_pairs_run(g.T)));
  if (seconds > 0)
    state.counters["tokens/s"] =
        static_cast<double>(g.tokens()) * static_cast<double>(state.iterations()) / seconds;
}

void gpt_steps(PolicyId p, const GptShape& g, int steps) {
  with_policy(p, [&](auto policy) {
    GptTraining<decltype(policy)> run(p, g);
    for (int i = 0; i <= steps; ++i) run.step();  // one warm-up, then `steps`
  });
}

/// Moves every parameter away from its init (norm gains of 1, zero biases,
/// unit head scales), so that a parameter the peer puts in the wrong place
/// shows; returns them as param.<name>.
Arrays perturbed_parameters(nl::Module<float, nl::Cpu>& m, nl::Generator& gen) {
  Arrays out;
  for (auto& [pname, p, kind] : m.named_parameters()) {
    std::vector<float> v = p.data().to_vector();
    const std::vector<float> noise = Tens::normal(p.shape(), gen, 0.f, 0.2f).to_vector();
    for (size_t i = 0; i < v.size(); ++i) v[i] += noise[i];
    Tens value = p.data();  // a handle: copying into it sets the parameter
    value.copy_from(Tens::from_vector(p.shape(), v));
    out["param." + pname] = v;
  }
  return out;
}
void add_gradients(nl::Module<float, nl::Cpu>& m, Arrays& out) {
  for (auto& [pname, p, kind] : m.named_parameters()) out["grad." + pname] = p.grad().to_vector();
}

Arrays layer_check(PolicyId p, const LayerShape& s, const Arrays&) {
  Arrays out;
  with_policy(p, [&](auto policy) {
    using Policy = decltype(policy);
    nl::Generator gen(7);
    nl::TransformerLayer<Policy, float, nl::Cpu> layer(layer_config(p, s.C, s.H, s.d_ff(), s.T, 1),
                                                       gen);
    out = perturbed_parameters(layer, gen);
    const Var x = leaf({s.B, s.T, s.C}, gen, true);      // (B, T, C)
    const Tens dy = Tens::normal({s.B, s.T, s.C}, gen);  // (B, T, C)
    typename nl::TransformerLayer<Policy, float, nl::Cpu>::Options opt;
    opt.causal = true;
    const Var y = layer.forward(x, opt);  // (B, T, C)
    y.backward(dy);
    out["x"] = x.data().to_vector();
    out["dy"] = dy.to_vector();
    out["y"] = y.data().to_vector();
    out["dx"] = x.grad().to_vector();
    add_gradients(layer, out);
  });
  return out;
}

Arrays gpt_check(PolicyId p, const GptShape& g, const Arrays&) {
  Arrays out;
  with_policy(p, [&](auto policy) {
    nl::Generator gen(7);
    nl::GPT<decltype(policy), float, nl::Cpu> model(gpt_config(p, g), 1);
    out = perturbed_parameters(model, gen);
    const std::vector<int64_t> tokens = token_ids(g.tokens(), g.vocab, 1),
                               targets = token_ids(g.tokens(), g.vocab, 2);
    const Var loss = model.loss(Tokens::from_vector({g.B, g.T}, tokens),
                                Tokens::from_vector({g.B, g.T}, targets));  // ()
    loss.backward();
    out["tokens"].assign(tokens.begin(), tokens.end());
    out["targets"].assign(targets.begin(), targets.end());
    out["loss"] = {loss.item()};
    add_gradients(model, out);
  });
  return out;
}

}  // namespace

Suite suite() {
  return {"normlab",  sgemm_peak, matmul,        attention,  softmax_causal,
          layer_norm, gelu,       cross_entropy, adamw_step, layer_fwd_bwd,
          gpt_step,   gpt_steps,  layer_check,   gpt_check,  layer_fwd_bwd_runtime};
}

}  // namespace ours
}  // namespace normlab_bench
