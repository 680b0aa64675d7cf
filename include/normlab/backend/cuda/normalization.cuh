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
template <class Scalar>
__global__ void layer_norm_forward_kernel(Scalar* out, Scalar* mean, Scalar* rstd, const Scalar* x,
                                          const Scalar* weight, const Scalar* bias, int64_t rows,
                                          int64_t C, Scalar eps) {
  __shared__ Scalar scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const Scalar* xr = x + r * C;  // (C,)
    Scalar* yr = out + r * C;      // (C,)
    Scalar s = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += xr[c];
    Scalar m = block_sum(s, scratch) / static_cast<Scalar>(C);
    // Deviations from m: their mean refines m, their squares give the
    // variance about the refined mean (as on the CPU).
    Scalar dsum = 0, d2sum = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const Scalar d = xr[c] - m;
      dsum += d;
      d2sum += d * d;
    }
    dsum = block_sum(dsum, scratch);
    d2sum = block_sum(d2sum, scratch);
    const Scalar dm = dsum / static_cast<Scalar>(C);
    m += dm;
    const Scalar v0 = d2sum / static_cast<Scalar>(C) - dm * dm;
    const Scalar rs = Scalar(1) / sqrt((v0 > Scalar(0) ? v0 : Scalar(0)) + eps);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const Scalar w = weight ? weight[c] : Scalar(1), b = bias ? bias[c] : Scalar(0);
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
template <class Scalar>
__global__ void norm_backward_dx_kernel(Scalar* dx, const Scalar* dout, const Scalar* x,
                                        const Scalar* weight, const Scalar* mean,
                                        const Scalar* rstd, int64_t rows, int64_t C,
                                        bool overwrite) {
  __shared__ Scalar scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const Scalar* dyr = dout + r * C;  // (C,)
    const Scalar* xr = x + r * C;      // (C,)
    const Scalar m = mean ? mean[r] : Scalar(0), s = rstd[r];
    Scalar g_sum = 0, gx_sum = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const Scalar g = weight ? dyr[c] * weight[c] : dyr[c];
      g_sum += g;
      gx_sum += g * ((xr[c] - m) * s);
    }
    const Scalar g_mean = mean ? block_sum(g_sum, scratch) / static_cast<Scalar>(C) : Scalar(0);
    const Scalar gx_mean = block_sum(gx_sum, scratch) / static_cast<Scalar>(C);
    Scalar* dxr = dx + r * C;  // (C,)
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const Scalar g = weight ? dyr[c] * weight[c] : dyr[c];
      dxr[c] = (overwrite ? Scalar(0) : dxr[c]) + s * (g - g_mean - (xr[c] - m) * s * gx_mean);
    }
  }
}

/// dweight[c] += sum_r dout[r, c] * xhat[r, c] and dbias[c] += sum_r dout[r, c]
/// (either may be null; `mean` null for RMSNorm). Column-owned reduction.
template <class Scalar>
__global__ void norm_backward_params_kernel(Scalar* dweight, Scalar* dbias, const Scalar* dout,
                                            const Scalar* x, const Scalar* mean, const Scalar* rstd,
                                            int64_t rows, int64_t C) {
  __shared__ Scalar part_w[kReduceRows][32];
  __shared__ Scalar part_b[kReduceRows][32];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  Scalar acc_w = 0, acc_b = 0;
  if (c < C) {
    for (int64_t r = threadIdx.y; r < rows; r += blockDim.y) {
      const Scalar dy = dout[r * C + c];
      acc_w += dy * ((x[r * C + c] - (mean ? mean[r] : Scalar(0))) * rstd[r]);
      acc_b += dy;
    }
  }
  part_w[threadIdx.y][threadIdx.x] = acc_w;
  part_b[threadIdx.y][threadIdx.x] = acc_b;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    Scalar tw = part_w[0][threadIdx.x], tb = part_b[0][threadIdx.x];
    for (unsigned y = 1; y < blockDim.y; ++y) {
      tw += part_w[y][threadIdx.x];
      tb += part_b[y][threadIdx.x];
    }
    if (dweight) dweight[c] += tw;
    if (dbias) dbias[c] += tb;
  }
}

/// One block per row: rstd = 1 / sqrt(mean(x^2) + eps), out = x * rstd * weight.
template <class Scalar>
__global__ void rms_norm_forward_kernel(Scalar* out, Scalar* rstd, const Scalar* x,
                                        const Scalar* weight, int64_t rows, int64_t C, Scalar eps) {
  __shared__ Scalar scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const Scalar* xr = x + r * C;  // (C,)
    Scalar* yr = out + r * C;      // (C,)
    Scalar ss = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) ss += xr[c] * xr[c];
    const Scalar ms = block_sum(ss, scratch) / static_cast<Scalar>(C);
    const Scalar s = Scalar(1) / sqrt(ms + eps);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      yr[c] = xr[c] * s * (weight ? weight[c] : Scalar(1));
    if (threadIdx.x == 0) rstd[r] = s;
  }
}

template <class Scalar>
void norm_backward(Scalar* dx, Scalar* dweight, Scalar* dbias, const Scalar* dout, const Scalar* x,
                   const Scalar* weight, const Scalar* mean, const Scalar* rstd, int64_t rows,
                   int64_t C, bool overwrite_dx) {
  if (rows == 0 || C == 0) return;
  const cudaStream_t stream = context().stream();
  if (dx) {
    norm_backward_dx_kernel<Scalar><<<row_blocks(rows), row_threads(C), 0, stream>>>(
        dx, dout, x, weight, mean, rstd, rows, C, overwrite_dx);
    NL_CUDA_LAUNCH_CHECK("norm_backward_dx_kernel");
  }
  if (dweight || dbias) {
    dim3 grid, block;
    column_launch(C, rows, grid, block);
    norm_backward_params_kernel<Scalar>
        <<<grid, block, 0, stream>>>(dweight, dbias, dout, x, mean, rstd, rows, C);
    NL_CUDA_LAUNCH_CHECK("norm_backward_params_kernel");
  }
}

}  // namespace detail

/// out = (x - mean) * rstd * weight + bias per row; mean and rstd saved per row.
/// Requires: C > 0; out, x (rows, C); mean, rstd (rows,); weight, bias (C,) or null.
template <class Scalar>
void layer_norm_forward(Cuda, Scalar* out, Scalar* mean, Scalar* rstd, const Scalar* x,
                        const Scalar* weight, const Scalar* bias, int64_t rows, int64_t C,
                        Scalar eps) {
  if (rows == 0) return;
  detail::layer_norm_forward_kernel<Scalar>
      <<<detail::row_blocks(rows), detail::row_threads(C), 0, context().stream()>>>(
          out, mean, rstd, x, weight, bias, rows, C, eps);
  NL_CUDA_LAUNCH_CHECK("layer_norm_forward_kernel");
}

/// dx += rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)) (= with overwrite_dx),
/// dweight += sum_rows dout * xhat, dbias += sum_rows dout (g = dout * weight). Null
/// outputs are skipped; null weight means 1.
template <class Scalar>
void layer_norm_backward(Cuda, Scalar* dx, Scalar* dweight, Scalar* dbias, const Scalar* dout,
                         const Scalar* x, const Scalar* weight, const Scalar* mean,
                         const Scalar* rstd, int64_t rows, int64_t C, bool overwrite_dx = false) {
  detail::norm_backward(dx, dweight, dbias, dout, x, weight, mean, rstd, rows, C, overwrite_dx);
}

/// out = x * rstd * weight per row, rstd = 1 / sqrt(mean_c(x^2) + eps) saved per row.
template <class Scalar>
void rms_norm_forward(Cuda, Scalar* out, Scalar* rstd, const Scalar* x, const Scalar* weight,
                      int64_t rows, int64_t C, Scalar eps) {
  if (rows == 0) return;
  detail::rms_norm_forward_kernel<Scalar>
      <<<detail::row_blocks(rows), detail::row_threads(C), 0, context().stream()>>>(
          out, rstd, x, weight, rows, C, eps);
  NL_CUDA_LAUNCH_CHECK("rms_norm_forward_kernel");
}

/// dx += rstd * (g - xhat * mean_c(g * xhat)) (= with overwrite_dx), dweight += sum_rows
/// dout * xhat.
template <class Scalar>
void rms_norm_backward(Cuda, Scalar* dx, Scalar* dweight, const Scalar* dout, const Scalar* x,
                       const Scalar* weight, const Scalar* rstd, int64_t rows, int64_t C,
                       bool overwrite_dx = false) {
  detail::norm_backward(dx, dweight, static_cast<Scalar*>(nullptr), dout, x, weight,
                        static_cast<const Scalar*>(nullptr), rstd, rows, C, overwrite_dx);
}

}  // namespace cuda
}  // namespace v0
}  // namespace normlab

#endif  // __CUDACC__
