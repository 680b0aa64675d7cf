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

template <class T>
__global__ void softmax_forward_kernel(T* out, const T* x, int64_t rows, int64_t n,
                                       int64_t causal_tq) {
  __shared__ T scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;  // (n,)
    T* yr = out + r * n;      // (n,)
    const int64_t len = causal_length(r, n, causal_tq);
    if (len > 0) {  // uniform over the block
      T mx = xr[0];
      for (int64_t j = threadIdx.x; j < len; j += blockDim.x) mx = xr[j] > mx ? xr[j] : mx;
      mx = block_max(mx, scratch);
      T sum = 0;
      for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
        const T e = exp(xr[j] - mx);
        yr[j] = e;
        sum += e;
      }
      const T inv = T(1) / block_sum(sum, scratch);
      for (int64_t j = threadIdx.x; j < len; j += blockDim.x) yr[j] *= inv;
    }
    for (int64_t j = len + threadIdx.x; j < n; j += blockDim.x) yr[j] = T(0);
  }
}

template <class T>
__global__ void softmax_backward_kernel(T* dx, const T* dout, const T* y, int64_t rows, int64_t n,
                                        int64_t causal_tq) {
  __shared__ T scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* dyr = dout + r * n;  // (n,)
    const T* yr = y + r * n;      // (n,)
    T* dxr = dx + r * n;          // (n,)
    const int64_t len = causal_length(r, n, causal_tq);
    T dot = 0;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) dot += dyr[j] * yr[j];
    dot = block_sum(dot, scratch);
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) dxr[j] += yr[j] * (dyr[j] - dot);
  }
}

template <class T>
__global__ void log_softmax_forward_kernel(T* out, const T* x, int64_t rows, int64_t n) {
  __shared__ T scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;  // (n,)
    T* yr = out + r * n;      // (n,)
    T mx = xr[0];
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = xr[j] > mx ? xr[j] : mx;
    mx = block_max(mx, scratch);
    T sum = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += exp(xr[j] - mx);
    const T log_sum = log(block_sum(sum, scratch));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = (xr[j] - mx) - log_sum;
  }
}

template <class T>
__global__ void log_softmax_backward_kernel(T* dx, const T* dout, const T* y, int64_t rows,
                                            int64_t n) {
  __shared__ T scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* dyr = dout + r * n;  // (n,)
    const T* yr = y + r * n;      // (n,)
    T* dxr = dx + r * n;          // (n,)
    T sum = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += dyr[j];
    sum = block_sum(sum, scratch);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dxr[j] += dyr[j] - exp(yr[j]) * sum;
  }
}

/// Per row: lse = m + log sum exp(x - m), loss = lse - x[t]; 0 on ignored rows.
template <class T>
__global__ void cross_entropy_rows_kernel(T* losses, T* lse, const T* logits,
                                          const int64_t* targets, int64_t n, int64_t v,
                                          int64_t ignore_index) {
  __shared__ T scratch[32];
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int64_t t = targets[r];
    if (t == ignore_index) {  // uniform over the block
      if (threadIdx.x == 0) {
        lse[r] = T(0);
        losses[r] = T(0);
      }
      continue;
    }
    const T* x = logits + r * v;  // (V)
    T m = x[0];
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) m = x[j] > m ? x[j] : m;
    m = block_max(m, scratch);
    T s = 0;
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) s += exp(x[j] - m);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) {
      const T l = m + log(s);
      lse[r] = l;
      losses[r] = l - x[t];
    }
  }
}

/// total[0] = scale * sum_r losses[r], in double, in one block (fixed order).
template <class T>
__global__ void cross_entropy_total_kernel(T* total, const T* losses, int64_t n, T scale) {
  __shared__ double scratch[32];
  double acc = 0;
  for (int64_t r = threadIdx.x; r < n; r += blockDim.x) acc += static_cast<double>(losses[r]);
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) total[0] = static_cast<T>(static_cast<double>(scale) * acc);
}

/// dlogits[r, j] += g * exp(x - lse[r]), then dlogits[r, t] -= g, with g = dtotal * scale.
template <class T>
__global__ void cross_entropy_backward_kernel(T* dlogits, const T* dtotal, const T* logits,
                                              const T* lse, const int64_t* targets, int64_t n,
                                              int64_t v, int64_t ignore_index, T scale) {
  const T g = dtotal[0] * scale;
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int64_t t = targets[r];
    if (t == ignore_index) continue;
    const T* x = logits + r * v;  // (V)
    T* dx = dlogits + r * v;      // (V)
    const T l = lse[r];
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
      const T d = dx[j] + g * exp(x[j] - l);
      dx[j] = j == t ? d - g : d;
    }
  }
}

}  // namespace detail

/// out = softmax of each row over its unmasked entries; masked entries are 0.
/// Requires: out, x (rows, n); causal_tq >= 0 and, when > 0, divides rows.
template <class T>
void softmax_forward(Cuda, T* out, const T* x, int64_t rows, int64_t n, int64_t causal_tq) {
  if (rows == 0 || n == 0) return;
  detail::softmax_forward_kernel<T>
      <<<detail::row_blocks(rows), detail::row_threads(n), 0, context().stream()>>>(out, x, rows, n,
                                                                                    causal_tq);
  NL_CUDA_LAUNCH_CHECK("softmax_forward_kernel");
}

/// dx += y * (dy - sum(dy * y)) per row over the unmasked entries.
template <class T>
void softmax_backward(Cuda, T* dx, const T* dout, const T* y, int64_t rows, int64_t n,
                      int64_t causal_tq) {
  if (rows == 0 || n == 0) return;
  detail::softmax_backward_kernel<T>
      <<<detail::row_blocks(rows), detail::row_threads(n), 0, context().stream()>>>(
          dx, dout, y, rows, n, causal_tq);
  NL_CUDA_LAUNCH_CHECK("softmax_backward_kernel");
}

/// out = (x - max) - log(sum(exp(x - max))) per row.
template <class T>
void log_softmax_forward(Cuda, T* out, const T* x, int64_t rows, int64_t n) {
  if (rows == 0 || n == 0) return;
  detail::log_softmax_forward_kernel<T>
      <<<detail::row_blocks(rows), detail::row_threads(n), 0, context().stream()>>>(out, x, rows,
                                                                                    n);
  NL_CUDA_LAUNCH_CHECK("log_softmax_forward_kernel");
}

/// dx += dy - exp(y) * sum(dy) per row.
template <class T>
void log_softmax_backward(Cuda, T* dx, const T* dout, const T* y, int64_t rows, int64_t n) {
  if (rows == 0 || n == 0) return;
  detail::log_softmax_backward_kernel<T>
      <<<detail::row_blocks(rows), detail::row_threads(n), 0, context().stream()>>>(dx, dout, y,
                                                                                    rows, n);
  NL_CUDA_LAUNCH_CHECK("log_softmax_backward_kernel");
}

/// lse[r], losses[r] per row (0 on ignored rows), total[0] = scale * sum_r losses[r]
/// (in double). All outputs stay on the device.
/// Requires: every target is ignore_index or in [0, v) (the op checks on the host).
template <class T>
void cross_entropy_forward(Cuda, T* total /*()*/, T* losses /*(N)*/, T* lse /*(N)*/,
                           const T* logits /*(N, V)*/, const int64_t* targets /*(N)*/, int64_t n,
                           int64_t v, int64_t ignore_index, T scale) {
  const cudaStream_t stream = context().stream();
  if (n > 0) {
    detail::cross_entropy_rows_kernel<T>
        <<<detail::row_blocks(n), detail::row_threads(v), 0, stream>>>(losses, lse, logits, targets,
                                                                       n, v, ignore_index);
    NL_CUDA_LAUNCH_CHECK("cross_entropy_rows_kernel");
  }
  detail::cross_entropy_total_kernel<T><<<1, 256, 0, stream>>>(total, losses, n, scale);
  NL_CUDA_LAUNCH_CHECK("cross_entropy_total_kernel");
}

/// dlogits[r, j] += dtotal[0] * scale * (exp(logits[r, j] - lse[r]) - [j == t_r]) on
/// rows that are not ignored; dtotal is read on the device.
template <class T>
void cross_entropy_backward(Cuda, T* dlogits /*(N, V)*/, const T* dtotal /*()*/,
                            const T* logits /*(N, V)*/, const T* lse /*(N)*/,
                            const int64_t* targets /*(N)*/, int64_t n, int64_t v,
                            int64_t ignore_index, T scale) {
  if (n == 0 || v == 0) return;
  detail::cross_entropy_backward_kernel<T>
      <<<detail::row_blocks(n), detail::row_threads(v), 0, context().stream()>>>(
          dlogits, dtotal, logits, lse, targets, n, v, ignore_index, scale);
  NL_CUDA_LAUNCH_CHECK("cross_entropy_backward_kernel");
}

}  // namespace cuda
}  // namespace v0
}  // namespace normlab

#endif  // __CUDACC__
