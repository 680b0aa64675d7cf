// normlab/backend/cuda/embedding.cuh — embedding gather / scatter-add and the
// dropout mask.
//
// Same contracts as backend/cpu/embedding.hpp and dropout.hpp. The
// scatter-add is deterministic and adds in the CPU's order: positions are
// stably sorted by index, and one block per distinct index adds that index's
// rows in their original order (no atomics).
#pragma once

#ifdef __CUDACC__

#include <thrust/device_ptr.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include <cstdint>

#include "normlab/backend/cuda/runtime.cuh"
#include "normlab/core/random.hpp"

namespace normlab {
inline namespace v0 {
namespace cuda {
namespace detail {

template <class Scalar>
struct EmbeddingForwardOp {
  Scalar* out;
  const Scalar* weight;
  const int64_t* indices;
  int64_t c;
  __device__ void operator()(int64_t j) const { out[j] = weight[indices[j / c] * c + j % c]; }
};

/// Block i handles the run of equal keys that starts at sorted position i (if
/// one does): dweight[key, :] += dout[pos[s], :] for s over the run, in order.
template <class Scalar>
__global__ void embedding_backward_kernel(Scalar* dweight, const Scalar* dout, const int64_t* keys,
                                          const int64_t* pos, int64_t n, int64_t c) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t key = keys[i];
    if (i > 0 && keys[i - 1] == key) continue;  // not the start of a run
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

/// out[i, :] = weight[indices[i], :] for i < n.
/// Requires: every index in [0, V) (the op checks on the host).
template <class Scalar>
void embedding_forward(Cuda, Scalar* out /*(N, C)*/, const Scalar* weight /*(V, C)*/,
                       const int64_t* indices /*(N)*/, int64_t n, int64_t c) {
  if (c == 0) return;
  detail::for_each_index("embedding_forward", n * c,
                         detail::EmbeddingForwardOp<Scalar>{out, weight, indices, c});
}

/// dweight[indices[i], :] += dout[i, :] for i < n; repeated indices receive the
/// sum, added in the order of i (the same order as on the CPU).
template <class Scalar>
void embedding_backward(Cuda, Scalar* dweight /*(V, C)*/, const Scalar* dout /*(N, C)*/,
                        const int64_t* indices /*(N)*/, int64_t n, int64_t c) {
  if (n == 0 || c == 0) return;
  const cudaStream_t stream = context().stream();
  const size_t bytes = static_cast<size_t>(n) * sizeof(int64_t);
  int64_t* keys = static_cast<int64_t*>(allocate_bytes(Cuda{}, bytes));  // (N) sorted indices
  int64_t* pos = static_cast<int64_t*>(allocate_bytes(Cuda{}, bytes));   // (N) their positions
  try {
    copy(Cuda{}, keys, indices, n);
    detail::PoolAllocator alloc;
    const auto policy = thrust::cuda::par(alloc).on(stream);
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
  detail::embedding_backward_kernel<Scalar>
      <<<detail::row_blocks(n), detail::row_threads(c), 0, stream>>>(dweight, dout, keys, pos, n,
                                                                     c);
  const cudaError_t launch = cudaGetLastError();
  deallocate_bytes(Cuda{}, keys);  // stream-ordered: after the kernel
  deallocate_bytes(Cuda{}, pos);
  normlab::detail::cuda_check(launch, "launch of embedding_backward_kernel", __FILE__, __LINE__);
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
