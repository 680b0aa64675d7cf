// normlab/backend/cpu/loss.hpp — cross-entropy forward/backward kernels.
//
// Rows are the N = prod(leading dims) positions of (N, V) logits. A row whose
// target equals `ignore_index` contributes nothing to the loss or gradient.
// The kernels trust their targets: the op validates them on the host first
// (nothing may throw inside an OpenMP region).
//
// Float rows take the AVX2 code of kernels_avx2.hpp on the avx2 and avx512
// paths (kernel_path.hpp): the same formulas, the log-sum-exp within a few ulp
// of this code's (its sum of exp adds in lane order).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/backend/cpu/gemm.hpp"  // Eigen, configured
#include "normlab/backend/cpu/kernels_avx2.hpp"

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
  [[maybe_unused]] const bool wide = use_avx2_row_kernels<Scalar>();
#pragma omp parallel for if (n * v > kParallelGrain)
  for (int64_t r = 0; r < n; ++r) {
    const int64_t t = targets[r];
    if (t == ignore_index) {
      lse[r] = Scalar(0);
      losses[r] = Scalar(0);
      continue;
    }
    const Scalar* x = logits + r * v;  // (V)
#ifdef NORMLAB_X86_KERNELS
    if constexpr (std::is_same_v<Scalar, float>)
      if (wide) {  // the same formula, the sum of exp in lane order
        float m, s;
        avx2::max_and_sum_exp(m, s, x, v);
        lse[r] = m + std::log(s);
        losses[r] = lse[r] - x[t];
        continue;
      }
#endif
    const Scalar m = lane_max<Scalar>(v, [&](int64_t j) { return x[j]; });
    // Eigen's vectorized exp; its sum adds in an order fixed by v.
    const Scalar s = (Eigen::Map<const Array>(x, v) - m).exp().sum();
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
  [[maybe_unused]] const bool wide = use_avx2_row_kernels<Scalar>();
#pragma omp parallel for if (n * v > kParallelGrain)
  for (int64_t r = 0; r < n; ++r) {
    const int64_t t = targets[r];
    if (t == ignore_index) continue;
    const Scalar* x = logits + r * v;  // (V)
    Scalar* dx = dlogits + r * v;      // (V)
#ifdef NORMLAB_X86_KERNELS
    if constexpr (std::is_same_v<Scalar, float>)
      if (wide) {
        avx2::cross_entropy_backward_row(dx, x, g, lse[r], v);
        dx[t] -= g;
        continue;
      }
#endif
    Eigen::Map<Array>(dx, v) += g * (Eigen::Map<const Array>(x, v) - lse[r]).exp();
    dx[t] -= g;
  }
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
