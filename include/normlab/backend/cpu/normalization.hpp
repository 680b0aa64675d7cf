// normlab/backend/cpu/normalization.hpp — LayerNorm and RMSNorm forward/backward kernels.
//
// x is (rows, C) row-major and each row is normalized on its own. Forward
// saves per-row statistics (mean and rstd = 1 / sqrt(var + eps)) for the
// backward pass. Backward kernels add into their gradient outputs (+=), or
// write dx (=) with overwrite_dx, and any gradient output may be null to skip
// it.
//
// dweight and dbias are sums over rows. Rows are cut into chunks whose size
// depends only on (rows, C), each chunk sums into its own partial row, and the
// partials are added in chunk order: the result has the same bits for any
// thread count, and no two threads write the same element.
//
// Float rows take the AVX2 or AVX-512 code of row_kernels_x86.hpp on the avx2 and avx512
// paths (kernel_path.hpp): the same operations in the same order, with the
// same bits in a build without -march.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/backend/cpu/row_kernels_x86.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// Upper bound on the chunks of a column-sum reduction, so the partial rows
/// take at most this many rows of C elements.
inline constexpr int64_t kMaxReductionChunks = 64;

/// Calls row_fn(r, acc) for every row r < rows, in parallel over chunks of
/// rows; row_fn adds the row's contribution to the k-th column sum into
/// acc[k][0, C) (null where sums[k] is null). Ensures: sums[k][c] received the
/// total over all rows, in an order fixed by (rows, C) alone.
template <size_t N, class Scalar, class RowFn>
void rows_with_column_sums(int64_t rows, int64_t C, const std::array<Scalar*, N>& sums,
                           RowFn row_fn) {
  const int64_t chunk = std::max({int64_t{1}, kParallelGrain / std::max(C, int64_t{1}),
                                  (rows + kMaxReductionChunks - 1) / kMaxReductionChunks});
  const int64_t chunks = (rows + chunk - 1) / chunk;
  const bool any_sum =
      std::any_of(sums.begin(), sums.end(), [](Scalar* s) { return s != nullptr; });
  const bool partial = chunks > 1 && any_sum;
  // Per-chunk partial column sums, (chunks, C) for each requested sum; none
  // when one chunk adds in place.
  std::array<std::vector<Scalar>, N> parts;
  for (size_t k = 0; k < N; ++k)
    if (partial && sums[k]) parts[k].assign(static_cast<size_t>(chunks * C), Scalar(0));
#pragma omp parallel for if (chunks > 1)
  for (int64_t j = 0; j < chunks; ++j) {
    std::array<Scalar*, N> acc;
    for (size_t k = 0; k < N; ++k) acc[k] = sums[k] && partial ? parts[k].data() + j * C : sums[k];
    const int64_t end = std::min(rows, (j + 1) * chunk);
    for (int64_t r = j * chunk; r < end; ++r) row_fn(r, acc);
  }
  if (!partial) return;
#pragma omp parallel for if (chunks * C > kParallelGrain)
  for (int64_t c = 0; c < C; ++c) {
    for (size_t k = 0; k < N; ++k) {
      if (!sums[k]) continue;
      Scalar total = 0;
      for (int64_t j = 0; j < chunks; ++j) total += parts[k][static_cast<size_t>(j * C + c)];
      sums[k][c] += total;
    }
  }
}

/// rows_with_column_sums for two sums: row_fn(r, acc_a, acc_b).
template <class Scalar, class RowFn>
void rows_with_column_sums(int64_t rows, int64_t C, Scalar* sum_a, Scalar* sum_b, RowFn row_fn) {
  rows_with_column_sums<2>(
      rows, C, std::array<Scalar*, 2>{sum_a, sum_b},
      [&](int64_t r, const std::array<Scalar*, 2>& acc) { row_fn(r, acc[0], acc[1]); });
}

/// One row of layer_norm_forward: yr = (xr - m) * s * weight + bias with the
/// row's mean m and s = 1 / sqrt(var + eps), both returned through mean and
/// rstd. yr may be xr (normalized in place).
/// Requires: C > 0; yr, xr (C,); weight, bias (C,) or null.
template <class Scalar>
void layer_norm_row_forward(Scalar* yr, Scalar& mean, Scalar& rstd, const Scalar* xr,
                            const Scalar* weight, const Scalar* bias, int64_t C, Scalar eps) {
  if (run_wide_row_kernel<Scalar>(wide_row_kernels<Scalar>(), [&](auto isa) {
        layer_norm_row_forward(isa, yr, mean, rstd, xr, weight, bias, C, eps);
      }))
    return;
  Scalar m = lane_sum<Scalar>(C, [&](int64_t c) { return xr[c]; }) / static_cast<Scalar>(C);
  // Second pass over the deviations from m. Their sum is the rounding error
  // of the first one: adding its mean back refines m, and subtracting its
  // square leaves the variance about the refined mean (corrected two-pass,
  // Chan, Golub & LeVeque 1983).
  const Scalar dsum = lane_sum<Scalar>(C, [&](int64_t c) { return xr[c] - m; });
  const Scalar d2sum = lane_sum<Scalar>(C, [&](int64_t c) { return (xr[c] - m) * (xr[c] - m); });
  const Scalar dm = dsum / static_cast<Scalar>(C);
  m += dm;
  const Scalar v = std::max(d2sum / static_cast<Scalar>(C) - dm * dm, Scalar(0));
  const Scalar s = Scalar(1) / std::sqrt(v + eps);
  for (int64_t c = 0; c < C; ++c) {
    const Scalar w = weight ? weight[c] : Scalar(1), b = bias ? bias[c] : Scalar(0);
    yr[c] = (xr[c] - m) * s * w + b;
  }
  mean = m;
  rstd = s;
}

/// One row of layer_norm_backward (same formulas): dw += dyr * xhat and
/// db += dyr where not null, then dxr (+)= rstd (g - mean(g) - xhat mean(g xhat))
/// where dxr is not null. dxr may be xr: every read of xr comes before the
/// element's write.
/// Requires: dyr, xr, dxr (C,); dw, db, weight (C,) or null.
template <class Scalar>
void layer_norm_row_backward(Scalar* dxr, Scalar* dw, Scalar* db, const Scalar* dyr,
                             const Scalar* xr, const Scalar* weight, Scalar m, Scalar s, int64_t C,
                             bool overwrite_dx) {
  if (run_wide_row_kernel<Scalar>(wide_row_kernels<Scalar>(), [&](auto isa) {
        layer_norm_row_backward(isa, dxr, dw, db, dyr, xr, weight, m, s, C, overwrite_dx);
      }))
    return;
  if (dw)
    for (int64_t c = 0; c < C; ++c) dw[c] += dyr[c] * ((xr[c] - m) * s);
  if (db)
    for (int64_t c = 0; c < C; ++c) db[c] += dyr[c];
  if (!dxr) return;
  auto g = [&](int64_t c) { return weight ? dyr[c] * weight[c] : dyr[c]; };
  const Scalar g_mean = lane_sum<Scalar>(C, g) / static_cast<Scalar>(C);
  const Scalar gx_mean = lane_sum<Scalar>(C, [&](int64_t c) { return g(c) * ((xr[c] - m) * s); }) /
                         static_cast<Scalar>(C);
  if (overwrite_dx)
    for (int64_t c = 0; c < C; ++c) dxr[c] = s * (g(c) - g_mean - (xr[c] - m) * s * gx_mean);
  else
    for (int64_t c = 0; c < C; ++c) dxr[c] += s * (g(c) - g_mean - (xr[c] - m) * s * gx_mean);
}

/// out = (x - mean) * rstd * weight + bias per row, with mean, the biased
/// variance var (two passes: mean first, then the deviations from it) and
/// rstd = 1 / sqrt(var + eps) stored per row.
/// Requires: C > 0; out, x (rows, C); mean, rstd (rows,); weight, bias (C,) or null
/// (null: scale 1 / shift 0).
template <class Scalar>
void layer_norm_forward(Cpu, Scalar* out, Scalar* mean, Scalar* rstd, const Scalar* x,
                        const Scalar* weight, const Scalar* bias, int64_t rows, int64_t C,
                        Scalar eps) {
#pragma omp parallel for if (rows * C > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r)
    layer_norm_row_forward(out + r * C, mean[r], rstd[r], x + r * C, weight, bias, C, eps);
}

/// With xhat = (x - mean) * rstd and g = dout * weight:
///   dx += rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))   (= with overwrite_dx),
///   dweight += sum_rows dout * xhat,   dbias += sum_rows dout.
/// Requires: the forward's x, weight, mean, rstd; dout, dx (rows, C); dweight,
/// dbias (C,). Null dx / dweight / dbias are skipped; null weight means 1.
template <class Scalar>
void layer_norm_backward(Cpu, Scalar* dx, Scalar* dweight, Scalar* dbias, const Scalar* dout,
                         const Scalar* x, const Scalar* weight, const Scalar* mean,
                         const Scalar* rstd, int64_t rows, int64_t C, bool overwrite_dx = false) {
  rows_with_column_sums(rows, C, dweight, dbias, [&](int64_t r, Scalar* dw, Scalar* db) {
    layer_norm_row_backward(dx ? dx + r * C : nullptr, dw, db, dout + r * C, x + r * C, weight,
                            mean[r], rstd[r], C, overwrite_dx);
  });
}

/// out = x * rstd * weight per row, with rstd = 1 / sqrt(mean_c(x^2) + eps)
/// stored per row.
/// Requires: C > 0; out, x (rows, C); rstd (rows,); weight (C,) or null (scale 1).
template <class Scalar>
void rms_norm_forward(Cpu, Scalar* out, Scalar* rstd, const Scalar* x, const Scalar* weight,
                      int64_t rows, int64_t C, Scalar eps) {
  const CpuKernels wide = wide_row_kernels<Scalar>();
#pragma omp parallel for if (rows * C > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const Scalar* xr = x + r * C;  // (C,)
    Scalar* yr = out + r * C;      // (C,)
    if (run_wide_row_kernel<Scalar>(
            wide, [&](auto isa) { rstd[r] = rms_norm_row_forward(isa, yr, xr, weight, C, eps); }))
      continue;
    const Scalar ms =
        lane_sum<Scalar>(C, [&](int64_t c) { return xr[c] * xr[c]; }) / static_cast<Scalar>(C);
    const Scalar s = Scalar(1) / std::sqrt(ms + eps);
    for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * s * (weight ? weight[c] : Scalar(1));
    rstd[r] = s;
  }
}

/// With xhat = x * rstd and g = dout * weight:
///   dx += rstd * (g - xhat * mean_c(g * xhat))   (= with overwrite_dx),
///   dweight += sum_rows dout * xhat.
/// Requires: the forward's x, weight, rstd; dout, dx (rows, C); dweight (C,).
/// Null dx / dweight are skipped; null weight means 1.
template <class Scalar>
void rms_norm_backward(Cpu, Scalar* dx, Scalar* dweight, const Scalar* dout, const Scalar* x,
                       const Scalar* weight, const Scalar* rstd, int64_t rows, int64_t C,
                       bool overwrite_dx = false) {
  const CpuKernels wide = wide_row_kernels<Scalar>();
  rows_with_column_sums(
      rows, C, dweight, static_cast<Scalar*>(nullptr), [&](int64_t r, Scalar* dw, Scalar*) {
        const Scalar* dyr = dout + r * C;  // (C,)
        const Scalar* xr = x + r * C;      // (C,)
        const Scalar s = rstd[r];
        if (run_wide_row_kernel<Scalar>(wide, [&](auto isa) {
              rms_norm_row_backward(isa, dx ? dx + r * C : nullptr, dw, dyr, xr, weight, s, C,
                                    overwrite_dx);
            }))
          return;
        if (dw)
          for (int64_t c = 0; c < C; ++c) dw[c] += dyr[c] * (xr[c] * s);
        if (!dx) return;
        const Scalar gx_mean =
            lane_sum<Scalar>(
                C,
                [&](int64_t c) { return (weight ? dyr[c] * weight[c] : dyr[c]) * (xr[c] * s); }) /
            static_cast<Scalar>(C);
        Scalar* dxr = dx + r * C;  // (C,)
        for (int64_t c = 0; c < C; ++c) {
          const Scalar g = weight ? dyr[c] * weight[c] : dyr[c];
          dxr[c] = (overwrite_dx ? Scalar(0) : dxr[c]) + s * (g - xr[c] * s * gx_mean);
        }
      });
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
