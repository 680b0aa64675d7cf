// normlab/backend/cpu/softmax.hpp — softmax and log-softmax forward/backward kernels.
//
// x is (rows, n) row-major; each row is normalized on its own, after
// subtracting its max so exp never overflows. Backward kernels add into dx.
//
// Causal mask: with causal_tq > 0 the rows form (causal_tq, n) matrices
// (row r is query i = r % causal_tq) and entry j of row i is masked when
// j > i + (n - causal_tq): the mask is aligned to the bottom-right corner, so a
// square matrix loses its strict upper triangle. causal_tq == 0: no mask.
//
// Float softmax and log-softmax, forward and backward, take the AVX2 or
// AVX-512 code of row_kernels_x86.hpp on the avx2 and avx512 paths
// (kernel_path.hpp). Softmax backward gives this code's bits; softmax forward
// differs by a few ulp (the exp of some elements); log-softmax by the
// rounding of its sums too (this code takes std::exp and adds in element
// order, the wide kernels take Eigen's exp and add in lane order).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/backend/cpu/gemm.hpp"  // Eigen, configured
#include "normlab/backend/cpu/row_kernels_x86.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// How many leading entries of row r the causal mask keeps (n when causal_tq
/// is 0; 0 for a query that sees no key, when causal_tq > n).
inline int64_t causal_row_length(int64_t r, int64_t n, int64_t causal_tq) {
  if (causal_tq == 0) return n;
  return std::clamp<int64_t>(r % causal_tq + n - causal_tq + 1, 0, n);
}

/// out = exp(x - max) / sum(exp(x - max)) per row over the unmasked entries;
/// masked entries are exactly 0 (so is a row with every entry masked).
/// Requires: out, x (rows, n); causal_tq >= 0 and, when > 0, divides rows.
template <class Scalar>
void softmax_forward(Cpu, Scalar* out, const Scalar* x, int64_t rows, int64_t n,
                     int64_t causal_tq) {
  const CpuKernels wide = wide_row_kernels<Scalar>();
#pragma omp parallel for if (rows * n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const Scalar* xr = x + r * n;  // (n,)
    Scalar* yr = out + r * n;      // (n,)
    const int64_t len = causal_row_length(r, n, causal_tq);
    if (len > 0 &&
        !run_wide_row_kernel<Scalar>(wide, [&](auto isa) { softmax_row(isa, yr, xr, len); })) {
      // vectorized: Eigen's exp, lane-wise max and sum
      using Array = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
      const Scalar mx = lane_max<Scalar>(len, [&](int64_t j) { return xr[j]; });
      Eigen::Map<Array>(yr, len) = (Eigen::Map<const Array>(xr, len) - mx).exp();
      const Scalar inv = Scalar(1) / lane_sum<Scalar>(len, [&](int64_t j) { return yr[j]; });
      for (int64_t j = 0; j < len; ++j) yr[j] *= inv;
    }
    for (int64_t j = len; j < n; ++j) yr[j] = Scalar(0);
  }
}

/// dx += y * (dy - sum(dy * y)) per row; masked entries (y == 0) get nothing.
/// Requires: the forward's y and causal_tq; dx, dout, y (rows, n).
template <class Scalar>
void softmax_backward(Cpu, Scalar* dx, const Scalar* dout, const Scalar* y, int64_t rows, int64_t n,
                      int64_t causal_tq) {
  const CpuKernels wide = wide_row_kernels<Scalar>();
#pragma omp parallel for if (rows * n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const Scalar* dyr = dout + r * n;  // (n,)
    const Scalar* yr = y + r * n;      // (n,)
    Scalar* dxr = dx + r * n;          // (n,)
    const int64_t len = causal_row_length(r, n, causal_tq);
    if (run_wide_row_kernel<Scalar>(
            wide, [&](auto isa) { softmax_backward_row(isa, dxr, dyr, yr, len); }))
      continue;
    const Scalar dot = lane_sum<Scalar>(len, [&](int64_t j) { return dyr[j] * yr[j]; });
    for (int64_t j = 0; j < len; ++j) dxr[j] += yr[j] * (dyr[j] - dot);
  }
}

/// out = (x - max) - log(sum(exp(x - max))) per row.
/// Requires: out, x (rows, n).
template <class Scalar>
void log_softmax_forward(Cpu, Scalar* out, const Scalar* x, int64_t rows, int64_t n) {
  const CpuKernels wide = wide_row_kernels<Scalar>();
#pragma omp parallel for if (rows * n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const Scalar* xr = x + r * n;  // (n,)
    Scalar* yr = out + r * n;      // (n,)
    if (n == 0 ||
        run_wide_row_kernel<Scalar>(wide, [&](auto isa) { log_softmax_row(isa, yr, xr, n); }))
      continue;
    Scalar mx = xr[0];
    for (int64_t j = 1; j < n; ++j) mx = std::max(mx, xr[j]);
    Scalar sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += std::exp(xr[j] - mx);
    const Scalar log_sum = std::log(sum);
    for (int64_t j = 0; j < n; ++j) yr[j] = (xr[j] - mx) - log_sum;
  }
}

/// dx += dy - exp(y) * sum(dy) per row.
/// Requires: the forward's y; dx, dout, y (rows, n).
template <class Scalar>
void log_softmax_backward(Cpu, Scalar* dx, const Scalar* dout, const Scalar* y, int64_t rows,
                          int64_t n) {
  const CpuKernels wide = wide_row_kernels<Scalar>();
#pragma omp parallel for if (rows * n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const Scalar* dyr = dout + r * n;  // (n,)
    const Scalar* yr = y + r * n;      // (n,)
    Scalar* dxr = dx + r * n;          // (n,)
    if (run_wide_row_kernel<Scalar>(
            wide, [&](auto isa) { log_softmax_backward_row(isa, dxr, dyr, yr, n); }))
      continue;
    Scalar sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += dyr[j];
    for (int64_t j = 0; j < n; ++j) dxr[j] += dyr[j] - std::exp(yr[j]) * sum;
  }
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
