// normlab/backend/cpu/loss.hpp — cross-entropy forward/backward kernels.
//
// Rows are the N = prod(leading dims) positions of (N, V) logits. A row whose
// target equals `ignore_index` contributes nothing to the loss or gradient.
// The kernels trust their targets: the op validates them on the host first
// (nothing may throw inside an OpenMP region).
//
// Float rows take the AVX2 or AVX-512 code of row_kernels_x86.hpp on the avx2 and avx512
// paths (kernel_path.hpp): the same formulas, the log-sum-exp within a few ulp
// of this code's (its sum of exp adds in lane order).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/backend/cpu/gemm.hpp"  // Eigen, configured
#include "normlab/backend/cpu/row_kernels_x86.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// Per row r: lse[r] = log sum_j exp(logits[r, j]) (computed as m + log sum_j exp(x_j - m),
/// m = max_j x_j, so large logits do not overflow) and losses[r] = lse[r] - logits[r, t_r];
/// both are 0 on ignored rows. Then total[0] = scale * sum_r losses[r], summed in row
/// order in double (the same value for every thread count).
///
/// Requires: every target is ignore_index or in [0, v); v >= 1 unless all rows are ignored.
template <class Scalar>
void cross_entropy_forward(Cpu, Scalar* total /*()*/, Scalar* losses /*(N)*/, Scalar* lse /*(N)*/,
                           const Scalar* logits /*(N, V)*/, const int64_t* targets /*(N)*/,
                           int64_t n, int64_t v, int64_t ignore_index, Scalar scale) {
  using Array = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  const CpuKernels wide = wide_row_kernels<Scalar>();
#pragma omp parallel for if (n * v > kParallelGrain)
  for (int64_t r = 0; r < n; ++r) {
    const int64_t t = targets[r];
    if (t == ignore_index) {
      lse[r] = Scalar(0);
      losses[r] = Scalar(0);
      continue;
    }
    const Scalar* x = logits + r * v;  // (V)
    Scalar m = 0, s = 0;               // the row's max and sum of exp(x - m)
    // The wide kernels add the exps in lane order.
    if (!run_wide_row_kernel<Scalar>(wide, [&](auto isa) { max_and_sum_exp(isa, m, s, x, v); })) {
      m = lane_max<Scalar>(v, [&](int64_t j) { return x[j]; });
      // Eigen's vectorized exp; its sum adds in an order fixed by v.
      s = (Eigen::Map<const Array>(x, v) - m).exp().sum();
    }
    lse[r] = m + std::log(s);
    losses[r] = lse[r] - x[t];
  }
  double sum = 0;
  for (int64_t r = 0; r < n; ++r) sum += static_cast<double>(losses[r]);
  total[0] = static_cast<Scalar>(static_cast<double>(scale) * sum);
}

/// For every row r that is not ignored:
///   dlogits[r, j] += dtotal[0] * scale * (exp(logits[r, j] - lse[r]) - [j == t_r]),
/// the gradient of total = scale * sum_r losses[r]; `lse` is what the forward saved.
/// `dtotal` is a backend pointer to the scalar upstream gradient.
template <class Scalar>
void cross_entropy_backward(Cpu, Scalar* dlogits /*(N, V)*/, const Scalar* dtotal /*()*/,
                            const Scalar* logits /*(N, V)*/, const Scalar* lse /*(N)*/,
                            const int64_t* targets /*(N)*/, int64_t n, int64_t v,
                            int64_t ignore_index, Scalar scale) {
  using Array = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  const Scalar g = dtotal[0] * scale;
  const CpuKernels wide = wide_row_kernels<Scalar>();
#pragma omp parallel for if (n * v > kParallelGrain)
  for (int64_t r = 0; r < n; ++r) {
    const int64_t t = targets[r];
    if (t == ignore_index) continue;
    const Scalar* x = logits + r * v;  // (V)
    Scalar* dx = dlogits + r * v;      // (V)
    if (!run_wide_row_kernel<Scalar>(
            wide, [&](auto isa) { cross_entropy_backward_row(isa, dx, x, g, lse[r], v); }))
      Eigen::Map<Array>(dx, v) += g * (Eigen::Map<const Array>(x, v) - lse[r]).exp();
    dx[t] -= g;
  }
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
