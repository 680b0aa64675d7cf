// normlab/backend/cuda/softmax.cuh — softmax (optionally causal-masked),
// log-softmax and cross-entropy forward/backward.
//
// Same contracts as backend/cpu/softmax.hpp and loss.hpp. One block per row;
// row maxima and sums use block_max / block_sum (fixed order). The causal
// softmax is fused: the mask is applied from the row index while the row is
// read (nothing masked is read or exponentiated), and masked entries are
// written as 0. cross_entropy_forward_counted / _backward_counted check the
// targets on the device and count them there (HasDeviceIndexChecks,
// backend/backend.hpp), so cross_entropy needs no host synchronization.
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

/// Per row: lse = m + log sum exp(x - m), loss = lse - x[t]; 0 on ignored rows;
/// NaN on rows whose target is outside [0, v), which are reported to `sink`.
template <class Scalar>
__global__ void cross_entropy_rows_kernel(Scalar* losses, Scalar* lse, const Scalar* logits,
                                          const int64_t* targets, int64_t n, int64_t v,
                                          int64_t ignore_index, IndexErrorSink sink) {
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
    if (t < 0 || t >= v) {  // uniform over the block
      if (threadIdx.x == 0) {
        sink.report(r);
        lse[r] = losses[r] = quiet_nan<Scalar>();
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
/// With `counted_scale`: scale is counted here instead, as the host does it
/// (1 / the count of targets other than ignore_index, NaN without any), and
/// written to counted_scale[0].
template <class Scalar>
__global__ void cross_entropy_total_kernel(Scalar* total, const Scalar* losses, int64_t n,
                                           Scalar scale, Scalar* counted_scale,
                                           const int64_t* targets, int64_t ignore_index) {
  __shared__ double scratch[32];
  __shared__ long long count_scratch[32];
  double acc = 0;
  long long kept = 0;
  for (int64_t r = threadIdx.x; r < n; r += blockDim.x) {
    acc += static_cast<double>(losses[r]);
    if (counted_scale != nullptr && targets[r] != ignore_index) ++kept;
  }
  acc = block_sum(acc, scratch);
  if (counted_scale != nullptr) {  // uniform over the block
    kept = block_sum(kept, count_scratch);
    scale = kept > 0 ? Scalar(1) / static_cast<Scalar>(kept) : quiet_nan<Scalar>();
    if (threadIdx.x == 0) counted_scale[0] = scale;
  }
  if (threadIdx.x == 0) total[0] = static_cast<Scalar>(static_cast<double>(scale) * acc);
}

/// dlogits[r, j] += g * exp(x - lse[r]), then dlogits[r, t] -= g, with g = dtotal *
/// scale (scale_on_device[0] when given); rows with a target outside [0, v) are skipped.
template <class Scalar>
__global__ void cross_entropy_backward_kernel(Scalar* dlogits, const Scalar* dtotal,
                                              const Scalar* logits, const Scalar* lse,
                                              const int64_t* targets, int64_t n, int64_t v,
                                              int64_t ignore_index, Scalar scale,
                                              const Scalar* scale_on_device) {
  const Scalar g = dtotal[0] * (scale_on_device != nullptr ? scale_on_device[0] : scale);
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int64_t t = targets[r];
    if (t == ignore_index || t < 0 || t >= v) continue;
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

namespace detail {

template <class Scalar>
void cross_entropy_forward_on(Scalar* total, Scalar* losses, Scalar* lse, const Scalar* logits,
                              const int64_t* targets, int64_t n, int64_t v, int64_t ignore_index,
                              Scalar scale, Scalar* counted_scale, IndexErrorSink sink) {
  const cudaStream_t stream = context().stream();
  if (n > 0) {
    cross_entropy_rows_kernel<Scalar><<<row_blocks(n), row_threads(v), 0, stream>>>(
        losses, lse, logits, targets, n, v, ignore_index, sink);
    NL_CUDA_LAUNCH_CHECK("cross_entropy_rows_kernel");
  }
  cross_entropy_total_kernel<Scalar>
      <<<1, 256, 0, stream>>>(total, losses, n, scale, counted_scale, targets, ignore_index);
  NL_CUDA_LAUNCH_CHECK("cross_entropy_total_kernel");
}

template <class Scalar>
void cross_entropy_backward_on(Scalar* dlogits, const Scalar* dtotal, const Scalar* logits,
                               const Scalar* lse, const int64_t* targets, int64_t n, int64_t v,
                               int64_t ignore_index, Scalar scale, const Scalar* scale_on_device) {
  if (n == 0 || v == 0) return;
  cross_entropy_backward_kernel<Scalar><<<row_blocks(n), row_threads(v), 0, context().stream()>>>(
      dlogits, dtotal, logits, lse, targets, n, v, ignore_index, scale, scale_on_device);
  NL_CUDA_LAUNCH_CHECK("cross_entropy_backward_kernel");
}

}  // namespace detail

/// lse[r], losses[r] per row (0 on ignored rows), total[0] = scale * sum_r losses[r]
/// (in double). All outputs stay on the device.
/// Requires: every target is ignore_index or in [0, v) (the op checks on the host).
template <class Scalar>
void cross_entropy_forward(Cuda, Scalar* total /*()*/, Scalar* losses /*(N)*/, Scalar* lse /*(N)*/,
                           const Scalar* logits /*(N, V)*/, const int64_t* targets /*(N)*/,
                           int64_t n, int64_t v, int64_t ignore_index, Scalar scale) {
  detail::cross_entropy_forward_on(total, losses, lse, logits, targets, n, v, ignore_index, scale,
                                   static_cast<Scalar*>(nullptr), {});
}

/// cross_entropy_forward with the targets checked and counted on the device:
/// scale[0] = 1 / (the count of targets other than ignore_index), NaN
/// without any, and total[0] = scale[0] * sum_r losses[r]. A target outside
/// [0, v) that is not ignore_index gives its row a NaN loss, and the first
/// one is raised as an Error with index_range_message(check, ...) at the next
/// copy_to_host or check_index_errors(). No host synchronization.
template <class Scalar>
void cross_entropy_forward_counted(Cuda, Scalar* total /*()*/, Scalar* losses /*(N)*/,
                                   Scalar* lse /*(N)*/, Scalar* scale /*()*/,
                                   const Scalar* logits /*(N, V)*/, const int64_t* targets /*(N)*/,
                                   int64_t n, int64_t v, int64_t ignore_index,
                                   const IndexCheck& check) {
  Context& ctx = context();
  const detail::IndexErrorSink sink = ctx.begin_index_check(check);
  detail::cross_entropy_forward_on(total, losses, lse, logits, targets, n, v, ignore_index,
                                   Scalar(0), scale, sink);
  ctx.settle_index_check(targets);
}

/// dlogits[r, j] += dtotal[0] * scale * (exp(logits[r, j] - lse[r]) - [j == t_r]) on
/// rows that are not ignored; dtotal is read on the device.
template <class Scalar>
void cross_entropy_backward(Cuda, Scalar* dlogits /*(N, V)*/, const Scalar* dtotal /*()*/,
                            const Scalar* logits /*(N, V)*/, const Scalar* lse /*(N)*/,
                            const int64_t* targets /*(N)*/, int64_t n, int64_t v,
                            int64_t ignore_index, Scalar scale) {
  detail::cross_entropy_backward_on(dlogits, dtotal, logits, lse, targets, n, v, ignore_index,
                                    scale, static_cast<const Scalar*>(nullptr));
}

/// cross_entropy_backward with the scale of cross_entropy_forward_counted,
/// read on the device; rows whose target is outside [0, v) are skipped.
template <class Scalar>
void cross_entropy_backward_counted(Cuda, Scalar* dlogits /*(N, V)*/, const Scalar* dtotal /*()*/,
                                    const Scalar* logits /*(N, V)*/, const Scalar* lse /*(N)*/,
                                    const Scalar* scale /*()*/, const int64_t* targets /*(N)*/,
                                    int64_t n, int64_t v, int64_t ignore_index) {
  detail::cross_entropy_backward_on(dlogits, dtotal, logits, lse, targets, n, v, ignore_index,
                                    Scalar(0), scale);
}

}  // namespace cuda
}  // namespace v0
}  // namespace normlab

#endif  // __CUDACC__
