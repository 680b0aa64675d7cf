// normlab/backend/backend.hpp — the Backend concept.
//
// A backend is an empty tag type. Its memory functions and kernels are free
// functions taking the tag as first argument, found by argument-dependent
// lookup in the tag's namespace (normlab::cpu, normlab::cuda). Ops, autograd,
// nn and optim are written once against this interface; a new backend
// implements the same signatures and every op runs on it unchanged.
//
// Optional kernels (fused kernels, parallel tasks): see the concepts
// HasFusedBiasGelu, HasFusedBiasGeluLayerNorm, HasGemmBias and HasParallelTasks
// below, which are where every op and module detects them.
//
// Memory: allocate_bytes may cache (the CPU backend's does, see
// backend/cpu/allocator.hpp): ops allocate every output, and a warm training
// step then makes no system allocation.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "normlab/backend/functors.hpp"
#include "normlab/backend/index_check.hpp"
#include "normlab/backend/optim_args.hpp"
#include "normlab/core/shape.hpp"

namespace normlab {
inline namespace v0 {

/// The CPU backend's tag (defined with its kernels in backend/cpu.hpp), the
/// default backend of the data samplers and of register_extra.
namespace cpu {
struct Cpu;
}  // namespace cpu
using cpu::Cpu;

/// The kernels a backend must provide for element type Scalar (float or double).
template <class Tag, class Scalar>
concept BackendKernelsFor = requires(Tag b, Scalar* p, const Scalar* cp, int64_t n, uint64_t u,
                                     Scalar v, bool flag, double f, const int64_t* cip,
                                     const BroadcastPlan& plan, const StridedPlan& strided) {
  copy_to_host(b, p, cp, n);
  copy_from_host(b, p, cp, n);
  copy(b, p, cp, n);
  fill(b, p, n, v);
  fill_uniform(b, p, n, u, u, v, v);
  fill_normal(b, p, n, u, u, v, v);
  accumulate(b, p, cp, n, v);
  map_unary_forward(b, p, cp, n, fn::Exp{});
  map_unary_backward(b, p, cp, cp, cp, n, fn::Exp{});
  map_binary_forward(b, p, cp, cp, plan, n, fn::Add{});
  map_binary_backward(b, p, p, cp, cp, cp, plan, n, fn::Add{});
  gemm(b, flag, flag, n, n, n, v, cp, n, cp, n, v, p, n);
  gemm_strided_batched(b, flag, flag, n, n, n, v, cp, n, n, cp, n, n, v, p, n, n, n);
  sum_axis_forward(b, p, cp, n, n, n, v);
  sum_axis_backward(b, p, cp, n, n, n, v);
  gather_strided(b, p, cp, strided, n, flag);
  copy_rows(b, p, n, cp, n, n, n, flag);
  layer_norm_forward(b, p, p, p, cp, cp, cp, n, n, v);
  layer_norm_backward(b, p, p, p, cp, cp, cp, cp, cp, n, n);
  rms_norm_forward(b, p, p, cp, cp, n, n, v);
  rms_norm_backward(b, p, p, cp, cp, cp, cp, n, n);
  softmax_forward(b, p, cp, n, n, n);
  softmax_backward(b, p, cp, cp, n, n, n);
  log_softmax_forward(b, p, cp, n, n);
  log_softmax_backward(b, p, cp, cp, n, n);
  cross_entropy_forward(b, p, p, p, cp, cip, n, n, n, v);
  cross_entropy_backward(b, p, cp, cp, cp, cip, n, n, n, v);
  embedding_forward(b, p, cp, cip, n, n);
  embedding_backward(b, p, cp, cip, n, n);
  dropout_mask(b, p, n, u, u, f);
  adamw_step(b, p, cp, p, p, n, AdamWStepArgs{});
  sgd_step(b, p, cp, p, n, SgdStepArgs{});
  { sum_of_squares(b, cp, n) } -> std::same_as<double>;
  scale_in_place(b, p, n, v);
};

/// A backend tag: a name, byte allocation, and the kernels for float and double.
template <class Tag>
concept Backend = std::default_initializable<Tag> && requires(Tag b, void* p, size_t bytes) {
  { Tag::name } -> std::convertible_to<const char*>;
  { allocate_bytes(b, bytes) } -> std::same_as<void*>;
  deallocate_bytes(b, p);
} && BackendKernelsFor<Tag, float> && BackendKernelsFor<Tag, double>;

// Optional kernels. A backend may also provide fused kernels that no concept
// requires; an op detects each with a requires-expression and otherwise runs
// its composed path, so a backend without them works unchanged:
//
//   bias_gelu_forward(b, Scalar* out, const Scalar* x, const Scalar* bias, rows, cols, bool
//   tanh_approx)
//       out[r, c] = GELU(x[r, c] + bias[c])  (exact erf GELU, or the tanh form)
//   bias_gelu_backward(b, Scalar* dx, Scalar* dbias, const Scalar* dout, const Scalar* x, const
//   Scalar* bias,
//                      rows, cols, bool tanh_approx, bool overwrite_dx)
//       g = dout * GELU'(x + bias);  dx += g (dx = g with overwrite_dx);
//       dbias += sum over rows of g
//       (dx or dbias may be null; the sum must not depend on the thread count)
//
// Used by bias_gelu (ops/elementwise.hpp) and FeedForward; detected by
// HasFusedBiasGelu. The CPU backend has them (backend/cpu/activation.hpp).
//
//   bias_gelu_layer_norm_forward(b, Scalar* out, Scalar* mean, Scalar* rstd, const Scalar* x, const
//   Scalar* bias,
//                                const Scalar* weight, const Scalar* ln_bias, rows, cols, Scalar
//                                eps, bool tanh_approx)
//       h = GELU(x + bias); out = layer_norm(h) per row (weight, ln_bias may be
//       null); mean, rstd (rows,) of h
//   bias_gelu_layer_norm_backward(b, Scalar* dx, Scalar* dbias, Scalar* dweight, Scalar* dln_bias,
//   const Scalar* dout,
//                                 const Scalar* x, const Scalar* bias, const Scalar* weight, const
//                                 Scalar* mean, const Scalar* rstd, rows, cols, bool tanh_approx,
//                                 bool overwrite_dx)
//       with h recomputed: dweight += sum dout xhat, dln_bias += sum dout, and for
//       g = layer_norm's input gradient times GELU'(x + bias): dx += g (= with
//       overwrite_dx), dbias += sum over rows of g (null outputs skipped; sums
//       independent of the thread count)
//
// Used by bias_gelu_layer_norm (ops/normalization.hpp) and
// FeedForward::normalized_hidden (NormFormer's FFN norm); detected by
// HasFusedBiasGeluLayerNorm. The CPU backend has them
// (backend/cpu/activation.hpp).
//
//   gemm_bias(b, trans_a, trans_b, M, N, K, Scalar alpha, const Scalar* A, lda, const Scalar* B,
//   ldb,
//             const Scalar* bias, Scalar* C, ldc)
//       C = alpha op(A) op(B) + bias, bias (N,) added to every row; C only written
//
// Used by linear (ops/linalg.hpp) to write a layer's output once; detected by
// HasGemmBias. The CPU backend has it (backend/cpu/gemm.hpp).
//
//   parallel_tasks(b, n, body) and parallel_task_workers(b, n) -> int64_t
//       body(i, worker) for every i in [0, n), on the backend's threads, no two
//       tasks at once with the same worker in [0, parallel_task_workers(b, n))
//
// Used by multi_head_attention (ops/attention.hpp) to run all heads in one
// parallel region, each worker with its own scratch; detected by
// HasParallelTasks. The CPU backend has them (backend/cpu/cpu.hpp).
//
//   embedding_forward_checked(b, Scalar* out, const Scalar* weight, const int64_t* indices, n, c,
//                             const IndexCheck& check)
//   embedding_backward_checked(b, Scalar* dweight, const Scalar* dout, const int64_t* indices,
//                              n, c, v)
//   cross_entropy_forward_counted(b, Scalar* total, Scalar* losses, Scalar* lse, Scalar* scale,
//                                 const Scalar* logits, const int64_t* targets, n, v,
//                                 ignore_index, const IndexCheck& check)
//   cross_entropy_backward_counted(b, Scalar* dlogits, const Scalar* dtotal, const Scalar* logits,
//                                  const Scalar* lse, const Scalar* scale,
//                                  const int64_t* targets, n, v, ignore_index)
//       the kernels above with their index range check done where the
//       indices are read, on the backend, with no copy to the host: a bad
//       index is skipped (its output row is 0, its loss NaN) and the first
//       one is reported later, as an Error with index_range_message(check,
//       ...), at the backend's next read to the host. cross_entropy's mean
//       scale (1 / the count of targets that are not ignore_index, NaN
//       without any) is computed on the backend into `scale` ().
//
// Used by embedding (ops/embedding.hpp) and cross_entropy (ops/loss.hpp)
// instead of the host check, which copies the indices to the host (a
// device synchronization) inside every training step; detected by
// HasDeviceIndexChecks. The CUDA backend has them
// (backend/cuda/embedding.cuh, softmax.cuh); the CPU backend checks on the
// host, where the indices are.

/// Whether backend Tag has the optional fused bias + GELU kernels.
template <class Tag, class Scalar>
concept HasFusedBiasGelu = requires(Tag b, Scalar* p, const Scalar* cp, int64_t n, bool flag) {
  bias_gelu_forward(b, p, cp, cp, n, n, flag);
  bias_gelu_backward(b, p, p, cp, cp, cp, n, n, flag, flag);
};

/// Whether backend Tag has the optional fused bias + GELU + LayerNorm kernels.
template <class Tag, class Scalar>
concept HasFusedBiasGeluLayerNorm = requires(Tag b, Scalar* p, const Scalar* cp, int64_t n,
                                             Scalar v, bool flag) {
  bias_gelu_layer_norm_forward(b, p, p, p, cp, cp, cp, cp, n, n, v, flag);
  bias_gelu_layer_norm_backward(b, p, p, p, p, cp, cp, cp, cp, cp, cp, n, n, flag, flag);
};

/// Whether backend Tag has the optional gemm_bias kernel.
template <class Tag, class Scalar>
concept HasGemmBias = requires(Tag b, Scalar* p, const Scalar* cp, int64_t n, Scalar v, bool flag) {
  gemm_bias(b, flag, flag, n, n, n, v, cp, n, cp, n, cp, p, n);
};

/// Whether backend Tag runs independent tasks on its threads.
template <class Tag>
concept HasParallelTasks = requires(Tag b, int64_t n, void (*body)(int64_t, int64_t)) {
  parallel_tasks(b, n, body);
  { parallel_task_workers(b, n) } -> std::convertible_to<int64_t>;
};

/// Whether backend Tag checks index ranges itself (see above).
template <class Tag, class Scalar>
concept HasDeviceIndexChecks = requires(Tag b, Scalar* p, const Scalar* cp, const int64_t* cip,
                                        int64_t n, const IndexCheck& check) {
  embedding_forward_checked(b, p, cp, cip, n, n, check);
  embedding_backward_checked(b, p, cp, cip, n, n, n);
  cross_entropy_forward_counted(b, p, p, p, p, cp, cip, n, n, n, check);
  cross_entropy_backward_counted(b, p, cp, cp, cp, cp, cip, n, n, n);
};

namespace detail {
/// The workers for_each_task<Tag>(n, body) runs on (1 without parallel_tasks).
template <class Tag>
int64_t task_workers(int64_t n) {
  if constexpr (HasParallelTasks<Tag>)
    return parallel_task_workers(Tag{}, n);
  else
    return 1;
}

/// body(t, worker) for t in [0, n): through Tag's parallel_tasks when it has
/// one, else in order on the calling thread (worker 0). No two tasks run at
/// once with the same worker in [0, task_workers<Tag>(n)).
template <class Tag, class F>
void for_each_task(int64_t n, F&& body) {
  if constexpr (HasParallelTasks<Tag>)
    parallel_tasks(Tag{}, n, body);
  else
    for (int64_t t = 0; t < n; ++t) body(t, int64_t{0});
}
}  // namespace detail

}  // namespace v0
}  // namespace normlab
