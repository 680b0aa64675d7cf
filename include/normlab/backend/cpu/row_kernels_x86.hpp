// normlab/backend/cpu/row_kernels_x86.hpp — the float row-wise and
// element-wise kernels on 256-bit AVX2 and 512-bit AVX-512 vectors, chosen at
// run time (kernel_path.hpp).
//
// The portable kernels (softmax.hpp, loss.hpp, normalization.hpp,
// activation.hpp, optim.hpp) run on Eigen's packets or on loops the compiler
// vectorizes, at the instruction set the program is compiled for: SSE2 in a
// build without -march. These are the same formulas on 8 (avx2) or 16
// (avx512) floats at a time, in functions compiled for that instruction set
// (`target("avx2")`, `target("avx512f")`) whatever the program's flags,
// written once (row_kernels_x86_body.hpp) over each instruction set's
// primitives below. The kernels above call them through run_wide_row_kernel
// when cpu_kernels() is avx2 or avx512 and the program's own target has
// neither AVX2 nor FMA.
//
// Same bits as the portable path, on both instruction sets. Every kernel
// does the portable kernel's operations in its order, one rounding each, no
// FMA: the avx2 target leaves FMA out, so the compiler cannot contract
// a * b + c; AVX-512F has FMA, so the avx512 primitives use the intrinsics
// with an explicit rounding mode (`_mm512_maskz_add_round_ps`, ...), which
// compilers emit as written instead of as generic vector arithmetic they may
// contract. The row sums and maxima take kSumLanes interleaved lanes (8
// vectors of 8, or 4 of 16: lane j of a row is lane j mod kSumLanes either
// way) added in lane order, as lane_sum and lane_max do. exp is Eigen's
// float pexp (the Cephes polynomial, its range reduction and its ldexp,
// Eigen 3.4), step for step. So:
//   - LayerNorm, RMSNorm (forward and backward), GELU (both forms; forward,
//     backward, forward with derivative) and softmax backward give the
//     portable path's bits in a build without -march (where the portable path
//     has no FMA);
//   - AdamW gives the bits of AdamWElementUpdate (optim_args.hpp: the scalar
//     update, PyTorch's order, a correctly rounded sqrt). The portable path's
//     Eigen arrays take Eigen's fast float sqrt (rsqrt and one Newton step,
//     EIGEN_FAST_MATH) on whole packets, std::sqrt on the elements around
//     them: its parameters differ by a few ulp;
//   - softmax and cross-entropy differ from it by the exp only: Eigen's
//     array expressions take std::exp on the elements before their first
//     aligned packet and after their last one, and pexp elsewhere; here every
//     element takes pexp. pexp is within 2 ulp of the exact exp for
//     arguments in (-87, 88) (and returns a value below 2^-126 under them),
//     as std::exp is within 1 ulp of it, so softmax and
//     cross-entropy stay within a few ulp of the portable path's;
//   - cross-entropy's sum of exp adds in lane order, where Eigen's .sum()
//     adds in its own packet order: the log-sum-exp differs by rounding;
//   - log-softmax's portable code is a scalar loop (std::exp, sums in element
//     order): forward and backward differ by the exp and the sums' rounding.
// The avx2 and avx512 kernels give the same bits as each other everywhere.
// Inputs with NaN give NaN on every path, not necessarily the same NaN.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/backend/cpu/kernel_path.hpp"

#ifdef NORMLAB_X86_KERNELS
#include <immintrin.h>
#endif

namespace normlab {
inline namespace v0 {
namespace cpu {

#ifdef NORMLAB_X86_KERNELS

// ---- AVX2: 8 floats ---------------------------------------------------------

namespace avx2 {

/// The tag of this instruction set's kernels (found by argument-dependent lookup).
struct Isa {};

#define NORMLAB_AVX2_INLINE __attribute__((target("avx2"), always_inline)) inline

using Vec = __m256;
using IVec = __m256i;
inline constexpr int64_t kLanes = 8;  // floats in one vector

/// All ones in the first k lanes (0 <= k <= 8), zero in the others.
NORMLAB_AVX2_INLINE __m256i first_lanes(int64_t k) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
/// The 8 floats at p + c (Tail false), or the first k of them and zeros
/// (Tail true; nothing past them is read).
template <bool Tail>
NORMLAB_AVX2_INLINE Vec load(const float* p, int64_t c, int64_t k) {
  if constexpr (Tail)
    return _mm256_maskload_ps(p + c, first_lanes(k));
  else
    return _mm256_loadu_ps(p + c);
}
/// Stores v to the 8 floats at p + c (Tail false) or to the first k of them.
template <bool Tail>
NORMLAB_AVX2_INLINE void store(float* p, int64_t c, int64_t k, Vec v) {
  if constexpr (Tail)
    _mm256_maskstore_ps(p + c, first_lanes(k), v);
  else
    _mm256_storeu_ps(p + c, v);
}
/// Stores v to the 8 floats at p (32-byte aligned).
NORMLAB_AVX2_INLINE void store_aligned(float* p, Vec v) {
  _mm256_store_ps(p, v);
}
NORMLAB_AVX2_INLINE Vec splat(float v) {
  return _mm256_set1_ps(v);
}
NORMLAB_AVX2_INLINE Vec zero() {
  return _mm256_setzero_ps();
}
NORMLAB_AVX2_INLINE Vec add(Vec a, Vec b) {
  return _mm256_add_ps(a, b);
}
NORMLAB_AVX2_INLINE Vec sub(Vec a, Vec b) {
  return _mm256_sub_ps(a, b);
}
NORMLAB_AVX2_INLINE Vec mul(Vec a, Vec b) {
  return _mm256_mul_ps(a, b);
}
NORMLAB_AVX2_INLINE Vec div(Vec a, Vec b) {
  return _mm256_div_ps(a, b);
}
NORMLAB_AVX2_INLINE Vec sqrt(Vec a) {
  return _mm256_sqrt_ps(a);
}
/// Eigen's pmin / pmax (arguments swapped for std::min / std::max's NaN rule).
NORMLAB_AVX2_INLINE Vec pmin(Vec a, Vec b) {
  return _mm256_min_ps(b, a);
}
NORMLAB_AVX2_INLINE Vec pmax(Vec a, Vec b) {
  return _mm256_max_ps(b, a);
}
/// a > b ? a : b lane-wise (b where either is NaN).
NORMLAB_AVX2_INLINE Vec max_of(Vec a, Vec b) {
  return _mm256_max_ps(a, b);
}
/// max_of(t, acc) in the first k lanes, acc in the others.
NORMLAB_AVX2_INLINE Vec max_of_first_lanes(Vec t, Vec acc, int64_t k) {
  return _mm256_blendv_ps(acc, _mm256_max_ps(t, acc), _mm256_castsi256_ps(first_lanes(k)));
}
/// v in the first k lanes, +0 in the others.
NORMLAB_AVX2_INLINE Vec first_lanes_only(Vec v, int64_t k) {
  return _mm256_and_ps(v, _mm256_castsi256_ps(first_lanes(k)));
}
NORMLAB_AVX2_INLINE Vec floor(Vec a) {
  return _mm256_floor_ps(a);
}
NORMLAB_AVX2_INLINE Vec abs(Vec a) {
  return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}
/// if_nonnegative where 0 <= x, if_negative elsewhere (NaN included).
NORMLAB_AVX2_INLINE Vec where_nonnegative(Vec x, Vec if_nonnegative, Vec if_negative) {
  return _mm256_blendv_ps(if_negative, if_nonnegative,
                          _mm256_cmp_ps(_mm256_setzero_ps(), x, _CMP_LE_OS));
}
/// The integer part of a (toward zero).
NORMLAB_AVX2_INLINE IVec truncate(Vec a) {
  return _mm256_cvttps_epi32(a);
}
/// e >> 2 (arithmetic).
NORMLAB_AVX2_INLINE IVec quarter(IVec e) {
  return _mm256_srai_epi32(e, 2);
}
NORMLAB_AVX2_INLINE IVec isub(IVec a, IVec b) {
  return _mm256_sub_epi32(a, b);
}
/// 2^b as a float, for -126 <= b <= 127.
NORMLAB_AVX2_INLINE Vec pow2(IVec b) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(127)), 23));
}

#define NORMLAB_ROW_INLINE NORMLAB_AVX2_INLINE
#define NORMLAB_ROW_FN __attribute__((target("avx2"))) inline
#include "normlab/backend/cpu/row_kernels_x86_body.hpp"
#undef NORMLAB_ROW_INLINE
#undef NORMLAB_ROW_FN
#undef NORMLAB_AVX2_INLINE

}  // namespace avx2

// ---- AVX-512F: 16 floats ----------------------------------------------------

namespace avx512 {

/// The tag of this instruction set's kernels (found by argument-dependent lookup).
struct Isa {};

#define NORMLAB_AVX512_INLINE __attribute__((target("avx512f"), always_inline)) inline

using Vec = __m512;
using IVec = __m512i;
inline constexpr int64_t kLanes = 16;  // floats in one vector

// Arithmetic through the intrinsics with a rounding-mode operand (the current
// mode): compilers emit each as one instruction, never fused into an FMA,
// which generic vector arithmetic under target("avx512f") could be. Every
// intrinsic here is a zero-masking or merging form: GCC 12's unmasked forms
// pass _mm512_undefined_ps(), which -Wuninitialized reports (GCC bug 105593).
inline constexpr __mmask16 kAllLanes = 0xffff;
inline constexpr int kRound = _MM_FROUND_CUR_DIRECTION;

/// The first k lanes (0 <= k <= 16).
NORMLAB_AVX512_INLINE __mmask16 first_lanes(int64_t k) {
  return static_cast<__mmask16>((1u << k) - 1u);
}
/// The 16 floats at p + c (Tail false), or the first k of them and zeros
/// (Tail true; nothing past them is read).
template <bool Tail>
NORMLAB_AVX512_INLINE Vec load(const float* p, int64_t c, int64_t k) {
  if constexpr (Tail)
    return _mm512_maskz_loadu_ps(first_lanes(k), p + c);
  else
    return _mm512_loadu_ps(p + c);
}
/// Stores v to the 16 floats at p + c (Tail false) or to the first k of them.
template <bool Tail>
NORMLAB_AVX512_INLINE void store(float* p, int64_t c, int64_t k, Vec v) {
  if constexpr (Tail)
    _mm512_mask_storeu_ps(p + c, first_lanes(k), v);
  else
    _mm512_storeu_ps(p + c, v);
}
/// Stores v to the 16 floats at p (64-byte aligned).
NORMLAB_AVX512_INLINE void store_aligned(float* p, Vec v) {
  _mm512_store_ps(p, v);
}
NORMLAB_AVX512_INLINE Vec splat(float v) {
  return _mm512_set1_ps(v);
}
NORMLAB_AVX512_INLINE Vec zero() {
  return _mm512_setzero_ps();
}
NORMLAB_AVX512_INLINE Vec add(Vec a, Vec b) {
  return _mm512_maskz_add_round_ps(kAllLanes, a, b, kRound);
}
NORMLAB_AVX512_INLINE Vec sub(Vec a, Vec b) {
  return _mm512_maskz_sub_round_ps(kAllLanes, a, b, kRound);
}
NORMLAB_AVX512_INLINE Vec mul(Vec a, Vec b) {
  return _mm512_maskz_mul_round_ps(kAllLanes, a, b, kRound);
}
NORMLAB_AVX512_INLINE Vec div(Vec a, Vec b) {
  return _mm512_maskz_div_round_ps(kAllLanes, a, b, kRound);
}
NORMLAB_AVX512_INLINE Vec sqrt(Vec a) {
  return _mm512_maskz_sqrt_round_ps(kAllLanes, a, kRound);
}
/// a > b ? a : b lane-wise (b where either is NaN), as maxps.
NORMLAB_AVX512_INLINE Vec max_of(Vec a, Vec b) {
  return _mm512_maskz_max_ps(kAllLanes, a, b);
}
/// Eigen's pmin / pmax (arguments swapped for std::min / std::max's NaN rule).
NORMLAB_AVX512_INLINE Vec pmin(Vec a, Vec b) {
  return _mm512_maskz_min_ps(kAllLanes, b, a);
}
NORMLAB_AVX512_INLINE Vec pmax(Vec a, Vec b) {
  return max_of(b, a);
}
/// max_of(t, acc) in the first k lanes, acc in the others.
NORMLAB_AVX512_INLINE Vec max_of_first_lanes(Vec t, Vec acc, int64_t k) {
  return _mm512_mask_max_ps(acc, first_lanes(k), t, acc);
}
/// v in the first k lanes, +0 in the others.
NORMLAB_AVX512_INLINE Vec first_lanes_only(Vec v, int64_t k) {
  return _mm512_maskz_mov_ps(first_lanes(k), v);
}
NORMLAB_AVX512_INLINE Vec floor(Vec a) {
  return _mm512_maskz_roundscale_ps(kAllLanes, a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
}
NORMLAB_AVX512_INLINE Vec abs(Vec a) {
  return _mm512_castsi512_ps(
      _mm512_and_epi32(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff)));
}
/// if_nonnegative where 0 <= x, if_negative elsewhere (NaN included).
NORMLAB_AVX512_INLINE Vec where_nonnegative(Vec x, Vec if_nonnegative, Vec if_negative) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(_mm512_setzero_ps(), x, _CMP_LE_OS), if_negative,
                              if_nonnegative);
}
/// The integer part of a (toward zero).
NORMLAB_AVX512_INLINE IVec truncate(Vec a) {
  return _mm512_maskz_cvtt_roundps_epi32(kAllLanes, a, kRound);
}
/// e >> 2 (arithmetic).
NORMLAB_AVX512_INLINE IVec quarter(IVec e) {
  return _mm512_maskz_srai_epi32(kAllLanes, e, 2);
}
NORMLAB_AVX512_INLINE IVec isub(IVec a, IVec b) {
  return _mm512_sub_epi32(a, b);
}
/// 2^b as a float, for -126 <= b <= 127.
NORMLAB_AVX512_INLINE Vec pow2(IVec b) {
  return _mm512_castsi512_ps(
      _mm512_maskz_slli_epi32(kAllLanes, _mm512_add_epi32(b, _mm512_set1_epi32(127)), 23));
}

#define NORMLAB_ROW_INLINE NORMLAB_AVX512_INLINE
#define NORMLAB_ROW_FN __attribute__((target("avx512f"))) inline
#include "normlab/backend/cpu/row_kernels_x86_body.hpp"
#undef NORMLAB_ROW_INLINE
#undef NORMLAB_ROW_FN
#undef NORMLAB_AVX512_INLINE

}  // namespace avx512

#endif  // NORMLAB_X86_KERNELS

// ---- the choice -------------------------------------------------------------

/// The instruction set of the wide row kernels for this call: cpu_kernels()
/// (avx512 or avx2) for Scalar float in a program compiled for a target
/// without AVX2 and FMA; portable otherwise. A program compiled with AVX2
/// (-march=native on such a CPU) has Eigen's packets and the compiler's loops
/// at least as wide, with FMA, and keeps them on every path; one compiled
/// with FMA could contract the avx2 code's a * b + c, which the portable
/// path's bits rule out.
template <class Scalar>
inline CpuKernels wide_row_kernels() {
#if defined(NORMLAB_X86_KERNELS) && !defined(__AVX2__) && !defined(__FMA__)
  if constexpr (std::is_same_v<Scalar, float>) return cpu_kernels();
#endif
  return CpuKernels::portable;
}

/// Runs kernel(isa), isa the tag of `path`'s wide kernels (avx512::Isa or
/// avx2::Isa), when `path` (from wide_row_kernels<Scalar>()) is one of them
/// and Scalar is float; returns whether it ran. The kernel names the wide
/// entry point unqualified, with the tag as its first argument, e.g.
///   run_wide_row_kernel<Scalar>(path, [&](auto isa) { softmax_row(isa, y, x, n); })
/// so that argument-dependent lookup picks the instruction set's overload.
template <class Scalar, class Kernel>
inline bool run_wide_row_kernel([[maybe_unused]] CpuKernels path,
                                [[maybe_unused]] const Kernel& kernel) {
#ifdef NORMLAB_X86_KERNELS
  if constexpr (std::is_same_v<Scalar, float>) {
    if (path == CpuKernels::avx512) {
      kernel(avx512::Isa{});
      return true;
    }
    if (path == CpuKernels::avx2) {
      kernel(avx2::Isa{});
      return true;
    }
  }
#endif
  return false;
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
