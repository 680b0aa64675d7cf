// normlab/backend/cuda/embedding.cuh — embedding gather / scatter-add and the
// dropout mask.
//
// Same contracts as backend/cpu/embedding.hpp and dropout.hpp. The
// scatter-add is deterministic and adds in the CPU's order: positions are
// stably sorted by index, and one block per distinct index adds that index's
// rows in their original order (no atomics). The sort is stream-ordered
// (thrust's par_nosync on the context's stream, its scratch from the
// stream-ordered pool): it does not synchronize the host, so a training step
// queues its backward pass without waiting. The _checked forms check the
// indices where they read them (HasDeviceIndexChecks, backend/backend.hpp).
#pragma once

#ifdef __CUDACC__

#include <thrust/device_ptr.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include <cstdint>
#include <limits>

#include "normlab/backend/cuda/runtime.cuh"
#include "normlab/core/random.hpp"

namespace normlab {
inline namespace v0 {
namespace cuda {
namespace detail {

/// out[j] = weight[indices[j / c], j % c]; an index outside [0, v) gives 0
/// and is reported to `sink` (once per row).
template <class Scalar>
struct EmbeddingForwardOp {
  Scalar* out;
  const Scalar* weight;
  const int64_t* indices;
  int64_t c, v;
  IndexErrorSink sink;
  __device__ void operator()(int64_t j) const {
    const int64_t row = j / c, k = indices[row];
    if (k < 0 || k >= v) {
      if (j % c == 0) sink.report(row);
      out[j] = Scalar(0);
      return;
    }
    out[j] = weight[k * c + j % c];
  }
};

/// Reports an index outside [0, v) to `sink`.
struct IndexRangeOp {
  const int64_t* indices;
  int64_t v;
  IndexErrorSink sink;
  __device__ void operator()(int64_t i) const {
    if (indices[i] < 0 || indices[i] >= v) sink.report(i);
  }
};

/// Block i handles the run of equal keys that starts at sorted position i (if
/// one does): dweight[key, :] += dout[pos[s], :] for s over the run, in order.
/// Keys outside [0, v) are skipped (their forward reported them).
template <class Scalar>
__global__ void embedding_backward_kernel(Scalar* dweight, const Scalar* dout, const int64_t* keys,
                                          const int64_t* pos, int64_t n, int64_t c, int64_t v) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t key = keys[i];
    if (i > 0 && keys[i - 1] == key) continue;  // not the start of a run
    if (key < 0 || key >= v) continue;
    int64_t end = i + 1;
    while (end < n && keys[end] == key) ++end;
    Scalar* dst = dweight + key * c;  // (C)
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
      Scalar acc = dst[j];
      for (int64_t s = i; s < end; ++s) acc += dout[pos[s] * c + j];
      dst[j] = acc;
    }
  }
}

struct DropoutOp {
  uint64_t seed, first_block;
  double p;
  template <class Scalar>
  __device__ Scalar value(int64_t i, Scalar keep) const {
    return static_cast<double>(philox_uniform<float>(seed, first_block, i, 0.f, 1.f)) >= p
               ? keep
               : Scalar(0);
  }
};
template <class Scalar>
struct DropoutMaskOp {
  Scalar* mask;
  DropoutOp op;
  Scalar keep;
  __device__ void operator()(int64_t i) const { mask[i] = op.value(i, keep); }
};

}  // namespace detail

namespace detail {

template <class Scalar>
void embedding_scatter_add(Scalar* dweight, const Scalar* dout, const int64_t* indices, int64_t n,
                           int64_t c, int64_t v) {
  if (n == 0 || c == 0) return;
  const cudaStream_t stream = context().stream();
  const size_t bytes = static_cast<size_t>(n) * sizeof(int64_t);
  int64_t* keys = static_cast<int64_t*>(allocate_bytes(Cuda{}, bytes));  // (N) sorted indices
  int64_t* pos = static_cast<int64_t*>(allocate_bytes(Cuda{}, bytes));   // (N) their positions
  try {
    copy(Cuda{}, keys, indices, n);
    PoolAllocator alloc;
    // par_nosync: stream-ordered, no host synchronization after each algorithm.
    const auto policy = thrust::cuda::par_nosync(alloc).on(stream);
    thrust::sequence(policy, thrust::device_pointer_cast(pos),
                     thrust::device_pointer_cast(pos + n));
    thrust::stable_sort_by_key(policy, thrust::device_pointer_cast(keys),
                               thrust::device_pointer_cast(keys + n),
                               thrust::device_pointer_cast(pos));
  } catch (const thrust::system_error& e) {
    deallocate_bytes(Cuda{}, keys);
    deallocate_bytes(Cuda{}, pos);
    throw Error(
        normlab::detail::concat("cuda: embedding_backward (thrust sort) failed: ", e.what()));
  } catch (...) {
    deallocate_bytes(Cuda{}, keys);
    deallocate_bytes(Cuda{}, pos);
    throw;
  }
  embedding_backward_kernel<Scalar>
      <<<row_blocks(n), row_threads(c), 0, stream>>>(dweight, dout, keys, pos, n, c, v);
  const cudaError_t launch = cudaGetLastError();
  deallocate_bytes(Cuda{}, keys);  // stream-ordered: after the kernel
  deallocate_bytes(Cuda{}, pos);
  normlab::detail::cuda_check(launch, "launch of embedding_backward_kernel", __FILE__, __LINE__);
}

}  // namespace detail

/// out[i, :] = weight[indices[i], :] for i < n.
/// Requires: every index in [0, V) (the op checks on the host).
template <class Scalar>
void embedding_forward(Cuda, Scalar* out /*(N, C)*/, const Scalar* weight /*(V, C)*/,
                       const int64_t* indices /*(N)*/, int64_t n, int64_t c) {
  if (c == 0) return;
  detail::for_each_index("embedding_forward", n * c,
                         detail::EmbeddingForwardOp<Scalar>{
                             out, weight, indices, c, std::numeric_limits<int64_t>::max(), {}});
}

/// embedding_forward with its range check on the device: an index outside
/// [0, check.bound) gives a row of 0, and the first one is raised as an Error
/// with index_range_message(check, ...) at the next copy_to_host or
/// check_index_errors(). No host synchronization.
template <class Scalar>
void embedding_forward_checked(Cuda, Scalar* out /*(N, C)*/, const Scalar* weight /*(V, C)*/,
                               const int64_t* indices /*(N)*/, int64_t n, int64_t c,
                               const IndexCheck& check) {
  if (n == 0) return;
  Context& ctx = context();
  const detail::IndexErrorSink sink = ctx.begin_index_check(check);
  if (c > 0)
    detail::for_each_index(
        "embedding_forward", n * c,
        detail::EmbeddingForwardOp<Scalar>{out, weight, indices, c, check.bound, sink});
  else  // nothing to gather, the indices are checked all the same
    detail::for_each_index("embedding_forward", n,
                           detail::IndexRangeOp{indices, check.bound, sink});
  ctx.settle_index_check(indices);
}

/// dweight[indices[i], :] += dout[i, :] for i < n; repeated indices receive the
/// sum, added in the order of i (the same order as on the CPU).
template <class Scalar>
void embedding_backward(Cuda, Scalar* dweight /*(V, C)*/, const Scalar* dout /*(N, C)*/,
                        const int64_t* indices /*(N)*/, int64_t n, int64_t c) {
  detail::embedding_scatter_add(dweight, dout, indices, n, c, std::numeric_limits<int64_t>::max());
}

/// embedding_backward that skips indices outside [0, v) (embedding_forward_checked
/// reported them).
template <class Scalar>
void embedding_backward_checked(Cuda, Scalar* dweight /*(V, C)*/, const Scalar* dout /*(N, C)*/,
                                const int64_t* indices /*(N)*/, int64_t n, int64_t c, int64_t v) {
  detail::embedding_scatter_add(dweight, dout, indices, n, c, v);
}

/// mask[i] = u_i >= p ? 1 / (1 - p) : 0 with u_i = philox_uniform<float>(seed,
/// first_block, i, 0, 1): the CPU's mask for the same seed (backend/cpu/dropout.hpp).
/// Requires: 0 <= p <= 1.
template <class Scalar>
void dropout_mask(Cuda, Scalar* mask /*(n)*/, int64_t n, uint64_t seed, uint64_t first_block,
                  double p) {
  const Scalar keep = p < 1 ? static_cast<Scalar>(1.0 / (1.0 - p)) : Scalar(0);
  detail::for_each_index(
      "dropout_mask", n,
      detail::DropoutMaskOp<Scalar>{mask, detail::DropoutOp{seed, first_block, p}, keep});
}

}  // namespace cuda
}  // namespace v0
}  // namespace normlab

#endif  // __CUDACC__
