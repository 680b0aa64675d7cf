// bench/main.cpp — normlab_bench: registers every benchmark, each of normlab's
// followed by its libtorch peer (when built with it) so that the two run
// next to each other under the same machine load.
//
// Names: normlab/<what>/<variant>/<shape> and torch/<what>/<variant>/<shape>,
// where <variant> is the policy for layers and GPT steps (post_ln, pre_ln,
// normformer), fwd_bwd for ops timed forward + backward, and step or peak
// otherwise; <shape> is S1, S2, S3 (see common.hpp), the GPT's sizes, or the
// sgemm's side.
//
//   normlab_bench [google benchmark flags]       run the benchmarks
//   normlab_bench --check_peer
//       checks that the libtorch peers compute what normlab does: one layer and
//       a small GPT per policy on the same parameters and inputs, outputs and
//       every gradient compared (exit status 1 when one differs);
//       NORMLAB_CHECK_VERBOSE=1 prints each array's difference.
//   normlab_bench --gpt_memory=IMPL/POLICY [--gpt_memory_steps=N]
//       IMPL normlab or torch: runs one warm-up and N (default 3) GPT training
//       steps in this process only, then prints one JSON line with the peak
//       resident memory (getrusage's ru_maxrss) and the resident memory before
//       the model was built. One process per measurement: both libraries live
//       in this executable, and a process's peak never goes down.
//
// machine/fma_peak/<isa> (registered first of all) is no comparison: the rate
// of independent vector FMAs on every OpenMP thread, for the instruction set
// of the kernels that run (NORMLAB_CPU_KERNELS or the CPU's best), the
// ceiling against which the table puts both sides' sgemm.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NORMLAB_BENCH_X86 1
#endif

#include "common.hpp"
#include "normlab/backend/cpu/kernel_path.hpp"

namespace nb = normlab_bench;

namespace {

/// The CPU's "model name" from /proc/cpuinfo ("unknown" elsewhere).
std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown";
}

int omp_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

#ifdef NORMLAB_BENCH_X86
// Each thread: kChains independent chains of `iterations` FMAs on vectors of
// 8 (AVX2) or 16 (AVX-512) floats. 12 chains cover an FMA latency of 4-6
// cycles on two pipes, and with their two operands fit in the 16 ymm
// registers. Returns the sum of the chains' lanes (printed nowhere; it keeps
// the chains alive).
constexpr int kChains = 12;

__attribute__((target("avx2,fma"))) float fma_chains_8(int64_t iterations) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(1.0f + 1e-3f * static_cast<float>(i));
  const __m256 scale = _mm256_set1_ps(0.999999f), shift = _mm256_set1_ps(1e-6f);
  for (int64_t k = 0; k < iterations; ++k)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], scale, shift);
  alignas(32) float lanes[8];
  float sum = 0;
  for (int i = 0; i < kChains; ++i) {
    _mm256_store_ps(lanes, acc[i]);
    for (float x : lanes) sum += x;
  }
  return sum;
}

__attribute__((target("avx512f"))) float fma_chains_16(int64_t iterations) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(1.0f + 1e-3f * static_cast<float>(i));
  const __m512 scale = _mm512_set1_ps(0.999999f), shift = _mm512_set1_ps(1e-6f);
  for (int64_t k = 0; k < iterations; ++k)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], scale, shift);
  // Through memory, as fma_chains_8: _mm512_reduce_add_ps passes GCC 12 an
  // undefined vector that it reports as uninitialized in a build without
  // -mavx512f (PR 105593), which -Werror stops.
  alignas(64) float lanes[16];
  float sum = 0;
  for (int i = 0; i < kChains; ++i) {
    _mm512_store_ps(lanes, acc[i]);
    for (float x : lanes) sum += x;
  }
  return sum;
}

/// machine/fma_peak/<isa>: GFLOP/s of fma_chains_<lanes> on every OpenMP thread
/// (2 flops per lane and FMA).
void fma_peak(benchmark::State& state, int lanes) {
  constexpr int64_t kIterations = 20'000'000;
  const int threads = omp_threads();
  volatile float sink = 0;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      const float s = lanes == 16 ? fma_chains_16(kIterations) : fma_chains_8(kIterations);
#pragma omp critical
      sink = sink + s;
    }
  }
  // Wall time (Google Benchmark's rates divide by the main thread's CPU time).
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double flops = 2.0 * lanes * kChains * static_cast<double>(kIterations) * threads *
                       static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = flops / seconds / 1e9;
}
#endif

/// Registers <prefix>/<suffix> of every suite, one after the other.
template <class F>
void each(const std::vector<nb::Suite>& suites, const std::string& suffix, F body) {
  for (const nb::Suite& suite : suites)
    benchmark::RegisterBenchmark((std::string(suite.prefix) + "/" + suffix).c_str(),
                                 [suite, body](benchmark::State& st) { body(suite, st); })
        ->UseRealTime()  // the work runs on several threads
        ->Unit(benchmark::kMillisecond);
}

void register_all(const std::vector<nb::Suite>& suites) {
  using nb::Suite, nb::LayerShape, nb::PolicyId, benchmark::State;
  constexpr int64_t kPeakSide = 2048;
#ifdef NORMLAB_BENCH_X86
  // The machine's ceiling for the kernels' instruction set (none for portable).
  const normlab::cpu::CpuKernels isa = normlab::cpu::cpu_kernels();
  if (isa != normlab::cpu::CpuKernels::portable) {
    const int lanes = isa == normlab::cpu::CpuKernels::avx512 ? 16 : 8;
    benchmark::RegisterBenchmark(
        (std::string("machine/fma_peak/") + normlab::cpu::to_string(isa)).c_str(),
        [lanes](benchmark::State& st) { fma_peak(st, lanes); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
#endif
  // The reference GEMM first: later benchmarks report their fraction of it
  // (in order of registration; with tools/bench.sh's random interleaving the
  // peak_frac counter is against the best sgemm run so far, and only the
  // table's %peak, computed from the whole run, counts).
  each(suites, "sgemm/peak/" + std::to_string(kPeakSide),
       [](const Suite& x, State& st) { x.sgemm_peak(st, kPeakSide); });
  for (const LayerShape& s : nb::kLayerShapes) {
    const std::string at = std::string("/fwd_bwd/") + s.name;
    for (const char* which : {"proj", "fc1", "fc2"})
      each(suites, std::string("matmul_") + which + at,
           [s, which](const Suite& x, State& st) { x.matmul(st, s, which); });
    each(suites, "attention" + at, [s](const Suite& x, State& st) { x.attention(st, s); });
    each(suites, "softmax_causal" + at,
         [s](const Suite& x, State& st) { x.softmax_causal(st, s); });
    each(suites, "layer_norm" + at, [s](const Suite& x, State& st) { x.layer_norm(st, s); });
    each(suites, "gelu" + at, [s](const Suite& x, State& st) { x.gelu(st, s); });
  }
  const nb::GptShape g = nb::kGpt;
  each(suites, std::string("cross_entropy/fwd_bwd/") + g.name,
       [g](const Suite& x, State& st) { x.cross_entropy(st, g); });
  each(suites, std::string("adamw/step/") + g.name,
       [g](const Suite& x, State& st) { x.adamw_step(st, g); });
  for (const LayerShape& s : nb::kLayerShapes)
    for (PolicyId p : {PolicyId::post_ln, PolicyId::pre_ln, PolicyId::normformer})
      each(suites, std::string("layer_fwd_bwd/") + name(p) + "/" + s.name,
           [p, s](const Suite& x, State& st) { x.layer_fwd_bwd(st, p, s); });
  for (const LayerShape& s : nb::kLayerShapes)
    for (const Suite& suite : suites)
      if (suite.layer_fwd_bwd_runtime != nullptr)
        benchmark::RegisterBenchmark(
            (std::string(suite.prefix) + "/layer_fwd_bwd/normformer_runtime/" + s.name).c_str(),
            [suite, s](State& st) { suite.layer_fwd_bwd_runtime(st, PolicyId::normformer, s); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
  for (PolicyId p : {PolicyId::post_ln, PolicyId::pre_ln, PolicyId::normformer})
    each(suites, std::string("gpt_step/") + name(p) + "/" + g.name,
         [p, g](const Suite& x, State& st) { x.gpt_step(st, p, g); });
  // The reference again at the end: a shared machine's load changes during a
  // run, and the table takes the better of the two as the peak.
  each(suites, "sgemm/peak_end/" + std::to_string(kPeakSide),
       [](const Suite& x, State& st) { x.sgemm_peak(st, kPeakSide); });
}

/// --check_peer: the libtorch layer and GPT against normlab's on the same
/// parameters and inputs (see Suite::layer_check); returns 0 when every
/// output and gradient agrees to float rounding.
int check_peer(const std::vector<nb::Suite>& suites) {
  if (suites.size() < 2) {
    std::cerr << "normlab_bench: --check_peer needs the libtorch peer (built without it)\n";
    return 2;
  }
  // front() and back(), not [0] and [1]: built without the peer, GCC 12 saw
  // one suite and reported [1] out of bounds, past the check above.
  const nb::Suite &ours_suite = suites.front(), &peer_suite = suites.back();
  // Largest |ours - peer| over the largest |ours| of the array: float
  // rounding in sums of a few hundred terms stays far below the bound.
  constexpr double kTolerance = 1e-4;
  const nb::LayerShape layer{"check", 2, 8, 16, 2};
  const nb::GptShape gpt{
      .name = "check", .layers = 2, .C = 16, .H = 2, .T = 8, .B = 2, .vocab = 256};
  bool ok = true;
  for (nb::PolicyId p : {nb::PolicyId::post_ln, nb::PolicyId::pre_ln, nb::PolicyId::normformer}) {
    for (const char* what : {"layer", "gpt"}) {
      const bool is_layer = std::string(what) == "layer";
      const nb::Arrays ours =
          is_layer ? ours_suite.layer_check(p, layer, {}) : ours_suite.gpt_check(p, gpt, {});
      const nb::Arrays peer =
          is_layer ? peer_suite.layer_check(p, layer, ours) : peer_suite.gpt_check(p, gpt, ours);
      // The scale of an array is its largest |value|, but at least 1e-3 of the
      // largest over all results of the check (`largest`). k_proj's bias has a
      // zero gradient in exact arithmetic (softmax ignores a shift shared by
      // all keys), so both sides return rounding noise there: its scale is
      // `largest` itself.
      double largest = 0;
      for (const auto& [key, b] : peer)
        for (float v : b) largest = std::max(largest, std::abs(static_cast<double>(v)));
      double worst = 0;
      std::string worst_key = "(none)";
      size_t compared = 0;
      for (const auto& [key, b] : peer) {
        const auto it = ours.find(key);
        if (it == ours.end() || it->second.size() != b.size()) {
          std::cerr << "peer check " << name(p) << " " << what << ": normlab has no " << key
                    << " of " << b.size() << " values\n";
          ok = false;
          continue;
        }
        double diff = 0, scale = key.ends_with("k_proj.bias") ? largest : 1e-3 * largest;
        for (size_t i = 0; i < b.size(); ++i) {
          diff = std::max(diff, std::abs(static_cast<double>(it->second[i]) - b[i]));
          scale = std::max(scale, std::abs(static_cast<double>(it->second[i])));
        }
        ++compared;
        if (std::getenv("NORMLAB_CHECK_VERBOSE"))
          std::printf("  %s: max |diff| %.3e, scale %.3e\n", key.c_str(), diff, scale);
        if (!(diff / scale <= worst)) {  // NaN counts as worst
          worst = diff / scale;
          worst_key = key;
        }
      }
      size_t expected = 0;  // results normlab produced: everything but param.* and the inputs
      for (const auto& [key, v] : ours)
        if (!key.starts_with("param.") && key != "x" && key != "dy" && key != "tokens" &&
            key != "targets")
          ++expected;
      const bool pass = worst <= kTolerance && compared == expected;
      ok = ok && pass;
      std::printf(
          "peer check %-10s %-5s: %zu of %zu arrays compared, worst %s relative error %.2e"
          " (bound %.0e): %s\n",
          name(p), what, compared, expected, worst_key.c_str(), worst, kTolerance,
          pass ? "ok" : "FAILED");
    }
  }
  return ok ? 0 : 1;
}

/// VmRSS of this process in KiB, from /proc/self/status (0 when unreadable).
long resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> value;
      return value;
    }
    status.ignore(1 << 12, '\n');
  }
  return 0;
}

/// --gpt_memory=IMPL/POLICY: see the file comment.
int gpt_memory(const std::vector<nb::Suite>& suites, const std::string& spec, int steps) {
  const size_t slash = spec.find('/');
  const std::string impl = spec.substr(0, slash);
  const std::string policy = slash == std::string::npos ? "" : spec.substr(slash + 1);
  nb::PolicyId p{};
  if (policy == "post_ln")
    p = nb::PolicyId::post_ln;
  else if (policy == "pre_ln")
    p = nb::PolicyId::pre_ln;
  else if (policy == "normformer")
    p = nb::PolicyId::normformer;
  else {
    std::cerr << "normlab_bench: --gpt_memory expects IMPL/POLICY with POLICY post_ln, pre_ln or "
                 "normformer, got '"
              << spec << "'\n";
    return 2;
  }
  if (impl != "normlab" && !(suites.size() > 1 && impl == "torch")) {
    std::cerr << "normlab_bench: --gpt_memory expects IMPL normlab"
              << (suites.size() > 1 ? " or torch" : " (built without the libtorch peer)")
              << ", got '" << impl << "'\n";
    return 2;
  }
  const long before = resident_kib();
  for (const nb::Suite& suite : suites)
    if (impl == suite.prefix) suite.gpt_steps(p, nb::kGpt, steps);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf(
      "{\"name\": \"%s/gpt_step/%s/%s\", \"peak_rss_mib\": %.1f, \"rss_before_model_mib\": %.1f, "
      "\"steps\": %d, \"threads\": %d}\n",
      impl.c_str(), policy.c_str(), nb::kGpt.name, static_cast<double>(usage.ru_maxrss) / 1024.0,
      static_cast<double>(before) / 1024.0, steps, omp_threads());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = omp_threads();
  std::vector<nb::Suite> suites = {nb::ours::suite()};
#ifdef NORMLAB_BENCH_TORCH
  nb::peer::set_threads(threads);
  suites.push_back(nb::peer::suite());
#endif
  std::string memory_spec;
  int memory_steps = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg.starts_with("--gpt_memory="))
      memory_spec = arg.substr(13);
    else if (arg.starts_with("--gpt_memory_steps="))
      memory_steps = std::atoi(argv[i] + 19);
  }
  if (argc == 2 && std::string_view(argv[1]) == "--check_peer") return check_peer(suites);
  if (!memory_spec.empty()) {
    if (memory_steps < 1) {
      std::cerr << "normlab_bench: --gpt_memory_steps needs a positive number\n";
      return 2;
    }
    return gpt_memory(suites, memory_spec, memory_steps);
  }

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("omp_threads", std::to_string(threads));
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  benchmark::AddCustomContext("OMP_WAIT_POLICY", wait ? wait : "(unset)");
  benchmark::AddCustomContext("march", NORMLAB_BENCH_MARCH);  // see bench/CMakeLists.txt
  // The CPU and the kernels' instruction set (NORMLAB_CPU_KERNELS may lower it):
  // figures from different machines or paths are never mixed.
  benchmark::AddCustomContext("cpu_model", cpu_model_name());
  benchmark::AddCustomContext("cpu_kernels", normlab::cpu::to_string(normlab::cpu::cpu_kernels()));
#ifdef NORMLAB_BENCH_TORCH
  benchmark::AddCustomContext("peer", nb::peer::version());
  benchmark::AddCustomContext("peer_blas", nb::peer::blas());
  // The peer's own instruction-set choices, when the caller set them
  // (tools/bench.sh --isa avx2 on an AVX-512 CPU does).
  for (const char* knob : {"ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"})
    if (const char* value = std::getenv(knob)) benchmark::AddCustomContext(knob, value);
#else
  benchmark::AddCustomContext("peer", "none (built without libtorch)");
#endif
  register_all(suites);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
