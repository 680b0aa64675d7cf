// normlab/backend/cpu/optim.hpp — fused optimizer updates, the squared norm
// used by gradient clipping, and an in-place scale.
//
// Each update reads and writes every element once, in one pass, with the
// operations in the order PyTorch 1.13's single-tensor implementations apply
// them (torch/optim/adamw.py, adam.py, sgd.py), so a double run matches
// PyTorch to rounding. Hyper-parameters arrive as doubles and are cast to Scalar
// once per call, as PyTorch casts its Python-float scalars to the tensor's
// type. The CUDA backend mirrors these signatures in normlab::cuda.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/backend/cpu/gemm.hpp"  // Eigen, configured
#include "normlab/backend/cpu/row_kernels_x86.hpp"
#include "normlab/backend/optim_args.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// Elements per task of the optimizers' updates.
inline constexpr int64_t kOptimBlock = 4096;

/// block(i0, len) for the kOptimBlock-element blocks [i0, i0 + len) of [0, n),
/// on the OpenMP threads when n is large.
template <class Block>
void for_each_optim_block(int64_t n, const Block& block) {
  const int64_t blocks = (n + kOptimBlock - 1) / kOptimBlock;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t k = 0; k < blocks; ++k) {
    const int64_t i0 = k * kOptimBlock;
    block(i0, std::min(kOptimBlock, n - i0));
  }
}

/// Adam (l2 > 0) or AdamW (weight_decay > 0) on n elements, in place: the
/// update of AdamWElementUpdate (backend/optim_args.hpp) on each element,
/// its operations in its order, on Eigen arrays of kOptimBlock elements. (A
/// loop over the scalar update does not vectorize: std::sqrt may set errno.)
/// Eigen's float array sqrt is not the sqrt instruction: on whole packets it
/// is rsqrt and one Newton step (EIGEN_FAST_MATH), a few ulp off, so float
/// parameters differ from the scalar update's by a few ulp; double's is exact.
/// On the avx2 and avx512 paths float runs the scalar update's operations on
/// 8 or 16 lanes with the sqrt instruction (row_kernels_x86.hpp): its bits exactly.
/// Requires: param, grad, m, v hold n elements each; m and v start at zero.
template <class Scalar>
void adamw_step(Cpu, Scalar* param /*(n)*/, const Scalar* grad /*(n)*/, Scalar* m /*(n)*/,
                Scalar* v /*(n)*/, int64_t n, AdamWStepArgs a) {
  const AdamWElementUpdate<Scalar> u(a);
  using Array = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  const CpuKernels wide = wide_row_kernels<Scalar>();
  for_each_optim_block(n, [&](int64_t i0, int64_t len) {
    // The same operations on 8 or 16 lanes.
    if (run_wide_row_kernel<Scalar>(wide, [&](auto isa) {
          adamw_block(isa,
                      {param + i0, grad + i0, m + i0, v + i0, u.decoupled ? u.decay : 1.0f, u.l2,
                       u.beta1, u.beta2, u.one_minus_beta1, u.one_minus_beta2, u.neg_step_size,
                       u.bias_correction2_sqrt, u.eps, u.coupled},
                      len);
        }))
      return;
    Eigen::Map<Array> p(param + i0, len), mk(m + i0, len), vk(v + i0, len);  // (len,)
    const Eigen::Map<const Array> g(grad + i0, len);                         // (len,)
    // gk: the gradient term, coupled or not; it reads p before p changes.
    const auto update = [&](const auto& gk) {
      mk = mk * u.beta1 + u.one_minus_beta1 * gk;
      vk = vk * u.beta2 + u.one_minus_beta2 * gk * gk;
      const Scalar decay = u.decoupled ? u.decay : Scalar(1);  // p * 1 is p, bit for bit
      p = p * decay + u.neg_step_size * mk / (vk.sqrt() / u.bias_correction2_sqrt + u.eps);
    };
    if (u.coupled)
      update(g + u.l2 * p);
    else
      update(g);
  });
}

/// SGD with optional momentum (torch.optim.SGD) on n elements, in place: the
/// update of SgdElementUpdate (backend/optim_args.hpp) on each element; on
/// the avx2 and avx512 paths float runs its operations on 8 or 16 lanes
/// (row_kernels_x86.hpp), with its bits.
/// Requires: param and grad hold n elements; momentum_buffer holds n elements
/// when momentum != 0 (it may be null otherwise).
template <class Scalar>
void sgd_step(Cpu, Scalar* param /*(n)*/, const Scalar* grad /*(n)*/,
              Scalar* momentum_buffer /*(n) or null*/, int64_t n, SgdStepArgs a) {
  const SgdElementUpdate<Scalar> u(a);
  const CpuKernels wide = wide_row_kernels<Scalar>();
  for_each_optim_block(n, [&](int64_t i0, int64_t len) {
    // The same operations on 8 or 16 lanes.
    if (run_wide_row_kernel<Scalar>(wide, [&](auto isa) {
          sgd_block(isa,
                    {param + i0, grad + i0, momentum_buffer ? momentum_buffer + i0 : nullptr, u.wd,
                     u.momentum, u.one_minus_dampening, u.neg_lr, u.decay, u.use_momentum,
                     u.nesterov, u.first_step},
                    len);
        }))
      return;
    for (int64_t i = i0; i < i0 + len; ++i) u(param, grad, momentum_buffer, i);
  });
}

/// sum_i x[i]^2, accumulated in double over fixed 4096-element chunks that are
/// then added in chunk order: the result does not depend on the thread count.
template <class Scalar>
double sum_of_squares(Cpu, const Scalar* x /*(n)*/, int64_t n) {
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
template <class Scalar>
void scale_in_place(Cpu, Scalar* x /*(n)*/, int64_t n, Scalar s) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
