// normlab/backend/cpu/optim.hpp — fused optimizer updates, the squared norm
// used by gradient clipping, and an in-place scale.
//
// Each update reads and writes every element once, in one pass, with the
// operations in the order PyTorch 1.13's single-tensor implementations apply
// them (torch/optim/adamw.py, adam.py, sgd.py), so a double run matches
// PyTorch to rounding. Hyper-parameters arrive as doubles and are cast to T
// once per call, as PyTorch casts its Python-float scalars to the tensor's
// type. The CUDA backend mirrors these signatures in normlab::cuda.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/backend/optim_args.hpp"

namespace normlab::inline v0::cpu {

/// Adam (l2 > 0) or AdamW (weight_decay > 0) on n elements, in place: the
/// update of AdamWElementUpdate (backend/optim_args.hpp) on each element.
/// Requires: param, grad, m, v hold n elements each; m and v start at zero.
template <class T>
void adamw_step(Cpu, T* param /*(n)*/, const T* grad /*(n)*/, T* m /*(n)*/, T* v /*(n)*/, int64_t n,
                AdamWStepArgs a) {
  const AdamWElementUpdate<T> update(a);
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) update(param, grad, m, v, i);
}

/// SGD with optional momentum (torch.optim.SGD) on n elements, in place: the
/// update of SgdElementUpdate (backend/optim_args.hpp) on each element.
/// Requires: param and grad hold n elements; momentum_buffer holds n elements
/// when momentum != 0 (it may be null otherwise).
template <class T>
void sgd_step(Cpu, T* param /*(n)*/, const T* grad /*(n)*/, T* momentum_buffer /*(n) or null*/,
              int64_t n, SgdStepArgs a) {
  const SgdElementUpdate<T> update(a);
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) update(param, grad, momentum_buffer, i);
}

/// sum_i x[i]^2, accumulated in double over fixed 4096-element chunks that are
/// then added in chunk order: the result does not depend on the thread count.
template <class T>
double sum_of_squares(Cpu, const T* x /*(n)*/, int64_t n) {
  constexpr int64_t kChunk = 4096;
  const auto chunk_sum = [&](int64_t c) {
    double acc = 0;
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t k = c * kChunk; k < end; ++k) {
      const double v = static_cast<double>(x[k]);
      acc += v * v;
    }
    return acc;
  };
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) return n > 0 ? chunk_sum(0) : 0.0;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t c = 0; c < chunks; ++c) partial[static_cast<size_t>(c)] = chunk_sum(c);
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

/// x[i] *= s for i < n.
template <class T>
void scale_in_place(Cpu, T* x /*(n)*/, int64_t n, T s) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace normlab::inline v0::cpu
