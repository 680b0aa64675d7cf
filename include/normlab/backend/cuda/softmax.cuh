// normlab/backend/cuda/softmax.cuh — softmax (optionally causal-masked),
// log-softmax and cross-entropy forward/backward.
//
// Same contracts as backend/cpu/softmax.hpp and loss.hpp. One block per row;
// row maxima and sums use block_max / block_sum (fixed order). The causal
// softmax is fused: the mask is applied from the row index while the row is
// read (nothing masked is read or exponentiated), and masked entries are
// written as 0.
#pragma once

#ifdef __CUDACC__

#include <cstdint>

#include "normlab/backend/cuda/runtime.cuh"

namespace normlab {
inline namespace v0 {
namespace cuda {
namespace detail {

/// How many leading entries of row r the causal mask keeps (as on the CPU).
__host__ __device__ inline int64_t causal_length(int64_t r, int64_t n, int64_t causal_tq) {
  if (causal_tq == 0) return n;
  const int64_t len = r % causal_tq + n - causal_tq + 1;
  return len < 0 ? 0 : (len > n ? n : len);
}

template <class Scalar>
__global__ void softmax_forward_kernel(Scalar* out, const Scalar* x, int64_t rows, int64_t n,
                                       int64_t causal_tq) {
  __shared__ Scalar scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const Scalar* xr = x + r * n;  // (n,)
    Scalar* yr = out + r * n;      // (n,)
    const int64_t len = causal_length(r, n, causal_tq);
    if (len > 0) {  // uniform over the block
      Scalar mx = xr[0];
      for (int64_t j = threadIdx.x; j < len; j += blockDim.x) mx = xr[j] > mx ? xr[j] : mx;
      mx = block_max(mx, scratch);
      Scalar sum = 0;
      for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
        const Scalar e = exp(xr[j] - mx);
        yr[j] = e;
        sum += e;
      }
      const Scalar inv = Scalar(1) / block_sum(sum, scratch);
      for (int64_t j = threadIdx.x; j < len; j += blockDim.x) yr[j] *= inv;
    }
    for (int64_t j = len + threadIdx.x; j < n; j += blockDim.x) yr[j] = Scalar(0);
  }
}

template <class Scalar>
__global__ void softmax_backward_kernel(Scalar* dx, const Scalar* dout, const Scalar* y,
                                        int64_t rows, int64_t n, int64_t causal_tq) {
  __shared__ Scalar scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const Scalar* dyr = dout + r * n;  // (n,)
    const Scalar* yr = y + r * n;      // (n,)
    Scalar* dxr = dx + r * n;          // (n,)
    const int64_t len = causal_length(r, n, causal_tq);
    Scalar dot = 0;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) dot += dyr[j] * yr[j];
    dot = block_sum(dot, scratch);
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) dxr[j] += yr[j] * (dyr[j] - dot);
  }
}

template <class Scalar>
__global__ void log_softmax_forward_kernel(Scalar* out, const Scalar* x, int64_t rows, int64_t n) {
  __shared__ Scalar scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const Scalar* xr = x + r * n;  // (n,)
    Scalar* yr = out + r * n;      // (n,)
    Scalar mx = xr[0];
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = xr[j] > mx ? xr[j] : mx;
    mx = block_max(mx, scratch);
    Scalar sum = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += exp(xr[j] - mx);
    const Scalar log_sum = log(block_sum(sum, scratch));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = (xr[j] - mx) - log_sum;
  }
}

template <class Scalar>
__global__ void log_softmax_backward_kernel(Scalar* dx, const Scalar* dout, const Scalar* y,
                                            int64_t rows, int64_t n) {
  __shared__ Scalar scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const Scalar* dyr = dout + r * n;  // (n,)
    const Scalar* yr = y + r * n;      // (n,)
    Scalar* dxr = dx + r * n;          // (n,)
    Scalar sum = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += dyr[j];
    sum = block_sum(sum, scratch);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dxr[j] += dyr[j] - exp(yr[j]) * sum;
  }
}

/// Per row: lse = m + log sum exp(x - m), loss = lse - x[t]; 0 on ignored rows.
template <class Scalar>
__global__ void cross_entropy_rows_kernel(Scalar* losses, Scalar* lse, const Scalar* logits,
                                          const int64_t* targets, int64_t n, int64_t v,
                                          int64_t ignore_index) {
  __shared__ Scalar scratch[32];
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int64_t t = targets[r];
    if (t == ignore_index) {  // uniform over the block
      if (threadIdx.x == 0) {
        lse[r] = Scalar(0);
        losses[r] = Scalar(0);
      }
      continue;
    }
    const Scalar* x = logits + r * v;  // (V)
    Scalar m = x[0];
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) m = x[j] > m ? x[j] : m;
    m = block_max(m, scratch);
    Scalar s = 0;
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) s += exp(x[j] - m);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) {
      const Scalar l = m + log(s);
      lse[r] = l;
      losses[r] = l - x[t];
    }
  }
}

/// total[0] = scale * sum_r losses[r], in double, in one block (fixed order).
template <class Scalar>
__global__ void cross_entropy_total_kernel(Scalar* total, const Scalar* losses, int64_t n,
                                           Scalar scale) {
  __shared__ double scratch[32];
  double acc = 0;
  for (int64_t r = threadIdx.x; r < n; r += blockDim.x) acc += static_cast<double>(losses[r]);
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) total[0] = static_cast<Scalar>(static_cast<double>(scale) * acc);
}

/// dlogits[r, j] += g * exp(x - lse[r]), then dlogits[r, t] -= g, with g = dtotal * scale.
template <class Scalar>
__global__ void cross_entropy_backward_kernel(Scalar* dlogits, const Scalar* dtotal,
                                              const Scalar* logits, const Scalar* lse,
                                              const int64_t* targets, int64_t n, int64_t v,
                                              int64_t ignore_index, Scalar scale) {
  const Scalar g = dtotal[0] * scale;
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int64_t t = targets[r];
    if (t == ignore_index) continue;
    const Scalar* x = logits + r * v;  // (V)
    Scalar* dx = dlogits + r * v;      // (V)
    const Scalar l = lse[r];
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
      const Scalar d = dx[j] + g * exp(x[j] - l);
      dx[j] = j == t ? d - g : d;
    }
  }
}

}  // namespace detail

/// out = softmax of each row over its unmasked entries; masked entries are 0.
/// Requires: out, x (rows, n); causal_tq >= 0 and, when > 0, divides rows.
template <class Scalar>
void softmax_forward(Cuda, Scalar* out, const Scalar* x, int64_t rows, int64_t n,
                     int64_t causal_tq) {
  if (rows == 0 || n == 0) return;
  detail::softmax_forward_kernel<Scalar>
      <<<detail::row_blocks(rows), detail::row_threads(n), 0, context().stream()>>>(out, x, rows, n,
                                                                                    causal_tq);
  NL_CUDA_LAUNCH_CHECK("softmax_forward_kernel");
}

/// dx += y * (dy - sum(dy * y)) per row over the unmasked entries.
template <class Scalar>
void softmax_backward(Cuda, Scalar* dx, const Scalar* dout, const Scalar* y, int64_t rows,
                      int64_t n, int64_t causal_tq) {
  if (rows == 0 || n == 0) return;
  detail::softmax_backward_kernel<Scalar>
      <<<detail::row_blocks(rows), detail::row_threads(n), 0, context().stream()>>>(
          dx, dout, y, rows, n, causal_tq);
  NL_CUDA_LAUNCH_CHECK("softmax_backward_kernel");
}

/// out = (x - max) - log(sum(exp(x - max))) per row.
template <class Scalar>
void log_softmax_forward(Cuda, Scalar* out, const Scalar* x, int64_t rows, int64_t n) {
  if (rows == 0 || n == 0) return;
  detail::log_softmax_forward_kernel<Scalar>
      <<<detail::row_blocks(rows), detail::row_threads(n), 0, context().stream()>>>(out, x, rows,
                                                                                    n);
  NL_CUDA_LAUNCH_CHECK("log_softmax_forward_kernel");
}

/// dx += dy - exp(y) * sum(dy) per row.
template <class Scalar>
void log_softmax_backward(Cuda, Scalar* dx, const Scalar* dout, const Scalar* y, int64_t rows,
                          int64_t n) {
  if (rows == 0 || n == 0) return;
  detail::log_softmax_backward_kernel<Scalar>
      <<<detail::row_blocks(rows), detail::row_threads(n), 0, context().stream()>>>(dx, dout, y,
                                                                                    rows, n);
  NL_CUDA_LAUNCH_CHECK("log_softmax_backward_kernel");
}

/// lse[r], losses[r] per row (0 on ignored rows), total[0] = scale * sum_r losses[r]
/// (in double). All outputs stay on the device.
/// Requires: every target is ignore_index or in [0, v) (the op checks on the host).
template <class Scalar>
void cross_entropy_forward(Cuda, Scalar* total /*()*/, Scalar* losses /*(N)*/, Scalar* lse /*(N)*/,
                           const Scalar* logits /*(N, V)*/, const int64_t* targets /*(N)*/,
                           int64_t n, int64_t v, int64_t ignore_index, Scalar scale) {
  const cudaStream_t stream = context().stream();
  if (n > 0) {
    detail::cross_entropy_rows_kernel<Scalar>
        <<<detail::row_blocks(n), detail::row_threads(v), 0, stream>>>(losses, lse, logits, targets,
                                                                       n, v, ignore_index);
    NL_CUDA_LAUNCH_CHECK("cross_entropy_rows_kernel");
  }
  detail::cross_entropy_total_kernel<Scalar><<<1, 256, 0, stream>>>(total, losses, n, scale);
  NL_CUDA_LAUNCH_CHECK("cross_entropy_total_kernel");
}

/// dlogits[r, j] += dtotal[0] * scale * (exp(logits[r, j] - lse[r]) - [j == t_r]) on
/// rows that are not ignored; dtotal is read on the device.
template <class Scalar>
void cross_entropy_backward(Cuda, Scalar* dlogits /*(N, V)*/, const Scalar* dtotal /*()*/,
                            const Scalar* logits /*(N, V)*/, const Scalar* lse /*(N)*/,
                            const int64_t* targets /*(N)*/, int64_t n, int64_t v,
                            int64_t ignore_index, Scalar scale) {
  if (n == 0 || v == 0) return;
  detail::cross_entropy_backward_kernel<Scalar>
      <<<detail::row_blocks(n), detail::row_threads(v), 0, context().stream()>>>(
          dlogits, dtotal, logits, lse, targets, n, v, ignore_index, scale);
  NL_CUDA_LAUNCH_CHECK("cross_entropy_backward_kernel");
}

}  // namespace cuda
}  // namespace v0
}  // namespace normlab

#endif  // __CUDACC__
