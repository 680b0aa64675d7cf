// normlab/backend/cpu/layout.hpp — layout kernels: strided gathers (permute)
// and row blocks (slice, concat).
#pragma once

#include <cstdint>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/core/shape.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// dst[j] = src[plan.offset(j)], or += when `accumulate`, for the n elements of
/// the contiguous destination (see StridedPlan in core/shape.hpp).
template <class Scalar>
void gather_strided(Cpu, Scalar* dst, const Scalar* src, const StridedPlan& plan, int64_t n,
                    bool accumulate) {
  if (n == 0) return;
  const int last = plan.ndim - 1;
  const int64_t width = plan.ndim ? plan.sizes[last] : 1;
  const int64_t step = plan.ndim ? plan.strides[last] : 0;
  const int64_t rows = n / width;
  // One destination row at a time: the source offset of its first element is
  // computed once, the rest step by the innermost stride.
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const Scalar* s = src + plan.offset(r * width);
    Scalar* d = dst + r * width;
    if (accumulate)
      for (int64_t i = 0; i < width; ++i) d[i] += s[i * step];
    else
      for (int64_t i = 0; i < width; ++i) d[i] = s[i * step];
  }
}

/// For r < rows and c < cols: dst[r * dst_stride + c] = src[r * src_stride + c]
/// (or += when `accumulate`). Slices and concatenations are such row blocks.
template <class Scalar>
void copy_rows(Cpu, Scalar* dst, int64_t dst_stride, const Scalar* src, int64_t src_stride,
               int64_t rows, int64_t cols, bool accumulate) {
#pragma omp parallel for schedule(static) if (rows * cols > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    Scalar* d = dst + r * dst_stride;
    const Scalar* s = src + r * src_stride;
    if (accumulate)
      for (int64_t c = 0; c < cols; ++c) d[c] += s[c];
    else
      for (int64_t c = 0; c < cols; ++c) d[c] = s[c];
  }
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
