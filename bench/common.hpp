// bench/common.hpp — what normlab's benchmarks and their libtorch peers share:
// shapes, the FLOP counts, the training data, and the entry points of each
// side. Neither normlab nor torch is included here, so that main.cpp compiles
// fast and each library's headers stay in its own translation unit.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace normlab_bench {

/// The three policies every layer and GPT benchmark runs.
enum class PolicyId { post_ln, pre_ln, normformer };
inline const char* name(PolicyId p) {
  return p == PolicyId::post_ln ? "post_ln" : p == PolicyId::pre_ln ? "pre_ln" : "normformer";
}

/// A transformer layer's sizes: input (B, T, C), H heads of D = C / H, d_ff = 4C.
struct LayerShape {
  const char* name;
  int64_t B, T, C, H;
  int64_t tokens() const { return B * T; }
  int64_t d_ff() const { return 4 * C; }
};
inline constexpr LayerShape kLayerShapes[] = {
    {"S1", 8, 128, 256, 4},
    {"S2", 8, 256, 512, 8},
    {"S3", 4, 512, 768, 12},
};

/// The GPT of the training-step benchmark: 6 layers, C 384, H 6, T 256,
/// B 8, vocabulary 256 (bytes), d_ff 4C, tied embeddings, learned positions.
struct GptShape {
  const char* name = "L6-C384-T256-B8";
  int64_t layers = 6, C = 384, H = 6, T = 256, B = 8, vocab = 256;
  int64_t d_ff() const { return 4 * C; }
  int64_t tokens() const { return B * T; }
};
inline constexpr GptShape kGpt{};

/// Floating-point operations of the GEMMs in one layer's forward pass, with
/// N = B T tokens:
///
///   q, k, v, out projections   4 x 2 N C C
///   fc1, fc2                   2 x 2 N C d_ff
///   scores q k^T, probs v      2 x 2 B H P D = 4 B P C
///
/// where P is the number of (query, key) pairs whose score a head computes:
/// T^2 for the count both sides are credited with (all T^2 scores, as a
/// dense causal layer computes them); normlab skips most of the masked half,
/// and its own, smaller count (attention_pairs_run in bench_normlab.cpp) is
/// what its GEMMs run.
///
/// The backward pass runs two GEMMs of the same size for each (the gradient
/// of each operand), so forward + backward = 3 x forward:
///
///   flops = 3 (8 N C^2 + 4 N C d_ff + 4 B P C)
///         = 3 (24 N C^2 + 4 B T^2 C)   for d_ff = 4C and P = T^2
///
/// Norms, softmax, GELU and the adds are not counted: GFLOP/s is GEMM work
/// per second, comparable with the peak of one large sgemm.
inline double layer_gemm_flops_fwd_bwd(int64_t B, int64_t T, int64_t C, int64_t d_ff,
                                       double pairs) {
  const double N = static_cast<double>(B * T), c = static_cast<double>(C),
               f = static_cast<double>(d_ff), b = static_cast<double>(B);
  return 3.0 * (8.0 * N * c * c + 4.0 * N * c * f + 4.0 * b * pairs * c);
}
/// The credited count: every head computes all T^2 scores.
inline double layer_gemm_flops_fwd_bwd(const LayerShape& s) {
  return layer_gemm_flops_fwd_bwd(s.B, s.T, s.C, s.d_ff(),
                                  static_cast<double>(s.T) * static_cast<double>(s.T));
}
/// One GPT training step: its layers (each head computing `pairs` scores),
/// plus the tied output projection logits = h E^T (2 N C V forward, x 3 with
/// its backward). The embedding lookups and the optimizer are not GEMMs.
inline double gpt_gemm_flops_step(const GptShape& g, double pairs) {
  const double N = static_cast<double>(g.tokens());
  return static_cast<double>(g.layers) * layer_gemm_flops_fwd_bwd(g.B, g.T, g.C, g.d_ff(), pairs) +
         3.0 * 2.0 * N * static_cast<double>(g.C) * static_cast<double>(g.vocab);
}
/// The credited count of a step: every head computes all T^2 scores.
inline double gpt_gemm_flops_step(const GptShape& g) {
  return gpt_gemm_flops_step(g, static_cast<double>(g.T) * static_cast<double>(g.T));
}

/// Token ids in [0, vocab): the same pseudo-random sequence on both sides.
std::vector<int64_t> token_ids(int64_t count, int64_t vocab, uint64_t seed);

/// The GFLOP/s of the reference sgemm measured so far in this process (its
/// best repetition), or 0 before it ran; see add_gemm_counters.
double& gemm_peak_gflops();
/// Sets state.counters "GFLOP/s" (flops per iteration x iterations over the
/// timed loop's seconds) and, when the reference sgemm ran earlier in this
/// process, "peak_frac" (that rate over the reference's best).
void add_gemm_counters(benchmark::State& state, double flops_per_iteration, double loop_seconds);

/// Named float arrays: what the peer check (normlab_bench --check_peer) passes
/// between the two sides: "param.<fairseq name>", inputs and results.
using Arrays = std::map<std::string, std::vector<float>>;

/// One side of the comparison: its name prefix and its benchmark bodies.
/// Each body runs setup and one untimed warm-up, then the timed loop.
struct Suite {
  const char* prefix;  ///< "normlab" or "torch"
  /// C (M, M) = A (M, M) B (M, M) in float, on all threads.
  void (*sgemm_peak)(benchmark::State&, int64_t M);
  /// y = x W^T (no bias), x (N, K), W (M, K), forward + backward; `which` is
  /// "proj" (K = M = C), "fc1" (K = C, M = d_ff) or "fc2" (K = d_ff, M = C).
  void (*matmul)(benchmark::State&, const LayerShape&, const char* which);
  /// h = softmax_causal(q k^T) v over (B, H, T, D), forward + backward.
  void (*attention)(benchmark::State&, const LayerShape&);
  /// Causal softmax of (B, H, T, T) scores, forward + backward.
  void (*softmax_causal)(benchmark::State&, const LayerShape&);
  /// Affine LayerNorm of (N, C), forward + backward.
  void (*layer_norm)(benchmark::State&, const LayerShape&);
  /// Exact (erf) GELU of (N, d_ff), forward + backward.
  void (*gelu)(benchmark::State&, const LayerShape&);
  /// Mean cross-entropy of (B, T, V) logits, forward + backward.
  void (*cross_entropy)(benchmark::State&, const GptShape&);
  /// One AdamW update of all parameters of the NormFormer GPT.
  void (*adamw_step)(benchmark::State&, const GptShape&);
  /// One TransformerLayer of the policy, forward + backward (input gradient included).
  void (*layer_fwd_bwd)(benchmark::State&, PolicyId, const LayerShape&);
  /// One GPT training step: zero_grad, forward, cross-entropy, backward, AdamW.
  void (*gpt_step)(benchmark::State&, PolicyId, const GptShape&);
  /// One warm-up and `steps` GPT training steps, outside any benchmark.
  void (*gpt_steps)(PolicyId, const GptShape&, int steps);
  /// The peer check of one layer: normlab's side ignores `given`, draws
  /// parameters (param.*) and inputs x (B, T, C), dy (B, T, C) and returns them
  /// with y = layer(x), dx and grad.<name> after y.backward(dy); the peer's
  /// side computes y, dx and grad.* from the given parameters and inputs.
  Arrays (*layer_check)(PolicyId, const LayerShape&, const Arrays& given);
  /// The same for a GPT's loss: inputs "tokens" and "targets" (B, T) as
  /// floats, results "loss" and grad.*.
  Arrays (*gpt_check)(PolicyId, const GptShape&, const Arrays& given);
  /// One layer forward + backward with the policy composed at run time
  /// (TransformerLayer<RuntimePolicy>), to set against layer_fwd_bwd's static
  /// type; normlab only (null for a peer).
  void (*layer_fwd_bwd_runtime)(benchmark::State&, PolicyId, const LayerShape&) = nullptr;
};

namespace ours {  // bench_normlab.cpp
Suite suite();
}  // namespace ours

namespace peer {  // bench_torch.cpp, built only when libtorch is found (NORMLAB_BENCH_TORCH)
Suite suite();
/// "libtorch <version>"
std::string version();
/// The BLAS the peer's GEMMs ran in: "<OpenBLAS's config>, core <kernels>"
/// (openblas_get_config / openblas_get_corename, looked up in the loaded
/// libraries: tools/peer_blas.sh says why the core matters), or "not
/// OpenBLAS" when no OpenBLAS is loaded.
std::string blas();
/// at::set_num_threads(threads): the same count as normlab's OpenMP loops.
void set_threads(int threads);
}  // namespace peer

// ---- heap allocation count (alloc_count.cpp) --------------------------------
/// Calls to the global operator new (any form, from any library in the
/// process) plus calls to malloc, calloc, realloc, aligned_alloc and
/// posix_memalign made from normlab_bench's own object files — which include
/// every normlab and Eigen function, the library being header-only — since
/// the start of the process. libtorch's C allocations are not seen, so the
/// count is only reported for normlab's benchmarks.
uint64_t heap_allocations();

}  // namespace normlab_bench
