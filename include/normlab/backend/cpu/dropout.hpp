// normlab/backend/cpu/dropout.hpp — dropout mask kernels.
#pragma once

#include <cstdint>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/core/random.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// The scaled keep-mask of inverted dropout:
///   mask[i] = u_i >= p ? 1 / (1 - p) : 0,  u_i = philox_uniform<float>(seed, first_block, i, 0,
///   1),
/// compared in double. Element i depends only on (seed, first_block, i) — not
/// on Scalar — so a seed gives the same mask on every backend, for every thread
/// count, and for float and double models alike (one 32-bit word per element:
/// 24 random bits are ample for a Bernoulli draw).
/// Requires: 0 <= p <= 1 (p == 1 gives an all-zero mask, since u_i < 1).
template <class Scalar>
void dropout_mask(Cpu, Scalar* mask /*(n)*/, int64_t n, uint64_t seed, uint64_t first_block,
                  double p) {
  const Scalar keep = p < 1 ? static_cast<Scalar>(1.0 / (1.0 - p)) : Scalar(0);
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i)
    mask[i] = static_cast<double>(philox_uniform<float>(seed, first_block, i, 0.f, 1.f)) >= p
                  ? keep
                  : Scalar(0);
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
