// normlab/backend/cpu/row_kernels_x86_body.hpp — the float row-wise and
// element-wise kernels, written once over one instruction set's vectors.
//
// Included only by row_kernels_x86.hpp, inside namespace avx2 and again inside
// namespace avx512 (hence no include guard), each time after that namespace's
// primitives: the tag Isa, the vector types Vec (kLanes floats) and IVec
// (kLanes int32), load/store (whole or the first k lanes), store_aligned,
// splat, zero, add, sub, mul, div, sqrt, pmin/pmax (Eigen's), max_of
// (a > b ? a : b), floor, abs, truncate (float to int32), quarter (>> 2),
// isub, pow2 (2^b as a float), first_lanes_only, max_of_first_lanes and
// where_nonnegative; and with NORMLAB_ROW_INLINE and NORMLAB_ROW_FN defined as
// that instruction set's function attributes. row_kernels_x86.hpp says what the
// kernels compute and what they promise.
#ifndef NORMLAB_ROW_FN
#error "row_kernels_x86_body.hpp is included by row_kernels_x86.hpp only"
#endif

inline constexpr int64_t kVectors = kSumLanes / kLanes;  // vectors of a lane_sum
static_assert(kSumLanes % kLanes == 0);

/// exp(x) lane-wise by Eigen 3.4's pexp_float, operation for operation (its
/// pmadd is a multiply then an add without FMA):
///   x' = clamp(x, -88.723, 88.723),  m = floor(x' log2(e) + 1/2),
///   r = x' - m ln 2 (in two parts, C1 + C2 = -ln 2),
///   exp(r) ~ 1 + r + r^2 (p5 + p4 r + p3 r^2 + r^3 (p2 + p1 r + p0 r^2)),
///   exp(x) = max(2^m exp(r), x), 2^m applied in four factors (Eigen's pldexp).
/// Within 2 ulp of the exact exp for -87 < x < 88. Below -88.723 it returns
/// exp(-88.723), about 2.9e-39, not 0 (exp(-inf) too), and above 88.723 about
/// 3.4e38 (+inf for +inf), as Eigen's does.
NORMLAB_ROW_INLINE Vec exp(Vec x0) {
  const Vec x = pmax(pmin(x0, splat(88.723f)), splat(-88.723f));
  const Vec m = floor(add(mul(x, splat(1.44269504088896341f)), splat(0.5f)));
  Vec r = add(mul(m, splat(-0.693359375f)), x);
  r = add(mul(m, splat(2.12194440e-4f)), r);
  const Vec r2 = mul(r, r), r3 = mul(r2, r);
  Vec y = add(mul(splat(1.9875691500E-4f), r), splat(1.3981999507E-3f));
  Vec y1 = add(mul(splat(4.1665795894E-2f), r), splat(1.6666665459E-1f));
  const Vec y2 = add(r, splat(1.0f));
  y = add(mul(y, r), splat(8.3334519073E-3f));
  y1 = add(mul(y1, r), splat(5.0000001201E-1f));
  y = add(mul(y, r3), y1);
  y = add(mul(y, r2), y2);
  // pldexp: e = clamp(m, -278, 278), b = e >> 2, y 2^b 2^b 2^b 2^(e - 3b).
  const IVec e = truncate(pmin(pmax(m, splat(-278.0f)), splat(278.0f)));
  const IVec b = quarter(e);
  Vec c = pow2(b);
  Vec out = mul(mul(mul(y, c), c), c);
  c = pow2(isub(isub(isub(e, b), b), b));
  out = mul(out, c);
  return pmax(out, x0);
}

/// The lanes of acc (kVectors vectors) added in lane order, as lane_sum ends.
NORMLAB_ROW_INLINE float sum_in_lane_order(const Vec* acc) {
  alignas(64) float lanes[kSumLanes];
  for (int64_t k = 0; k < kVectors; ++k) store_aligned(lanes + k * kLanes, acc[k]);
  float total = 0;
  for (int64_t j = 0; j < kSumLanes; ++j) total += lanes[j];
  return total;
}

/// lane_sum over n terms: term.template at<Tail>(c, k) gives the terms
/// c .. c + kLanes - 1 (only the first k are used when Tail). Lane j of
/// vector v is lane_sum's lane kLanes v + j, so the sum has lane_sum's bits.
template <class Term>
NORMLAB_ROW_INLINE float lane_sum(int64_t n, const Term& term) {
  Vec acc[kVectors];
  for (int64_t v = 0; v < kVectors; ++v) acc[v] = zero();
  int64_t c = 0;
  for (; c + kSumLanes <= n; c += kSumLanes)
    for (int64_t v = 0; v < kVectors; ++v)
      acc[v] = add(acc[v], term.template at<false>(c + v * kLanes, kLanes));
  for (int64_t v = 0; c < n; ++v, c += kLanes) {
    const int64_t k = std::min(kLanes, n - c);
    const Vec t = k == kLanes ? term.template at<false>(c, k)
                              : first_lanes_only(term.template at<true>(c, k), k);  // others +0
    acc[v] = add(acc[v], t);
  }
  return sum_in_lane_order(acc);
}

/// lane_max over n > 0 terms (each lane starts at term 0, as in lane_max;
/// max(a, t) is std::max's a < t ? t : a).
template <class Term>
NORMLAB_ROW_INLINE float lane_max(int64_t n, const Term& term) {
  Vec acc[kVectors];
  const Vec first = splat(term.scalar(0));
  for (int64_t v = 0; v < kVectors; ++v) acc[v] = first;
  int64_t c = 0;
  for (; c + kSumLanes <= n; c += kSumLanes)
    for (int64_t v = 0; v < kVectors; ++v)
      acc[v] = max_of(term.template at<false>(c + v * kLanes, kLanes), acc[v]);
  for (int64_t v = 0; c < n; ++v, c += kLanes) {
    const int64_t k = std::min(kLanes, n - c);
    const Vec t = k == kLanes ? term.template at<false>(c, k) : term.template at<true>(c, k);
    acc[v] = max_of_first_lanes(t, acc[v], k);
  }
  alignas(64) float lanes[kSumLanes];
  for (int64_t v = 0; v < kVectors; ++v) store_aligned(lanes + v * kLanes, acc[v]);
  float total = lanes[0];
  for (int64_t j = 1; j < kSumLanes; ++j) total = std::max(total, lanes[j]);
  return total;
}

/// body.template at<Tail>(c, k) for the vectors of [0, n): c = 0, kLanes, ...;
/// the last one with Tail true and k = n - c < kLanes elements.
template <class Body>
NORMLAB_ROW_INLINE void for_each_vector(int64_t n, const Body& body) {
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
  NORMLAB_ROW_INLINE Vec at(int64_t c, int64_t k) const {
    return load<Tail>(x, c, k);
  }
};
/// x[c] - m.
struct Deviations {
  const float* x;
  float m;
  template <bool Tail>
  NORMLAB_ROW_INLINE Vec at(int64_t c, int64_t k) const {
    return sub(load<Tail>(x, c, k), splat(m));
  }
};
/// (x[c] - m)^2.
struct SquaredDeviations {
  const float* x;
  float m;
  template <bool Tail>
  NORMLAB_ROW_INLINE Vec at(int64_t c, int64_t k) const {
    const Vec d = sub(load<Tail>(x, c, k), splat(m));
    return mul(d, d);
  }
};
/// x[c] * y[c].
struct Products {
  const float* x;
  const float* y;
  template <bool Tail>
  NORMLAB_ROW_INLINE Vec at(int64_t c, int64_t k) const {
    return mul(load<Tail>(x, c, k), load<Tail>(y, c, k));
  }
};
/// g[c] = dy[c] * w[c] (dy[c] when w is null).
template <bool Tail>
NORMLAB_ROW_INLINE Vec weighted(const float* dy, const float* w, int64_t c, int64_t k) {
  return w ? mul(load<Tail>(dy, c, k), load<Tail>(w, c, k)) : load<Tail>(dy, c, k);
}
/// g[c] (dy[c] * w[c], or dy[c]).
struct Weighted {
  const float* dy;
  const float* w;
  template <bool Tail>
  NORMLAB_ROW_INLINE Vec at(int64_t c, int64_t k) const {
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
  NORMLAB_ROW_INLINE Vec at(int64_t c, int64_t k) const {
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
  NORMLAB_ROW_INLINE Vec at(int64_t c, int64_t k) const {
    return mul(weighted<Tail>(dy, w, c, k), mul(load<Tail>(x, c, k), splat(s)));
  }
};
/// exp(x[c] - m).
struct ShiftedExp {
  const float* x;
  float m;
  template <bool Tail>
  NORMLAB_ROW_INLINE Vec at(int64_t c, int64_t k) const {
    return exp(sub(load<Tail>(x, c, k), splat(m)));
  }
};

/// y = exp(x).
struct ExpOf {
  float* y;
  const float* x;
  template <bool Tail>
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    store<Tail>(y, c, k, exp(load<Tail>(x, c, k)));
  }
};
/// y = exp(x) for n floats, by the exp above (for tests and benchmarks).
NORMLAB_ROW_FN void exp_n(Isa, float* y, const float* x, int64_t n) {
  for_each_vector(n, ExpOf{y, x});
}

// ---- softmax ----------------------------------------------------------------

/// y = exp(x - m) for the row, stored; then y *= 1 / sum(y).
struct ExpInto {
  float* y;
  const float* x;
  float m;
  template <bool Tail>
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    store<Tail>(y, c, k, exp(sub(load<Tail>(x, c, k), splat(m))));
  }
};
struct ScaleBy {
  float* y;
  float s;
  template <bool Tail>
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    store<Tail>(y, c, k, mul(load<Tail>(y, c, k), splat(s)));
  }
};

/// One row of softmax_forward: yr = exp(xr - max) / sum(exp(xr - max)).
/// Requires: n > 0; yr, xr (n,).
NORMLAB_ROW_FN void softmax_row(Isa, float* yr, const float* xr, int64_t n) {
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
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec t = mul(load<Tail>(y, c, k), sub(load<Tail>(dy, c, k), splat(dot)));
    store<Tail>(dx, c, k, add(load<Tail>(dx, c, k), t));
  }
};

/// One row of softmax_backward: dxr += yr * (dyr - sum(dyr * yr)).
/// Requires: dxr, dyr, yr (n,).
NORMLAB_ROW_FN void softmax_backward_row(Isa, float* dxr, const float* dyr, const float* yr,
                                         int64_t n) {
  const float dot = lane_sum(n, Products{dyr, yr});
  for_each_vector(n, SoftmaxGrad{dxr, dyr, yr, dot});
}

// ---- log-softmax ------------------------------------------------------------

/// y = (x - m) - log_sum.
struct ShiftedBy {
  float* y;
  const float* x;
  float m, log_sum;
  template <bool Tail>
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    store<Tail>(y, c, k, sub(sub(load<Tail>(x, c, k), splat(m)), splat(log_sum)));
  }
};

/// One row of log_softmax_forward: yr = (xr - max) - log(sum(exp(xr - max))),
/// the sum in lane order.
/// Requires: n > 0; yr, xr (n,).
NORMLAB_ROW_FN void log_softmax_row(Isa, float* yr, const float* xr, int64_t n) {
  const float mx = lane_max(n, Values{xr});
  const float log_sum = std::log(lane_sum(n, ShiftedExp{xr, mx}));
  for_each_vector(n, ShiftedBy{yr, xr, mx, log_sum});
}

/// dx += dy - exp(y) * sum.
struct LogSoftmaxGrad {
  float* dx;
  const float* dy;
  const float* y;
  float sum;
  template <bool Tail>
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec t = sub(load<Tail>(dy, c, k), mul(exp(load<Tail>(y, c, k)), splat(sum)));
    store<Tail>(dx, c, k, add(load<Tail>(dx, c, k), t));
  }
};

/// One row of log_softmax_backward: dxr += dyr - exp(yr) * sum(dyr), the sum
/// in lane order.
/// Requires: dxr, dyr, yr (n,).
NORMLAB_ROW_FN void log_softmax_backward_row(Isa, float* dxr, const float* dyr, const float* yr,
                                             int64_t n) {
  const float sum = lane_sum(n, Values{dyr});
  for_each_vector(n, LogSoftmaxGrad{dxr, dyr, yr, sum});
}

// ---- cross-entropy ----------------------------------------------------------

/// The row's max m and sum_j exp(x_j - m) (lane order).
/// Requires: n > 0; x (n,).
NORMLAB_ROW_FN void max_and_sum_exp(Isa, float& m, float& s, const float* x, int64_t n) {
  m = lane_max(n, Values{x});
  s = lane_sum(n, ShiftedExp{x, m});
}

/// dx += g * exp(x - lse).
struct CrossEntropyGrad {
  float* dx;
  const float* x;
  float g, lse;
  template <bool Tail>
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec t = mul(splat(g), exp(sub(load<Tail>(x, c, k), splat(lse))));
    store<Tail>(dx, c, k, add(load<Tail>(dx, c, k), t));
  }
};
/// One row of cross_entropy_backward before its target's - g: dx += g exp(x - lse).
/// Requires: dx, x (n,).
NORMLAB_ROW_FN void cross_entropy_backward_row(Isa, float* dx, const float* x, float g, float lse,
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
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec wv = w ? load<Tail>(w, c, k) : splat(1.0f);
    const Vec bv = b ? load<Tail>(b, c, k) : splat(0.0f);
    store<Tail>(y, c, k, add(mul(mul(sub(load<Tail>(x, c, k), splat(m)), splat(s)), wv), bv));
  }
};

/// layer_norm_row_forward (normalization.hpp), its operations in its order.
/// Requires: C > 0; yr, xr (C,) (yr may be xr); weight, bias (C,) or null.
NORMLAB_ROW_FN void layer_norm_row_forward(Isa, float* yr, float& mean, float& rstd,
                                           const float* xr, const float* weight, const float* bias,
                                           int64_t C, float eps) {
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
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec xv = load<Tail>(x, c, k);
    const Vec xhat = mul(Centered ? sub(xv, splat(m)) : xv, splat(s));
    store<Tail>(dw, c, k, add(load<Tail>(dw, c, k), mul(load<Tail>(dy, c, k), xhat)));
  }
};
/// db += dy.
struct AddInto {
  float* db;
  const float* dy;
  template <bool Tail>
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
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
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec g = weighted<Tail>(dy, w, c, k);
    const Vec xs = mul(mul(sub(load<Tail>(x, c, k), splat(m)), splat(s)), splat(gx_mean));
    const Vec t = mul(splat(s), sub(sub(g, splat(g_mean)), xs));
    store<Tail>(dx, c, k, overwrite ? t : add(load<Tail>(dx, c, k), t));
  }
};

/// layer_norm_row_backward (normalization.hpp), its operations in its order.
/// Requires: dyr, xr, dxr (C,) (dxr may be xr); dw, db, weight (C,) or null.
NORMLAB_ROW_FN void layer_norm_row_backward(Isa, float* dxr, float* dw, float* db, const float* dyr,
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
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec wv = w ? load<Tail>(w, c, k) : splat(1.0f);
    store<Tail>(y, c, k, mul(mul(load<Tail>(x, c, k), splat(s)), wv));
  }
};

/// One row of rms_norm_forward; returns rstd.
/// Requires: C > 0; yr, xr (C,); weight (C,) or null.
NORMLAB_ROW_FN float rms_norm_row_forward(Isa, float* yr, const float* xr, const float* weight,
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
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec g = weighted<Tail>(dy, w, c, k);
    const Vec xs = mul(mul(load<Tail>(x, c, k), splat(s)), splat(gx_mean));
    const Vec before = overwrite ? zero() : load<Tail>(dx, c, k);
    store<Tail>(dx, c, k, add(before, mul(splat(s), sub(g, xs))));
  }
};

/// One row of rms_norm_backward.
/// Requires: dyr, xr (C,); dxr, dw (C,) or null; weight (C,) or null.
NORMLAB_ROW_FN void rms_norm_row_backward(Isa, float* dxr, float* dw, const float* dyr,
                                          const float* xr, const float* weight, float s, int64_t C,
                                          bool overwrite_dx) {
  if (dw) for_each_vector(C, NormWeightGrad<false>{dw, dyr, xr, 0.0f, s});
  if (!dxr) return;
  const float gx_mean = lane_sum(C, ScaledWeighted{dyr, weight, xr, s}) / static_cast<float>(C);
  for_each_vector(C, RmsNormInputGrad{dxr, dyr, weight, xr, s, gx_mean, overwrite_dx});
}

// ---- GELU -------------------------------------------------------------------

/// GeluKernels<TanhApprox>::shape_factor (activation.hpp) on kLanes lanes, its
/// operations in its order.
template <bool TanhApprox>
NORMLAB_ROW_INLINE Vec gelu_shape_factor(Vec x) {
  const Vec one = splat(1.0f);
  if constexpr (TanhApprox) {
    const Vec u2 =
        mul(splat(-2 * 0.79788456080286535588f), add(x, mul(splat(0.044715f), mul(mul(x, x), x))));
    return div(one, add(one, exp(u2)));
  } else {
    const Vec half = splat(0.5f);
    const Vec abs_x = abs(x);
    const Vec z = mul(abs_x, splat(0.70710678118654752440f));
    const Vec t = div(one, add(one, mul(half, z)));
    Vec poly = splat(0.17087277f);
    for (const float c : {-0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f, -0.18628806f,
                          0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f})
      poly = add(mul(poly, t), splat(c));
    const Vec half_erfc = mul(mul(half, t), exp(sub(poly, mul(z, z))));
    return where_nonnegative(x, sub(one, half_erfc), half_erfc);
  }
}
/// GeluKernels<TanhApprox>::derivative on kLanes lanes.
template <bool TanhApprox>
NORMLAB_ROW_INLINE Vec gelu_derivative(Vec x, Vec f) {
  const Vec x2 = mul(x, x);
  if constexpr (TanhApprox) {
    const Vec du =
        mul(splat(0.79788456080286535588f), add(splat(1.0f), mul(splat(3 * 0.044715f), x2)));
    return add(f, mul(mul(mul(splat(2.0f), x), mul(f, sub(splat(1.0f), f))), du));
  } else {
    const Vec pdf = mul(exp(mul(splat(-0.5f), x2)), splat(0.39894228040143267794f));
    return add(f, mul(x, pdf));
  }
}

/// y = GELU(x).
template <bool TanhApprox>
struct GeluForward {
  float* y;
  const float* x;
  template <bool Tail>
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec v = load<Tail>(x, c, k);
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
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec v = load<Tail>(x, c, k);
    const Vec d = gelu_derivative<TanhApprox>(v, gelu_shape_factor<TanhApprox>(v));
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
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec v = load<Tail>(x, c, k), f = gelu_shape_factor<TanhApprox>(v);
    store<Tail>(y, c, k, mul(v, f));
    store<Tail>(dydx, c, k, gelu_derivative<TanhApprox>(v, f));
  }
};

/// GeluKernels<TanhApprox>::forward on n floats.
template <bool TanhApprox>
NORMLAB_ROW_FN void gelu_forward(Isa, std::bool_constant<TanhApprox>, float* y, const float* x,
                                 int64_t n) {
  for_each_vector(n, GeluForward<TanhApprox>{y, x});
}
/// GeluKernels<TanhApprox>::backward on n floats.
template <bool TanhApprox>
NORMLAB_ROW_FN void gelu_backward(Isa, std::bool_constant<TanhApprox>, float* dx, const float* dy,
                                  const float* x, int64_t n) {
  for_each_vector(n, GeluBackward<TanhApprox>{dx, dy, x});
}
/// GeluKernels<TanhApprox>::forward_and_derivative on n floats.
template <bool TanhApprox>
NORMLAB_ROW_FN void gelu_forward_and_derivative(Isa, std::bool_constant<TanhApprox>, float* y,
                                                float* dydx, const float* x, int64_t n) {
  for_each_vector(n, GeluForwardAndDerivative<TanhApprox>{y, dydx, x});
}

/// y = GELU(x + bias) and, when dydx is not null, dydx = GELU'(x + bias):
/// bias_gelu_row (activation.hpp), its sum x + bias then GeluKernels' formulas.
template <bool TanhApprox>
struct BiasGeluForward {
  float* y;
  float* dydx;
  const float* x;
  const float* bias;
  template <bool Tail>
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec v = add(load<Tail>(x, c, k), load<Tail>(bias, c, k));
    const Vec f = gelu_shape_factor<TanhApprox>(v);
    store<Tail>(y, c, k, mul(v, f));
    if (dydx) store<Tail>(dydx, c, k, gelu_derivative<TanhApprox>(v, f));
  }
};
/// g = 0 + dy * GELU'(x + bias) (GeluKernels::backward into a zeroed g);
/// dx = g (overwrite) or dx += g, when dx is not null; acc += g, when acc is
/// not null: bias_gelu_backward's row (activation.hpp), in its order.
template <bool TanhApprox>
struct BiasGeluBackward {
  float* dx;
  float* acc;
  const float* dy;
  const float* x;
  const float* bias;
  bool overwrite_dx;
  template <bool Tail>
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec v = add(load<Tail>(x, c, k), load<Tail>(bias, c, k));
    const Vec d = gelu_derivative<TanhApprox>(v, gelu_shape_factor<TanhApprox>(v));
    const Vec g = add(zero(), mul(load<Tail>(dy, c, k), d));
    if (dx) store<Tail>(dx, c, k, overwrite_dx ? g : add(load<Tail>(dx, c, k), g));
    if (acc) store<Tail>(acc, c, k, add(load<Tail>(acc, c, k), g));
  }
};

/// One row of bias_gelu_forward (and of the NormFormer kernels' GELU, with
/// its derivative): y = GELU(x + bias), dydx = GELU'(x + bias) when not null.
/// y may be x. Requires: y, x, bias (n,); dydx (n,) or null.
template <bool TanhApprox>
NORMLAB_ROW_FN void bias_gelu_row(Isa, std::bool_constant<TanhApprox>, float* y, float* dydx,
                                  const float* x, const float* bias, int64_t n) {
  for_each_vector(n, BiasGeluForward<TanhApprox>{y, dydx, x, bias});
}
/// One row of bias_gelu_backward: g = dy GELU'(x + bias); dx = g or dx += g
/// (overwrite_dx), acc += g; a null dx or acc is skipped.
/// Requires: dy, x, bias (n,); dx, acc (n,) or null.
template <bool TanhApprox>
NORMLAB_ROW_FN void bias_gelu_row_backward(Isa, std::bool_constant<TanhApprox>, float* dx,
                                           float* acc, const float* dy, const float* x,
                                           const float* bias, int64_t n, bool overwrite_dx) {
  for_each_vector(n, BiasGeluBackward<TanhApprox>{dx, acc, dy, x, bias, overwrite_dx});
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
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec pv = load<Tail>(p, c, k);
    Vec g = load<Tail>(grad, c, k);
    if (coupled) g = add(g, mul(splat(l2), pv));
    const Vec mv = add(mul(load<Tail>(m, c, k), splat(beta1)), mul(splat(one_minus_beta1), g));
    const Vec vv =
        add(mul(load<Tail>(v, c, k), splat(beta2)), mul(mul(splat(one_minus_beta2), g), g));
    store<Tail>(m, c, k, mv);
    store<Tail>(v, c, k, vv);
    const Vec denom = add(div(sqrt(vv), splat(bias_correction2_sqrt)), splat(eps));
    store<Tail>(p, c, k, add(mul(pv, splat(decay)), div(mul(splat(neg_step_size), mv), denom)));
  }
};
/// AdamW on n elements; the fields of `u` as in AdamWUpdate.
NORMLAB_ROW_FN void adamw_block(Isa, const AdamWUpdate& u, int64_t n) {
  for_each_vector(n, u);
}

// ---- SGD --------------------------------------------------------------------

/// The SGD update of sgd_step (optim.hpp), SgdElementUpdate's operations
/// (optim_args.hpp) in their order:
///   g = grad (+ wd p);  with momentum: buf = first_step ? g : buf momentum + (1 - dampening) g,
///   g = nesterov ? g + momentum buf : buf;  p = p + (-lr) g.
struct SgdUpdate {
  float* p;
  const float* grad;
  float* buf;  ///< null without momentum
  float wd, momentum, one_minus_dampening, neg_lr;
  bool decay, use_momentum, nesterov, first_step;
  template <bool Tail>
  NORMLAB_ROW_INLINE void at(int64_t c, int64_t k) const {
    const Vec pv = load<Tail>(p, c, k);
    Vec g = load<Tail>(grad, c, k);
    if (decay) g = add(g, mul(splat(wd), pv));
    if (use_momentum) {
      const Vec b = first_step ? g
                               : add(mul(load<Tail>(buf, c, k), splat(momentum)),
                                     mul(splat(one_minus_dampening), g));
      store<Tail>(buf, c, k, b);
      g = nesterov ? add(g, mul(splat(momentum), b)) : b;
    }
    store<Tail>(p, c, k, add(pv, mul(splat(neg_lr), g)));
  }
};
/// SGD on n elements; the fields of `u` as in SgdUpdate.
NORMLAB_ROW_FN void sgd_block(Isa, const SgdUpdate& u, int64_t n) {
  for_each_vector(n, u);
}
