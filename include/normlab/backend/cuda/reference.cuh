// normlab/backend/cuda/reference.cuh — slow, obviously correct versions of the
// CUDA backend's own kernels, kept as the oracles of the fast ones.
//
// One thread per row (or per output element), with the loops of the CPU
// backend written out serially; no shared memory, no warp shuffles, no
// grid-stride tricks. The tests run each fast kernel against its reference
// on the same device buffers. Same signatures as the fast functions, in
// namespace normlab::cuda::reference (without the tag argument).
#pragma once

#ifdef __CUDACC__

#include <cstdint>

#include "normlab/backend/cuda/elementwise.cuh"
#include "normlab/backend/cuda/runtime.cuh"
#include "normlab/backend/cuda/softmax.cuh"

namespace normlab {
inline namespace v0 {
namespace cuda::reference {
namespace kernels {

template <class Scalar>
__global__ void layer_norm_forward(Scalar* out, Scalar* mean, Scalar* rstd, const Scalar* x,
                                   const Scalar* w, const Scalar* b, int64_t rows, int64_t C,
                                   Scalar eps) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const Scalar* xr = x + r * C;
  Scalar m = 0;
  for (int64_t c = 0; c < C; ++c) m += xr[c];
  m /= static_cast<Scalar>(C);
  Scalar v = 0;
  for (int64_t c = 0; c < C; ++c) v += (xr[c] - m) * (xr[c] - m);
  v /= static_cast<Scalar>(C);
  const Scalar s = Scalar(1) / sqrt(v + eps);
  for (int64_t c = 0; c < C; ++c)
    out[r * C + c] = (xr[c] - m) * s * (w ? w[c] : Scalar(1)) + (b ? b[c] : Scalar(0));
  mean[r] = m;
  rstd[r] = s;
}

/// dx of LayerNorm (mean non-null) or RMSNorm (mean null), one thread per row.
template <class Scalar>
__global__ void norm_backward_dx(Scalar* dx, const Scalar* dout, const Scalar* x, const Scalar* w,
                                 const Scalar* mean, const Scalar* rstd, int64_t rows, int64_t C) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const Scalar m = mean ? mean[r] : Scalar(0), s = rstd[r];
  Scalar g_mean = 0, gx_mean = 0;
  for (int64_t c = 0; c < C; ++c) {
    const Scalar g = dout[r * C + c] * (w ? w[c] : Scalar(1));
    g_mean += g;
    gx_mean += g * (x[r * C + c] - m) * s;
  }
  g_mean = mean ? g_mean / static_cast<Scalar>(C) : Scalar(0);
  gx_mean /= static_cast<Scalar>(C);
  for (int64_t c = 0; c < C; ++c) {
    const Scalar g = dout[r * C + c] * (w ? w[c] : Scalar(1));
    dx[r * C + c] += s * (g - g_mean - (x[r * C + c] - m) * s * gx_mean);
  }
}

/// dweight / dbias of LayerNorm or RMSNorm, one thread per column.
template <class Scalar>
__global__ void norm_backward_params(Scalar* dw, Scalar* db, const Scalar* dout, const Scalar* x,
                                     const Scalar* mean, const Scalar* rstd, int64_t rows,
                                     int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  for (int64_t r = 0; r < rows; ++r) {
    const Scalar dy = dout[r * C + c];
    if (dw) dw[c] += dy * (x[r * C + c] - (mean ? mean[r] : Scalar(0))) * rstd[r];
    if (db) db[c] += dy;
  }
}

template <class Scalar>
__global__ void rms_norm_forward(Scalar* out, Scalar* rstd, const Scalar* x, const Scalar* w,
                                 int64_t rows, int64_t C, Scalar eps) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  Scalar ms = 0;
  for (int64_t c = 0; c < C; ++c) ms += x[r * C + c] * x[r * C + c];
  const Scalar s = Scalar(1) / sqrt(ms / static_cast<Scalar>(C) + eps);
  for (int64_t c = 0; c < C; ++c) out[r * C + c] = x[r * C + c] * s * (w ? w[c] : Scalar(1));
  rstd[r] = s;
}

template <class Scalar>
__global__ void softmax_forward(Scalar* out, const Scalar* x, int64_t rows, int64_t n,
                                int64_t causal_tq) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const int64_t len = cuda::detail::causal_length(r, n, causal_tq);
  Scalar mx = len > 0 ? x[r * n] : Scalar(0);
  for (int64_t j = 1; j < len; ++j) mx = x[r * n + j] > mx ? x[r * n + j] : mx;
  Scalar sum = 0;
  for (int64_t j = 0; j < len; ++j) sum += exp(x[r * n + j] - mx);
  for (int64_t j = 0; j < n; ++j)
    out[r * n + j] = j < len ? exp(x[r * n + j] - mx) / sum : Scalar(0);
}

template <class Scalar>
__global__ void softmax_backward(Scalar* dx, const Scalar* dout, const Scalar* y, int64_t rows,
                                 int64_t n, int64_t causal_tq) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const int64_t len = cuda::detail::causal_length(r, n, causal_tq);
  Scalar dot = 0;
  for (int64_t j = 0; j < len; ++j) dot += dout[r * n + j] * y[r * n + j];
  for (int64_t j = 0; j < len; ++j) dx[r * n + j] += y[r * n + j] * (dout[r * n + j] - dot);
}

template <class Scalar>
__global__ void log_softmax_forward(Scalar* out, const Scalar* x, int64_t rows, int64_t n) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  Scalar mx = x[r * n];
  for (int64_t j = 1; j < n; ++j) mx = x[r * n + j] > mx ? x[r * n + j] : mx;
  Scalar sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += exp(x[r * n + j] - mx);
  for (int64_t j = 0; j < n; ++j) out[r * n + j] = x[r * n + j] - mx - log(sum);
}

template <class Scalar>
__global__ void log_softmax_backward(Scalar* dx, const Scalar* dout, const Scalar* y, int64_t rows,
                                     int64_t n) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  Scalar sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += dout[r * n + j];
  for (int64_t j = 0; j < n; ++j) dx[r * n + j] += dout[r * n + j] - exp(y[r * n + j]) * sum;
}

/// One thread does everything: rows, then the total in row order.
template <class Scalar>
__global__ void cross_entropy_forward(Scalar* total, Scalar* losses, Scalar* lse,
                                      const Scalar* logits, const int64_t* targets, int64_t n,
                                      int64_t v, int64_t ignore_index, Scalar scale) {
  double sum = 0;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t t = targets[r];
    if (t == ignore_index) {
      lse[r] = Scalar(0);
      losses[r] = Scalar(0);
      continue;
    }
    Scalar m = logits[r * v];
    for (int64_t j = 1; j < v; ++j) m = logits[r * v + j] > m ? logits[r * v + j] : m;
    Scalar s = 0;
    for (int64_t j = 0; j < v; ++j) s += exp(logits[r * v + j] - m);
    lse[r] = m + log(s);
    losses[r] = lse[r] - logits[r * v + t];
    sum += static_cast<double>(losses[r]);
  }
  total[0] = static_cast<Scalar>(static_cast<double>(scale) * sum);
}

template <class Scalar>
__global__ void cross_entropy_backward(Scalar* dlogits, const Scalar* dtotal, const Scalar* logits,
                                       const Scalar* lse, const int64_t* targets, int64_t n,
                                       int64_t v, int64_t ignore_index, Scalar scale) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n || targets[r] == ignore_index) return;
  const Scalar g = dtotal[0] * scale;
  for (int64_t j = 0; j < v; ++j) dlogits[r * v + j] += g * exp(logits[r * v + j] - lse[r]);
  dlogits[r * v + targets[r]] -= g;
}

/// One thread per column, rows in order (the CPU's order).
template <class Scalar>
__global__ void embedding_backward(Scalar* dweight, const Scalar* dout, const int64_t* indices,
                                   int64_t n, int64_t c) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= c) return;
  for (int64_t i = 0; i < n; ++i) dweight[indices[i] * c + j] += dout[i * c + j];
}

/// One thread walks every output element in order (the CPU's serial loop).
template <class Scalar, class F>
__global__ void map_binary_backward(Scalar* da, Scalar* db, const Scalar* dout, const Scalar* a,
                                    const Scalar* b, BroadcastPlan p, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) {
    int64_t oa, ob;
    p.offsets(i, oa, ob);
    if (da) da[oa] += dout[i] * f.grad_a(a[oa], b[ob]);
    if (db) db[ob] += dout[i] * f.grad_b(a[oa], b[ob]);
  }
}

/// One thread per (o, i), summing k in order, in double.
template <class Scalar>
__global__ void sum_axis_forward(Scalar* out, const Scalar* in, int64_t outer, int64_t n,
                                 int64_t inner, Scalar scale) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= outer * inner) return;
  const int64_t o = e / inner, i = e % inner;
  double acc = 0;
  for (int64_t k = 0; k < n; ++k) acc += static_cast<double>(in[(o * n + k) * inner + i]);
  out[e] = static_cast<Scalar>(acc * static_cast<double>(scale));
}

template <class Scalar>
__global__ void sum_of_squares(double* out, const Scalar* x, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  out[0] = acc;
}

}  // namespace kernels

namespace launch {
inline unsigned blocks(int64_t n) {
  return static_cast<unsigned>((n + 63) / 64 > 0 ? (n + 63) / 64 : 1);
}
inline cudaStream_t stream() {
  return context().stream();
}
}  // namespace launch

template <class Scalar>
void layer_norm_forward(Scalar* out, Scalar* mean, Scalar* rstd, const Scalar* x, const Scalar* w,
                        const Scalar* b, int64_t rows, int64_t C, Scalar eps) {
  kernels::layer_norm_forward<Scalar>
      <<<launch::blocks(rows), 64, 0, launch::stream()>>>(out, mean, rstd, x, w, b, rows, C, eps);
  NL_CUDA_LAUNCH_CHECK("reference::layer_norm_forward");
}
template <class Scalar>
void layer_norm_backward(Scalar* dx, Scalar* dw, Scalar* db, const Scalar* dout, const Scalar* x,
                         const Scalar* w, const Scalar* mean, const Scalar* rstd, int64_t rows,
                         int64_t C) {
  if (dx)
    kernels::norm_backward_dx<Scalar>
        <<<launch::blocks(rows), 64, 0, launch::stream()>>>(dx, dout, x, w, mean, rstd, rows, C);
  if (dw || db)
    kernels::norm_backward_params<Scalar>
        <<<launch::blocks(C), 64, 0, launch::stream()>>>(dw, db, dout, x, mean, rstd, rows, C);
  NL_CUDA_LAUNCH_CHECK("reference::layer_norm_backward");
}
template <class Scalar>
void rms_norm_forward(Scalar* out, Scalar* rstd, const Scalar* x, const Scalar* w, int64_t rows,
                      int64_t C, Scalar eps) {
  kernels::rms_norm_forward<Scalar>
      <<<launch::blocks(rows), 64, 0, launch::stream()>>>(out, rstd, x, w, rows, C, eps);
  NL_CUDA_LAUNCH_CHECK("reference::rms_norm_forward");
}
template <class Scalar>
void rms_norm_backward(Scalar* dx, Scalar* dw, const Scalar* dout, const Scalar* x, const Scalar* w,
                       const Scalar* rstd, int64_t rows, int64_t C) {
  layer_norm_backward<Scalar>(dx, dw, nullptr, dout, x, w, nullptr, rstd, rows, C);
}
template <class Scalar>
void softmax_forward(Scalar* out, const Scalar* x, int64_t rows, int64_t n, int64_t causal_tq) {
  kernels::softmax_forward<Scalar>
      <<<launch::blocks(rows), 64, 0, launch::stream()>>>(out, x, rows, n, causal_tq);
  NL_CUDA_LAUNCH_CHECK("reference::softmax_forward");
}
template <class Scalar>
void softmax_backward(Scalar* dx, const Scalar* dout, const Scalar* y, int64_t rows, int64_t n,
                      int64_t causal_tq) {
  kernels::softmax_backward<Scalar>
      <<<launch::blocks(rows), 64, 0, launch::stream()>>>(dx, dout, y, rows, n, causal_tq);
  NL_CUDA_LAUNCH_CHECK("reference::softmax_backward");
}
template <class Scalar>
void log_softmax_forward(Scalar* out, const Scalar* x, int64_t rows, int64_t n) {
  kernels::log_softmax_forward<Scalar>
      <<<launch::blocks(rows), 64, 0, launch::stream()>>>(out, x, rows, n);
  NL_CUDA_LAUNCH_CHECK("reference::log_softmax_forward");
}
template <class Scalar>
void log_softmax_backward(Scalar* dx, const Scalar* dout, const Scalar* y, int64_t rows,
                          int64_t n) {
  kernels::log_softmax_backward<Scalar>
      <<<launch::blocks(rows), 64, 0, launch::stream()>>>(dx, dout, y, rows, n);
  NL_CUDA_LAUNCH_CHECK("reference::log_softmax_backward");
}
template <class Scalar>
void cross_entropy_forward(Scalar* total, Scalar* losses, Scalar* lse, const Scalar* logits,
                           const int64_t* targets, int64_t n, int64_t v, int64_t ignore_index,
                           Scalar scale) {
  kernels::cross_entropy_forward<Scalar><<<1, 1, 0, launch::stream()>>>(
      total, losses, lse, logits, targets, n, v, ignore_index, scale);
  NL_CUDA_LAUNCH_CHECK("reference::cross_entropy_forward");
}
template <class Scalar>
void cross_entropy_backward(Scalar* dlogits, const Scalar* dtotal, const Scalar* logits,
                            const Scalar* lse, const int64_t* targets, int64_t n, int64_t v,
                            int64_t ignore_index, Scalar scale) {
  kernels::cross_entropy_backward<Scalar><<<launch::blocks(n), 64, 0, launch::stream()>>>(
      dlogits, dtotal, logits, lse, targets, n, v, ignore_index, scale);
  NL_CUDA_LAUNCH_CHECK("reference::cross_entropy_backward");
}
template <class Scalar>
void embedding_backward(Scalar* dweight, const Scalar* dout, const int64_t* indices, int64_t n,
                        int64_t c) {
  kernels::embedding_backward<Scalar>
      <<<launch::blocks(c), 64, 0, launch::stream()>>>(dweight, dout, indices, n, c);
  NL_CUDA_LAUNCH_CHECK("reference::embedding_backward");
}
template <class Scalar, class F>
void map_binary_backward(Scalar* da, Scalar* db, const Scalar* dout, const Scalar* a,
                         const Scalar* b, const BroadcastPlan& p, int64_t n, F f) {
  kernels::map_binary_backward<Scalar, F>
      <<<1, 1, 0, launch::stream()>>>(da, db, dout, a, b, p, n, f);
  NL_CUDA_LAUNCH_CHECK("reference::map_binary_backward");
}
template <class Scalar>
void sum_axis_forward(Scalar* out, const Scalar* in, int64_t outer, int64_t n, int64_t inner,
                      Scalar scale) {
  kernels::sum_axis_forward<Scalar>
      <<<launch::blocks(outer * inner), 64, 0, launch::stream()>>>(out, in, outer, n, inner, scale);
  NL_CUDA_LAUNCH_CHECK("reference::sum_axis_forward");
}
/// Returns to the host (waits for the stream).
template <class Scalar>
double sum_of_squares(const Scalar* x, int64_t n) {
  double* d = static_cast<double*>(allocate_bytes(Cuda{}, sizeof(double)));
  kernels::sum_of_squares<Scalar><<<1, 1, 0, launch::stream()>>>(d, x, n);
  const cudaError_t e = cudaGetLastError();
  double h = 0;
  if (e == cudaSuccess) copy_to_host(Cuda{}, &h, d, 1);
  deallocate_bytes(Cuda{}, d);
  normlab::detail::cuda_check(e, "launch of reference::sum_of_squares", __FILE__, __LINE__);
  return h;
}

}  // namespace cuda::reference
}  // namespace v0
}  // namespace normlab

#endif  // __CUDACC__
