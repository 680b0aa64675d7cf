// normlab/backend/cuda/elementwise.cuh — element-wise maps with broadcasting,
// sums along an axis, layout kernels (strided gathers, row blocks), scaling.
//
// Same contracts as backend/cpu/elementwise.hpp, reduce.hpp and layout.hpp.
// Independent elements go through Thrust on the context's stream. The
// broadcast backward and the axis sums are reductions: each output element is
// owned by one column of a (32, 8) thread block, whose 8 partial sums are added
// in a fixed order, so results do not change from run to run.
#pragma once

#ifdef __CUDACC__

#include <cstdint>

#include "normlab/backend/cuda/runtime.cuh"
#include "normlab/core/shape.hpp"

namespace normlab {
inline namespace v0 {
namespace cuda {
namespace detail {

/// Rows of the (32, kReduceRows) blocks of the column reductions.
inline constexpr int kReduceRows = 8;

template <class Scalar, class F>
struct UnaryForwardOp {
  Scalar* out;
  const Scalar* in;
  F f;
  __device__ void operator()(int64_t i) const { out[i] = f(in[i]); }
};
template <class Scalar, class F>
struct UnaryBackwardOp {
  Scalar* din;
  const Scalar* dout;
  const Scalar* in;
  const Scalar* out;
  F f;
  __device__ void operator()(int64_t i) const { din[i] += dout[i] * f.grad(in[i], out[i]); }
};
template <class Scalar, class F>
struct BinaryForwardOp {
  Scalar* out;
  const Scalar* a;
  const Scalar* b;
  BroadcastPlan p;
  bool identity;
  F f;
  __device__ void operator()(int64_t i) const {
    if (identity) {
      out[i] = f(a[i], b[i]);
      return;
    }
    int64_t oa, ob;
    p.offsets(i, oa, ob);
    out[i] = f(a[oa], b[ob]);
  }
};
template <class Scalar, class F>
struct BinaryBackwardIdentityOp {
  Scalar* da;
  Scalar* db;
  const Scalar* dout;
  const Scalar* a;
  const Scalar* b;
  F f;
  __device__ void operator()(int64_t i) const {
    if (da) da[i] += dout[i] * f.grad_a(a[i], b[i]);
    if (db) db[i] += dout[i] * f.grad_b(a[i], b[i]);
  }
};

/// The output index space of a broadcast split for one operand X: the kept
/// dims (X has them) enumerate X's elements, the reduced dims (X is broadcast
/// along them) enumerate the output elements that read one X element.
struct OperandSplit {
  int kept = 0, reduced = 0;
  int64_t kept_size[kMaxDims] = {}, kept_out[kMaxDims] = {}, kept_x[kMaxDims] = {};
  int64_t red_size[kMaxDims] = {}, red_out[kMaxDims] = {};
  int64_t kept_count = 1, red_count = 1;

  /// Output offset and X offset of kept index k.
  __host__ __device__ void kept_offsets(int64_t k, int64_t& out, int64_t& x) const {
    out = 0;
    x = 0;
    for (int d = kept - 1; d >= 0; --d) {
      const int64_t idx = k % kept_size[d];
      k /= kept_size[d];
      out += idx * kept_out[d];
      x += idx * kept_x[d];
    }
  }
  /// Output offset of reduced index r.
  __host__ __device__ int64_t reduced_offset(int64_t r) const {
    int64_t out = 0;
    for (int d = reduced - 1; d >= 0; --d) {
      out += (r % red_size[d]) * red_out[d];
      r /= red_size[d];
    }
    return out;
  }
};

/// The split of plan `p` for operand a (`for_a`) or b.
inline OperandSplit split_for(const BroadcastPlan& p, bool for_a) {
  OperandSplit s;
  int64_t out_stride = 1;
  int64_t out_strides[kMaxDims] = {};
  for (int d = p.ndim - 1; d >= 0; --d) {
    out_strides[d] = out_stride;
    out_stride *= p.sizes[d];
  }
  for (int d = 0; d < p.ndim; ++d) {
    if (p.sizes[d] == 1) continue;
    const int64_t sx = for_a ? p.stride_a[d] : p.stride_b[d];
    if (sx != 0) {
      s.kept_size[s.kept] = p.sizes[d];
      s.kept_out[s.kept] = out_strides[d];
      s.kept_x[s.kept] = sx;
      s.kept_count *= p.sizes[d];
      ++s.kept;
    } else {
      s.red_size[s.reduced] = p.sizes[d];
      s.red_out[s.reduced] = out_strides[d];
      s.red_count *= p.sizes[d];
      ++s.reduced;
    }
  }
  return s;
}

/// dx[x(k)] += sum_r dout[o] * dF/dx(a[oa(o)], b[ob(o)]), o = out(k) + out(r):
/// the gradient of one broadcast operand (x is a when `for_a`, else b).
/// Block (32, kReduceRows): column tx owns kept index k; rows split r.
template <class Scalar, class F>
__global__ void broadcast_backward_kernel(Scalar* dx, const Scalar* dout, const Scalar* a,
                                          const Scalar* b, BroadcastPlan p, OperandSplit s,
                                          bool for_a, F f) {
  __shared__ Scalar part[kReduceRows][32];
  const int64_t k = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  Scalar acc = Scalar(0);
  int64_t xoff = 0;
  if (k < s.kept_count) {
    int64_t base;
    s.kept_offsets(k, base, xoff);
    for (int64_t r = threadIdx.y; r < s.red_count; r += blockDim.y) {
      const int64_t o = base + s.reduced_offset(r);
      int64_t oa, ob;
      p.offsets(o, oa, ob);
      acc += dout[o] * (for_a ? f.grad_a(a[oa], b[ob]) : f.grad_b(a[oa], b[ob]));
    }
  }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && k < s.kept_count) {
    Scalar total = part[0][threadIdx.x];
    for (unsigned y = 1; y < blockDim.y; ++y) total += part[y][threadIdx.x];
    dx[xoff] += total;
  }
}

/// out[e] = scale * sum_k in[o, k, i] for e = (o, i), in double; column-owned
/// as broadcast_backward_kernel.
template <class Scalar>
__global__ void sum_columns_kernel(Scalar* out, const Scalar* in, int64_t outer, int64_t n,
                                   int64_t inner, Scalar scale) {
  __shared__ double part[kReduceRows][32];
  const int64_t e = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  double acc = 0;
  if (e < outer * inner) {
    const Scalar* col = in + (e / inner) * n * inner + e % inner;
    for (int64_t k = threadIdx.y; k < n; k += blockDim.y)
      acc += static_cast<double>(col[k * inner]);
  }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && e < outer * inner) {
    double total = part[0][threadIdx.x];
    for (unsigned y = 1; y < blockDim.y; ++y) total += part[y][threadIdx.x];
    out[e] = static_cast<Scalar>(total * static_cast<double>(scale));
  }
}

/// out[o] = scale * sum_k in[o, k] in double: one block per row (inner == 1).
template <class Scalar>
__global__ void sum_rows_kernel(Scalar* out, const Scalar* in, int64_t outer, int64_t n,
                                Scalar scale) {
  __shared__ double scratch[32];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const Scalar* row = in + o * n;
    double acc = 0;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) acc += static_cast<double>(row[k]);
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) out[o] = static_cast<Scalar>(acc * static_cast<double>(scale));
  }
}

template <class Scalar>
struct SumBackwardOp {
  Scalar* din;
  const Scalar* dout;
  int64_t n, inner;
  Scalar scale;
  __device__ void operator()(int64_t j) const {
    din[j] += scale * dout[(j / (n * inner)) * inner + j % inner];
  }
};
template <class Scalar>
struct GatherOp {
  Scalar* dst;
  const Scalar* src;
  StridedPlan plan;
  bool accumulate;
  __device__ void operator()(int64_t j) const {
    const Scalar v = src[plan.offset(j)];
    if (accumulate)
      dst[j] += v;
    else
      dst[j] = v;
  }
};
template <class Scalar>
struct CopyRowsOp {
  Scalar* dst;
  int64_t dst_stride;
  const Scalar* src;
  int64_t src_stride, cols;
  bool accumulate;
  __device__ void operator()(int64_t j) const {
    const int64_t r = j / cols, c = j % cols;
    const Scalar v = src[r * src_stride + c];
    if (accumulate)
      dst[r * dst_stride + c] += v;
    else
      dst[r * dst_stride + c] = v;
  }
};
template <class Scalar>
struct ScaleOp {
  Scalar* x;
  Scalar s;
  __device__ void operator()(int64_t i) const { x[i] *= s; }
};

/// (blocks, threads) of a column reduction over `columns` columns and `rows` rows.
inline void column_launch(int64_t columns, int64_t rows, dim3& grid, dim3& block) {
  grid = dim3(static_cast<unsigned>((columns + 31) / 32));
  block = dim3(32, rows > 1 ? kReduceRows : 1);
}

}  // namespace detail

/// out[i] = f(in[i]) for i < n.
template <class Scalar, class F>
void map_unary_forward(Cuda, Scalar* out, const Scalar* in, int64_t n, F f) {
  detail::for_each_index("map_unary_forward", n, detail::UnaryForwardOp<Scalar, F>{out, in, f});
}

/// din[i] += dout[i] * f.grad(in[i], out[i]).
template <class Scalar, class F>
void map_unary_backward(Cuda, Scalar* din, const Scalar* dout, const Scalar* in, const Scalar* out,
                        int64_t n, F f) {
  detail::for_each_index("map_unary_backward", n,
                         detail::UnaryBackwardOp<Scalar, F>{din, dout, in, out, f});
}

/// out[i] = f(a[oa(i)], b[ob(i)]) for the n output elements of plan `p`.
template <class Scalar, class F>
void map_binary_forward(Cuda, Scalar* out, const Scalar* a, const Scalar* b, const BroadcastPlan& p,
                        int64_t n, F f) {
  detail::for_each_index(
      "map_binary_forward", n,
      detail::BinaryForwardOp<Scalar, F>{out, a, b, p, p.is_elementwise_identity(), f});
}

/// da[oa(i)] += dout[i] * f.grad_a(a, b) and db[ob(i)] += dout[i] * f.grad_b(a, b);
/// a null da or db is skipped. A broadcast operand receives the sum over the
/// output elements that read it (deterministic: see the file comment).
template <class Scalar, class F>
void map_binary_backward(Cuda, Scalar* da, Scalar* db, const Scalar* dout, const Scalar* a,
                         const Scalar* b, const BroadcastPlan& p, int64_t n, F f) {
  if (n == 0) return;
  if (p.is_elementwise_identity()) {
    detail::for_each_index("map_binary_backward", n,
                           detail::BinaryBackwardIdentityOp<Scalar, F>{da, db, dout, a, b, f});
    return;
  }
  for (int which = 0; which < 2; ++which) {
    Scalar* dx = which == 0 ? da : db;
    if (!dx) continue;
    const detail::OperandSplit s = detail::split_for(p, which == 0);
    dim3 grid, block;
    detail::column_launch(s.kept_count, s.red_count, grid, block);
    detail::broadcast_backward_kernel<Scalar, F>
        <<<grid, block, 0, context().stream()>>>(dx, dout, a, b, p, s, which == 0, f);
    NL_CUDA_LAUNCH_CHECK("broadcast_backward_kernel");
  }
}

/// out[o, i] = scale * sum_k in[o, k, i], with in viewed as (outer, n, inner)
/// and out as (outer, inner); accumulated in double.
template <class Scalar>
void sum_axis_forward(Cuda, Scalar* out, const Scalar* in, int64_t outer, int64_t n, int64_t inner,
                      Scalar scale) {
  if (outer * inner == 0) return;
  const cudaStream_t stream = context().stream();
  if (inner == 1) {
    detail::sum_rows_kernel<Scalar>
        <<<detail::row_blocks(outer), detail::row_threads(n), 0, stream>>>(out, in, outer, n,
                                                                           scale);
    NL_CUDA_LAUNCH_CHECK("sum_rows_kernel");
    return;
  }
  dim3 grid, block;
  detail::column_launch(outer * inner, n, grid, block);
  detail::sum_columns_kernel<Scalar><<<grid, block, 0, stream>>>(out, in, outer, n, inner, scale);
  NL_CUDA_LAUNCH_CHECK("sum_columns_kernel");
}

/// din[o, k, i] += scale * dout[o, i]: the backward of sum_axis_forward.
template <class Scalar>
void sum_axis_backward(Cuda, Scalar* din, const Scalar* dout, int64_t outer, int64_t n,
                       int64_t inner, Scalar scale) {
  detail::for_each_index("sum_axis_backward", outer * n * inner,
                         detail::SumBackwardOp<Scalar>{din, dout, n, inner, scale});
}

/// dst[j] = src[plan.offset(j)], or += when `accumulate`, for j < n.
template <class Scalar>
void gather_strided(Cuda, Scalar* dst, const Scalar* src, const StridedPlan& plan, int64_t n,
                    bool accumulate) {
  detail::for_each_index("gather_strided", n, detail::GatherOp<Scalar>{dst, src, plan, accumulate});
}

/// For r < rows and c < cols: dst[r * dst_stride + c] = src[r * src_stride + c]
/// (or += when `accumulate`).
template <class Scalar>
void copy_rows(Cuda, Scalar* dst, int64_t dst_stride, const Scalar* src, int64_t src_stride,
               int64_t rows, int64_t cols, bool accumulate) {
  if (cols == 0) return;
  detail::for_each_index(
      "copy_rows", rows * cols,
      detail::CopyRowsOp<Scalar>{dst, dst_stride, src, src_stride, cols, accumulate});
}

/// x[i] *= s for i < n.
template <class Scalar>
void scale_in_place(Cuda, Scalar* x, int64_t n, Scalar s) {
  detail::for_each_index("scale_in_place", n, detail::ScaleOp<Scalar>{x, s});
}

}  // namespace cuda
}  // namespace v0
}  // namespace normlab

#endif  // __CUDACC__
