// normlab/backend/cpu/cpu.hpp — the CPU backend tag and its memory functions.
//
// Kernels are free functions in namespace normlab::cpu taking the tag `Cpu`
// as first argument; ops call them unqualified, so argument-dependent lookup
// picks the backend from the tag type. The CUDA backend mirrors every
// signature in namespace normlab::cuda.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "normlab/backend/cpu/allocator.hpp"
#include "normlab/backend/functors.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/random.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// CPU backend: a packed AVX-512 kernel or Eigen for GEMM, OpenMP for
/// element-wise and row-wise loops
/// (thread count from OMP_NUM_THREADS, as OpenMP reads it).
struct Cpu {
  static constexpr const char* name = "cpu";
};

/// Loops shorter than this run on one thread: forking costs more than it saves.
inline constexpr int64_t kParallelGrain = 1 << 14;

/// The number of threads an OpenMP parallel region would use (1 without OpenMP).
inline int thread_count() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// The workers parallel_tasks(Cpu, n, body) runs n tasks on: 1 for n <= 1,
/// else min(n, thread_count()).
inline int64_t parallel_task_workers(Cpu, int64_t n) {
  return n > 1 ? std::min<int64_t>(n, thread_count()) : 1;
}

/// Runs body(i, worker) for every i in [0, n), each once, on the OpenMP
/// threads, which take the indices one at a time (schedule dynamic); worker
/// in [0, parallel_task_workers(n)) names the thread, and no two tasks run
/// at once with the same worker, so a task may use scratch memory the
/// caller set aside per worker. An optional kernel (ops detect it with a
/// requires-expression): ops whose work splits into independent tasks, like
/// attention's heads, run one parallel region for all of them instead of one
/// per kernel call. Kernels called inside body run on the calling thread.
/// Requires: body(i, worker) writes nothing another index reads or writes
/// (besides its worker's scratch), and does not throw; its result must not
/// depend on the worker that runs it.
template <class F>
void parallel_tasks(Cpu, int64_t n, F&& body) {
  [[maybe_unused]] const int workers = static_cast<int>(parallel_task_workers(Cpu{}, n));
#pragma omp parallel for schedule(dynamic, 1) num_threads(workers) if (workers > 1)
  for (int64_t i = 0; i < n; ++i) {
#ifdef _OPENMP
    body(i, int64_t{omp_get_thread_num()});
#else
    body(i, int64_t{0});
#endif
  }
}

/// sum_{c < n} term(c), accumulated in kSumLanes interleaved partial sums
/// (lane j takes c = j mod kSumLanes) that are added in lane order at the end:
/// the compiler vectorizes the lanes without reassociating anything, and the
/// order depends on n alone. 64 lanes are four AVX-512 vectors of float, whose
/// additions overlap; 16 (one vector) left every row reduction waiting on
/// the latency of one add per vector (LayerNorm forward + backward over
/// (2048, 2048) took 1.24x as long).
inline constexpr int64_t kSumLanes = 64;
template <class Scalar, class Term>
Scalar lane_sum(int64_t n, Term term) {
  Scalar acc[kSumLanes] = {};
  int64_t c = 0;
  for (; c + kSumLanes <= n; c += kSumLanes)
    for (int64_t j = 0; j < kSumLanes; ++j) acc[j] += term(c + j);
  for (int64_t j = 0; c < n; ++c, ++j) acc[j] += term(c);
  Scalar total = 0;
  for (int64_t j = 0; j < kSumLanes; ++j) total += acc[j];
  return total;
}

/// max_{c < n} term(c) (n > 0), over the same lanes as lane_sum.
template <class Scalar, class Term>
Scalar lane_max(int64_t n, Term term) {
  Scalar acc[kSumLanes];
  for (int64_t j = 0; j < kSumLanes; ++j) acc[j] = term(0);
  int64_t c = 0;
  for (; c + kSumLanes <= n; c += kSumLanes)
    for (int64_t j = 0; j < kSumLanes; ++j) acc[j] = std::max(acc[j], term(c + j));
  for (int64_t j = 0; c < n; ++c, ++j) acc[j] = std::max(acc[j], term(c));
  Scalar total = acc[0];
  for (int64_t j = 1; j < kSumLanes; ++j) total = std::max(total, acc[j]);
  return total;
}

/// 64-byte aligned memory (one cache line, the widest SIMD load), from the
/// caching allocator (backend/cpu/allocator.hpp): freed blocks are reused.
inline void* allocate_bytes(Cpu, size_t bytes) {
  return CachingAllocator::instance().allocate(bytes);
}
inline void deallocate_bytes(Cpu, void* p) {
  CachingAllocator::instance().deallocate(p);
}

template <class Scalar>
void copy_to_host(Cpu, Scalar* host_dst, const Scalar* src, int64_t n) {
  std::memcpy(host_dst, src, static_cast<size_t>(n) * sizeof(Scalar));
}
template <class Scalar>
void copy_from_host(Cpu, Scalar* dst, const Scalar* host_src, int64_t n) {
  std::memcpy(dst, host_src, static_cast<size_t>(n) * sizeof(Scalar));
}
template <class Scalar>
void copy(Cpu, Scalar* dst, const Scalar* src, int64_t n) {
  std::memmove(dst, src, static_cast<size_t>(n) * sizeof(Scalar));
}
template <class Scalar>
void fill(Cpu, Scalar* dst, int64_t n, Scalar value) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) dst[i] = value;
}

/// dst[i] = uniform(seed, first_block, i) in [lo, hi) — see core/random.hpp.
template <class Scalar>
void fill_uniform(Cpu, Scalar* dst, int64_t n, uint64_t seed, uint64_t first_block, Scalar lo,
                  Scalar hi) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) dst[i] = philox_uniform<Scalar>(seed, first_block, i, lo, hi);
}
/// dst[i] = normal(seed, first_block, i) with the given mean and std.
template <class Scalar>
void fill_normal(Cpu, Scalar* dst, int64_t n, uint64_t seed, uint64_t first_block, Scalar mean,
                 Scalar std) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) dst[i] = philox_normal<Scalar>(seed, first_block, i, mean, std);
}

/// dst[i] += alpha * src[i]
template <class Scalar>
void accumulate(Cpu, Scalar* dst, const Scalar* src, int64_t n, Scalar alpha) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) dst[i] += alpha * src[i];
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab

namespace normlab {
inline namespace v0 {
using cpu::Cpu;
}  // namespace v0
}  // namespace normlab
