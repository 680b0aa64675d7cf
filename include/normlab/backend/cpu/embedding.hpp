// normlab/backend/cpu/embedding.hpp — embedding gather and scatter-add kernels.
//
// The kernels trust their indices: the op validates them on the host first
// (nothing may throw inside an OpenMP region).
#pragma once

#include <cstdint>

#include "normlab/backend/cpu/cpu.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// out[i, :] = weight[indices[i], :] for i < n.
/// Requires: every index in [0, V).
template <class Scalar>
void embedding_forward(Cpu, Scalar* out /*(N, C)*/, const Scalar* weight /*(V, C)*/,
                       const int64_t* indices /*(N)*/, int64_t n, int64_t c) {
#pragma omp parallel for if (n * c > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    const Scalar* src = weight + indices[i] * c;  // (C)
    Scalar* dst = out + i * c;                    // (C)
    for (int64_t j = 0; j < c; ++j) dst[j] = src[j];
  }
}

/// dweight[indices[i], :] += dout[i, :] for i < n.
/// Repeated indices receive the sum. Threads own disjoint column blocks and
/// walk the rows in order, so there is no race and every element is summed in
/// the same order for any thread count.
template <class Scalar>
void embedding_backward(Cpu, Scalar* dweight /*(V, C)*/, const Scalar* dout /*(N, C)*/,
                        const int64_t* indices /*(N)*/, int64_t n, int64_t c) {
  constexpr int64_t kBlock = 64;  // columns per task: one cache line of doubles, eight of floats
  const int64_t blocks = (c + kBlock - 1) / kBlock;
#pragma omp parallel for if (n * c > kParallelGrain)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t j0 = b * kBlock, j1 = j0 + kBlock < c ? j0 + kBlock : c;
    for (int64_t i = 0; i < n; ++i) {
      Scalar* dst = dweight + indices[i] * c;  // (C)
      const Scalar* src = dout + i * c;        // (C)
      for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  }
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
