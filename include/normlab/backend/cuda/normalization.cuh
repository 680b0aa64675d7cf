// normlab/backend/cuda/normalization.cuh — LayerNorm and RMSNorm forward/backward.
//
// Same contracts as backend/cpu/normalization.hpp. One block per row computes
// the row statistics with block_sum (a fixed reduction order) and writes the
// row; the parameter gradients (sums over rows) are column reductions: column
// c is owned by one column of a (32, 8) block whose 8 partials are added in a
// fixed order. Results are therefore the same from run to run.
#pragma once

#ifdef __CUDACC__

#include <cstdint>

#include "normlab/backend/cuda/elementwise.cuh"
#include "normlab/backend/cuda/runtime.cuh"

namespace normlab {
inline namespace v0 {
namespace cuda {
namespace detail {

/// One block per row: mean, corrected two-pass variance, rstd, and the output.
template <class T>
__global__ void layer_norm_forward_kernel(T* out, T* mean, T* rstd, const T* x, const T* weight,
                                          const T* bias, int64_t rows, int64_t C, T eps) {
  __shared__ T scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * C;  // (C,)
    T* yr = out + r * C;      // (C,)
    T s = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += xr[c];
    T m = block_sum(s, scratch) / static_cast<T>(C);
    // Deviations from m: their mean refines m, their squares give the
    // variance about the refined mean (as on the CPU).
    T dsum = 0, d2sum = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const T d = xr[c] - m;
      dsum += d;
      d2sum += d * d;
    }
    dsum = block_sum(dsum, scratch);
    d2sum = block_sum(d2sum, scratch);
    const T dm = dsum / static_cast<T>(C);
    m += dm;
    const T v0 = d2sum / static_cast<T>(C) - dm * dm;
    const T rs = T(1) / sqrt((v0 > T(0) ? v0 : T(0)) + eps);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const T w = weight ? weight[c] : T(1), b = bias ? bias[c] : T(0);
      yr[c] = (xr[c] - m) * rs * w + b;
    }
    if (threadIdx.x == 0) {
      mean[r] = m;
      rstd[r] = rs;
    }
  }
}

/// One block per row: dx += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * weight.
/// `mean` is null for RMSNorm (xhat = x * rstd, no mean(g) term).
template <class T>
__global__ void norm_backward_dx_kernel(T* dx, const T* dout, const T* x, const T* weight,
                                        const T* mean, const T* rstd, int64_t rows, int64_t C,
                                        bool overwrite) {
  __shared__ T scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* dyr = dout + r * C;  // (C,)
    const T* xr = x + r * C;      // (C,)
    const T m = mean ? mean[r] : T(0), s = rstd[r];
    T g_sum = 0, gx_sum = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const T g = weight ? dyr[c] * weight[c] : dyr[c];
      g_sum += g;
      gx_sum += g * ((xr[c] - m) * s);
    }
    const T g_mean = mean ? block_sum(g_sum, scratch) / static_cast<T>(C) : T(0);
    const T gx_mean = block_sum(gx_sum, scratch) / static_cast<T>(C);
    T* dxr = dx + r * C;  // (C,)
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const T g = weight ? dyr[c] * weight[c] : dyr[c];
      dxr[c] = (overwrite ? T(0) : dxr[c]) + s * (g - g_mean - (xr[c] - m) * s * gx_mean);
    }
  }
}

/// dweight[c] += sum_r dout[r, c] * xhat[r, c] and dbias[c] += sum_r dout[r, c]
/// (either may be null; `mean` null for RMSNorm). Column-owned reduction.
template <class T>
__global__ void norm_backward_params_kernel(T* dweight, T* dbias, const T* dout, const T* x,
                                            const T* mean, const T* rstd, int64_t rows, int64_t C) {
  __shared__ T part_w[kReduceRows][32];
  __shared__ T part_b[kReduceRows][32];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  T acc_w = 0, acc_b = 0;
  if (c < C) {
    for (int64_t r = threadIdx.y; r < rows; r += blockDim.y) {
      const T dy = dout[r * C + c];
      acc_w += dy * ((x[r * C + c] - (mean ? mean[r] : T(0))) * rstd[r]);
      acc_b += dy;
    }
  }
  part_w[threadIdx.y][threadIdx.x] = acc_w;
  part_b[threadIdx.y][threadIdx.x] = acc_b;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    T tw = part_w[0][threadIdx.x], tb = part_b[0][threadIdx.x];
    for (unsigned y = 1; y < blockDim.y; ++y) {
      tw += part_w[y][threadIdx.x];
      tb += part_b[y][threadIdx.x];
    }
    if (dweight) dweight[c] += tw;
    if (dbias) dbias[c] += tb;
  }
}

/// One block per row: rstd = 1 / sqrt(mean(x^2) + eps), out = x * rstd * weight.
template <class T>
__global__ void rms_norm_forward_kernel(T* out, T* rstd, const T* x, const T* weight, int64_t rows,
                                        int64_t C, T eps) {
  __shared__ T scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * C;  // (C,)
    T* yr = out + r * C;      // (C,)
    T ss = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) ss += xr[c] * xr[c];
    const T ms = block_sum(ss, scratch) / static_cast<T>(C);
    const T s = T(1) / sqrt(ms + eps);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      yr[c] = xr[c] * s * (weight ? weight[c] : T(1));
    if (threadIdx.x == 0) rstd[r] = s;
  }
}

template <class T>
void norm_backward(T* dx, T* dweight, T* dbias, const T* dout, const T* x, const T* weight,
                   const T* mean, const T* rstd, int64_t rows, int64_t C, bool overwrite_dx) {
  if (rows == 0 || C == 0) return;
  const cudaStream_t stream = context().stream();
  if (dx) {
    norm_backward_dx_kernel<T><<<row_blocks(rows), row_threads(C), 0, stream>>>(
        dx, dout, x, weight, mean, rstd, rows, C, overwrite_dx);
    NL_CUDA_LAUNCH_CHECK("norm_backward_dx_kernel");
  }
  if (dweight || dbias) {
    dim3 grid, block;
    column_launch(C, rows, grid, block);
    norm_backward_params_kernel<T>
        <<<grid, block, 0, stream>>>(dweight, dbias, dout, x, mean, rstd, rows, C);
    NL_CUDA_LAUNCH_CHECK("norm_backward_params_kernel");
  }
}

}  // namespace detail

/// out = (x - mean) * rstd * weight + bias per row; mean and rstd saved per row.
/// Requires: C > 0; out, x (rows, C); mean, rstd (rows,); weight, bias (C,) or null.
template <class T>
void layer_norm_forward(Cuda, T* out, T* mean, T* rstd, const T* x, const T* weight, const T* bias,
                        int64_t rows, int64_t C, T eps) {
  if (rows == 0) return;
  detail::layer_norm_forward_kernel<T>
      <<<detail::row_blocks(rows), detail::row_threads(C), 0, context().stream()>>>(
          out, mean, rstd, x, weight, bias, rows, C, eps);
  NL_CUDA_LAUNCH_CHECK("layer_norm_forward_kernel");
}

/// dx += rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)) (= with overwrite_dx),
/// dweight += sum_rows dout * xhat, dbias += sum_rows dout (g = dout * weight). Null
/// outputs are skipped; null weight means 1.
template <class T>
void layer_norm_backward(Cuda, T* dx, T* dweight, T* dbias, const T* dout, const T* x,
                         const T* weight, const T* mean, const T* rstd, int64_t rows, int64_t C,
                         bool overwrite_dx = false) {
  detail::norm_backward(dx, dweight, dbias, dout, x, weight, mean, rstd, rows, C, overwrite_dx);
}

/// out = x * rstd * weight per row, rstd = 1 / sqrt(mean_c(x^2) + eps) saved per row.
template <class T>
void rms_norm_forward(Cuda, T* out, T* rstd, const T* x, const T* weight, int64_t rows, int64_t C,
                      T eps) {
  if (rows == 0) return;
  detail::rms_norm_forward_kernel<T>
      <<<detail::row_blocks(rows), detail::row_threads(C), 0, context().stream()>>>(
          out, rstd, x, weight, rows, C, eps);
  NL_CUDA_LAUNCH_CHECK("rms_norm_forward_kernel");
}

/// dx += rstd * (g - xhat * mean_c(g * xhat)) (= with overwrite_dx), dweight += sum_rows
/// dout * xhat.
template <class T>
void rms_norm_backward(Cuda, T* dx, T* dweight, const T* dout, const T* x, const T* weight,
                       const T* rstd, int64_t rows, int64_t C, bool overwrite_dx = false) {
  detail::norm_backward(dx, dweight, static_cast<T*>(nullptr), dout, x, weight,
                        static_cast<const T*>(nullptr), rstd, rows, C, overwrite_dx);
}

}  // namespace cuda
}  // namespace v0
}  // namespace normlab

#endif  // __CUDACC__
