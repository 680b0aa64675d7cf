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

/// Adam (l2 > 0) or AdamW (weight_decay > 0) on n elements, in place:
///
///   g  = grad + l2 * p                           (Adam's L2 term; l2 = 0 for AdamW)
///   p  = p * (1 - lr * weight_decay)             (AdamW's decoupled decay)
///   m  = beta1 * m + (1 - beta1) * g
///   v  = beta2 * v + (1 - beta2) * g * g
///   p  = p - (lr / bias_correction1) * m / (sqrt(v) / sqrt(bias_correction2) + eps)
///
/// Requires: param, grad, m, v hold n elements each; m and v start at zero.
/// The coupled term reads p before the decoupled decay; using both at once is
/// allowed but neither PyTorch optimizer does.
template <class T>
void adamw_step(Cpu, T* param /*(n)*/, const T* grad /*(n)*/, T* m /*(n)*/, T* v /*(n)*/, int64_t n,
                AdamWStepArgs a) {
  const T decay = static_cast<T>(1 - a.lr * a.weight_decay);
  const T l2 = static_cast<T>(a.l2);
  const T beta1 = static_cast<T>(a.beta1), beta2 = static_cast<T>(a.beta2);
  const T one_minus_beta1 = static_cast<T>(1 - a.beta1);
  const T one_minus_beta2 = static_cast<T>(1 - a.beta2);
  const T neg_step_size = static_cast<T>(-(a.lr / a.bias_correction1));
  const T bias_correction2_sqrt = static_cast<T>(std::sqrt(a.bias_correction2));
  const T eps = static_cast<T>(a.eps);
  const bool coupled = a.l2 != 0, decoupled = a.weight_decay != 0;
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    T p = param[i];
    const T g = coupled ? grad[i] + l2 * p : grad[i];
    if (decoupled) p *= decay;
    const T mi = m[i] * beta1 + one_minus_beta1 * g;
    const T vi = v[i] * beta2 + one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const T denom = std::sqrt(vi) / bias_correction2_sqrt + eps;
    param[i] = p + neg_step_size * mi / denom;
  }
}

/// SGD with optional momentum (torch.optim.SGD) on n elements, in place:
///
///   g   = grad + weight_decay * p
///   buf = first_step ? g : momentum * buf + (1 - dampening) * g   (when momentum != 0)
///   g   = nesterov ? g + momentum * buf : buf                     (when momentum != 0)
///   p   = p - lr * g
///
/// Requires: param and grad hold n elements; momentum_buffer holds n elements
/// when momentum != 0 (it may be null otherwise).
template <class T>
void sgd_step(Cpu, T* param /*(n)*/, const T* grad /*(n)*/, T* momentum_buffer /*(n) or null*/,
              int64_t n, SgdStepArgs a) {
  const T wd = static_cast<T>(a.weight_decay);
  const T momentum = static_cast<T>(a.momentum);
  const T one_minus_dampening = static_cast<T>(1 - a.dampening);
  const T neg_lr = static_cast<T>(-a.lr);
  const bool decay = a.weight_decay != 0, use_momentum = a.momentum != 0;
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    T g = decay ? grad[i] + wd * param[i] : grad[i];
    if (use_momentum) {
      const T buf = a.first_step ? g : momentum_buffer[i] * momentum + one_minus_dampening * g;
      momentum_buffer[i] = buf;
      g = a.nesterov ? g + momentum * buf : buf;
    }
    param[i] = param[i] + neg_lr * g;
  }
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
