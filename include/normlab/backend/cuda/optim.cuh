// normlab/backend/cuda/optim.cuh — fused AdamW / SGD steps and the squared
// norm used by gradient clipping.
//
// Same contracts and operation order as backend/cpu/optim.hpp: each update
// reads and writes every element once, in one kernel.
#pragma once

#ifdef __CUDACC__

#include <cmath>
#include <cstdint>

#include "normlab/backend/cuda/runtime.cuh"
#include "normlab/backend/optim_args.hpp"

namespace normlab {
inline namespace v0 {
namespace cuda {
namespace detail {

/// Applies AdamWElementUpdate (backend/optim_args.hpp) to element i.
template <class Scalar>
struct AdamWOp {
  Scalar* param;
  const Scalar* grad;
  Scalar* m;
  Scalar* v;
  AdamWElementUpdate<Scalar> update;
  __device__ void operator()(int64_t i) const { update(param, grad, m, v, i); }
};

/// Applies SgdElementUpdate (backend/optim_args.hpp) to element i.
template <class Scalar>
struct SgdOp {
  Scalar* param;
  const Scalar* grad;
  Scalar* buffer;
  SgdElementUpdate<Scalar> update;
  __device__ void operator()(int64_t i) const { update(param, grad, buffer, i); }
};

/// Elements per partial sum of sum_of_squares (as on the CPU).
inline constexpr int64_t kSquaresChunk = 4096;

/// partial[c] = sum over chunk c of x^2, in double; one block per chunk.
template <class Scalar>
__global__ void squares_chunks_kernel(double* partial, const Scalar* x, int64_t n) {
  __shared__ double scratch[32];
  const int64_t chunks = (n + kSquaresChunk - 1) / kSquaresChunk;
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const int64_t end = (c + 1) * kSquaresChunk < n ? (c + 1) * kSquaresChunk : n;
    double acc = 0;
    for (int64_t k = c * kSquaresChunk + threadIdx.x; k < end; k += blockDim.x) {
      const double v = static_cast<double>(x[k]);
      acc += v * v;
    }
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) partial[c] = acc;
  }
}

/// out[0] = sum_c partial[c], in chunk order (one thread: the partials are few).
static __global__ void sum_partials_kernel(double* out, const double* partial, int64_t chunks) {
  double total = 0;
  for (int64_t c = 0; c < chunks; ++c) total += partial[c];
  out[0] = total;
}

}  // namespace detail

/// Adam (l2 > 0) or AdamW (weight_decay > 0) on n elements, in place: the
/// update of AdamWElementUpdate (backend/optim_args.hpp) on each element.
template <class Scalar>
void adamw_step(Cuda, Scalar* param /*(n)*/, const Scalar* grad /*(n)*/, Scalar* m /*(n)*/,
                Scalar* v /*(n)*/, int64_t n, AdamWStepArgs a) {
  const detail::AdamWOp<Scalar> op{param, grad, m, v, AdamWElementUpdate<Scalar>(a)};
  detail::for_each_index("adamw_step", n, op);
}

/// SGD with optional momentum on n elements, in place: the update of
/// SgdElementUpdate (backend/optim_args.hpp) on each element.
template <class Scalar>
void sgd_step(Cuda, Scalar* param /*(n)*/, const Scalar* grad /*(n)*/,
              Scalar* momentum_buffer /*(n) or null*/, int64_t n, SgdStepArgs a) {
  const detail::SgdOp<Scalar> op{param, grad, momentum_buffer, SgdElementUpdate<Scalar>(a)};
  detail::for_each_index("sgd_step", n, op);
}

/// sum_i x[i]^2 in double, over fixed 4096-element chunks added in chunk
/// order; returns to the host (waits for the stream).
template <class Scalar>
double sum_of_squares(Cuda, const Scalar* x /*(n)*/, int64_t n) {
  if (n <= 0) return 0.0;
  const cudaStream_t stream = context().stream();
  const int64_t chunks = (n + detail::kSquaresChunk - 1) / detail::kSquaresChunk;
  // (chunks + 1) doubles: the partials, then the total.
  double* buf = static_cast<double*>(
      allocate_bytes(Cuda{}, static_cast<size_t>(chunks + 1) * sizeof(double)));
  detail::squares_chunks_kernel<Scalar><<<detail::grid_for(chunks, 1), 256, 0, stream>>>(buf, x, n);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) {
    detail::sum_partials_kernel<<<1, 1, 0, stream>>>(buf + chunks, buf, chunks);
    e = cudaGetLastError();
  }
  double total = 0;
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(&total, buf + chunks, sizeof(double), cudaMemcpyDeviceToHost, stream);
  deallocate_bytes(Cuda{}, buf);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  normlab::detail::cuda_check(e,
                              "sum_of_squares (squares_chunks_kernel, sum_partials_kernel, "
                              "cudaMemcpyAsync, cudaStreamSynchronize)",
                              __FILE__, __LINE__);
  return total;
}

}  // namespace cuda
}  // namespace v0
}  // namespace normlab

#endif  // __CUDACC__
