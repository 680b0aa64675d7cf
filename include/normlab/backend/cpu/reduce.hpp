// normlab/backend/cpu/reduce.hpp — sums along an axis and their broadcast-back.
//
// A reduction views its input as (outer, n, inner) and sums the middle axis.
// Sums accumulate in double and in a fixed order that does not depend on the
// thread count, so results are reproducible run to run on any machine size.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "normlab/backend/cpu/cpu.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// out[o, i] = scale * sum_k in[o, k, i], with in viewed as (outer, n, inner)
/// and out as (outer, inner).
template <class Scalar>
void sum_axis_forward(Cpu, Scalar* out, const Scalar* in, int64_t outer, int64_t n, int64_t inner,
                      Scalar scale) {
  constexpr int64_t kChunk = 4096;  // fixed partial-sum length: thread-count independent
  if (outer * inner == 1 && n > 2 * kChunk) {
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      double acc = 0;
      for (int64_t k = c * kChunk; k < std::min(n, (c + 1) * kChunk); ++k) acc += in[k];
      partial[static_cast<size_t>(c)] = acc;
    }
    double total = 0;
    for (double p : partial) total += p;
    out[0] = static_cast<Scalar>(total * static_cast<double>(scale));
    return;
  }
  // Each (o, block of up to 256 columns) is one task: rows are read in order,
  // contiguous along `inner`.
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (outer * n * inner > kParallelGrain)
  for (int64_t task = 0; task < outer * blocks; ++task) {
    const int64_t o = task / blocks, i0 = (task % blocks) * kBlock;
    const int64_t width = std::min(kBlock, inner - i0);
    double acc[kBlock] = {};
    for (int64_t k = 0; k < n; ++k) {
      const Scalar* row = in + (o * n + k) * inner + i0;
      for (int64_t i = 0; i < width; ++i) acc[i] += row[i];
    }
    for (int64_t i = 0; i < width; ++i)
      out[o * inner + i0 + i] = static_cast<Scalar>(acc[i] * static_cast<double>(scale));
  }
}

/// din[o, k, i] += scale * dout[o, i]: the backward of sum_axis_forward.
template <class Scalar>
void sum_axis_backward(Cpu, Scalar* din, const Scalar* dout, int64_t outer, int64_t n,
                       int64_t inner, Scalar scale) {
#pragma omp parallel for schedule(static) if (outer * n * inner > kParallelGrain)
  for (int64_t row = 0; row < outer * n; ++row) {
    const Scalar* src = dout + (row / n) * inner;
    Scalar* dst = din + row * inner;
    for (int64_t i = 0; i < inner; ++i) dst[i] += scale * src[i];
  }
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
