// normlab/backend/cpu/kernels_avx2.hpp — the float row-wise and element-wise
// kernels on 256-bit AVX2 vectors, chosen at run time (kernel_path.hpp).
//
// The portable kernels (softmax.hpp, loss.hpp, normalization.hpp,
// activation.hpp, optim.hpp) run on Eigen's packets or on loops the compiler
// vectorizes, at the instruction set the program is compiled for: SSE2 in a
// build without -march. These are the same formulas on eight floats at a
// time, in functions compiled for AVX2 (`target("avx2")`) whatever the
// program's flags; the kernels above call them when cpu_kernels() is avx2 or
// avx512 and the program's own target has neither AVX2 nor FMA
// (use_avx2_row_kernels).
//
// Same bits as the portable path. Every kernel here does the portable
// kernel's operations in its order, one rounding each: no FMA (the target
// leaves FMA out, so the compiler cannot contract a * b + c either). The
// row sums and maxima take kSumLanes interleaved lanes (eight vectors) added
// in lane order, as lane_sum and lane_max do. exp is Eigen's float pexp (the
// Cephes polynomial, its range reduction and its ldexp, Eigen 3.4), step for
// step. So:
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
//     adds in its own packet order: the log-sum-exp differs by rounding.
// Inputs with NaN give NaN on both paths, not necessarily the same NaN.
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

/// Whether the float row-wise and element-wise kernels take the AVX2 code of
/// kernels_avx2.hpp on this call: for Scalar float, on the avx2 and avx512
/// paths, in a program compiled for a target without AVX2 and FMA. A program
/// compiled with AVX2 (-march=native on such a CPU) has Eigen's packets and
/// the compiler's loops at least as wide, with FMA (AVX-512 ones where -march
/// has it, twice as fast on GELU as this code), and keeps them on every path;
/// one compiled with FMA could contract this code's a * b + c, which the
/// portable path's bits rule out.
template <class Scalar>
inline bool use_avx2_row_kernels() {
#if defined(NORMLAB_X86_KERNELS) && !defined(__AVX2__) && !defined(__FMA__)
  if constexpr (std::is_same_v<Scalar, float>) return cpu_kernels() >= CpuKernels::avx2;
#endif
  return false;
}

#ifdef NORMLAB_X86_KERNELS
namespace avx2 {

#define NORMLAB_AVX2_INLINE __attribute__((target("avx2"), always_inline)) inline
#define NORMLAB_AVX2_FN __attribute__((target("avx2"))) inline

inline constexpr int64_t kLanes = 8;  // floats in one vector
inline constexpr int64_t kVectors = kSumLanes / kLanes;
static_assert(kSumLanes % kLanes == 0);

/// All ones in the first k lanes (0 <= k <= 8), zero in the others.
NORMLAB_AVX2_INLINE __m256i first_lanes(int64_t k) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
/// The 8 floats at p + c (Tail false), or the first k of them and zeros
/// (Tail true; nothing past them is read).
template <bool Tail>
NORMLAB_AVX2_INLINE __m256 load(const float* p, int64_t c, int64_t k) {
  if constexpr (Tail)
    return _mm256_maskload_ps(p + c, first_lanes(k));
  else
    return _mm256_loadu_ps(p + c);
}
/// Stores v to the 8 floats at p + c (Tail false) or to the first k of them.
template <bool Tail>
NORMLAB_AVX2_INLINE void store(float* p, int64_t c, int64_t k, __m256 v) {
  if constexpr (Tail)
    _mm256_maskstore_ps(p + c, first_lanes(k), v);
  else
    _mm256_storeu_ps(p + c, v);
}
NORMLAB_AVX2_INLINE __m256 splat(float v) {
  return _mm256_set1_ps(v);
}
NORMLAB_AVX2_INLINE __m256 add(__m256 a, __m256 b) {
  return _mm256_add_ps(a, b);
}
NORMLAB_AVX2_INLINE __m256 sub(__m256 a, __m256 b) {
  return _mm256_sub_ps(a, b);
}
NORMLAB_AVX2_INLINE __m256 mul(__m256 a, __m256 b) {
  return _mm256_mul_ps(a, b);
}
NORMLAB_AVX2_INLINE __m256 div(__m256 a, __m256 b) {
  return _mm256_div_ps(a, b);
}
/// Eigen's pmin / pmax (arguments swapped for std::min / std::max's NaN rule).
NORMLAB_AVX2_INLINE __m256 pmin(__m256 a, __m256 b) {
  return _mm256_min_ps(b, a);
}
NORMLAB_AVX2_INLINE __m256 pmax(__m256 a, __m256 b) {
  return _mm256_max_ps(b, a);
}

/// exp(x) lane-wise by Eigen 3.4's pexp_float, operation for operation (its
/// pmadd is a multiply then an add without FMA):
///   x' = clamp(x, -88.723, 88.723),  m = floor(x' log2(e) + 1/2),
///   r = x' - m ln 2 (in two parts, C1 + C2 = -ln 2),
///   exp(r) ~ 1 + r + r^2 (p5 + p4 r + p3 r^2 + r^3 (p2 + p1 r + p0 r^2)),
///   exp(x) = max(2^m exp(r), x), 2^m applied in four factors (Eigen's pldexp).
/// Within 2 ulp of the exact exp for -87 < x < 88. Below -88.723 it returns
/// exp(-88.723), about 2.9e-39, not 0 (exp(-inf) too), and above 88.723 about
/// 3.4e38 (+inf for +inf), as Eigen's does.
NORMLAB_AVX2_INLINE __m256 exp(__m256 x0) {
  const __m256 x = pmax(pmin(x0, splat(88.723f)), splat(-88.723f));
  const __m256 m = _mm256_floor_ps(add(mul(x, splat(1.44269504088896341f)), splat(0.5f)));
  __m256 r = add(mul(m, splat(-0.693359375f)), x);
  r = add(mul(m, splat(2.12194440e-4f)), r);
  const __m256 r2 = mul(r, r), r3 = mul(r2, r);
  __m256 y = add(mul(splat(1.9875691500E-4f), r), splat(1.3981999507E-3f));
  __m256 y1 = add(mul(splat(4.1665795894E-2f), r), splat(1.6666665459E-1f));
  const __m256 y2 = add(r, splat(1.0f));
  y = add(mul(y, r), splat(8.3334519073E-3f));
  y1 = add(mul(y1, r), splat(5.0000001201E-1f));
  y = add(mul(y, r3), y1);
  y = add(mul(y, r2), y2);
  // pldexp: e = clamp(m, -278, 278), b = e >> 2, y 2^b 2^b 2^b 2^(e - 3b).
  const __m256i e = _mm256_cvttps_epi32(pmin(pmax(m, splat(-278.0f)), splat(278.0f)));
  __m256i b = _mm256_srai_epi32(e, 2);
  __m256 c =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(127)), 23));
  __m256 out = mul(mul(mul(y, c), c), c);
  b = _mm256_sub_epi32(_mm256_sub_epi32(_mm256_sub_epi32(e, b), b), b);
  c = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(127)), 23));
  out = mul(out, c);
  return pmax(out, x0);
}

/// The lanes of acc (kVectors vectors) added in lane order, as lane_sum ends.
NORMLAB_AVX2_INLINE float sum_in_lane_order(const __m256* acc) {
  alignas(32) float lanes[kSumLanes];
  for (int64_t k = 0; k < kVectors; ++k) _mm256_store_ps(lanes + k * kLanes, acc[k]);
  float total = 0;
  for (int64_t j = 0; j < kSumLanes; ++j) total += lanes[j];
  return total;
}

/// lane_sum over n terms: term.template at<Tail>(c, k) gives the terms
/// c .. c + 7 (only the first k are used when Tail). Lane j of vector v is
/// lane_sum's lane 8 v + j, so the sum has lane_sum's bits.
template <class Term>
NORMLAB_AVX2_INLINE float lane_sum(int64_t n, const Term& term) {
  __m256 acc[kVectors];
  for (int64_t v = 0; v < kVectors; ++v) acc[v] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + kSumLanes <= n; c += kSumLanes)
    for (int64_t v = 0; v < kVectors; ++v)
      acc[v] = add(acc[v], term.template at<false>(c + v * kLanes, kLanes));
  for (int64_t v = 0; c < n; ++v, c += kLanes) {
    const int64_t k = std::min(kLanes, n - c);
    const __m256 t = k == kLanes
                         ? term.template at<false>(c, k)
                         : _mm256_and_ps(term.template at<true>(c, k),
                                         _mm256_castsi256_ps(first_lanes(k)));  // unused lanes +0
    acc[v] = add(acc[v], t);
  }
  return sum_in_lane_order(acc);
}

/// lane_max over n > 0 terms (each lane starts at term 0, as in lane_max;
/// max(a, t) is std::max's a < t ? t : a).
template <class Term>
NORMLAB_AVX2_INLINE float lane_max(int64_t n, const Term& term) {
  __m256 acc[kVectors];
  const __m256 first = _mm256_set1_ps(term.scalar(0));
  for (int64_t v = 0; v < kVectors; ++v) acc[v] = first;
  int64_t c = 0;
  for (; c + kSumLanes <= n; c += kSumLanes)
    for (int64_t v = 0; v < kVectors; ++v)
      acc[v] = _mm256_max_ps(term.template at<false>(c + v * kLanes, kLanes), acc[v]);
  for (int64_t v = 0; c < n; ++v, c += kLanes) {
    const int64_t k = std::min(kLanes, n - c);
    const __m256 t = k == kLanes ? term.template at<false>(c, k) : term.template at<true>(c, k);
    acc[v] =
        _mm256_blendv_ps(acc[v], _mm256_max_ps(t, acc[v]), _mm256_castsi256_ps(first_lanes(k)));
  }
  alignas(32) float lanes[kSumLanes];
  for (int64_t v = 0; v < kVectors; ++v) _mm256_store_ps(lanes + v * kLanes, acc[v]);
  float total = lanes[0];
  for (int64_t j = 1; j < kSumLanes; ++j) total = std::max(total, lanes[j]);
  return total;
}

/// body.template at<Tail>(c, k) for the vectors of [0, n): c = 0, 8, ...;
/// the last one with Tail true and k = n - c < 8 elements.
template <class Body>
NORMLAB_AVX2_INLINE void for_each_vector(int64_t n, const Body& body) {
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) body.template at<false>(c, kLanes);
  if (c < n) body.template at<true>(c, n - c);
}

// ---- terms and bodies -------------------------------------------------------

/// x[c] (+ shift): the terms of a row's sum or max.
struct Values {
  const float* x;
  float scalar(int64_t c) const { return x[c]; }
  template <bool Tail>
  NORMLAB_AVX2_INLINE __m256 at(int64_t c, int64_t k) const {
    return load<Tail>(x, c, k);
  }
};
/// x[c] - m.
struct Deviations {
  const float* x;
  float m;
  template <bool Tail>
  NORMLAB_AVX2_INLINE __m256 at(int64_t c, int64_t k) const {
    return sub(load<Tail>(x, c, k), splat(m));
  }
};
/// (x[c] - m)^2.
struct SquaredDeviations {
  const float* x;
  float m;
  template <bool Tail>
  NORMLAB_AVX2_INLINE __m256 at(int64_t c, int64_t k) const {
    const __m256 d = sub(load<Tail>(x, c, k), splat(m));
    return mul(d, d);
  }
};
/// x[c] * y[c].
struct Products {
  const float* x;
  const float* y;
  template <bool Tail>
  NORMLAB_AVX2_INLINE __m256 at(int64_t c, int64_t k) const {
    return mul(load<Tail>(x, c, k), load<Tail>(y, c, k));
  }
};
/// g[c] = dy[c] * w[c] (dy[c] when w is null).
template <bool Tail>
NORMLAB_AVX2_INLINE __m256 weighted(const float* dy, const float* w, int64_t c, int64_t k) {
  return w ? mul(load<Tail>(dy, c, k), load<Tail>(w, c, k)) : load<Tail>(dy, c, k);
}
/// g[c] (dy[c] * w[c], or dy[c]).
struct Weighted {
  const float* dy;
  const float* w;
  template <bool Tail>
  NORMLAB_AVX2_INLINE __m256 at(int64_t c, int64_t k) const {
    return weighted<Tail>(dy, w, c, k);
  }
};
/// g[c] * ((x[c] - m) * s): g times the normalized input (m = 0 for RMSNorm
/// is not used: see ScaledWeighted).
struct WeightedXhat {
  const float* dy;
  const float* w;
  const float* x;
  float m, s;
  template <bool Tail>
  NORMLAB_AVX2_INLINE __m256 at(int64_t c, int64_t k) const {
    return mul(weighted<Tail>(dy, w, c, k), mul(sub(load<Tail>(x, c, k), splat(m)), splat(s)));
  }
};
/// g[c] * (x[c] * s).
struct ScaledWeighted {
  const float* dy;
  const float* w;
  const float* x;
  float s;
  template <bool Tail>
  NORMLAB_AVX2_INLINE __m256 at(int64_t c, int64_t k) const {
    return mul(weighted<Tail>(dy, w, c, k), mul(load<Tail>(x, c, k), splat(s)));
  }
};
/// exp(x[c] - m).
struct ShiftedExp {
  const float* x;
  float m;
  template <bool Tail>
  NORMLAB_AVX2_INLINE __m256 at(int64_t c, int64_t k) const {
    return exp(sub(load<Tail>(x, c, k), splat(m)));
  }
};

/// y = exp(x).
struct ExpOf {
  float* y;
  const float* x;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    store<Tail>(y, c, k, exp(load<Tail>(x, c, k)));
  }
};
/// y = exp(x) for n floats, by the exp above (for tests and benchmarks).
NORMLAB_AVX2_FN void exp_n(float* y, const float* x, int64_t n) {
  for_each_vector(n, ExpOf{y, x});
}

// ---- softmax ----------------------------------------------------------------

/// y = exp(x - m) for the row, stored; then y *= 1 / sum(y).
struct ExpInto {
  float* y;
  const float* x;
  float m;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    store<Tail>(y, c, k, exp(sub(load<Tail>(x, c, k), splat(m))));
  }
};
struct ScaleBy {
  float* y;
  float s;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    store<Tail>(y, c, k, mul(load<Tail>(y, c, k), splat(s)));
  }
};

/// One row of softmax_forward: yr = exp(xr - max) / sum(exp(xr - max)).
/// Requires: n > 0; yr, xr (n,).
NORMLAB_AVX2_FN void softmax_row(float* yr, const float* xr, int64_t n) {
  const float mx = lane_max(n, Values{xr});
  for_each_vector(n, ExpInto{yr, xr, mx});
  const float inv = 1.0f / lane_sum(n, Values{yr});
  for_each_vector(n, ScaleBy{yr, inv});
}

/// dx += y * (dy - dot).
struct SoftmaxGrad {
  float* dx;
  const float* dy;
  const float* y;
  float dot;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    const __m256 t = mul(load<Tail>(y, c, k), sub(load<Tail>(dy, c, k), splat(dot)));
    store<Tail>(dx, c, k, add(load<Tail>(dx, c, k), t));
  }
};

/// One row of softmax_backward: dxr += yr * (dyr - sum(dyr * yr)).
/// Requires: dxr, dyr, yr (n,).
NORMLAB_AVX2_FN void softmax_backward_row(float* dxr, const float* dyr, const float* yr,
                                          int64_t n) {
  const float dot = lane_sum(n, Products{dyr, yr});
  for_each_vector(n, SoftmaxGrad{dxr, dyr, yr, dot});
}

// ---- cross-entropy ----------------------------------------------------------

/// The row's max m and sum_j exp(x_j - m) (lane order).
/// Requires: n > 0; x (n,).
NORMLAB_AVX2_FN void max_and_sum_exp(float& m, float& s, const float* x, int64_t n) {
  m = lane_max(n, Values{x});
  s = lane_sum(n, ShiftedExp{x, m});
}

/// dx += g * exp(x - lse).
struct CrossEntropyGrad {
  float* dx;
  const float* x;
  float g, lse;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    const __m256 t = mul(splat(g), exp(sub(load<Tail>(x, c, k), splat(lse))));
    store<Tail>(dx, c, k, add(load<Tail>(dx, c, k), t));
  }
};
/// One row of cross_entropy_backward before its target's - g: dx += g exp(x - lse).
/// Requires: dx, x (n,).
NORMLAB_AVX2_FN void cross_entropy_backward_row(float* dx, const float* x, float g, float lse,
                                                int64_t n) {
  for_each_vector(n, CrossEntropyGrad{dx, x, g, lse});
}

// ---- LayerNorm and RMSNorm --------------------------------------------------

/// y = (x - m) * s * w + b (w = 1, b = 0 where null: multiplied and added
/// all the same, as the portable loop does).
struct LayerNormOut {
  float* y;
  const float* x;
  const float* w;
  const float* b;
  float m, s;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    const __m256 wv = w ? load<Tail>(w, c, k) : splat(1.0f);
    const __m256 bv = b ? load<Tail>(b, c, k) : splat(0.0f);
    store<Tail>(y, c, k, add(mul(mul(sub(load<Tail>(x, c, k), splat(m)), splat(s)), wv), bv));
  }
};

/// layer_norm_row_forward (normalization.hpp), its operations in its order.
/// Requires: C > 0; yr, xr (C,) (yr may be xr); weight, bias (C,) or null.
NORMLAB_AVX2_FN void layer_norm_row_forward(float* yr, float& mean, float& rstd, const float* xr,
                                            const float* weight, const float* bias, int64_t C,
                                            float eps) {
  const float n = static_cast<float>(C);
  float m = lane_sum(C, Values{xr}) / n;
  const float dsum = lane_sum(C, Deviations{xr, m});
  const float d2sum = lane_sum(C, SquaredDeviations{xr, m});
  const float dm = dsum / n;
  m += dm;
  const float v = std::max(d2sum / n - dm * dm, 0.0f);
  const float s = 1.0f / std::sqrt(v + eps);
  for_each_vector(C, LayerNormOut{yr, xr, weight, bias, m, s});
  mean = m;
  rstd = s;
}

/// dw += dy * ((x - m) * s) (m = 0, skipping the subtraction, for RMSNorm).
template <bool Centered>
struct NormWeightGrad {
  float* dw;
  const float* dy;
  const float* x;
  float m, s;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    const __m256 xv = load<Tail>(x, c, k);
    const __m256 xhat = mul(Centered ? sub(xv, splat(m)) : xv, splat(s));
    store<Tail>(dw, c, k, add(load<Tail>(dw, c, k), mul(load<Tail>(dy, c, k), xhat)));
  }
};
/// db += dy.
struct AddInto {
  float* db;
  const float* dy;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    store<Tail>(db, c, k, add(load<Tail>(db, c, k), load<Tail>(dy, c, k)));
  }
};
/// dx (+)= s * (g - g_mean - (x - m) * s * gx_mean).
struct LayerNormInputGrad {
  float* dx;
  const float* dy;
  const float* w;
  const float* x;
  float m, s, g_mean, gx_mean;
  bool overwrite;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    const __m256 g = weighted<Tail>(dy, w, c, k);
    const __m256 xs = mul(mul(sub(load<Tail>(x, c, k), splat(m)), splat(s)), splat(gx_mean));
    const __m256 t = mul(splat(s), sub(sub(g, splat(g_mean)), xs));
    store<Tail>(dx, c, k, overwrite ? t : add(load<Tail>(dx, c, k), t));
  }
};

/// layer_norm_row_backward (normalization.hpp), its operations in its order.
/// Requires: dyr, xr, dxr (C,) (dxr may be xr); dw, db, weight (C,) or null.
NORMLAB_AVX2_FN void layer_norm_row_backward(float* dxr, float* dw, float* db, const float* dyr,
                                             const float* xr, const float* weight, float m, float s,
                                             int64_t C, bool overwrite_dx) {
  if (dw) for_each_vector(C, NormWeightGrad<true>{dw, dyr, xr, m, s});
  if (db) for_each_vector(C, AddInto{db, dyr});
  if (!dxr) return;
  const float n = static_cast<float>(C);
  const float g_mean = lane_sum(C, Weighted{dyr, weight}) / n;
  const float gx_mean = lane_sum(C, WeightedXhat{dyr, weight, xr, m, s}) / n;
  for_each_vector(C, LayerNormInputGrad{dxr, dyr, weight, xr, m, s, g_mean, gx_mean, overwrite_dx});
}

/// y = x * s * w (w = 1 where null).
struct RmsNormOut {
  float* y;
  const float* x;
  const float* w;
  float s;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    const __m256 wv = w ? load<Tail>(w, c, k) : splat(1.0f);
    store<Tail>(y, c, k, mul(mul(load<Tail>(x, c, k), splat(s)), wv));
  }
};

/// One row of rms_norm_forward; returns rstd.
/// Requires: C > 0; yr, xr (C,); weight (C,) or null.
NORMLAB_AVX2_FN float rms_norm_row_forward(float* yr, const float* xr, const float* weight,
                                           int64_t C, float eps) {
  const float ms = lane_sum(C, Products{xr, xr}) / static_cast<float>(C);
  const float s = 1.0f / std::sqrt(ms + eps);
  for_each_vector(C, RmsNormOut{yr, xr, weight, s});
  return s;
}

/// dx = (overwrite ? 0 : dx) + s * (g - x * s * gx_mean).
struct RmsNormInputGrad {
  float* dx;
  const float* dy;
  const float* w;
  const float* x;
  float s, gx_mean;
  bool overwrite;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    const __m256 g = weighted<Tail>(dy, w, c, k);
    const __m256 xs = mul(mul(load<Tail>(x, c, k), splat(s)), splat(gx_mean));
    const __m256 before = overwrite ? _mm256_setzero_ps() : load<Tail>(dx, c, k);
    store<Tail>(dx, c, k, add(before, mul(splat(s), sub(g, xs))));
  }
};

/// One row of rms_norm_backward.
/// Requires: dyr, xr (C,); dxr, dw (C,) or null; weight (C,) or null.
NORMLAB_AVX2_FN void rms_norm_row_backward(float* dxr, float* dw, const float* dyr, const float* xr,
                                           const float* weight, float s, int64_t C,
                                           bool overwrite_dx) {
  if (dw) for_each_vector(C, NormWeightGrad<false>{dw, dyr, xr, 0.0f, s});
  if (!dxr) return;
  const float gx_mean = lane_sum(C, ScaledWeighted{dyr, weight, xr, s}) / static_cast<float>(C);
  for_each_vector(C, RmsNormInputGrad{dxr, dyr, weight, xr, s, gx_mean, overwrite_dx});
}

// ---- GELU -------------------------------------------------------------------

/// GeluKernels<TanhApprox>::shape_factor (activation.hpp) on 8 lanes, its
/// operations in its order.
template <bool TanhApprox>
NORMLAB_AVX2_INLINE __m256 gelu_shape_factor(__m256 x) {
  const __m256 one = splat(1.0f);
  if constexpr (TanhApprox) {
    const __m256 u2 =
        mul(splat(-2 * 0.79788456080286535588f), add(x, mul(splat(0.044715f), mul(mul(x, x), x))));
    return div(one, add(one, exp(u2)));
  } else {
    const __m256 half = splat(0.5f);
    const __m256 abs_x = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
    const __m256 z = mul(abs_x, splat(0.70710678118654752440f));
    const __m256 t = div(one, add(one, mul(half, z)));
    __m256 poly = splat(0.17087277f);
    for (const float c : {-0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f, -0.18628806f,
                          0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f})
      poly = add(mul(poly, t), splat(c));
    const __m256 half_erfc = mul(mul(half, t), exp(sub(poly, mul(z, z))));
    const __m256 nonnegative = _mm256_cmp_ps(_mm256_setzero_ps(), x, _CMP_LE_OS);
    return _mm256_blendv_ps(half_erfc, sub(one, half_erfc), nonnegative);
  }
}
/// GeluKernels<TanhApprox>::derivative on 8 lanes.
template <bool TanhApprox>
NORMLAB_AVX2_INLINE __m256 gelu_derivative(__m256 x, __m256 f) {
  const __m256 x2 = mul(x, x);
  if constexpr (TanhApprox) {
    const __m256 du =
        mul(splat(0.79788456080286535588f), add(splat(1.0f), mul(splat(3 * 0.044715f), x2)));
    return add(f, mul(mul(mul(splat(2.0f), x), mul(f, sub(splat(1.0f), f))), du));
  } else {
    const __m256 pdf = mul(exp(mul(splat(-0.5f), x2)), splat(0.39894228040143267794f));
    return add(f, mul(x, pdf));
  }
}

/// y = GELU(x).
template <bool TanhApprox>
struct GeluForward {
  float* y;
  const float* x;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    const __m256 v = load<Tail>(x, c, k);
    store<Tail>(y, c, k, mul(v, gelu_shape_factor<TanhApprox>(v)));
  }
};
/// dx += dy * GELU'(x).
template <bool TanhApprox>
struct GeluBackward {
  float* dx;
  const float* dy;
  const float* x;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    const __m256 v = load<Tail>(x, c, k);
    const __m256 d = gelu_derivative<TanhApprox>(v, gelu_shape_factor<TanhApprox>(v));
    store<Tail>(dx, c, k, add(load<Tail>(dx, c, k), mul(load<Tail>(dy, c, k), d)));
  }
};
/// y = GELU(x), dydx = GELU'(x).
template <bool TanhApprox>
struct GeluForwardAndDerivative {
  float* y;
  float* dydx;
  const float* x;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    const __m256 v = load<Tail>(x, c, k), f = gelu_shape_factor<TanhApprox>(v);
    store<Tail>(y, c, k, mul(v, f));
    store<Tail>(dydx, c, k, gelu_derivative<TanhApprox>(v, f));
  }
};

/// GeluKernels<TanhApprox>::forward on n floats.
template <bool TanhApprox>
NORMLAB_AVX2_FN void gelu_forward(float* y, const float* x, int64_t n) {
  for_each_vector(n, GeluForward<TanhApprox>{y, x});
}
/// GeluKernels<TanhApprox>::backward on n floats.
template <bool TanhApprox>
NORMLAB_AVX2_FN void gelu_backward(float* dx, const float* dy, const float* x, int64_t n) {
  for_each_vector(n, GeluBackward<TanhApprox>{dx, dy, x});
}
/// GeluKernels<TanhApprox>::forward_and_derivative on n floats.
template <bool TanhApprox>
NORMLAB_AVX2_FN void gelu_forward_and_derivative(float* y, float* dydx, const float* x, int64_t n) {
  for_each_vector(n, GeluForwardAndDerivative<TanhApprox>{y, dydx, x});
}

// ---- AdamW ------------------------------------------------------------------

/// The AdamW update of adamw_step (optim.hpp), its Eigen expression's
/// operations in their order:
///   g = grad (+ l2 p),  m = m beta1 + (1 - beta1) g,  v = v beta2 + (1 - beta2) g g,
///   p = p decay + (-step) m / (sqrt(v) / sqrt(bc2) + eps).
struct AdamWUpdate {
  float* p;
  const float* grad;
  float* m;
  float* v;
  float decay, l2, beta1, beta2, one_minus_beta1, one_minus_beta2, neg_step_size,
      bias_correction2_sqrt, eps;
  bool coupled;
  template <bool Tail>
  NORMLAB_AVX2_INLINE void at(int64_t c, int64_t k) const {
    const __m256 pv = load<Tail>(p, c, k);
    __m256 g = load<Tail>(grad, c, k);
    if (coupled) g = add(g, mul(splat(l2), pv));
    const __m256 mv = add(mul(load<Tail>(m, c, k), splat(beta1)), mul(splat(one_minus_beta1), g));
    const __m256 vv =
        add(mul(load<Tail>(v, c, k), splat(beta2)), mul(mul(splat(one_minus_beta2), g), g));
    store<Tail>(m, c, k, mv);
    store<Tail>(v, c, k, vv);
    const __m256 denom = add(div(_mm256_sqrt_ps(vv), splat(bias_correction2_sqrt)), splat(eps));
    store<Tail>(p, c, k, add(mul(pv, splat(decay)), div(mul(splat(neg_step_size), mv), denom)));
  }
};
/// AdamW on n elements; the fields of `u` as in AdamWUpdate.
NORMLAB_AVX2_FN void adamw_block(const AdamWUpdate& u, int64_t n) {
  for_each_vector(n, u);
}

#undef NORMLAB_AVX2_INLINE
#undef NORMLAB_AVX2_FN

}  // namespace avx2
#endif  // NORMLAB_X86_KERNELS

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
