// normlab/backend/cpu/kernel_path.hpp — which instruction set the CPU kernels use.
//
// The CPU backend has kernels for three instruction sets, chosen at run time
// from what the CPU reports, so one build runs well on any x86-64 machine:
//
//   avx512    AVX-512F (Intel server CPUs, AMD Zen 4/5): float GEMM by the
//             packed 12 x 32 kernel of sgemm_avx512.hpp; the float row-wise
//             and element-wise kernels that avx2 lists by the AVX-512 code
//             of row_kernels_x86.hpp (16 floats a vector, avx2's bits)
//   avx2      AVX2 + FMA (AMD Zen 2/3, most Intel desktops and laptops):
//             float GEMM by the packed 6 x 16 kernel of sgemm_avx2.hpp; float
//             softmax and log-softmax, cross-entropy, LayerNorm and RMSNorm
//             (each forward and backward), GELU (exact and tanh, plain and
//             fused with a bias and a LayerNorm), AdamW and SGD by the AVX2
//             code of row_kernels_x86.hpp
//   portable  Eigen's GEMM and the kernels' Eigen / loop code, at the
//             instruction set the program was compiled for (SSE2 without
//             -march); double always takes it, in every kernel
//
// The path chooses the row-wise and element-wise kernels in a program compiled
// without AVX2 and FMA only (no -march: the default build, the tests, the
// `normlab` command): one compiled with AVX2 (bench/, -march=native) has their
// portable code at least as wide, with FMA and, where -march has it,
// AVX-512, and keeps it on every path.
//
// The kernels the path does not choose (the element-wise maps other than
// GELU, embedding, dropout, reductions) are compiled for the program's target
// (-march).
//
// The wide row-wise and element-wise kernels give the portable path's bits
// in a build without -march, except softmax forward and cross-entropy, which
// differ by a few ulp (row_kernels_x86.hpp says where and why).
//
// The two packed kernels sum every element of C in the same order (depth
// blocks of sgemm_depth_block(K), each in depth order, one FMA per product,
// the same epilogue), so avx512 and avx2 give bit-identical products;
// portable differs from them by rounding only.
//
// NORMLAB_CPU_KERNELS=avx512|avx2|portable forces a path no higher than the
// CPU has (asking for more than it has gives the best it has), so one
// machine can run, test and time every path below its own. `normlab info`
// and the benchmarks' context say which path ran.
#pragma once

#include <atomic>
#include <cstdlib>
#include <string>
#include <string_view>

#include "normlab/core/error.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// The instruction set of the CPU kernels, lowest first.
enum class CpuKernels { portable = 0, avx2 = 1, avx512 = 2 };

inline const char* to_string(CpuKernels k) {
  return k == CpuKernels::avx512 ? "avx512" : k == CpuKernels::avx2 ? "avx2" : "portable";
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__CUDACC__)
#define NORMLAB_X86_KERNELS 1
#endif

/// The highest path this CPU runs and this build has kernels for.
inline CpuKernels best_cpu_kernels() {
#ifdef NORMLAB_X86_KERNELS
  static const CpuKernels best = [] {
#ifndef NORMLAB_NO_AVX512_GEMM
    if (__builtin_cpu_supports("avx512f")) return CpuKernels::avx512;
#endif
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuKernels::avx2;
    return CpuKernels::portable;
  }();
  return best;
#else
  return CpuKernels::portable;
#endif
}

namespace detail {
/// The path NORMLAB_CPU_KERNELS asks for (`value`), lowered to the best one.
/// Throws Error naming the variable and the accepted words otherwise.
inline CpuKernels requested_cpu_kernels(std::string_view value) {
  CpuKernels asked;
  if (value == "avx512")
    asked = CpuKernels::avx512;
  else if (value == "avx2")
    asked = CpuKernels::avx2;
  else if (value == "portable")
    asked = CpuKernels::portable;
  else
    throw Error("NORMLAB_CPU_KERNELS must be avx512, avx2 or portable, got '" + std::string(value) +
                "'");
  return asked < best_cpu_kernels() ? asked : best_cpu_kernels();
}

/// The current path; -1 until the first cpu_kernels() call reads the environment.
inline std::atomic<int>& cpu_kernels_slot() {
  static std::atomic<int> slot{-1};
  return slot;
}
}  // namespace detail

/// The path the CPU kernels take: NORMLAB_CPU_KERNELS when set (lowered to
/// what this CPU has), else the best this CPU has; read once.
/// Throws Error when NORMLAB_CPU_KERNELS holds another word (at the first
/// product, and again at each until it is fixed: nothing is cached).
inline CpuKernels cpu_kernels() {
  int k = detail::cpu_kernels_slot().load(std::memory_order_relaxed);
  if (k < 0) {
    const char* env = std::getenv("NORMLAB_CPU_KERNELS");
    k = static_cast<int>(env && *env ? detail::requested_cpu_kernels(env) : best_cpu_kernels());
    detail::cpu_kernels_slot().store(k, std::memory_order_relaxed);
  }
  return static_cast<CpuKernels>(k);
}

/// Sets the path for the products that follow (for tests and benchmarks that
/// compare paths in one process), lowered to what this CPU has; returns the
/// path it replaced. Not to be called while another thread runs kernels.
inline CpuKernels set_cpu_kernels(CpuKernels k) {
  const CpuKernels before = cpu_kernels();
  const CpuKernels now = k < best_cpu_kernels() ? k : best_cpu_kernels();
  detail::cpu_kernels_slot().store(static_cast<int>(now), std::memory_order_relaxed);
  return before;
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
